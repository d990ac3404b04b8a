//! Scenario tables: a stream of events → the alerts expected, and the ones that must not fire.

mod common;

use common::*;
use ctguard_detector::{CollectingSink, Decision, Detector, MemoryStore, Policy, Skip};
use serde_json::{json, Value};

fn det() -> Detector<MemoryStore, CollectingSink> {
    det_with(Policy::default())
}

fn det_with(p: Policy) -> Detector<MemoryStore, CollectingSink> {
    Detector::new(MemoryStore::new(), CollectingSink::new(), p, "test")
}

async fn run(d: &Detector<MemoryStore, CollectingSink>, events: &[Value]) -> Vec<Decision> {
    let mut out = Vec::new();
    for e in events {
        out.extend(d.process_json(&e.to_string(), None).await.expect("no store failure"));
    }
    out
}

fn alerts(d: &Detector<MemoryStore, CollectingSink>) -> Vec<(String, String)> {
    d.sink().alerts().into_iter().map(|a| (a.access_key_id, a.seen_identity)).collect()
}

#[tokio::test]
async fn tofu_trusts_first_identity_and_alerts_on_second() {
    let d = det();
    run(
        &d,
        &[
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "us-east-1", "e1"),
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:02Z", "us-east-1", "e2"),
            call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", "e3"),
        ],
    )
    .await;
    assert_eq!(alerts(&d), vec![(KEY1.to_string(), "ip:198.51.100.66".to_string())]);
    let a = &d.sink().alerts()[0];
    assert_eq!(a.expected[0].identity, "ip:203.0.113.10");
    assert_eq!(a.expected[0].first_seen.event_id.as_deref(), Some("e1"));
    assert_eq!(a.offending.event_id.as_deref(), Some("e3"));
    assert_eq!(a.account.as_deref(), Some(ACCT));
    assert_eq!(a.role_arn.as_deref(), Some(ROLE));
    assert!(!a.synthetic);
}

#[tokio::test]
async fn one_alert_per_key_and_identity_even_when_redelivered() {
    let d = det();
    let first = call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "us-east-1", "e1");
    let bad = call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", "e3");
    let other = call(KEY1, "192.0.2.99", "2024-05-01T10:06:00Z", "us-east-1", "e4");
    run(&d, &[first.clone(), bad.clone(), bad.clone(), first, bad, other]).await;
    assert_eq!(alerts(&d).len(), 2, "one per new identity: {:?}", alerts(&d));
}

#[tokio::test]
async fn a_cold_cache_still_dedupes_through_the_store() {
    let d = det().with_cache_entries(2);
    let mut evs = vec![call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "us-east-1", "e1")];
    for i in 0..20 {
        evs.push(call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", &format!("b{i}")));
        evs.push(call(KEY2, &format!("192.0.2.{i}"), "2024-05-01T10:05:00Z", "us-east-1", &format!("c{i}")));
    }
    run(&d, &evs).await;
    assert_eq!(alerts(&d).iter().filter(|(k, _)| k == KEY1).count(), 1);
}

#[tokio::test]
async fn cross_region_reuse_alerts_because_state_is_per_account() {
    let d = det();
    run(
        &d,
        &[
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "us-east-1", "e1"),
            call(KEY1, "198.51.100.66", "2024-05-01T10:01:00Z", "eu-west-1", "e2"),
        ],
    )
    .await;
    let a = d.sink().alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].regions, vec!["us-east-1".to_string(), "eu-west-1".to_string()]);
}

#[tokio::test]
async fn rotated_key_stolen_and_used_before_the_instance_is_caught() {
    let d = det();
    run(
        &d,
        &[
            instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "e1"),
            rotation(KEY2, "2024-05-01T12:00:00Z"),
            // The thief uses the fresh key first, from elsewhere: plain per-key TOFU would trust it.
            instance_call(KEY2, "198.51.100.66", "2024-05-01T12:00:05Z", "e2"),
            // The instance then uses it from its usual address: trusted through the lineage.
            instance_call(KEY2, "203.0.113.10", "2024-05-01T12:00:09Z", "e3"),
        ],
    )
    .await;
    assert_eq!(alerts(&d), vec![(KEY2.to_string(), "ip:198.51.100.66".to_string())]);
    let a = &d.sink().alerts()[0];
    assert_eq!(a.instance_id.as_deref(), Some(INSTANCE));
    assert_eq!(a.scope, "instance");
    assert_eq!(d.store().bound_keys(&format!("I#{ACCT}#{INSTANCE}")), vec![KEY2.to_string()]);
    assert_eq!(d.stats().rotations, 1);
}

