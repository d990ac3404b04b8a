//! Fault injection for the seams: fail exactly one call of a store or sink, in one of the ways
//! DynamoDB and SNS fail, to prove that no failure loses an alert or sends one twice.
//!
//! A [`FaultPlan`] numbers every call made through the [`FaultyStore`] and [`FaultySink`]
//! that share it and fails the call with the chosen index. The kinds are the ones that matter
//! for the guarantees:
//!
//! - [`FaultKind::Before`]: an error before the call took effect (a refused request);
//! - [`FaultKind::After`]: an error after it took effect (the response was lost): the caller
//!   cannot tell, so for a publish this is reported as [`SinkError::Ambiguous`];
//! - [`FaultKind::Throttle`]: throttling (refused, retryable);
//! - [`FaultKind::Timeout`]: a timeout, which is ambiguous too: modelled as having taken effect,
//!   the worse case for duplicates.
//!
//! Test support, used by the detector's integrity tests and the bootstrap's handler tests.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::alert::{Alert, AlertSink};
use crate::error::{SinkError, StoreError};
use crate::state::{AlertClaim, Anchor, Arm, Claim, Prune, ScopeState, StateStore, Trusted, Update};
use crate::time::Millis;

/// How an injected call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Before,
    After,
    Throttle,
    Timeout,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [FaultKind::Before, FaultKind::After, FaultKind::Throttle, FaultKind::Timeout];

    /// Whether the failed call may have taken effect.
    pub fn took_effect(self) -> bool {
        matches!(self, FaultKind::After | FaultKind::Timeout)
    }
}

/// Which call fails, shared by a store and a sink; records what it injected.
#[derive(Debug, Default)]
pub struct FaultPlan {
    calls: AtomicU64,
    fault: Mutex<Option<(u64, FaultKind)>>,
    injected: Mutex<Option<(&'static str, FaultKind)>>,
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// Fails the call with index `at` (counting from 0 across store and sink) with `kind`.
    pub fn fail(&self, at: u64, kind: FaultKind) {
        if let Ok(mut f) = self.fault.lock() {
            *f = Some((at, kind));
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The operation that was failed, and how, once it happened.
    pub fn injected(&self) -> Option<(&'static str, FaultKind)> {
        self.injected.lock().ok().and_then(|i| *i)
    }

    fn next(&self, op: &'static str) -> Option<FaultKind> {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        let kind = match self.fault.lock() {
            Ok(f) => f.filter(|(at, _)| *at == i).map(|(_, k)| k),
            Err(_) => None,
        }?;
        if let Ok(mut inj) = self.injected.lock() {
            *inj = Some((op, kind));
        }
        Some(kind)
    }
}

/// A store whose calls fail as its [`FaultPlan`] says.
pub struct FaultyStore<S> {
    pub inner: S,
    pub plan: Arc<FaultPlan>,
}

/// A sink whose publishes fail as its [`FaultPlan`] says.
pub struct FaultySink<A> {
    pub inner: A,
    pub plan: Arc<FaultPlan>,
}

async fn store_call<T>(
    fault: Option<FaultKind>,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match fault {
        None => call.await,
        Some(FaultKind::Before) => Err(StoreError::Transient("injected: failed before taking effect".into())),
        Some(FaultKind::Throttle) => Err(StoreError::Transient("ThrottlingException: injected".into())),
        Some(FaultKind::After) => {
            let _ = call.await;
            Err(StoreError::Transient("injected: failed after taking effect".into()))
        }
        Some(FaultKind::Timeout) => {
            let _ = call.await;
            Err(StoreError::Transient("injected: timed out (after taking effect)".into()))
        }
    }
}

impl<S: StateStore> StateStore for FaultyStore<S> {
    async fn claim(&self, scope: &str, first: &Trusted, key: &str, expires_at: Millis) -> Result<Claim, StoreError> {
        store_call(self.plan.next("claim"), self.inner.claim(scope, first, key, expires_at)).await
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
        store_call(self.plan.next("touch"), self.inner.touch(scope, anchor, key, key_end, lower, expires_at)).await
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
        let call = self.inner.displace(scope, old, new, key, key_end, accept_old, expires_at);
        store_call(self.plan.next("displace"), call).await
    }
    async fn arm(&self, scope: &str, arm: &Arm, expires_at: Millis) -> Result<ScopeState, StoreError> {
        store_call(self.plan.next("arm"), self.inner.arm(scope, arm, expires_at)).await
    }
    async fn prune(&self, scope: &str, prune: &Prune) -> Result<(), StoreError> {
        store_call(self.plan.next("prune"), self.inner.prune(scope, prune)).await
    }
    async fn take_arm(&self, scope: &str, arm: &Arm, identity: &Trusted, accept: bool) -> Result<Update, StoreError> {
        store_call(self.plan.next("take_arm"), self.inner.take_arm(scope, arm, identity, accept)).await
    }
    async fn note_alerted(
        &self,
        scope: &str,
        identity: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        store_call(self.plan.next("note_alerted"), self.inner.note_alerted(scope, identity, at, expires_at)).await
    }
    async fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<AlertClaim, StoreError> {
        store_call(self.plan.next("claim_alert"), self.inner.claim_alert(access_key, identity, holder, now, expires_at))
            .await
    }
    async fn confirm_alert(&self, access_key: &str, identity: &str) -> Result<(), StoreError> {
        store_call(self.plan.next("confirm_alert"), self.inner.confirm_alert(access_key, identity)).await
    }
    async fn release_alert(&self, access_key: &str, identity: &str, holder: &str) -> Result<(), StoreError> {
        store_call(self.plan.next("release_alert"), self.inner.release_alert(access_key, identity, holder)).await
    }
    async fn bind(&self, scope: &str, access_key: &str, expires_at: Millis) -> Result<(), StoreError> {
        store_call(self.plan.next("bind"), self.inner.bind(scope, access_key, expires_at)).await
    }
}

impl<A: AlertSink> AlertSink for FaultySink<A> {
    async fn publish(&self, alert: &Alert) -> Result<(), SinkError> {
        match self.plan.next("publish") {
            None => self.inner.publish(alert).await,
            Some(FaultKind::Before) => Err(SinkError::Transient("injected: refused".into())),
            Some(FaultKind::Throttle) => Err(SinkError::Transient("Throttling: injected".into())),
            Some(FaultKind::After) => {
                let _ = self.inner.publish(alert).await;
                Err(SinkError::Ambiguous("injected: response lost after publishing".into()))
            }
            Some(FaultKind::Timeout) => {
                let _ = self.inner.publish(alert).await;
                Err(SinkError::Ambiguous("injected: timed out (after publishing)".into()))
            }
        }
    }
}
