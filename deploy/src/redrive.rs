//! `ctguard redrive`: replay what the detector could not process, from each target's
//! dead-letter queue, through the deployed function.
//!
//! The queue holds two shapes: raw EventBridge events (the rule's dead-letter queue, when
//! EventBridge could not invoke the function) and Lambda on-failure records (the function's
//! asynchronous on-failure destination, after Lambda's retries), whose `requestPayload` is the
//! event. Each message is invoked synchronously and deleted only after the function succeeded;
//! a message that fails again, or that is neither shape, stays in the queue (invisible for the
//! receive's visibility timeout, then visible again) and is reported with why. The detector is
//! idempotent (conditional writes, alert claims), so replaying an event that had partly gone
//! through raises no second alert.

use std::collections::BTreeSet;
use std::future::Future;

use serde::Serialize;
use serde_json::Value;

use crate::stacks::{ApiError, AwsConnector};
use crate::targets::Target;
use crate::verify::{Place, SendError};

/// How long a received message stays invisible to other readers while it is replayed.
pub const VISIBILITY_SECS: i32 = 120;

/// One message received from a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

/// The payload to invoke the function with, from a dead-letter message's body: the event of
/// a Lambda on-failure record, or the EventBridge event (or batch of events) itself.
pub fn payload_of(body: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let is_event = |e: &Value| e.get("detail-type").is_some_and(Value::is_string) && e.get("detail").is_some();
    if let Some(p) = v.get("requestPayload") {
        if v.get("requestContext").is_none() {
            return Err("has requestPayload but no requestContext: not a Lambda on-failure record".into());
        }
        return match p {
            Value::Array(items) if !items.is_empty() && items.iter().all(is_event) => Ok(p.to_string()),
            e if is_event(e) => Ok(p.to_string()),
            _ => Err("a Lambda on-failure record whose requestPayload is not an EventBridge event".into()),
        };
    }
    match &v {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_event) => Ok(v.to_string()),
        e if is_event(e) => Ok(v.to_string()),
        _ => Err("neither an EventBridge event nor a Lambda on-failure record".into()),
    }
}

/// The AWS calls redrive makes in one account × region.
pub trait RedriveApi: Sync {
    /// Messages waiting (visible) in the queue.
    fn depth(&self, at: &Place, url: &str) -> impl Future<Output = Result<u64, ApiError>> + Send;
    /// Up to ten messages, hidden from other readers for [`VISIBILITY_SECS`].
    fn receive(&self, at: &Place, url: &str) -> impl Future<Output = Result<Vec<DlqMessage>, ApiError>> + Send;
    /// Invokes the detector synchronously; `Err` when it failed (or could not be invoked).
    fn invoke(&self, at: &Place, payload: &str) -> impl Future<Output = Result<(), SendError>> + Send;
    fn delete(&self, at: &Place, url: &str, receipt: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// What redrive did in one target.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub account: String,
    pub region: String,
    /// Visible messages before anything was done.
    pub depth: Option<u64>,
    pub received: u64,
    /// Replayed with success and deleted.
    pub redriven: u64,
    /// Message id: why it is still in the queue (the function failed again, or the delete did).
    pub failed: Vec<String>,
    /// Message id: why it is not replayable (left in the queue).
    pub unrecognized: Vec<String>,
    /// The target could not be read or the queue not received from.
    pub error: Option<String>,
}

impl Report {
    /// Whether everything received went through.
    pub fn clean(&self) -> bool {
        self.failed.is_empty() && self.unrecognized.is_empty() && self.error.is_none()
    }
}

/// Options of one run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Only count what waits (`--plan`).
    pub plan: bool,
    /// Stop after this many messages per target.
    pub max: u64,
}

