//! A scope's state is bounded for the life of an instance (review finding: one scope's item only
//! grew, and at DynamoDB's 400 KB item limit every write failed and the instance went
//! undetected). What can no longer matter is pruned, what still matters is capped with
//! overflow policies that only add alerts, and an item over the limit is its own error kind.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::*;
use ctguard_detector::engine::stored_text;
use ctguard_detector::memory::{item_bytes, DYNAMODB_ITEM_LIMIT};
use ctguard_detector::state::{
    worst_case_item_bytes, DELIVERY_HORIZON_MS, MAX_ACCEPTED, MAX_ALERTED, MAX_ANCHOR_KEYS, MAX_ARMS, MAX_STORED_TEXT,
};
use ctguard_detector::time::format_rfc3339;
use ctguard_detector::{
    alert_id, Anchor, Arm, CollectingSink, Detector, EventRef, MemoryStore, Policy, ScopeState, Suspect, Trusted,
};
use serde_json::Value;

/// 2024-05-01T10:00:00Z.
const T0: i64 = 1_714_557_600_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;
const SCOPE: &str = "I#111122223333#i-0123456789abcdef0";
const HOME: &str = "203.0.113.10";

/// The state bound the year below must stay under (measured: 13.5 KB; see the print).
const YEAR_BOUND: usize = 24 * 1024;

/// A real-looking access key id (`ASIA` + 16 base32 characters) numbered `n`.
fn key(n: u64) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let n = u128::from(n);
    let tail: String = (0..16).map(|i| char::from(B32[((n >> (5 * (15 - i))) & 31) as usize])).collect();
    format!("ASIA{tail}")
}

