//! The Lambda: EventBridge "AWS API Call via CloudTrail" events in, alerts on SNS out.
//!
//! Thin by design: configuration and clients are built once in the init phase, the handler
//! hands each event to [`ctguard_detector::Detector`] and maps failures so that Lambda's retry
//! and the on-failure destination keep any event that could not be fully processed. The
//! handler is generic over the store and the sink, so its tests run on
//! [`ctguard_detector::MemoryStore`] and [`ctguard_detector::CollectingSink`].

mod dynamo;
mod hub;
mod iam;
mod notifier;
mod signed;
mod sns;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use ctguard_detector::engine::CLOUDTRAIL_DETAIL_TYPE_STR;
use ctguard_detector::{AlertSink, Detector, Policy, Skip, StateStore};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use ctguard_detector::health::{self, NotNotice, ALARM_DETAIL_TYPE};
use dynamo::DynamoStore;
use hub::SecurityHub;
use notifier::{AutoContain, HealthSink, Notifier};
use signed::Signed;
use sns::SnsSink;

type Engine = Detector<DynamoStore, Notifier>;

/// Per-call limits of the AWS clients. Without them one stalled connection could use up the
/// whole invocation (30 s); with them a slow call fails fast, the invocation reports the
/// error and Lambda retries the event. An invocation's alert claims outlive it anyway
/// (`ALERT_LEASE_MS` is longer than the function timeout), so a call that still times out
/// late can never let two invocations publish concurrently.
fn timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// DynamoDB answers single-item writes in milliseconds: 1.5 s per attempt, 4 s in all.
const STORE_ATTEMPT: Duration = Duration::from_millis(1500);
const STORE_OPERATION: Duration = Duration::from_secs(4);
/// SNS publishes are slower and rarer: 3 s per attempt, 8 s in all.
const SINK_ATTEMPT: Duration = Duration::from_secs(3);
const SINK_OPERATION: Duration = Duration::from_secs(8);

/// A failed invocation, reported to Lambda with a stable error type.
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    message: String,
}

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Diagnostic {
        Diagnostic { error_type: f.kind.to_string(), error_message: f.message }
    }
}

fn env(name: &str) -> Result<String, lambda_runtime::Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("environment variable {name} is required").into())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .init();

    let table = env("CTGUARD_TABLE")?;
    let topic = env("CTGUARD_TOPIC_ARN")?;
    let version = std::env::var("CTGUARD_VERSION").unwrap_or_else(|_| ctguard_detector::VERSION.to_string());
    let mut policy = Policy::from_json(&std::env::var("CTGUARD_POLICY").unwrap_or_default())
        .map_err(|e| format!("CTGUARD_POLICY: {e}"))?;
    if let Ok(h) = std::env::var("CTGUARD_DEFAULT_TTL_HOURS") {
        let hours: i64 = h
            .trim()
            .parse()
            .ok()
            .filter(|h| (1..=ctguard_detector::policy::MAX_DEFAULT_TTL_HOURS as i64).contains(h))
            .ok_or_else(|| {
                format!(
                    "CTGUARD_DEFAULT_TTL_HOURS `{h}` is not a number of hours in 1..={}",
                    ctguard_detector::policy::MAX_DEFAULT_TTL_HOURS
                )
            })?;
        policy.default_ttl_ms = hours * 3_600_000;
    }

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let base = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(5).with_max_backoff(Duration::from_secs(2)))
        .load()
        .await;
    // The table lives in the account's home region, shared by every region's detector, so that
    // a key first seen in one region and reused in another is caught.
    let mut table_cfg = base.clone().into_builder().timeout_config(timeouts(STORE_ATTEMPT, STORE_OPERATION));
    if let Some(r) = std::env::var("CTGUARD_TABLE_REGION").ok().filter(|r| !r.is_empty()) {
        table_cfg = table_cfg.region(Region::new(r));
    }
    let table_cfg = table_cfg.build();
    let mut topic_cfg = base.clone().into_builder().timeout_config(timeouts(SINK_ATTEMPT, SINK_OPERATION));
    if let Some(r) = topic.split(':').nth(3).filter(|r| !r.is_empty()) {
        topic_cfg = topic_cfg.region(Region::new(r.to_string()));
    }
    let topic_cfg = topic_cfg.build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&table_cfg), table);
    // Security Hub and IAM are called with signed requests of their own (no SDK crates).
    let signed = || -> Result<Signed, lambda_runtime::Error> {
        let credentials = base.credentials_provider().ok_or("no AWS credentials provider")?;
        let connector = aws_smithy_http_client::Connector::builder()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build();
        Ok(Signed::new(connector, credentials))
    };
    // Security Hub: on when the stack gives the product to import into (install --security-hub).
    // A setting it cannot use never stops the alerts: each alert then counts the failure
    // (`ctguard-detector-side-effects`), and says so where it can.
    let hub = match std::env::var("CTGUARD_SECURITY_HUB_PRODUCT").ok().filter(|p| !p.trim().is_empty()) {
        Some(product) => {
            Some(SecurityHub::new(signed()?, product.trim()).map_err(|e| format!("CTGUARD_SECURITY_HUB_PRODUCT: {e}")))
        }
        None => None,
    };
    // Automatic containment (install --auto-contain): of opted-in roles of the detector's own
    // account only.
    let contain = match std::env::var("CTGUARD_AUTO_CONTAIN").unwrap_or_default().trim() {
        "true" => {
            let account = std::env::var("CTGUARD_ACCOUNT").unwrap_or_default().trim().to_string();
            if ctguard_detector::is_account_id(&account) {
                let region = base.region().map(|r| r.to_string()).unwrap_or_default();
                Some(Ok(AutoContain { iam: iam::Iam::new(signed()?, &region), account, policy: policy.clone() }))
            } else {
                Some(Err(format!("CTGUARD_ACCOUNT `{account}` is not an account id")))
            }
        }
        "" | "false" => None,
        other => Some(Err(format!("CTGUARD_AUTO_CONTAIN `{other}` is neither true nor false"))),
    };
    for e in [hub.as_ref().and_then(|h| h.as_ref().err()), contain.as_ref().and_then(|c| c.as_ref().err())]
        .into_iter()
        .flatten()
    {
        tracing::error!(error = %e, "a setting of the function is unusable: that feature fails on every alert");
    }
    let sink = Notifier {
        sns: SnsSink::new(aws_sdk_sns::Client::new(&topic_cfg), topic),
        records: Some(store.clone()),
        hub,
        contain,
    };
    let engine: &'static Engine = Box::leak(Box::new(Detector::new(store, sink, policy, version)));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Box<RawValue>>| handle(engine, engine.sink(), ev.payload)))
        .await
}