/// Redrives one target's dead-letter queue.
pub async fn redrive_target<R: RedriveApi>(api: &R, t: &Target, dlq_url: &str, opts: Options) -> Report {
    let at = Place::new(t.account.clone(), t.region.clone());
    let mut r = Report { account: t.account.clone(), region: t.region.clone(), ..Report::default() };
    match api.depth(&at, dlq_url).await {
        Ok(d) => r.depth = Some(d),
        Err(e) => {
            r.error = Some(format!("cannot read the dead-letter queue: {e}"));
            return r;
        }
    }
    if opts.plan {
        return r;
    }
    // A message that fails stays in the queue; receiving it again must not loop forever.
    let mut seen = BTreeSet::new();
    'queue: while r.received < opts.max {
        let batch = match api.receive(&at, dlq_url).await {
            Ok(b) => b,
            Err(e) => {
                r.error = Some(format!("receive: {e}"));
                break;
            }
        };
        let fresh: Vec<DlqMessage> = batch.into_iter().filter(|m| seen.insert(m.id.clone())).collect();
        if fresh.is_empty() {
            break;
        }
        for m in fresh {
            if r.received >= opts.max {
                break 'queue;
            }
            r.received += 1;
            let payload = match payload_of(&m.body) {
                Ok(p) => p,
                Err(why) => {
                    r.unrecognized.push(format!("{}: {why}", m.id));
                    continue;
                }
            };
            if let Err(e) = api.invoke(&at, &payload).await {
                r.failed.push(format!("{}: the detector failed again: {e}", m.id));
                continue;
            }
            match api.delete(&at, dlq_url, &m.receipt).await {
                Ok(()) => r.redriven += 1,
                Err(e) => {
                    r.failed.push(format!("{}: replayed, but not deleted (it will be replayed again): {e}", m.id))
                }
            }
        }
    }
    r
}

impl AwsConnector {
    async fn place_config(&self, at: &Place) -> aws_config::SdkConfig {
        ctguard_aws::in_region(&self.account_config(&at.account).await, &at.region)
    }
}

