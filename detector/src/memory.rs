//! In-memory implementations of the seams: the state of `ctguard scan`, and the test doubles.
//!
//! [`MemoryStore`] keeps exactly the semantics of the DynamoDB store (conditional anchor
//! writes, arms taken once, alert claims with a lease and a holder) and counts its calls, which
//! is how the benchmarks measure the store traffic a stream of events causes. It can be told to
//! fail, to test that failures reach the caller instead of being swallowed; finer fault
//! injection (which call, before or after it took effect) is [`crate::faults`].
//!
//! Like DynamoDB, it refuses a write that would make a scope's item larger than the item size
//! limit (400 KB by default, [`MemoryStore::with_item_limit`]), with
//! [`StoreError::ItemTooLarge`]; [`item_bytes`] counts a scope's item the way DynamoDB counts
//! the item `DynamoStore` writes for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::alert::{Alert, AlertSink};
use crate::error::{SinkError, StoreError};
use crate::state::{
    AlertClaim, Anchor, Arm, Claim, Prune, ScopeState, StateStore, Suspect, Trusted, Update, ALERT_LEASE_MS,
};
use crate::time::Millis;

#[derive(Clone, Default)]
struct Scope {
    state: ScopeState,
    /// The latest key bound by a rotation (DynamoDB: `last_key`).
    last_key: Option<String>,
    /// [`item_bytes`] after the last write.
    bytes: usize,
}

/// More than one write can add to an item: an accepted identity with its event (texts clipped
/// to `MAX_STORED_TEXT`), a key and its end, an arm, a record.
const MAX_WRITE_GROWTH: usize = 16 * 1024;

/// DynamoDB's item size limit.
pub const DYNAMODB_ITEM_LIMIT: usize = 400 * 1024;

/// Size of a DynamoDB number: about one byte per two significant digits, plus one.
fn number_bytes(v: Millis) -> usize {
    let digits = v.unsigned_abs().to_string().trim_end_matches('0').len().max(1);
    digits.div_ceil(2) + 1
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Length of the event's JSON text, as `DynamoStore` stores it (without building the text).
fn event_bytes(e: &crate::state::EventRef) -> usize {
    let mut c = Counter(0);
    serde_json::to_writer(&mut c, e).map(|_| c.0).unwrap_or(0)
}

/// An upper bound of [`event_bytes`] in constant time: JSON escapes at most double a stored
/// text (control characters are replaced before storing; see `engine::stored_text`).
fn event_bytes_at_most(e: &crate::state::EventRef) -> usize {
    let texts = [
        &e.event_id,
        &e.event_name,
        &e.event_source,
        &e.region,
        &e.source_ip,
        &e.vpc_endpoint_id,
        &e.user_agent,
        &e.access_key_id,
    ];
    let optional: usize = texts.iter().map(|t| t.as_ref().map_or(0, |t| 2 * t.len() + 20)).sum();
    2 + optional + 2 * e.event_time.len() + 20
}

/// The size DynamoDB counts for the item `DynamoStore` writes for `state` under the table key
/// `pk` (attribute names plus values; maps add 3 bytes and 1 per element), approximately.
pub fn item_bytes(pk: &str, state: &ScopeState, last_key: Option<&str>) -> usize {
    item_bytes_with(pk, state, last_key, event_bytes)
}

fn item_bytes_with(
    pk: &str,
    state: &ScopeState,
    last_key: Option<&str>,
    event_bytes: fn(&crate::state::EventRef) -> usize,
) -> usize {
    let named_number = |name: usize, v: Millis| name + number_bytes(v);
    let mut n = 2 + pk.len();
    if state.expires_at > 0 {
        n += named_number(3, state.expires_at / 1000 + 1);
    }
    n += last_key.map(|k| 8 + k.len()).unwrap_or(0);
    if let Some(a) = &state.anchor {
        n += 6 + a.identity.len() + named_number(9, a.first.time_ms) + 9 + event_bytes(&a.first);
        n += 11 + a.keys.iter().map(String::len).sum::<usize>();
    }
    n += state.key_ends.iter().map(|(k, e)| named_number(5 + k.len(), *e)).sum::<usize>();
    for t in &state.accepted {
        n += 4 + t.identity.len() + 3 + named_number(2, t.first.time_ms) + 1 + 2 + event_bytes(&t.first) + 1;
    }
    for a in &state.arms {
        let from = a.from.to_string().len();
        n += named_number(4 + from, a.until);
        n += a.taken_by.as_ref().map(|by| 6 + from + by.len()).unwrap_or(0);
    }
    n += state.alerted.iter().map(|x| named_number(3 + x.identity.len(), x.at)).sum::<usize>();
    if state.arm_floor > 0 {
        n += named_number(9, state.arm_floor);
    }
    if state.alerted_overflow > 0 {
        n += named_number(7, state.alerted_overflow);
    }
    n
}

/// One alert claim: who holds it since when, and whether it was sent.
#[derive(Clone, Debug)]
struct AlertItem {
    claimed_at: Millis,
    holder: String,
    sent: bool,
}

/// Calls made to a store, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCalls {
    pub claims: u64,
    pub touches: u64,
    pub displaces: u64,
    pub arms: u64,
    pub take_arms: u64,
    pub alert_notes: u64,
    pub alert_claims: u64,
    pub alert_confirms: u64,
    pub alert_releases: u64,
    pub binds: u64,
    pub prunes: u64,
}

