//! Hostile-review findings on the detector's integrity (issue 8 review): each test reproduces
//! one problem found by attacking the change, and holds its fix.

mod common;

use common::*;
use ctguard_detector::{alert_id, CollectingSink, Detector, MemoryStore, Policy};

/// 2024-05-01T12:00:00Z: after every event, as a processing clock would be.
const NOON: i64 = 1_714_564_800_000;
const INSTANCE_SCOPE: &str = "I#111122223333#i-0123456789abcdef0";

fn fresh() -> Detector<MemoryStore, CollectingSink> {
    Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "t").with_clock(Box::new(|| NOON))
}

fn ids(d: &Detector<MemoryStore, CollectingSink>) -> Vec<String> {
    let mut v: Vec<String> = d.sink().alerts().into_iter().map(|a| a.id).collect();
    v.sort();
    v
}

async fn run(events: &[serde_json::Value]) -> Detector<MemoryStore, CollectingSink> {
    let d = fresh();
    for e in events {
        d.process_json(&e.to_string(), None).await.expect("the memory store does not fail");
    }
    d
}

/// An identity that took a move's arm and then became the anchor (its earlier use, delivered
/// late, displaced the old anchor) is the scope's anchor: a still earlier use inside the window
/// taking the arm over must not alert on it. In event-time order it is the first use and is
/// never alerted on; every delivery order of the same events must agree.
#[tokio::test]
async fn an_arm_holder_that_became_the_anchor_is_not_alerted_when_the_arm_is_taken_over() {
    let x_first = instance_call(KEY1, "198.51.100.5", "2024-05-01T09:50:00Z", "x1");
    let a = instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "a");
    let mv = associate_address("2024-05-01T10:10:00Z");
    let z = instance_call(KEY1, "198.51.100.9", "2024-05-01T10:12:00Z", "z");
    let x_later = instance_call(KEY1, "198.51.100.5", "2024-05-01T10:15:00Z", "x2");
    // Event-time order: X anchors, A alerts, the move arms, Z takes the arm, X is the anchor.
    let reference = ids(&run(&[x_first.clone(), a.clone(), mv.clone(), z.clone(), x_later.clone()]).await);
    assert_eq!(reference, vec![alert_id(KEY1, "ip:203.0.113.10")]);
    // Delivered: A, the move, X's later use (takes the arm), X's first use (displaces A), Z.
    let d = run(&[a, mv, x_later, x_first, z]).await;
    assert_eq!(ids(&d), reference, "{:#?}", d.sink().alerts());
    let st = d.store().state(INSTANCE_SCOPE).expect("state");
    assert_eq!(st.anchor.map(|a| a.identity).as_deref(), Some("ip:198.51.100.5"));
}

/// The instance's new identity B is used inside a move's window but its use is delivered
/// before the move's own record, so B is alerted on (no move known yet); then a thief C, later
/// in the same window, used to find the arm free and be accepted. In event-time order B takes
/// the arm and C is alerted on: a true alert was lost. The scope now records the earliest use
/// of every identity alerted on, and a window belongs to the earliest new identity in it,
/// alerted or not: C is alerted on in every delivery order. (Found by an exhaustive search of
/// every delivery order of 3 uses and a move; `every_order_of_a_move_and_three_uses_alerts_on_the_thief`
/// in `integrity.rs` now runs that search.)
#[tokio::test]
async fn a_move_known_late_still_alerts_on_a_later_new_identity_in_its_window() {
    let a = instance_call(KEY1, "203.0.113.10", "2024-05-01T10:00:00Z", "a");
    let mv = associate_address("2024-05-01T10:10:00Z");
    let b = instance_call(KEY1, "198.51.100.7", "2024-05-01T10:11:00Z", "b");
    let thief = instance_call(KEY1, "198.51.100.9", "2024-05-01T10:12:00Z", "c");
    let thief_id = alert_id(KEY1, "ip:198.51.100.9");
    let reference = ids(&run(&[a.clone(), mv.clone(), b.clone(), thief.clone()]).await);
    assert_eq!(reference, vec![thief_id.clone()]);
    let d = run(&[a, b, mv, thief]).await;
    assert!(ids(&d).contains(&thief_id), "the thief was accepted: {:?}", d.store().state(INSTANCE_SCOPE));
}

/// A session older than the state lifetime (a 36 h `GetSessionToken` session, or any role
/// session once the operator sets `DefaultTtlHours` below 12) used to get a lifetime ending at
/// its own event time: the anchor was written already expired, DynamoDB's TTL could delete it
/// at any moment while the key still worked, and the next use from anywhere (the thief's)
/// became a first use. A session whose creation no longer bounds its life gets the default
/// lifetime from the event.
#[tokio::test]
async fn a_session_older_than_the_state_lifetime_is_not_written_already_expired() {
    let policy = Policy::from_json(r#"{"default_ttl_hours": 1}"#).expect("policy");
    let d = Detector::new(MemoryStore::new(), CollectingSink::new(), policy, "t").with_clock(Box::new(|| NOON));
    // Created 10:00 (see `call`), first used at 11:30: older than the 1 h lifetime.
    let first = call(KEY1, "203.0.113.10", "2024-05-01T11:30:00Z", "us-east-1", "e1");
    d.process_json(&first.to_string(), None).await.expect("ok");
    let st = d.store().state(&format!("K#{KEY1}")).expect("state");
    let used_at = 1_714_563_000_000; // 11:30
    assert!(st.expires_at > used_at, "the scope expires at {} (used at {used_at}): already dead", st.expires_at);
    // A young session still ends with its own life (creation + lifetime), not later.
    let d =
        Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "t").with_clock(Box::new(|| NOON));
    let young = call(KEY1, "203.0.113.10", "2024-05-01T11:30:00Z", "us-east-1", "e1");
    d.process_json(&young.to_string(), None).await.expect("ok");
    let st = d.store().state(&format!("K#{KEY1}")).expect("state");
    assert_eq!(st.expires_at, 1_714_557_600_000 + Policy::default().default_ttl_ms, "10:00 + 12 h");
}