impl RedriveApi for AwsConnector {
    async fn depth(&self, at: &Place, url: &str) -> Result<u64, ApiError> {
        let out = aws_sdk_sqs::Client::new(&self.place_config(at).await)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    async fn receive(&self, at: &Place, url: &str) -> Result<Vec<DlqMessage>, ApiError> {
        let out = aws_sdk_sqs::Client::new(&self.place_config(at).await)
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(VISIBILITY_SECS)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(DlqMessage {
                    id: m.message_id()?.to_string(),
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    async fn invoke(&self, at: &Place, payload: &str) -> Result<(), SendError> {
        crate::verify::VerifyApi::invoke(self, at, None, payload).await
    }

    async fn delete(&self, at: &Place, url: &str, receipt: &str) -> Result<(), ApiError> {
        aws_sdk_sqs::Client::new(&self.place_config(at).await)
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn event(n: u32) -> Value {
        json!({"version": "0", "id": format!("ev-{n}"), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3", "account": "111122223333", "region": "us-east-1", "detail": {"eventID": n}})
    }

    #[test]
    fn both_shapes_are_recognized_and_anything_else_is_not() {
        let e = event(1);
        assert_eq!(payload_of(&e.to_string()), Ok(e.to_string()));
        let batch = json!([event(1), event(2)]);
        assert_eq!(payload_of(&batch.to_string()), Ok(batch.to_string()));
        let record = json!({"version": "1.0", "timestamp": "2026-12-01T10:00:00Z",
            "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:1:function:ctguard-detector:$LATEST",
                "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event(7), "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "StoreUnavailable"}});
        assert_eq!(payload_of(&record.to_string()), Ok(event(7).to_string()));
        for bad in [
            "not json".to_string(),
            "{}".into(),
            "[]".into(),
            json!([event(1), {"x": 1}]).to_string(),
            json!({"requestPayload": event(1)}).to_string(),
            json!({"requestContext": {}, "requestPayload": {"x": 1}}).to_string(),
            json!({"detail-type": 5, "detail": {}}).to_string(),
        ] {
            assert!(payload_of(&bad).is_err(), "{bad}");
        }
    }

    /// A queue in memory; `fail` names payloads the detector fails on, `fail_delete` receipts.
    #[derive(Default)]
    struct FakeQueue {
        messages: Mutex<Vec<DlqMessage>>,
        invoked: Mutex<Vec<String>>,
        fail: Vec<String>,
        fail_delete: Vec<String>,
    }

    impl RedriveApi for FakeQueue {
        async fn depth(&self, _: &Place, _: &str) -> Result<u64, ApiError> {
            Ok(self.messages.lock().map(|m| m.len() as u64).unwrap_or(0))
        }
        async fn receive(&self, _: &Place, _: &str) -> Result<Vec<DlqMessage>, ApiError> {
            // As SQS may: the same failed message comes back on the next receive.
            Ok(self.messages.lock().map(|m| m.iter().take(10).cloned().collect()).unwrap_or_default())
        }
        async fn invoke(&self, _: &Place, payload: &str) -> Result<(), SendError> {
            if let Ok(mut i) = self.invoked.lock() {
                i.push(payload.to_string());
            }
            if self.fail.iter().any(|f| payload.contains(f.as_str())) {
                return Err(SendError::DetectorFailed { kind: "StoreUnavailable".into(), message: "down".into() });
            }
            Ok(())
        }
        async fn delete(&self, _: &Place, _: &str, receipt: &str) -> Result<(), ApiError> {
            if self.fail_delete.iter().any(|r| r == receipt) {
                return Err(ApiError::new("AccessDenied: sqs:DeleteMessage"));
            }
            if let Ok(mut m) = self.messages.lock() {
                m.retain(|x| x.receipt != receipt);
            }
            Ok(())
        }
    }

    fn msg(n: u32, body: String) -> DlqMessage {
        DlqMessage { id: format!("m-{n}"), receipt: format!("r-{n}"), body }
    }

    #[tokio::test]
    async fn replays_deletes_on_success_only_and_never_loops() {
        let mut q = FakeQueue { fail: vec!["ev-3".into()], fail_delete: vec!["r-4".into()], ..FakeQueue::default() };
        let record = json!({"requestContext": {"requestId": "r"}, "requestPayload": event(2)});
        q.messages = Mutex::new(vec![
            msg(1, event(1).to_string()),
            msg(2, record.to_string()),
            msg(3, event(3).to_string()),
            msg(4, event(4).to_string()),
            msg(5, "garbage".into()),
        ]);
        let t = Target::new("111122223333", "us-east-1");
        let r = redrive_target(&q, &t, "url", Options { plan: false, max: 1000 }).await;
        assert_eq!((r.depth, r.received, r.redriven), (Some(5), 5, 2), "{r:?}");
        assert_eq!(r.failed.len(), 2, "{r:?}");
        assert!(r.failed[0].starts_with("m-3: the detector failed again"), "{r:?}");
        assert!(r.failed[1].starts_with("m-4: replayed, but not deleted"), "{r:?}");
        assert_eq!(r.unrecognized.len(), 1);
        assert!(!r.clean());
        let left: Vec<String> = q.messages.lock().map(|m| m.iter().map(|x| x.id.clone()).collect()).unwrap_or_default();
        assert_eq!(left, vec!["m-3", "m-4", "m-5"], "only what went through is deleted");
        let invoked = q.invoked.lock().map(|i| i.clone()).unwrap_or_default();
        assert_eq!(invoked.len(), 4, "each replayable message once, though failed ones come back: {invoked:?}");
        assert_eq!(invoked[1], event(2).to_string(), "the on-failure record's event, not the record");
    }

    #[tokio::test]
    async fn plan_only_counts_and_max_bounds_the_work() {
        let q = FakeQueue {
            messages: Mutex::new((0..25).map(|n| msg(n, event(n).to_string())).collect()),
            ..FakeQueue::default()
        };
        let t = Target::new("111122223333", "us-east-1");
        let r = redrive_target(&q, &t, "url", Options { plan: true, max: 1000 }).await;
        assert_eq!((r.depth, r.received), (Some(25), 0));
        assert!(q.invoked.lock().map(|i| i.is_empty()).unwrap_or(false));
        let r = redrive_target(&q, &t, "url", Options { plan: false, max: 12 }).await;
        assert_eq!((r.received, r.redriven), (12, 12));
        assert_eq!(q.messages.lock().map(|m| m.len()).unwrap_or(0), 13);
        assert!(r.clean());
    }
}
