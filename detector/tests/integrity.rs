//! Detector integrity: nothing forged, nothing lost, nothing sent twice (issue 8).
//!
//! The first part reproduces the five observed problems, one test each; these tests use only
//! the API the detector had before the fix, and each failed on it (see the closing
//! note). The second part proves the guarantees in general: a fault-injection matrix over every
//! scenario, every store/sink call and every fault kind, with redelivery as Lambda and
//! EventBridge do it; a property test of delivery-order independence; forgery tests for every
//! signal kind.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use common::*;
use ctguard_detector::{Alert, AlertSink, CollectingSink, Detector, MemoryStore, Policy, SinkError};

/// A controllable processing clock, starting at the time the scenarios happen.
fn clock_at(start: i64) -> (Arc<AtomicI64>, Box<dyn Fn() -> i64 + Send + Sync>) {
    let c = Arc::new(AtomicI64::new(start));
    let c2 = Arc::clone(&c);
    (c, Box::new(move || c2.load(Ordering::SeqCst)))
}

/// 2024-05-01T12:00:00Z: after every scenario event, as a processing clock would be.
const NOON: i64 = 1_714_564_800_000;
/// Lambda's first asynchronous retry comes about a minute after a failed invocation.
const LAMBDA_RETRY_MS: i64 = 61_000;

// ---------------------------------------------------------------------------------------------
// Part 1: the five observed problems, reproduced.

/// Problem 1: a forged `AssociateAddress` (any `PutEvents` caller can send one) armed the
/// instance's move window and the thief's identity was accepted: 1 alert became 0. And a
/// move dated far in the future kept the window open.
#[tokio::test]
async fn problem_1_forged_or_future_moves_do_not_silence_the_thief() {
    for (label, source, time) in [
        ("forged source", Some("evil.app"), "2024-05-01T10:09:00Z"),
        ("verify's source", Some("ctguard.verify"), "2024-05-01T10:09:00Z"),
        ("far-future time", None, "2099-01-01T00:00:00Z"),
    ] {
        let (_, clock) = clock_at(NOON);
        let d = Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "t").with_clock(clock);
        d.process_json(&instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "e1").to_string(), None)
            .await
            .expect("ok");
        // A genuine-looking move dated in 2099 would keep its window open over 10:10.
        let mv = associate_address(time);
        match source {
            Some(src) => d.process_envelope(&envelope(src, mv).to_string()).await.expect("ok"),
            None => d.process_json(&mv.to_string(), None).await.expect("ok"),
        };
        d.process_json(&instance_call(KEY1, "198.51.100.66", "2024-05-01T10:10:00Z", "thief").to_string(), None)
            .await
            .expect("ok");
        assert_eq!(d.sink().alerts().len(), 1, "{label}: the thief must still be caught");
    }
}

/// Problem 2: on the out-of-order path the earlier identity was trusted before the alert was
/// published; when the publish failed, the retry found it trusted and never alerted.
#[tokio::test]
async fn problem_2_an_out_of_order_alert_survives_a_failed_publish() {
    let (clock, c) = clock_at(NOON);
    let d = Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "t").with_clock(c);
    // The thief's call (10:05) is delivered before the legitimate first use (10:00).
    d.process_json(&call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", "thief").to_string(), None)
        .await
        .expect("ok");
    let legit = call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "legit").to_string();
    d.sink().fail_next(1);
    assert!(d.process_json(&legit, None).await.is_err(), "the failed publish must fail the event");
    for _ in 0..3 {
        clock.fetch_add(LAMBDA_RETRY_MS, Ordering::SeqCst);
        if d.process_json(&legit, None).await.is_ok() {
            break;
        }
    }
    let a = d.sink().alerts();
    assert_eq!(a.len(), 1, "the retry must deliver the out-of-order alert: {a:#?}");
    assert_eq!(a[0].seen_identity, "ip:198.51.100.66");
}

/// A sink that runs a hook after each successful publish (to fail the next store call).
struct HookSink {
    inner: CollectingSink,
    hook: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl AlertSink for HookSink {
    async fn publish(&self, alert: &Alert) -> Result<(), SinkError> {
        self.inner.publish(alert).await?;
        if let Ok(h) = self.hook.lock() {
            if let Some(f) = h.as_ref() {
                f();
            }
        }
        Ok(())
    }
}

/// Problem 3: SNS accepted the alert, then recording it (`confirm_alert`) failed: the retry
/// published it again.
#[tokio::test]
async fn problem_3_a_failed_confirmation_does_not_send_the_alert_twice() {
    let (clock, c) = clock_at(NOON);
    let sink = HookSink { inner: CollectingSink::new(), hook: Mutex::new(None) };
    let d = Arc::new(Detector::new(MemoryStore::new(), sink, Policy::default(), "t").with_clock(c));
    let weak: Weak<Detector<MemoryStore, HookSink>> = Arc::downgrade(&d);
    if let Ok(mut h) = d.sink().hook.lock() {
        *h = Some(Box::new(move || {
            if let Some(d) = weak.upgrade() {
                d.store().fail_next(1);
            }
        }));
    }
    d.process_json(&call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "e1").to_string(), None)
        .await
        .expect("ok");
    let thief = call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", "thief").to_string();
    // Whatever the first attempt returns, Lambda retries a failure; redeliveries follow.
    let _ = d.process_json(&thief, None).await;
    for _ in 0..3 {
        clock.fetch_add(LAMBDA_RETRY_MS, Ordering::SeqCst);
        let _ = d.process_json(&thief, None).await;
    }
    assert_eq!(d.sink().inner.alerts().len(), 1, "SNS accepted it once: it must go out once");
}

/// Problem 4: a first use through the account's own VPC endpoint became the anchor, and the
/// workload's next call through its NAT gateway alerted (the reverse order did not).
#[tokio::test]
async fn problem_4_own_endpoint_then_nat_raises_nothing() {
    let d = Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "t");
    let own = own_vpce_call(KEY1, "2024-05-01T10:00:00Z", "v1");
    let nat = call(KEY1, "203.0.113.10", "2024-05-01T10:01:00Z", "us-east-1", "n1");
    for e in [own, nat] {
        d.process_json(&e.to_string(), None).await.expect("ok");
    }
    assert!(d.sink().alerts().is_empty(), "{:#?}", d.sink().alerts());
}