#[tokio::test]
async fn lambda_keys_are_plain_per_key_tofu() {
    // Many Lambda environments share a session name but each has its own key and address.
    let d = det();
    run(
        &d,
        &[
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "us-east-1", "e1"),
            call(KEY2, "203.0.113.20", "2024-05-01T10:00:02Z", "us-east-1", "e2"),
        ],
    )
    .await;
    assert!(alerts(&d).is_empty());
}

#[tokio::test]
async fn accepted_move_arms_exactly_one_new_identity() {
    let d = det();
    run(
        &d,
        &[
            instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "e1"),
            associate_address("2024-05-01T10:10:00Z"),
            instance_call(KEY1, "198.51.100.7", "2024-05-01T10:10:30Z", "e2"),
            instance_call(KEY1, "192.0.2.44", "2024-05-01T10:11:00Z", "e3"),
        ],
    )
    .await;
    assert_eq!(alerts(&d), vec![(KEY1.to_string(), "ip:192.0.2.44".to_string())]);
    assert_eq!(d.stats().accepted_moves, 1);
}

#[tokio::test]
async fn expired_arm_does_not_accept() {
    let d = det();
    run(
        &d,
        &[
            instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "e1"),
            associate_address("2024-05-01T10:10:00Z"),
            instance_call(KEY1, "198.51.100.7", "2024-05-01T11:10:30Z", "e2"),
        ],
    )
    .await;
    assert_eq!(alerts(&d).len(), 1);
}

#[tokio::test]
async fn failed_move_arms_nothing() {
    let d = det();
    let mut failed = associate_address("2024-05-01T10:10:00Z");
    failed["errorCode"] = json!("Client.UnauthorizedOperation");
    run(
        &d,
        &[
            instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "e1"),
            failed,
            instance_call(KEY1, "198.51.100.7", "2024-05-01T10:10:30Z", "e2"),
        ],
    )
    .await;
    assert_eq!(alerts(&d).len(), 1);
}

#[tokio::test]
async fn allowlists_global_and_per_role() {
    let p = Policy::from_json(
        r#"{"allow_cidrs":["198.51.100.0/24"],"roles":[{"role":"arn:aws:iam::*:role/web","cidrs":["192.0.2.0/24"]}]}"#,
    )
    .expect("policy");
    let d = det_with(p);
    run(
        &d,
        &[
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:01Z", "us-east-1", "e1"),
            call(KEY1, "198.51.100.66", "2024-05-01T10:01:00Z", "us-east-1", "e2"),
            call(KEY1, "192.0.2.5", "2024-05-01T10:02:00Z", "us-east-1", "e3"),
            call(KEY1, "233.252.0.1", "2024-05-01T10:03:00Z", "us-east-1", "e4"),
            call(KEY1, "8.8.8.8", "2024-05-01T10:04:00Z", "us-east-1", "e5"),
        ],
    )
    .await;
    assert_eq!(alerts(&d), vec![(KEY1.to_string(), "ip:8.8.8.8".to_string())]);
    assert_eq!(d.stats().allowlisted, 2);
}

#[tokio::test]
async fn allowlisted_first_use_does_not_anchor_trust() {
    let p = Policy::from_json(r#"{"allow_cidrs":["198.51.100.0/24"]}"#).expect("policy");
    let d = det_with(p);
    run(
        &d,
        &[
            call(KEY1, "198.51.100.66", "2024-05-01T10:00:00Z", "us-east-1", "e1"),
            call(KEY1, "203.0.113.10", "2024-05-01T10:01:00Z", "us-east-1", "e2"),
            call(KEY1, "198.51.100.67", "2024-05-01T10:02:00Z", "us-east-1", "e3"),
        ],
    )
    .await;
    assert!(alerts(&d).is_empty());
    assert_eq!(d.stats().first_uses, 1);
}

#[tokio::test]
async fn console_and_aws_service_calls_never_alert() {
    let d = det();
    let mut console = call(KEY1, "AWS Internal", "2024-05-01T10:00:01Z", "us-east-1", "c1");
    console["sessionCredentialFromConsole"] = json!("true");
    let mut console2 = call(KEY1, "198.51.100.1", "2024-05-01T10:00:02Z", "us-east-1", "c2");
    console2["userAgent"] = json!("console.ec2.amazonaws.com");
    let mut console3 = call(KEY1, "198.51.100.2", "2024-05-01T10:00:03Z", "us-east-1", "c3");
    console3["sessionCredentialFromConsole"] = json!("true");
    run(
        &d,
        &[
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "e1"),
            console,
            console2,
            console3,
            call(KEY1, "cloudformation.amazonaws.com", "2024-05-01T10:00:04Z", "us-east-1", "s1"),
            call(KEY1, "10.0.0.5", "2024-05-01T10:00:05Z", "us-east-1", "p1"),
        ],
    )
    .await;
    assert!(alerts(&d).is_empty());
    let s = d.stats();
    assert_eq!(s.skipped.get(&Skip::Console), Some(&3));
    assert_eq!(s.skipped.get(&Skip::AwsService), Some(&1));
    assert_eq!(s.skipped.get(&Skip::Unattributable), Some(&1));
}