impl StoreCalls {
    pub fn total(&self) -> u64 {
        self.claims
            + self.touches
            + self.displaces
            + self.arms
            + self.take_arms
            + self.alert_notes
            + self.alert_claims
            + self.alert_confirms
            + self.alert_releases
            + self.binds
            + self.prunes
    }
}

/// A [`StateStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    scopes: Mutex<HashMap<String, Scope>>,
    alerts: Mutex<HashMap<String, AlertItem>>,
    calls: Mutex<StoreCalls>,
    fail_next: AtomicU64,
    /// Item size limit in bytes (0: DynamoDB's).
    item_limit: usize,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose items may not exceed `bytes` (as DynamoDB's may not exceed 400 KB).
    pub fn with_item_limit(bytes: usize) -> Self {
        MemoryStore { item_limit: bytes, ..Self::default() }
    }

    /// The size DynamoDB would count for a scope's item ([`item_bytes`]); 0 when not held.
    pub fn item_size(&self, scope: &str) -> usize {
        self.scopes
            .lock()
            .ok()
            .and_then(|m| m.get(scope).map(|s| item_bytes(scope, &s.state, s.last_key.as_deref())))
            .unwrap_or(0)
    }

    /// Makes the next `n` calls fail with a transient error (before taking effect).
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> StoreCalls {
        self.calls.lock().map(|c| *c).unwrap_or_default()
    }

    /// The trusted identities of a scope (by storage key): the anchor, then accepted ones.
    pub fn trusted(&self, scope: &str) -> Vec<Trusted> {
        self.state(scope).map(|s| s.trusted()).unwrap_or_default()
    }

    /// Everything held for a scope.
    pub fn state(&self, scope: &str) -> Option<ScopeState> {
        self.scopes.lock().ok().and_then(|m| m.get(scope).map(|s| s.state.clone()))
    }

    /// The latest key bound to an instance scope by a rotation event (none: empty).
    pub fn bound_keys(&self, scope: &str) -> Vec<String> {
        self.scopes.lock().ok().and_then(|m| m.get(scope).and_then(|s| s.last_key.clone())).into_iter().collect()
    }

    /// Storage keys of every scope held.
    pub fn scope_keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self.scopes.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Number of scopes held.
    pub fn scope_count(&self) -> usize {
        self.scopes.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Alert claims as (access key, identity, sent), sorted.
    pub fn alert_claims(&self) -> Vec<(String, String, bool)> {
        let mut v: Vec<(String, String, bool)> = self
            .alerts
            .lock()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, a)| {
                        let (key, ident) = k.split_once('#')?;
                        Some((key.to_string(), ident.to_string(), a.sent))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn enter(&self, f: impl FnOnce(&mut StoreCalls)) -> Result<(), StoreError> {
        if let Ok(mut c) = self.calls.lock() {
            f(&mut c);
        }
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_next.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Transient("injected failure".into()));
        }
        Ok(())
    }

    /// Runs one write on a scope; like DynamoDB, refuses it (changing nothing) when the item
    /// would exceed the size limit.
    fn with_scope<T>(&self, scope: &str, f: impl FnOnce(&mut Scope) -> T) -> Result<T, StoreError> {
        let mut m = self.scopes.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        let limit = if self.item_limit == 0 { DYNAMODB_ITEM_LIMIT } else { self.item_limit };
        let s = m.entry(scope.to_string()).or_default();
        // A copy to restore only when this write could reach the limit: one write adds at
        // most an accepted identity and a key (a few KB).
        let before = (s.bytes + MAX_WRITE_GROWTH >= limit).then(|| s.clone());
        let out = f(s);
        // The exact count serialises every stored event: only when the cheap bound is too high.
        let mut size = item_bytes_with(scope, &s.state, s.last_key.as_deref(), event_bytes_at_most);
        if size > limit {
            size = item_bytes(scope, &s.state, s.last_key.as_deref());
        }
        if size > limit {
            if let Some(b) = before {
                *s = b;
            }
            return Err(StoreError::ItemTooLarge(format!(
                "Item size has exceeded the maximum allowed size: {scope} would be {size} bytes (limit {limit})"
            )));
        }
        s.bytes = size;
        Ok(out)
    }
}

