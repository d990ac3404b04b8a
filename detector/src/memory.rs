//! In-memory implementations of the seams: the state of `ctguard scan`, and the test doubles.
//!
//! [`MemoryStore`] keeps exactly the semantics of the DynamoDB store (conditional anchor
//! writes, arms taken once, alert claims with a lease and a holder) and counts its calls, which
//! is how the benchmarks measure the store traffic a stream of events causes. It can be told to
//! fail, to test that failures reach the caller instead of being swallowed; finer fault
//! injection (which call, before or after it took effect) is [`crate::faults`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::alert::{Alert, AlertSink};
use crate::error::{SinkError, StoreError};
use crate::state::{AlertClaim, Anchor, Arm, Claim, ScopeState, StateStore, Trusted, Update, ALERT_LEASE_MS};
use crate::time::Millis;

#[derive(Default)]
struct Scope {
    state: ScopeState,
    bound_keys: Vec<String>,
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
    pub alert_claims: u64,
    pub alert_confirms: u64,
    pub alert_releases: u64,
    pub binds: u64,
}

impl StoreCalls {
    pub fn total(&self) -> u64 {
        self.claims
            + self.touches
            + self.displaces
            + self.arms
            + self.take_arms
            + self.alert_claims
            + self.alert_confirms
            + self.alert_releases
            + self.binds
    }
}

/// A [`StateStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    scopes: Mutex<HashMap<String, Scope>>,
    alerts: Mutex<HashMap<String, AlertItem>>,
    calls: Mutex<StoreCalls>,
    fail_next: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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

    /// Keys bound to an instance scope by rotation events.
    pub fn bound_keys(&self, scope: &str) -> Vec<String> {
        self.scopes.lock().ok().and_then(|m| m.get(scope).map(|s| s.bound_keys.clone())).unwrap_or_default()
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

    fn with_scope<T>(&self, scope: &str, f: impl FnOnce(&mut Scope) -> T) -> Result<T, StoreError> {
        let mut m = self.scopes.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        Ok(f(m.entry(scope.to_string()).or_default()))
    }
}

fn keep_longest(s: &mut Scope, expires_at: Millis) {
    s.state.expires_at = s.state.expires_at.max(expires_at);
}

fn arm_mut<'a>(s: &'a mut Scope, arm: &Arm) -> Option<&'a mut Arm> {
    s.state.arms.iter_mut().find(|a| a.from == arm.from)
}

/// Hands `arm` (expected to be held by `arm.taken_by`) to `identity`; false if it is not.
fn hand_over(s: &mut Scope, arm: &Arm, identity: &Trusted) -> bool {
    match arm_mut(s, arm) {
        Some(a) if a.taken_by == arm.taken_by => a.taken_by = Some(identity.identity.clone()),
        _ => return false,
    }
    s.state.accepted.retain(|a| a.identity != identity.identity && Some(&a.identity) != arm.taken_by.as_ref());
    s.state.accepted.push(identity.clone());
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
            Claim::Won
        })
    }

    async fn touch(
        &self,
        scope: &str,
        anchor: &Trusted,
        key: &str,
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
                hand_over(s, arm, &Trusted { identity: old.identity.clone(), first: old.first.clone() });
            }
            s.state.anchor =
                Some(Anchor { identity: new.identity.clone(), first: new.first.clone(), keys: vec![key.to_string()] });
            keep_longest(s, expires_at);
            Update::Applied
        })
    }

    async fn arm(&self, scope: &str, arm: &Arm, expires_at: Millis) -> Result<(), StoreError> {
        self.enter(|c| c.arms += 1)?;
        self.with_scope(scope, |s| {
            keep_longest(s, expires_at);
            if arm_mut(s, arm).is_none() {
                s.state.arms.push(Arm { taken_by: None, ..arm.clone() });
            }
        })
    }

    async fn take_arm(&self, scope: &str, arm: &Arm, identity: &Trusted) -> Result<Update, StoreError> {
        self.enter(|c| c.take_arms += 1)?;
        self.with_scope(scope, |s| {
            let state = s.state.clone();
            if hand_over(s, arm, identity) {
                Update::Applied
            } else {
                Update::Changed(Box::new(state))
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
        self.with_scope(scope, |s| {
            keep_longest(s, expires_at);
            if !s.bound_keys.iter().any(|k| k == access_key) {
                s.bound_keys.push(access_key.to_string());
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