/// A distinct public address numbered `n` in the `first.0.0.0/8` block.
fn address(first: u8, n: u64) -> String {
    format!("{first}.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

struct Run {
    d: Detector<MemoryStore, CollectingSink>,
    clock: Arc<AtomicI64>,
    /// The largest item seen, sampled every 16 events (computing it is not free).
    max_bytes: usize,
    events: u64,
}

impl Run {
    fn new(store: MemoryStore) -> Run {
        let clock = Arc::new(AtomicI64::new(T0));
        let c = Arc::clone(&clock);
        let d = Detector::new(store, CollectingSink::new(), Policy::default(), "t")
            .with_clock(Box::new(move || c.load(Ordering::SeqCst)));
        Run { d, clock, max_bytes: 0, events: 0 }
    }

    /// Delivers `event` (dated `at`) a minute after it happened, as EventBridge would.
    async fn at(&mut self, at: i64, event: Value) -> Result<(), ctguard_detector::Error> {
        self.clock.store(at + MINUTE, Ordering::SeqCst);
        self.d.process_json(&event.to_string(), None).await?;
        self.events += 1;
        if self.events % 16 == 0 {
            self.max_bytes = self.max_bytes.max(self.d.store().item_size(SCOPE));
        }
        Ok(())
    }

    fn alerted(&self, ip: &str, key: &str) -> bool {
        let id = alert_id(key, &format!("ip:{ip}"));
        self.d.sink().alerts().iter().any(|a| a.id == id)
    }
}

/// A year of hourly credential rotations (each new key used by the instance at once), a move
/// every two hours with the instance's new address accepted in its window (4,380 moves), a
/// day of 2,000 spammed moves, and a thief spraying 500 addresses: the scope's item stays under
/// `YEAR_BOUND` throughout, every cap holds, and at the end a thief is still caught, both
/// outside any window and inside a window after the instance's own new address.
#[tokio::test]
async fn a_year_of_rotations_and_moves_stays_bounded_and_still_catches_a_thief() {
    let mut r = Run::new(MemoryStore::new());
    let t = |ms: i64| format_rfc3339(ms);
    r.at(T0, instance_call(&key(0), HOME, &t(T0), "first")).await.expect("first use");
    let hours = 365 * 24;
    let (mut moves, mut sprayed) = (0u64, 0u64);
    for h in 1..=hours {
        let now = T0 + h * HOUR;
        let k = key(h as u64);
        r.at(now, rotation(&k, &t(now))).await.expect("rotation");
        r.at(now + 30_000, instance_call(&k, HOME, &t(now + 30_000), &format!("u{h}"))).await.expect("use");
        if h % 2 == 0 {
            let mv = now + 40 * MINUTE;
            r.at(mv, associate_address(&t(mv))).await.expect("move");
            let ip = address(45, h as u64);
            r.at(mv + MINUTE, instance_call(&k, &ip, &t(mv + MINUTE), &format!("m{h}"))).await.expect("moved");
            moves += 1;
        }
        if h == 200 * 24 {
            // 2,000 spammed moves, a second apart (far more live windows than the cap).
            for i in 0..2_000 {
                let mv = now + 45 * MINUTE + i * 1000;
                r.at(mv, associate_address(&t(mv))).await.expect("spammed move");
            }
            moves += 2_000;
        }
        if h == 300 * 24 {
            // A thief spraying 500 addresses, a second apart, outside any window.
            for i in 0..500u64 {
                let when = now + 5 * MINUTE + i as i64 * 1000;
                let ip = address(46, i);
                r.at(when, instance_call(&k, &ip, &t(when), &format!("s{i}"))).await.expect("spray");
                sprayed += 1;
            }
        }
    }
    let st = r.d.store().state(SCOPE).expect("state");
    let anchor = st.anchor.clone().expect("anchor");
    assert_eq!(anchor.identity, format!("ip:{HOME}"), "the instance's first address still anchors");
    assert!(anchor.keys.len() <= 50, "{} anchor keys: ended keys are pruned", anchor.keys.len());
    assert!(st.key_ends.len() <= 50, "{} key ends", st.key_ends.len());
    // A decision prunes what it read: the one accepted since the last decision may be over.
    assert!(st.accepted.len() <= MAX_ACCEPTED + 1, "{} accepted", st.accepted.len());
    assert!(st.arms.len() <= MAX_ARMS, "{} arms", st.arms.len());
    assert!(st.alerted.len() <= MAX_ALERTED, "{} alerted records", st.alerted.len());
    let stats = r.d.stats();
    assert!(stats.prunes > 1_000, "pruning ran: {stats:?}");
    assert_eq!(r.d.sink().alerts().len() as u64, sprayed, "every sprayed address alerted, nothing else");
    // The end of the year: a thief outside any window, and one inside a window after the
    // instance's own new address.
    let end = T0 + (hours + 1) * HOUR;
    let k = key(hours as u64);
    r.at(end, instance_call(&k, "198.51.100.66", &t(end), "thief")).await.expect("thief");
    assert!(r.alerted("198.51.100.66", &k), "a thief at the end of the year is caught");
    let mv = end + HOUR;
    r.at(mv, associate_address(&t(mv))).await.expect("move");
    r.at(mv + MINUTE, instance_call(&k, "192.0.2.44", &t(mv + MINUTE), "new home")).await.expect("new home");
    r.at(mv + 2 * MINUTE, instance_call(&k, "198.51.100.67", &t(mv + 2 * MINUTE), "thief2")).await.expect("thief2");
    assert!(!r.alerted("192.0.2.44", &k), "the instance's move is still accepted");
    assert!(r.alerted("198.51.100.67", &k), "a thief in the window after the move is caught");
    assert!(r.max_bytes <= YEAR_BOUND, "the item reached {} bytes (bound {YEAR_BOUND})", r.max_bytes);
    println!(
        "a year: {hours} rotations, {moves} moves, {sprayed} sprayed addresses: largest item {} bytes \
         (bound {YEAR_BOUND}; DynamoDB {DYNAMODB_ITEM_LIMIT}); at the end {} anchor keys, {} accepted, {} arms, \
         {} alerted records, {} prunes",
        r.max_bytes,
        anchor.keys.len(),
        st.accepted.len(),
        st.arms.len(),
        st.alerted.len(),
        stats.prunes
    );
}

/// The bound itself: a scope at every cap, every stored text at its longest and escaped at
/// worst, counted as DynamoDB counts, is within `worst_case_item_bytes`, itself well under
/// DynamoDB's 400 KB.
#[test]
fn a_scope_at_every_cap_is_under_the_item_limit() {
    let text = stored_text(&"\"\u{1}".repeat(4 * MAX_STORED_TEXT));
    assert!(text.len() <= MAX_STORED_TEXT && !text.contains('\u{1}'), "clipped and cleaned: {}", text.len());
    let ev = |t: i64| EventRef {
        event_id: Some(text.clone()),
        event_name: Some(text.clone()),
        event_source: Some(text.clone()),
        event_time: text.clone(),
        time_ms: t,
        region: Some(text.clone()),
        source_ip: Some(text.clone()),
        vpc_endpoint_id: Some(text.clone()),
        user_agent: Some(text.clone()),
        access_key_id: Some(text.clone()),
        principal_arn: Some(text.clone()),
    };
    let ident = |i: usize| format!("vpce:vpce-{i:017x}@123456789012{}", "x".repeat(23));
    let long_key = |i: usize| format!("ASIA{i:0124}");
    let t = T0 + 1_000_000_000_000;
    let st = ScopeState {
        anchor: Some(Anchor { identity: ident(0), first: ev(t), keys: (0..MAX_ANCHOR_KEYS).map(long_key).collect() }),
        accepted: (0..MAX_ACCEPTED).map(|i| Trusted { identity: ident(i + 1), first: ev(t) }).collect(),
        arms: (0..MAX_ARMS as i64)
            .map(|i| Arm { from: t + i, until: t + i, taken_by: Some(ident(i as usize)) })
            .collect(),
        alerted: (0..MAX_ALERTED).map(|i| Suspect { identity: ident(i + 100), at: t }).collect(),
        alerted_overflow: t,
        arm_floor: t,
        key_ends: (0..MAX_ANCHOR_KEYS).map(|i| (long_key(i), t)).collect(),
        expires_at: t,
    };
    let pk = format!("I#123456789012#i-{:017x}", 1);
    let bytes = item_bytes(&pk, &st, Some(&long_key(0)));
    let bound = worst_case_item_bytes();
    println!("a scope at every cap: {bytes} bytes; stated bound {bound}; DynamoDB limit {DYNAMODB_ITEM_LIMIT}");
    assert!(bytes <= bound, "{bytes} > {bound}");
    assert!(bound < DYNAMODB_ITEM_LIMIT * 3 / 4, "the bound {bound} leaves room under the item limit");
}

/// A redelivered move within its life changes nothing (the arm stays taken); once its arm was
/// pruned (beyond the delivery horizon), the arm floor refuses it: it cannot hand out its
/// window a second time.
#[tokio::test]
async fn a_pruned_moves_redelivery_is_refused_and_a_live_ones_is_idempotent() {
    let mut r = Run::new(MemoryStore::new());
    let t = |ms: i64| format_rfc3339(ms);
    let k = key(1);
    let mv_at = T0 + 10 * MINUTE;
    let mv = associate_address(&t(mv_at));
    r.at(T0, instance_call(&k, HOME, &t(T0), "a")).await.expect("ok");
    r.at(mv_at, mv.clone()).await.expect("ok");
    r.at(mv_at + MINUTE, instance_call(&k, "192.0.2.44", &t(mv_at + MINUTE), "b")).await.expect("ok");
    r.at(mv_at, mv.clone()).await.expect("redelivered");
    r.at(mv_at + 2 * MINUTE, instance_call(&k, "198.51.100.66", &t(mv_at + 2 * MINUTE), "c")).await.expect("ok");
    assert!(r.alerted("198.51.100.66", &k), "a redelivered move does not arm again");
    let st = r.d.store().state(SCOPE).expect("state");
    assert_eq!(st.arms.len(), 1);
    // After the key's life (12 h) and the delivery horizon, a use with a new key (a decision
    // that reads the scope) prunes the arm and the ended key.
    let later = T0 + 12 * HOUR + DELIVERY_HORIZON_MS + HOUR;
    r.at(later, instance_call(&key(2), HOME, &t(later), "a2")).await.expect("ok");
    let st = r.d.store().state(SCOPE).expect("state");
    assert!(st.arms.is_empty(), "the ended arm is pruned: {:?}", st.arms);
    // Past the arm, and past the dropped record of the thief alerted in its window.
    assert_eq!(st.arm_floor, mv_at + 2 * MINUTE, "the floor rose past them");
    assert!(st.alerted.is_empty(), "the old record is dropped: {:?}", st.alerted);
    assert!(st.key_ends.iter().all(|(k2, _)| k2 != &k), "the ended key is pruned");
    assert!(st.accepted.iter().any(|a| a.identity == "ip:192.0.2.44"), "the accepted address stays");
    // The same move again (as from the DLQ): refused, and the window accepts nobody.
    r.at(mv_at, mv).await.expect("ok");
    assert_eq!(r.d.stats().moves_refused, 1);
    r.at(mv_at + 3 * MINUTE, instance_call(&k, "198.51.100.77", &t(mv_at + 3 * MINUTE), "d")).await.expect("ok");
    assert!(r.alerted("198.51.100.77", &k), "a pruned window is not handed out again");
}

/// A thief spraying more addresses than the scope records folds the rest into the overflow
/// time: a later window that opened before the last unrecorded use is spent (the instance's
/// new address in it is alerted on rather than a later thief accepted).
#[tokio::test]
async fn alerted_records_beyond_the_cap_spend_the_windows_they_could_fall_in() {
    let mut r = Run::new(MemoryStore::new());
    let t = |ms: i64| format_rfc3339(ms);
    let k = key(1);
    r.at(T0, instance_call(&k, HOME, &t(T0), "a")).await.expect("ok");
    let mv_at = T0 + HOUR;
    let n = MAX_ALERTED as i64 + 10;
    // The recorded sprayed uses fall before the window of a move whose record arrives
    // afterwards; the unrecorded ones (beyond the cap) inside it.
    for i in 0..n {
        let when = mv_at + (i - MAX_ALERTED as i64) * 1000;
        r.at(when, instance_call(&k, &address(46, i as u64), &t(when), &format!("s{i}"))).await.expect("ok");
    }
    let st = r.d.store().state(SCOPE).expect("state");
    assert_eq!(st.alerted.len(), MAX_ALERTED, "records are capped");
    assert_eq!(st.alerted_overflow, mv_at + 9_000, "the rest raised the overflow time");
    assert!(st.alerted.iter().all(|x| x.at < mv_at), "the recorded ones are outside the window");
    r.at(mv_at, associate_address(&t(mv_at))).await.expect("ok");
    let c = mv_at + 5 * MINUTE;
    r.at(c, instance_call(&k, "198.51.100.66", &t(c), "c")).await.expect("ok");
    assert!(r.alerted("198.51.100.66", &k), "the window was spent by the spray");
}

/// A write that would take an item over the store's limit fails with its own kind (not a
/// generic rejection), changes nothing, and is not retried as if transient.
#[tokio::test]
async fn an_item_over_the_limit_is_its_own_error_kind() {
    let mut r = Run::new(MemoryStore::with_item_limit(2_000));
    let t = |ms: i64| format_rfc3339(ms);
    let mut failure = None;
    for h in 0..200 {
        let when = T0 + h * MINUTE;
        if let Err(e) = r.at(when, instance_call(&key(h as u64), HOME, &t(when), &format!("u{h}"))).await {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("a 2 KB item limit is reached by 200 keys");
    assert_eq!(e.kind(), "StateItemTooLarge", "{e}");
    assert!(!e.is_retryable());
    assert!(r.d.store().item_size(SCOPE) <= 2_000, "the refused write changed nothing");
}