/// Records when `key`'s credential ends, unless known (DynamoDB: `if_not_exists`).
fn note_key_end(s: &mut Scope, key: &str, end: Millis) {
    if !s.state.key_ends.iter().any(|(k, _)| k == key) {
        s.state.key_ends.push((key.to_string(), end));
    }
}

fn keep_longest(s: &mut Scope, expires_at: Millis) {
    s.state.expires_at = s.state.expires_at.max(expires_at);
}

fn arm_mut<'a>(s: &'a mut Scope, arm: &Arm) -> Option<&'a mut Arm> {
    s.state.arms.iter_mut().find(|a| a.from == arm.from)
}

/// Hands `arm` (expected to be held by `arm.taken_by`) to `identity`, accepting it when
/// `accept`; false if the arm is not held as expected.
fn hand_over(s: &mut Scope, arm: &Arm, identity: &Trusted, accept: bool) -> bool {
    match arm_mut(s, arm) {
        Some(a) if a.taken_by == arm.taken_by => a.taken_by = Some(identity.identity.clone()),
        _ => return false,
    }
    s.state.accepted.retain(|a| a.identity != identity.identity && Some(&a.identity) != arm.taken_by.as_ref());
    if accept {
        s.state.accepted.push(identity.clone());
    }
    true
}

impl StateStore for MemoryStore {
    async fn claim(&self, scope: &str, first: &Trusted, key: &str, expires_at: Millis) -> Result<Claim, StoreError> {
        self.enter(|c| c.claims += 1)?;
        self.with_scope(scope, |s| {
            if s.state.anchor.is_some() {
                return Claim::Existing(Box::new(s.state.clone()));
            }
            keep_longest(s, expires_at);
            s.state.anchor = Some(Anchor {
                identity: first.identity.clone(),
                first: first.first.clone(),
                keys: vec![key.to_string()],
            });
            note_key_end(s, key, expires_at);
            Claim::Won
        })
    }

    async fn touch(
        &self,
        scope: &str,
        anchor: &Trusted,
        key: &str,
        key_end: Millis,
        lower: bool,
        expires_at: Millis,
    ) -> Result<Update, StoreError> {
        self.enter(|c| c.touches += 1)?;
        self.with_scope(scope, |s| {
            let state = s.state.clone();
            let Some(a) = s.state.anchor.as_mut() else { return Update::Changed(Box::new(state)) };
            if a.identity != anchor.identity || (lower && a.first.time_ms <= anchor.first.time_ms) {
                return Update::Changed(Box::new(state));
            }
            if lower {
                a.first = anchor.first.clone();
            }
            if !a.keys.iter().any(|k| k == key) {
                a.keys.push(key.to_string());
            }
            note_key_end(s, key, key_end);
            keep_longest(s, expires_at);
            Update::Applied
        })
    }

    async fn displace(
        &self,
        scope: &str,
        old: &Anchor,
        new: &Trusted,
        key: &str,
        key_end: Millis,
        accept_old: Option<&Arm>,
        expires_at: Millis,
    ) -> Result<Update, StoreError> {
        self.enter(|c| c.displaces += 1)?;
        self.with_scope(scope, |s| {
            let state = s.state.clone();
            let same = s.state.anchor.as_ref().is_some_and(|a| {
                a.identity == old.identity && a.first.time_ms == old.first.time_ms && a.keys.len() == old.keys.len()
            });
            let arm_as_read = accept_old.is_none_or(|arm| arm_mut(s, arm).is_some_and(|a| a.taken_by == arm.taken_by));
            if !same || !arm_as_read {
                return Update::Changed(Box::new(state));
            }
            if let Some(arm) = accept_old {
                hand_over(s, arm, &Trusted { identity: old.identity.clone(), first: old.first.clone() }, true);
            }
            s.state.anchor =
                Some(Anchor { identity: new.identity.clone(), first: new.first.clone(), keys: vec![key.to_string()] });
            note_key_end(s, key, key_end);
            keep_longest(s, expires_at);
            Update::Applied
        })
    }

    async fn arm(&self, scope: &str, arm: &Arm, expires_at: Millis) -> Result<ScopeState, StoreError> {
        self.enter(|c| c.arms += 1)?;
        self.with_scope(scope, |s| {
            keep_longest(s, expires_at);
            if arm_mut(s, arm).is_none() && arm.from > s.state.arm_floor {
                s.state.arms.push(Arm { taken_by: None, ..arm.clone() });
            }
            s.state.clone()
        })
    }

