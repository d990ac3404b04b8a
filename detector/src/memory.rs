//! In-memory implementations of the seams: the state of `ctguard scan`, and the test doubles.
//!
//! [`MemoryStore`] keeps exactly the semantics of the DynamoDB store (conditional first write,
//! idempotent alert claims) and counts its calls, which is how the benchmarks measure the
//! store traffic a stream of events causes. It can be told to fail, to test that failures
//! reach the caller instead of being swallowed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::alert::{Alert, AlertSink};
use crate::error::{SinkError, StoreError};
use crate::state::{Claim, ScopeState, StateStore, Trusted, ALERT_LEASE_MS};
use crate::time::Millis;

#[derive(Default)]
struct Scope {
    state: ScopeState,
    bound_keys: Vec<String>,
    expires_at: Millis,
}

/// Calls made to a store, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCalls {
    pub claims: u64,
    pub trusts: u64,
    pub arms: u64,
    pub take_arms: u64,
    pub alert_claims: u64,
    pub alert_confirms: u64,
    pub binds: u64,
}

impl StoreCalls {
    pub fn total(&self) -> u64 {
        self.claims + self.trusts + self.arms + self.take_arms + self.alert_claims + self.alert_confirms + self.binds
    }
}

/// A [`StateStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    scopes: Mutex<HashMap<String, Scope>>,
    /// Alert claims: key → (claimed at, sent).
    alerts: Mutex<HashMap<String, (Millis, bool)>>,
    calls: Mutex<StoreCalls>,
    fail_next: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` calls fail with a transient error.
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> StoreCalls {
        self.calls.lock().map(|c| *c).unwrap_or_default()
    }

    /// The trusted identities of a scope (by storage key).
    pub fn trusted(&self, scope: &str) -> Vec<Trusted> {
        self.scopes.lock().ok().and_then(|m| m.get(scope).map(|s| s.state.trusted.clone())).unwrap_or_default()
    }

    /// Keys bound to an instance scope by rotation events.
    pub fn bound_keys(&self, scope: &str) -> Vec<String> {
        self.scopes.lock().ok().and_then(|m| m.get(scope).map(|s| s.bound_keys.clone())).unwrap_or_default()
    }

    /// Number of scopes held.
    pub fn scope_count(&self) -> usize {
        self.scopes.lock().map(|m| m.len()).unwrap_or(0)
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

    fn with_scopes<T>(&self, f: impl FnOnce(&mut HashMap<String, Scope>) -> T) -> Result<T, StoreError> {
        let mut m = self.scopes.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        Ok(f(&mut m))
    }
}

impl StateStore for MemoryStore {
    async fn claim(&self, scope: &str, first: &Trusted, expires_at: Millis) -> Result<Claim, StoreError> {
        self.enter(|c| c.claims += 1)?;
        self.with_scopes(|m| {
            let s = m.entry(scope.to_string()).or_default();
            s.expires_at = s.expires_at.max(expires_at);
            if s.state.trusted.is_empty() {
                s.state.trusted.push(first.clone());
                Claim::Won
            } else {
                Claim::Existing(s.state.clone())
            }
        })
    }

    async fn trust(&self, scope: &str, identity: &Trusted, expires_at: Millis) -> Result<(), StoreError> {
        self.enter(|c| c.trusts += 1)?;
        self.with_scopes(|m| {
            let s = m.entry(scope.to_string()).or_default();
            s.expires_at = s.expires_at.max(expires_at);
            if !s.state.trusted.iter().any(|t| t.identity == identity.identity) {
                s.state.trusted.push(identity.clone());
            }
        })
    }

    async fn arm(&self, scope: &str, until: Millis, expires_at: Millis) -> Result<(), StoreError> {
        self.enter(|c| c.arms += 1)?;
        self.with_scopes(|m| {
            let s = m.entry(scope.to_string()).or_default();
            s.expires_at = s.expires_at.max(expires_at);
            s.state.armed_until = Some(s.state.armed_until.map_or(until, |u| u.max(until)));
        })
    }

    async fn take_arm(&self, scope: &str, at: Millis, identity: &Trusted) -> Result<bool, StoreError> {
        self.enter(|c| c.take_arms += 1)?;
        self.with_scopes(|m| {
            let Some(s) = m.get_mut(scope) else { return false };
            match s.state.armed_until {
                Some(u) if at <= u => {
                    s.state.armed_until = None;
                    s.state.trusted.push(identity.clone());
                    true
                }
                _ => false,
            }
        })
    }

    async fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        now: Millis,
        _expires_at: Millis,
    ) -> Result<bool, StoreError> {
        self.enter(|c| c.alert_claims += 1)?;
        let mut a = self.alerts.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        let k = format!("A#{access_key}#{identity}");
        match a.get(&k) {
            Some((_, true)) => Ok(false),
            Some((at, false)) if now < at + ALERT_LEASE_MS => Ok(false),
            _ => {
                a.insert(k, (now, false));
                Ok(true)
            }
        }
    }

    async fn confirm_alert(&self, access_key: &str, identity: &str) -> Result<(), StoreError> {
        self.enter(|c| c.alert_confirms += 1)?;
        let mut a = self.alerts.lock().map_err(|_| StoreError::Fatal("poisoned".into()))?;
        let e = a.entry(format!("A#{access_key}#{identity}")).or_insert((0, true));
        e.1 = true;
        Ok(())
    }

    async fn bind(&self, scope: &str, access_key: &str, expires_at: Millis) -> Result<(), StoreError> {
        self.enter(|c| c.binds += 1)?;
        self.with_scopes(|m| {
            let s = m.entry(scope.to_string()).or_default();
            s.expires_at = s.expires_at.max(expires_at);
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
    /// Makes the next `n` publishes fail with a transient error.
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