/// Handles one invocation: a single EventBridge event, or an array of them (batch replays).
/// Alarm state changes of ctguard's own alarms become health notices on `health`.
async fn handle<S: StateStore, A: AlertSink, H: HealthSink>(
    engine: &Detector<S, A>,
    health: &H,
    payload: Box<RawValue>,
) -> Result<Value, Failure> {
    let before = engine.stats();
    let events: Vec<Box<RawValue>> = if payload.get().trim_start().starts_with('[') {
        serde_json::from_str(payload.get()).map_err(|e| Failure {
            kind: "MalformedBatch",
            message: format!("payload is an array but not of events: {e}"),
        })?
    } else {
        vec![payload]
    };
    let mut first_error = None;
    let mut failed = 0u64;
    let mut notices = 0u64;
    for raw in &events {
        // The typed EventBridge envelope; the CloudTrail record in `detail` is parsed once,
        // borrowed, by the engine.
        let env: EventBridgeEvent<Box<RawValue>> = match serde_json::from_str(raw.get()) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "skipping malformed event");
                engine.note_skip(Skip::Malformed);
                continue;
            }
        };
        if env.detail_type == ALARM_DETAIL_TYPE {
            let notice = serde_json::from_str::<Value>(raw.get()).map_err(|e| NotNotice::Malformed(e.to_string()));
            match notice.and_then(|v| health::notice(&v, ctguard_detector::time::now_ms())) {
                Ok(n) => match health.notify(&n).await {
                    Ok(()) => notices += 1,
                    Err(e) => {
                        failed += 1;
                        let e = ctguard_detector::Error::Sink(e);
                        tracing::error!(error = %e, alarm = %n.alarm, "health notice not published");
                        first_error.get_or_insert(e);
                    }
                },
                Err(why) => {
                    tracing::info!(reason = ?why, "alarm state change: no notice");
                    engine.note_skip(Skip::NotCloudTrail);
                }
            }
            continue;
        }
        if env.detail_type != CLOUDTRAIL_DETAIL_TYPE_STR {
            engine.note_skip(Skip::NotCloudTrail);
            continue;
        }
        // Keep going after a failure: the neighbours are processed, and the retry of the whole
        // invocation is idempotent (conditional writes, alert claims).
        if let Err(e) = engine.process_json(env.detail.get(), Some(&env.source)).await {
            failed += 1;
            tracing::error!(error = %e, event_id = env.id.as_deref().unwrap_or(""), retryable = e.is_retryable(), "event not processed");
            first_error.get_or_insert(e);
        }
    }
    let after = engine.stats();
    let summary = json!({
        "events": events.len(),
        "alerts": after.alerts - before.alerts,
        "skipped": after.skipped_total() - before.skipped_total(),
        "failed": failed,
        "health_notices": notices,
        "totals": after,
    });
    tracing::info!(summary = %summary, "invocation done");
    match first_error {
        Some(e) => Err(Failure { kind: e.kind(), message: format!("{failed} event(s) not processed: {e}") }),
        None => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctguard_detector::{CollectingSink, MemoryStore};

    const KEY: &str = "ASIAQWERTYQWERTYQWER";
    const ACCT: &str = "123456789012";
    const INSTANCE: &str = "i-0123456789abcdef0";

    /// Health notices received, or a failure to hand back.
    #[derive(Default)]
    struct Notices {
        got: std::sync::Mutex<Vec<health::HealthNotice>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl HealthSink for Notices {
        async fn notify(&self, n: &health::HealthNotice) -> Result<(), ctguard_detector::SinkError> {
            if self.fail.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return Err(ctguard_detector::SinkError::Transient("injected".into()));
            }
            self.got.lock().expect("lock").push(n.clone());
            Ok(())
        }
    }

    fn alarm(source: &str, name: &str, state: &str) -> Value {
        json!({"version": "0", "id": "a1", "detail-type": "CloudWatch Alarm State Change", "source": source,
               "account": ACCT, "region": "eu-west-1", "time": ctguard_detector::time::format_rfc3339(ctguard_detector::time::now_ms()),
               "resources": [format!("arn:aws:cloudwatch:eu-west-1:{ACCT}:alarm:{name}")],
               "detail": {"alarmName": name, "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-30T10:00:00.000+0000"},
                          "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-30T09:00:00.000+0000"}}})
    }

    #[tokio::test]
    async fn alarm_state_changes_become_health_notices_and_a_failed_notice_is_retried() {
        let d = det();
        let n = Notices::default();
        let out = handle(&d, &n, raw(&alarm("aws.cloudwatch", "ctguard-detector-dlq", "ALARM"))).await.expect("notice");
        assert_eq!(out["health_notices"], 1, "{out}");
        assert_eq!(n.got.lock().expect("lock")[0].alarm, "ctguard-detector-dlq");
        // Not ours, not from CloudWatch, or nothing to tell: skipped, never an error.
        let batch = json!([
            alarm("custom.forged", "ctguard-detector-dlq", "ALARM"),
            alarm("aws.cloudwatch", "billing", "ALARM"),
            alarm("aws.cloudwatch", "ctguard-detector-errors", "INSUFFICIENT_DATA")
        ]);
        let out = handle(&d, &n, raw(&batch)).await.expect("skipped");
        assert_eq!((out["health_notices"].as_u64(), out["skipped"].as_u64()), (Some(0), Some(3)), "{out}");
        assert_eq!(n.got.lock().expect("lock").len(), 1);
        assert_eq!(d.sink().alerts().len(), 0, "a notice is not an alert");
        // A notice that could not be published fails the invocation, so Lambda retries it.
        n.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let f =
            handle(&d, &n, raw(&alarm("aws.cloudwatch", "ctguard-detector-errors", "ALARM"))).await.expect_err("retry");
        assert_eq!(f.kind, "AlertSinkUnavailable");
        handle(&d, &n, raw(&alarm("aws.cloudwatch", "ctguard-detector-errors", "ALARM"))).await.expect("retried");
        assert_eq!(n.got.lock().expect("lock").len(), 2);
    }

    fn det() -> Detector<MemoryStore, CollectingSink> {
        Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "unit")
    }

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).expect("JSON")
    }

    fn envelope(source: &str, detail: Value) -> Value {
        json!({"version": "0", "id": "x", "detail-type": "AWS API Call via CloudTrail", "source": source,
               "account": ACCT, "region": "us-east-1", "time": "2024-05-01T10:00:00Z", "resources": [],
               "detail": detail})
    }

    fn call(ip: &str, time: &str, id: &str) -> Value {
        json!({"eventVersion": "1.08", "eventID": id, "eventTime": time, "eventType": "AwsApiCall",
               "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
               "sourceIPAddress": ip, "recipientAccountId": ACCT,
               "userIdentity": {"type": "AssumedRole", "accessKeyId": KEY, "accountId": ACCT,
                   "arn": format!("arn:aws:sts::{ACCT}:assumed-role/app/{INSTANCE}"),
                   "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCT}:role/app")}}}})
    }

    #[tokio::test]
    async fn one_event_then_a_batch_with_redeliveries_and_garbage() {
        let d = det();
        let out = handle(
            &d,
            &Notices::default(),
            raw(&envelope("aws.sts", call("203.0.113.10", "2024-05-01T10:00:00Z", "e1"))),
        )
        .await
        .expect("first use");
        assert_eq!((out["events"].as_u64(), out["alerts"].as_u64()), (Some(1), Some(0)));
        let reuse = envelope("aws.sts", call("198.51.100.66", "2024-05-01T10:03:00Z", "e2"));
        let batch = json!([reuse, reuse, {"not": "an event"},
                           {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}]);
        let out = handle(&d, &Notices::default(), raw(&batch)).await.expect("batch");
        assert_eq!(out["events"], 4);
        assert_eq!(out["alerts"], 1, "{out}");
        assert_eq!(out["skipped"], 2, "{out}");
        let alerts = d.sink().alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].id, ctguard_detector::alert_id(KEY, "ip:198.51.100.66"));
    }

    #[tokio::test]
    async fn an_array_of_non_events_is_counted_not_fatal() {
        let d = det();
        let out = handle(&d, &Notices::default(), raw(&json!([1, "x", null])))
            .await
            .expect("garbage is skipped, not an error");
        assert_eq!((out["events"].as_u64(), out["skipped"].as_u64()), (Some(3), Some(3)), "{out}");
        assert_eq!(out["totals"]["skipped"]["malformed"], 3, "{out}");
    }

    #[tokio::test]
    async fn a_store_failure_fails_the_invocation_but_not_its_neighbours() {
        let d = det();
        d.store().fail_next(1);
        let batch = json!([
            envelope("aws.sts", call("203.0.113.10", "2024-05-01T10:00:00Z", "e1")),
            envelope("aws.sts", call("203.0.113.10", "2024-05-01T10:00:01Z", "e2")),
        ]);
        let f = handle(&d, &Notices::default(), raw(&batch)).await.expect_err("the first event's store call failed");
        assert_eq!(f.kind, "StateStoreUnavailable");
        assert!(f.message.starts_with("1 event(s) not processed"), "{}", f.message);
        // The neighbour was processed: the scope is anchored.
        assert_eq!(d.store().trusted(&format!("I#{ACCT}#{INSTANCE}")).len(), 1);
    }

    #[tokio::test]
    async fn a_failed_publish_fails_the_invocation_and_the_retry_publishes_once() {
        let d = det();
        handle(&d, &Notices::default(), raw(&envelope("aws.sts", call("203.0.113.10", "2024-05-01T10:00:00Z", "e1"))))
            .await
            .expect("ok");
        let reuse = envelope("aws.sts", call("198.51.100.66", "2024-05-01T10:03:00Z", "e2"));
        d.sink().fail_next(1);
        let f = handle(&d, &Notices::default(), raw(&reuse)).await.expect_err("publish failed");
        assert_eq!(f.kind, "AlertSinkUnavailable");
        assert!(d.sink().alerts().is_empty());
        // Lambda's retry of the same event takes its own claim back and publishes.
        let out = handle(&d, &Notices::default(), raw(&reuse)).await.expect("retry");
        assert_eq!(out["alerts"], 1, "{out}");
        handle(&d, &Notices::default(), raw(&reuse)).await.expect("redelivery");
        assert_eq!(d.sink().alerts().len(), 1);
    }

    #[tokio::test]
    async fn forged_signals_from_a_custom_source_change_nothing() {
        let d = det();
        let assoc = json!({"eventVersion": "1.08", "eventID": "f1", "eventTime": "2024-05-01T10:00:00Z",
            "eventType": "AwsApiCall", "eventSource": "ec2.amazonaws.com", "eventName": "AssociateAddress",
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.200", "recipientAccountId": ACCT,
            "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAAAAAAAAAAAAAAAAA"},
            "requestParameters": {"instanceId": INSTANCE}, "responseElements": {"return": true}});
        let out = handle(&d, &Notices::default(), raw(&envelope("custom.app", assoc))).await.expect("processed");
        assert_eq!(out["totals"]["untrusted_signals"], 1, "{out}");
        assert_eq!(d.store().scope_count(), 0, "a forged move must not touch the instance's scope");
    }
}