    async fn prune(&self, scope: &str, p: &Prune) -> Result<(), StoreError> {
        self.enter(|c| c.prunes += 1)?;
        self.with_scope(scope, |s| {
            let st = &mut s.state;
            if p.arm_floor < st.arm_floor && p.arm_floor != 0
                || p.alerted_overflow < st.alerted_overflow && p.alerted_overflow != 0
            {
                return;
            }
            if let Some(a) = st.anchor.as_mut() {
                a.keys.retain(|k| !p.keys.contains(k));
            }
            st.key_ends.retain(|(k, _)| !p.keys.contains(k));
            st.arms.retain(|a| !p.arms.contains(&a.from));
            st.accepted.retain(|t| !p.accepted.contains(&t.identity));
            st.alerted.retain(|x| !p.alerted.contains(&x.identity));
            st.arm_floor = st.arm_floor.max(p.arm_floor);
            st.alerted_overflow = st.alerted_overflow.max(p.alerted_overflow);
        })
    }

    async fn take_arm(&self, scope: &str, arm: &Arm, identity: &Trusted, accept: bool) -> Result<Update, StoreError> {
        self.enter(|c| c.take_arms += 1)?;
        self.with_scope(scope, |s| {
            let state = s.state.clone();
            if hand_over(s, arm, identity, accept) {
                Update::Applied
            } else {
                Update::Changed(Box::new(state))
            }
        })
    }

    async fn note_alerted(
        &self,
        scope: &str,
        identity: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        self.enter(|c| c.alert_notes += 1)?;
        self.with_scope(scope, |s| {
            if s.state.expires_at == 0 {
                s.state.expires_at = expires_at;
            }
            match s.state.alerted.iter_mut().find(|x| x.identity == identity) {
                Some(x) => x.at = x.at.min(at),
                None => s.state.alerted.push(Suspect { identity: identity.to_string(), at }),
            }
        })
    }

    async fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
        now: Millis,
        _expires_at: Millis,
    ) -> Result<AlertClaim, StoreError> {
        self.enter(|c| c.alert_claims += 1)?;
        let mut a = self.alerts.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        let k = format!("{access_key}#{identity}");
        match a.get(&k) {
            Some(item) if item.sent => Ok(AlertClaim::Sent),
            Some(item) if item.holder != holder && now < item.claimed_at + ALERT_LEASE_MS => Ok(AlertClaim::Held),
            _ => {
                a.insert(k, AlertItem { claimed_at: now, holder: holder.to_string(), sent: false });
                Ok(AlertClaim::Claimed)
            }
        }
    }

    async fn confirm_alert(&self, access_key: &str, identity: &str) -> Result<(), StoreError> {
        self.enter(|c| c.alert_confirms += 1)?;
        let mut a = self.alerts.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        let e = a.entry(format!("{access_key}#{identity}")).or_insert(AlertItem {
            claimed_at: 0,
            holder: String::new(),
            sent: true,
        });
        e.sent = true;
        Ok(())
    }

    async fn release_alert(&self, access_key: &str, identity: &str, holder: &str) -> Result<(), StoreError> {
        self.enter(|c| c.alert_releases += 1)?;
        let mut a = self.alerts.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        if let Some(item) = a.get_mut(&format!("{access_key}#{identity}")) {
            if item.holder == holder && !item.sent {
                item.claimed_at = 0;
            }
        }
        Ok(())
    }

    async fn bind(&self, scope: &str, access_key: &str, expires_at: Millis) -> Result<(), StoreError> {
        self.enter(|c| c.binds += 1)?;
        // As DynamoDB's condition: only a binding that extends the scope's life is recorded.
        self.with_scope(scope, |s| {
            if s.state.expires_at < expires_at {
                s.state.expires_at = expires_at;
                s.last_key = Some(access_key.to_string());
            }
        })
    }
}

/// An [`AlertSink`] that keeps every alert, for tests and `ctguard scan`.
#[derive(Default)]
pub struct CollectingSink {
    alerts: Mutex<Vec<Alert>>,
    fail_next: AtomicU64,
}

impl CollectingSink {
    pub fn new() -> Self {
        Self::default()
    }
    /// Alerts published so far, in order.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().map(|a| a.clone()).unwrap_or_default()
    }
    /// Makes the next `n` publishes fail with a transient error (nothing published).
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::SeqCst);
    }
}

impl AlertSink for CollectingSink {
    async fn publish(&self, alert: &Alert) -> Result<(), SinkError> {
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_next.store(left - 1, Ordering::SeqCst);
            return Err(SinkError::Transient("injected failure".into()));
        }
        self.alerts.lock().map_err(|_| SinkError::Fatal("poisoned".into()))?.push(alert.clone());
        Ok(())
    }
}