#[tokio::test]
async fn vpc_endpoints_are_identities_and_own_account_endpoints_are_accepted() {
    let d = det();
    let mut own = call(KEY1, "10.0.0.5", "2024-05-01T10:01:00Z", "us-east-1", "v1");
    own["vpcEndpointId"] = json!("vpce-0aaa");
    own["vpcEndpointAccountId"] = json!(ACCT);
    let mut foreign = call(KEY1, "10.0.0.5", "2024-05-01T10:02:00Z", "us-east-1", "v2");
    foreign["vpcEndpointId"] = json!("vpce-0bbb");
    foreign["vpcEndpointAccountId"] = json!("999988887777");
    run(&d, &[call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "e1"), own, foreign]).await;
    assert_eq!(alerts(&d), vec![(KEY1.to_string(), "vpce:vpce-0bbb@999988887777".to_string())]);
    assert_eq!(d.stats().accepted_own_vpce, 1);
}

#[tokio::test]
async fn out_of_order_delivery_uses_event_time() {
    let d = det();
    // The thief's call arrives first but happened after the legitimate first use.
    run(
        &d,
        &[
            call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", "thief"),
            call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "legit"),
        ],
    )
    .await;
    let a = d.sink().alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].seen_identity, "ip:198.51.100.66");
    assert_eq!(a[0].offending.event_id.as_deref(), Some("thief"));
    assert_eq!(a[0].expected[0].identity, "ip:203.0.113.10");
    assert!(a[0].out_of_order);
    // Later calls from the thief do not alert again; the legitimate address stays trusted.
    run(
        &d,
        &[
            call(KEY1, "198.51.100.66", "2024-05-01T10:06:00Z", "us-east-1", "thief2"),
            call(KEY1, "203.0.113.10", "2024-05-01T10:07:00Z", "us-east-1", "legit2"),
        ],
    )
    .await;
    assert_eq!(d.sink().alerts().len(), 1);
}

#[tokio::test]
async fn skips_are_counted_with_reasons() {
    let d = det();
    let mut no_key = call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "x");
    no_key["userIdentity"]["accessKeyId"] = json!("");
    let akia = call("AKIAAAAAAAAAAAAAAAAA", "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "y");
    let mut no_time = call(KEY1, "203.0.113.10", "", "us-east-1", "z");
    no_time["eventTime"] = json!("redacted");
    let mut svc_event = call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "w");
    svc_event["eventType"] = json!("AwsServiceEvent");
    run(&d, &[no_key, akia, no_time, svc_event]).await;
    d.process_json("{not json", None).await.expect("malformed is not an error");
    d.process_json("[1,2]", None).await.expect("malformed is not an error");
    let s = d.stats();
    assert_eq!(s.events, 6);
    assert_eq!(s.skipped.get(&Skip::NoAccessKey), Some(&1));
    assert_eq!(s.skipped.get(&Skip::NotTemporaryKey), Some(&1));
    assert_eq!(s.skipped.get(&Skip::NoTime), Some(&1));
    assert_eq!(s.skipped.get(&Skip::NotApiCall), Some(&1));
    assert_eq!(s.skipped.get(&Skip::Malformed), Some(&2));
}

