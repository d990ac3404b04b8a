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

/// How long a received message stays invisible to other readers while it is replayed: one
/// message is received at a time, and its synchronous invocation (30 s function timeout, plus
/// the SDK's retries) ends well within this.
pub const VISIBILITY_SECS: i32 = 120;

/// One message received from a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

/// The payload to invoke the function with, from a dead-letter message's body: the event of
/// a Lambda on-failure record of `function_arn`, or the EventBridge event (or batch) itself.
///
/// Who may write to the queue is the queue policy's job (only the rule, as the events
/// service, and the detector's role); the function check here is a second, cheap one.
pub fn payload_of(body: &str, function_arn: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let is_event = |e: &Value| e.get("detail-type").is_some_and(Value::is_string) && e.get("detail").is_some();
    if let Some(ctx) = v.get("requestContext") {
        let from = ctx.get("functionArn").and_then(Value::as_str).unwrap_or_default();
        // `arn:…:function:ctguard-detector:$LATEST` (or a version): the deployed function only.
        if from != function_arn && !from.strip_prefix(function_arn).is_some_and(|q| q.starts_with(':')) {
            return Err(format!("a Lambda on-failure record of another function ({from:?})"));
        }
        let Some(p) = v.get("requestPayload") else {
            // Lambda drops the payload when the record would exceed the destination's size
            // limit: the event itself is lost; the logs still hold it.
            return Err(format!(
                "a Lambda on-failure record without its event (Lambda drops a payload too large for the queue): \
                 scan the trail around {} instead",
                v.get("timestamp").and_then(Value::as_str).unwrap_or("its timestamp")
            ));
        };
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
    /// Messages in the queue: (waiting, in flight, i.e. received and not yet visible again).
    fn depth(&self, at: &Place, url: &str) -> impl Future<Output = Result<(u64, u64), ApiError>> + Send;
    /// The next message, hidden from other readers for [`VISIBILITY_SECS`].
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
    /// Messages waiting before anything was done.
    pub depth: Option<u64>,
    /// Messages in flight before anything was done (received by an earlier run and not yet
    /// visible again: they will be waiting again within two minutes).
    pub in_flight: Option<u64>,
    /// Messages still in the queue after the run (waiting or in flight; SQS's approximate
    /// counts). Anything but 0 is not a clean run.
    pub remaining: Option<u64>,
    /// The run stopped at `--max`.
    pub stopped_at_max: bool,
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
    /// Whether the queue was emptied: everything received went through, nothing was left
    /// unattempted, and nothing is in the queue afterwards.
    pub fn clean(&self) -> bool {
        self.failed.is_empty()
            && self.unrecognized.is_empty()
            && self.error.is_none()
            && !self.stopped_at_max
            && self.remaining == Some(0)
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

/// Redrives one target's dead-letter queue into `function_arn`.
pub async fn redrive_target<R: RedriveApi>(
    api: &R,
    t: &Target,
    dlq_url: &str,
    function_arn: &str,
    opts: Options,
) -> Report {
    let at = Place::new(t.account.clone(), t.region.clone());
    let mut r = Report { account: t.account.clone(), region: t.region.clone(), ..Report::default() };
    match api.depth(&at, dlq_url).await {
        Ok((waiting, in_flight)) => (r.depth, r.in_flight) = (Some(waiting), Some(in_flight)),
        Err(e) => {
            r.error = Some(format!("cannot read the dead-letter queue: {e}"));
            return r;
        }
    }
    if opts.plan {
        r.remaining = r.depth.zip(r.in_flight).map(|(a, b)| a + b);
        return r;
    }
    // A message that fails stays in the queue and comes back after its visibility timeout; it
    // is replayed once per run (by id). The run ends when the queue answers with nothing.
    let mut seen = BTreeSet::new();
    let mut repeats = 0usize;
    loop {
        if r.received >= opts.max {
            r.stopped_at_max = true;
            break;
        }
        let batch = match api.receive(&at, dlq_url).await {
            Ok(b) => b,
            Err(e) => {
                r.error = Some(format!("receive: {e}"));
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        let fresh: Vec<DlqMessage> = batch.into_iter().filter(|m| seen.insert(m.id.clone())).collect();
        // Failed messages come back when their visibility ends; once every one of them came
        // back with nothing new in between, only messages already tried are left.
        repeats = if fresh.is_empty() { repeats + 1 } else { 0 };
        if repeats > seen.len() {
            break;
        }
        for m in fresh {
            r.received += 1;
            let payload = match payload_of(&m.body, function_arn) {
                Ok(p) => p,
                Err(why) => {
                    r.unrecognized.push(format!("{}: {why}", m.id));
                    continue;
                }
            };
            match api.invoke(&at, &payload).await {
                Ok(()) => {}
                Err(e @ SendError::DetectorFailed { .. }) => {
                    r.failed.push(format!("{}: the detector failed again: {e}", m.id));
                    continue;
                }
                // Not the detector's answer but the call's (denied, not found, throttled after
                // retries): every other message would fail alike, so the target stops here.
                Err(e) => {
                    r.failed.push(format!("{}: not replayed: {e}", m.id));
                    r.error = Some(format!("stopped: cannot invoke the detector: {e}"));
                    break;
                }
            }
            match api.delete(&at, dlq_url, &m.receipt).await {
                Ok(()) => r.redriven += 1,
                Err(e) => {
                    r.failed.push(format!("{}: replayed, but not deleted (it will be replayed again): {e}", m.id))
                }
            }
        }
        if r.error.is_some() {
            break;
        }
    }
    r.remaining = api.depth(&at, dlq_url).await.ok().map(|(a, b)| a + b);
    r
}

impl AwsConnector {
    async fn place_config(&self, at: &Place) -> aws_config::SdkConfig {
        ctguard_aws::in_region(&self.account_config(&at.account).await, &at.region)
    }
}

impl RedriveApi for AwsConnector {
    async fn depth(&self, at: &Place, url: &str) -> Result<(u64, u64), ApiError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = aws_sdk_sqs::Client::new(&self.place_config(at).await)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        let get = |k: A| out.attributes().and_then(|a| a.get(&k)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        Ok((
            get(A::ApproximateNumberOfMessages) + get(A::ApproximateNumberOfMessagesDelayed),
            get(A::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    async fn receive(&self, at: &Place, url: &str) -> Result<Vec<DlqMessage>, ApiError> {
        let out = aws_sdk_sqs::Client::new(&self.place_config(at).await)
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(1)
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

    const FN: &str = "arn:aws:lambda:us-east-1:111122223333:function:ctguard-detector";

    fn event(n: u32) -> Value {
        json!({"version": "0", "id": format!("ev-{n}"), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3", "account": "111122223333", "region": "us-east-1", "detail": {"eventID": n}})
    }

    fn record(e: &Value, function: &str) -> Value {
        json!({"version": "1.0", "timestamp": "2026-12-01T10:00:00Z",
            "requestContext": {"requestId": "r", "functionArn": function,
                "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": e, "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "StoreUnavailable"}})
    }

    #[test]
    fn both_shapes_are_recognized_and_anything_else_is_not() {
        let e = event(1);
        assert_eq!(payload_of(&e.to_string(), FN), Ok(e.to_string()));
        let batch = json!([event(1), event(2)]);
        assert_eq!(payload_of(&batch.to_string(), FN), Ok(batch.to_string()));
        for f in [FN.to_string(), format!("{FN}:$LATEST"), format!("{FN}:7")] {
            assert_eq!(payload_of(&record(&event(7), &f).to_string(), FN), Ok(event(7).to_string()), "{f}");
        }
        let mut dropped = record(&event(7), FN);
        if let Some(o) = dropped.as_object_mut() {
            o.remove("requestPayload");
        }
        let why = payload_of(&dropped.to_string(), FN).err().unwrap_or_default();
        assert!(why.contains("without its event") && why.contains("2026-12-01T10:00:00Z"), "{why}");
        for bad in [
            "not json".to_string(),
            "{}".into(),
            "[]".into(),
            json!([event(1), {"x": 1}]).to_string(),
            json!({"requestPayload": event(1)}).to_string(),
            record(&json!({"x": 1}), FN).to_string(),
            record(&event(1), &format!("{FN}-other")).to_string(),
            record(&event(1), "arn:aws:lambda:us-east-1:444455556666:function:ctguard-detector").to_string(),
            json!({"detail-type": 5, "detail": {}}).to_string(),
        ] {
            assert!(payload_of(&bad, FN).is_err(), "{bad}");
        }
    }

    /// A queue in memory with SQS's visibility: a received message is in flight until deleted;
    /// with `reappear`, its visibility ends at once (as if the timeout passed mid-run).
    #[derive(Default)]
    struct FakeQueue {
        visible: Mutex<Vec<DlqMessage>>,
        in_flight: Mutex<Vec<DlqMessage>>,
        invoked: Mutex<Vec<String>>,
        fail: Vec<String>,
        deny_invoke: bool,
        fail_delete: Vec<String>,
        reappear: bool,
    }

    impl FakeQueue {
        fn with(messages: Vec<DlqMessage>) -> FakeQueue {
            FakeQueue { visible: Mutex::new(messages), ..FakeQueue::default() }
        }
        fn ids(v: &Mutex<Vec<DlqMessage>>) -> Vec<String> {
            v.lock().map(|m| m.iter().map(|x| x.id.clone()).collect()).unwrap_or_default()
        }
    }

    impl RedriveApi for FakeQueue {
        async fn depth(&self, _: &Place, _: &str) -> Result<(u64, u64), ApiError> {
            let n = |v: &Mutex<Vec<DlqMessage>>| v.lock().map(|m| m.len() as u64).unwrap_or(0);
            Ok((n(&self.visible), n(&self.in_flight)))
        }
        async fn receive(&self, _: &Place, _: &str) -> Result<Vec<DlqMessage>, ApiError> {
            let (Ok(mut v), Ok(mut f)) = (self.visible.lock(), self.in_flight.lock()) else { return Ok(vec![]) };
            if v.is_empty() {
                return Ok(vec![]);
            }
            let m = v.remove(0);
            if self.reappear {
                v.push(m.clone());
            } else {
                f.push(m.clone());
            }
            Ok(vec![m])
        }
        async fn invoke(&self, _: &Place, payload: &str) -> Result<(), SendError> {
            if let Ok(mut i) = self.invoked.lock() {
                i.push(payload.to_string());
            }
            if self.deny_invoke {
                return Err(SendError::Invoke(ApiError::new("AccessDeniedException: lambda:InvokeFunction")));
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
            for q in [&self.visible, &self.in_flight] {
                if let Ok(mut m) = q.lock() {
                    m.retain(|x| x.receipt != receipt);
                }
            }
            Ok(())
        }
    }

    fn msg(n: u32, body: String) -> DlqMessage {
        DlqMessage { id: format!("m-{n}"), receipt: format!("r-{n}"), body }
    }

    fn five() -> Vec<DlqMessage> {
        vec![
            msg(1, event(1).to_string()),
            msg(2, record(&event(2), &format!("{FN}:$LATEST")).to_string()),
            msg(3, event(3).to_string()),
            msg(4, event(4).to_string()),
            msg(5, "garbage".into()),
        ]
    }

    fn run_opts(max: u64) -> Options {
        Options { plan: false, max }
    }

    #[tokio::test]
    async fn replays_deletes_on_success_only_and_reports_what_is_left() {
        for reappear in [false, true] {
            let q = FakeQueue {
                fail: vec!["ev-3".into()],
                fail_delete: vec!["r-4".into()],
                reappear,
                ..FakeQueue::with(five())
            };
            let t = Target::new("111122223333", "us-east-1");
            let r = redrive_target(&q, &t, "url", FN, run_opts(1000)).await;
            assert_eq!((r.depth, r.in_flight, r.received, r.redriven), (Some(5), Some(0), 5, 2), "{r:?}");
            assert_eq!(r.failed.len(), 2, "{r:?}");
            assert!(r.failed[0].starts_with("m-3: the detector failed again"), "{r:?}");
            assert!(r.failed[1].starts_with("m-4: replayed, but not deleted"), "{r:?}");
            assert_eq!(r.unrecognized.len(), 1);
            assert_eq!(r.remaining, Some(3), "{r:?}");
            assert!(!r.clean());
            let mut left = FakeQueue::ids(&q.visible);
            left.extend(FakeQueue::ids(&q.in_flight));
            left.sort();
            assert_eq!(left, vec!["m-3", "m-4", "m-5"], "only what went through is deleted");
            let invoked = q.invoked.lock().map(|i| i.clone()).unwrap_or_default();
            assert_eq!(invoked.len(), 4, "each replayable message once, though failed ones come back: {invoked:?}");
            assert_eq!(invoked[1], event(2).to_string(), "the on-failure record's event, not the record");
        }
    }

    #[tokio::test]
    async fn a_second_run_is_clean_only_when_the_queue_is_empty() {
        let t = Target::new("111122223333", "us-east-1");
        // What an earlier run left in flight is counted, not mistaken for an empty queue.
        let q = FakeQueue::with(vec![msg(9, "garbage".into())]);
        let first = redrive_target(&q, &t, "url", FN, run_opts(1000)).await;
        assert_eq!((first.received, first.remaining), (1, Some(1)));
        let again = redrive_target(&q, &t, "url", FN, run_opts(1000)).await;
        assert_eq!((again.depth, again.in_flight, again.received, again.remaining), (Some(0), Some(1), 0, Some(1)));
        assert!(!again.clean(), "a message in flight is still in the queue");
        let q = FakeQueue::with(vec![msg(1, event(1).to_string())]);
        let r = redrive_target(&q, &t, "url", FN, run_opts(1000)).await;
        assert!(r.clean(), "{r:?}");
    }

    #[tokio::test]
    async fn an_invoke_that_cannot_be_made_stops_the_target() {
        let q = FakeQueue { deny_invoke: true, ..FakeQueue::with(five()) };
        let t = Target::new("111122223333", "us-east-1");
        let r = redrive_target(&q, &t, "url", FN, run_opts(1000)).await;
        assert_eq!((r.received, r.redriven), (1, 0), "{r:?}");
        assert!(r.error.as_deref().unwrap_or("").contains("cannot invoke"), "{r:?}");
        assert_eq!(q.invoked.lock().map(|i| i.len()).unwrap_or(0), 1);
        assert_eq!(r.remaining, Some(5));
    }

    #[tokio::test]
    async fn plan_only_counts_and_max_bounds_the_work() {
        let q = FakeQueue::with((0..25).map(|n| msg(n, event(n).to_string())).collect());
        let t = Target::new("111122223333", "us-east-1");
        let r = redrive_target(&q, &t, "url", FN, Options { plan: true, max: 1000 }).await;
        assert_eq!((r.depth, r.received, r.remaining), (Some(25), 0, Some(25)));
        assert!(q.invoked.lock().map(|i| i.is_empty()).unwrap_or(false));
        let r = redrive_target(&q, &t, "url", FN, run_opts(12)).await;
        assert_eq!((r.received, r.redriven, r.remaining), (12, 12, Some(13)));
        assert!(r.stopped_at_max && !r.clean(), "stopping at --max is not an empty queue");
    }
}
