//! The Lambda: EventBridge "AWS API Call via CloudTrail" events in, alerts on SNS out.
//!
//! Thin by design: configuration and clients are built once in the init phase, the handler
//! hands each event to [`ctguard_detector::Detector`] and maps failures so that Lambda's retry
//! and the on-failure destination keep any event that could not be fully processed.

mod dynamo;
mod sns;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use ctguard_detector::engine::CLOUDTRAIL_DETAIL_TYPE_STR;
use ctguard_detector::{Detector, Policy, Skip};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use dynamo::DynamoStore;
use sns::SnsSink;

type Engine = Detector<DynamoStore, SnsSink>;

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
            .filter(|h| (1..=168).contains(h))
            .ok_or_else(|| format!("CTGUARD_DEFAULT_TTL_HOURS `{h}` is not a number of hours in 1..=168"))?;
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
    let table_cfg = match std::env::var("CTGUARD_TABLE_REGION").ok().filter(|r| !r.is_empty()) {
        Some(r) => base.clone().into_builder().region(Region::new(r)).build(),
        None => base.clone(),
    };
    let topic_region = topic.split(':').nth(3).filter(|r| !r.is_empty()).map(str::to_string);
    let topic_cfg = match topic_region {
        Some(r) => base.clone().into_builder().region(Region::new(r)).build(),
        None => base.clone(),
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&table_cfg), table);
    let sink = SnsSink::new(aws_sdk_sns::Client::new(&topic_cfg), topic);
    let engine: &'static Engine = Box::leak(Box::new(Detector::new(store, sink, policy, version)));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Box<RawValue>>| handle(engine, ev))).await
}

/// Handles one invocation: a single EventBridge event, or an array of them (batch replays).
async fn handle(engine: &Engine, ev: LambdaEvent<Box<RawValue>>) -> Result<Value, Failure> {
    let payload = ev.payload;
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
        "totals": after,
    });
    tracing::info!(summary = %summary, "invocation done");
    match first_error {
        Some(e) => Err(Failure { kind: e.kind(), message: format!("{failed} event(s) not processed: {e}") }),
        None => Ok(summary),
    }
}