#[tokio::test]
async fn envelopes_from_foreign_sources_cannot_touch_real_keys() {
    let d = det();
    let env = |detail: Value, source: &str| {
        json!({"version":"0","id":"x","detail-type":"AWS API Call via CloudTrail","source":source,
               "account":ACCT,"region":"us-east-1","detail":detail})
        .to_string()
    };
    d.process_envelope(&env(call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "e1"), "evil.app"))
        .await
        .expect("ok");
    assert_eq!(d.stats().skipped.get(&Skip::UntrustedSource), Some(&1));
    // A synthetic key (outside the base32 alphabet) is processed and flagged synthetic.
    let synth = "ASIA0CTGUARDVERIFY01";
    for (ip, id) in [("192.0.2.1", "s1"), ("198.51.100.1", "s2"), ("192.0.2.1", "s3")] {
        d.process_envelope(&env(call(synth, ip, "2024-05-01T10:00:00Z", "us-east-1", id), "ctguard.verify"))
            .await
            .expect("ok");
    }
    let a = d.sink().alerts();
    assert_eq!(a.len(), 1);
    assert!(a[0].synthetic);
    assert!(a[0].subject().contains("SYNTHETIC"));
    d.process_envelope(r#"{"detail-type":"Scheduled Event","detail":{}}"#).await.expect("ok");
    assert_eq!(d.stats().skipped.get(&Skip::NotCloudTrail), Some(&1));
}

#[tokio::test]
async fn store_and_sink_failures_surface_and_a_retry_completes_the_detection() {
    let d = det();
    run(&d, &[call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "us-east-1", "e1")]).await;
    let bad = call(KEY1, "198.51.100.66", "2024-05-01T10:05:00Z", "us-east-1", "e2").to_string();
    d.store().fail_next(1);
    let err = d.process_json(&bad, None).await.expect_err("store failure must surface");
    assert!(err.is_retryable());
    d.sink().fail_next(1);
    let err = d.process_json(&bad, None).await.expect_err("sink failure must surface");
    assert!(err.is_retryable());
    assert!(d.sink().alerts().is_empty());
    // Another event of the same reuse, while the failed event's claim is fresh: not
    // acknowledged (the alert is owed and unconfirmed), so Lambda retries it later.
    let other = call(KEY1, "198.51.100.66", "2024-05-01T10:05:30Z", "us-east-1", "e3").to_string();
    let err = d.process_json(&other, None).await.expect_err("an alert in flight is not an acknowledgement");
    assert!(matches!(err, ctguard_detector::Error::AlertInFlight(_)) && err.is_retryable(), "{err}");
    // Lambda's retry of the failed event takes its own claim back and publishes, once.
    d.process_json(&bad, None).await.expect("retry succeeds");
    d.process_json(&bad, None).await.expect("ok");
    d.process_json(&other, None).await.expect("the retried neighbour finds the alert sent");
    assert_eq!(d.sink().alerts().len(), 1, "the detection survives a failed publish, once");
}

#[tokio::test]
async fn alerts_never_carry_the_session_token() {
    let d = det();
    run(
        &d,
        &[
            rotation(KEY2, "2024-05-01T12:00:00Z"),
            instance_call(KEY2, "203.0.113.10", "2024-05-01T12:00:05Z", "e1"),
            instance_call(KEY2, "198.51.100.66", "2024-05-01T12:00:06Z", "e2"),
        ],
    )
    .await;
    let a = d.sink().alerts();
    assert_eq!(a.len(), 1);
    assert!(!a[0].body().contains("TOKEN-MUST-NOT-LEAK"));
    assert!(a[0].subject().len() <= 100);
    let v: Value = serde_json::from_str(&a[0].body()).expect("json body");
    assert_eq!(v["schema"], "ctguard.alert/v1");
}

#[tokio::test]
async fn concurrent_first_uses_yield_one_identity_and_one_alert() {
    use std::sync::Arc;
    let d = Arc::new(det());
    let mut tasks = Vec::new();
    for i in 0..64 {
        let d = Arc::clone(&d);
        let ip = if i % 2 == 0 { "203.0.113.10" } else { "198.51.100.66" };
        let e = call(KEY1, ip, "2024-05-01T10:00:00Z", "us-east-1", &format!("e{i}")).to_string();
        tasks.push(tokio::spawn(async move { d.process_json(&e, None).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("ok");
    }
    assert_eq!(d.store().trusted("K#ASIAAAAAAAAAAAAAAAA2").len(), 1);
    assert_eq!(d.sink().alerts().len(), 1);
}
