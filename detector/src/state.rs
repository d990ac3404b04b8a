//! The state seam: what the engine needs to remember, expressed in ctguard's own types.
//!
//! A *scope* is the unit of trust: one temporary key (`K#ASIA…`), or one EC2 instance whose
//! rotating role credentials share their trust (`I#<account>#i-…`). What a scope remembers:
//!
//! - its **anchor**: the earliest use (in event time) of a temporary key of the scope, the
//!   identity trust on first use stands on, with the keys that identity used. Only an earlier
//!   use can replace it (an out-of-order delivery), and only a use that is not accepted by a
//!   rule (allowlist, own VPC endpoint, armed move) can be or replace the anchor;
//! - **accepted** identities: new identities an armed network move let in, each trusted from
//!   the time of its accepted use on. They never anchor and never count as the earliest use;
//! - **arms**: windows (from a successful `AssociateAddress`/`AttachNetworkInterface`/
//!   `StartInstances` to 15 minutes later) in which one new identity is accepted; an arm is
//!   marked with the identity that took it, never deleted, so that a redelivered move cannot
//!   arm twice.
//!
//! Every operation is a single conditional write, so two Lambda environments racing on the same
//! scope can never both win; a write whose condition no longer holds hands back the current
//! state ([`Update::Changed`]) and the engine decides again. Every write is idempotent under
//! redelivery of the same event.
//!
//! Alerts are claimed per (key, offending identity) before they are published and confirmed
//! after: see [`StateStore::claim_alert`] for how that keeps the delivery at least once and, in
//! practice, exactly once.
//!
//! Implementations: `DynamoStore` in the Lambda bootstrap, [`crate::memory::MemoryStore`] for
//! tests and offline replay.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::time::Millis;

/// How long a claim to publish an alert is held before a *different* event may take it over.
///
/// Longer than one invocation can live (the function's timeout is 30 s, see
/// `templates/ctguard-region.yaml`; a test keeps the two in step), so a claim is never taken
/// over while its holder may still publish; shorter than Lambda's first asynchronous retry
/// (about a minute), so a retried event that needs the alert finds the lease expired. A retry
/// of the *same* event takes its own claim back at once (see [`StateStore::claim_alert`]).
pub const ALERT_LEASE_MS: Millis = 45_000;

/// Where and when an identity was first seen, kept with the identity in state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_source: Option<String>,
    /// RFC 3339, UTC.
    pub event_time: String,
    /// The same instant in Unix milliseconds (not serialised: `event_time` carries it).
    #[serde(skip)]
    pub time_ms: Millis,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vpc_endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_key_id: Option<String>,
}

impl EventRef {
    /// Restores [`EventRef::time_ms`] after deserialisation (it is not stored twice).
    pub fn with_time_from_text(mut self) -> Self {
        if self.time_ms == 0 {
            self.time_ms = crate::time::parse_rfc3339(&self.event_time).unwrap_or(Millis::MAX);
        }
        self
    }
}

/// A use: an identity (in [`crate::identity::NetworkIdentity::key`] form) and the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    pub identity: String,
    pub first: EventRef,
}

/// The scope's anchor: its earliest trusted use, and every key that used its identity (the
/// keys an alert must name if an earlier use later shows the anchor to be the intruder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub identity: String,
    pub first: EventRef,
    pub keys: Vec<String>,
}

impl Anchor {
    /// Whether this anchor is later than a use at `time` from `identity` (which then displaces
    /// it). Ties in event time (CloudTrail has second precision) are broken by the identity's
    /// text, so that every delivery order agrees on one anchor.
    pub fn is_later_than(&self, time: Millis, identity: &str) -> bool {
        (time, identity) < (self.first.time_ms, self.identity.as_str())
    }
}

/// A window in which one new identity is accepted for an instance (a network move): the
/// identity of the earliest use (in event time) inside the window that no other rule trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arm {
    /// Event time of the move.
    pub from: Millis,
    /// End of the window (event time).
    pub until: Millis,
    /// The identity that took the arm, once taken (its use is in [`ScopeState::accepted`]).
    /// In a call to [`StateStore::take_arm`] or [`StateStore::displace`]: who is expected to
    /// hold it now (`None`: nobody).
    pub taken_by: Option<String>,
}

impl Arm {
    /// Whether the window covers a use at `time`.
    pub fn covers(&self, time: Millis) -> bool {
        self.from <= time && time <= self.until
    }
}

/// What the store holds for one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeState {
    pub anchor: Option<Anchor>,
    /// Identities accepted by an armed move, each trusted from its `first.time_ms` on.
    pub accepted: Vec<Trusted>,
    pub arms: Vec<Arm>,
    /// When the store may forget the scope (Unix ms; 0 when unknown).
    pub expires_at: Millis,
}

impl ScopeState {
    /// The arm a use at `time` from `identity` may take, and the accepted use that holds it now
    /// (`None`: free). An arm held by a *later* use is taken over: the earliest use inside the
    /// window is the move's new identity, whatever order the uses were delivered in.
    pub fn arm_for(&self, time: Millis, identity: &str) -> Option<(&Arm, Option<&Trusted>)> {
        self.arms.iter().filter(|a| a.covers(time)).find_map(|a| match &a.taken_by {
            None => Some((a, None)),
            Some(by) => {
                let holder = self.accepted.iter().find(|x| &x.identity == by)?;
                ((time, identity) < (holder.first.time_ms, holder.identity.as_str())).then_some((a, Some(holder)))
            }
        })
    }

    /// Every identity the scope trusts: the anchor first, then the accepted ones.
    pub fn trusted(&self) -> Vec<Trusted> {
        let anchor = self.anchor.iter().map(|a| Trusted { identity: a.identity.clone(), first: a.first.clone() });
        anchor.chain(self.accepted.iter().cloned()).collect()
    }
}

/// Outcome of [`StateStore::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This call recorded the scope's anchor.
    Won,
    /// The scope already has an anchor; here is what it holds.
    Existing(Box<ScopeState>),
}

/// Outcome of a conditional change of a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// The change was made.
    Applied,
    /// The scope is no longer what the change expected; here is what it holds now.
    Changed(Box<ScopeState>),
}

/// Outcome of [`StateStore::claim_alert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertClaim {
    /// This caller must publish the alert, then confirm it.
    Claimed,
    /// The alert was published and confirmed: nothing to do.
    Sent,
    /// Another event holds a fresh claim. Its own processing (and Lambda's retries of it)
    /// publishes the alert.
    Held,
}

/// Persistent, shared state of the detector.
pub trait StateStore: Send + Sync {
    /// Records `first` (a use with `key`) as the scope's anchor unless the scope has one
    /// (a conditional write: exactly one concurrent caller wins). Returns the existing state
    /// otherwise, in the same round trip.
    fn claim(
        &self,
        scope: &str,
        first: &Trusted,
        key: &str,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records a use of the anchor's identity: adds `key` to the anchor's keys and, when
    /// `lower` is set, moves the anchor's time back to `anchor.first` (an earlier use delivered
    /// late). Applied only while the anchor is still `anchor.identity` (and, when lowering,
    /// still later than `anchor.first`).
    fn touch(
        &self,
        scope: &str,
        anchor: &Trusted,
        key: &str,
        lower: bool,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send;

    /// Replaces the anchor `old` (exactly as read: identity, time, keys) by the earlier use
    /// `new` with `key`. With `accept_old`, the old anchor's identity becomes accepted, taking
    /// that arm from whoever `arm.taken_by` says holds it (its first use fell inside the move
    /// window, before the holder's). The caller publishes whatever alert the old anchor (or the
    /// arm's previous holder) owes *before* this call, so that no retry finds its reason gone.
    fn displace(
        &self,
        scope: &str,
        old: &Anchor,
        new: &Trusted,
        key: &str,
        accept_old: Option<&Arm>,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send;

    /// Arms one accepted new identity for the scope in `arm`'s window (idempotent: a
    /// redelivered move finds its arm, taken or not, and changes nothing).
    fn arm(&self, scope: &str, arm: &Arm, expires_at: Millis) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `arm` for `identity`, which becomes accepted from `identity.first`. Applied only
    /// while the arm is held by `arm.taken_by` (`None`: free); a previous holder other than
    /// `identity` is no longer accepted.
    fn take_arm(
        &self,
        scope: &str,
        arm: &Arm,
        identity: &Trusted,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send;

    /// Claims the right to publish the alert for (`access_key`, `identity`) for the event
    /// `holder`: [`AlertClaim::Claimed`] when no alert was sent for it and no *other* event
    /// holds a claim younger than [`ALERT_LEASE_MS`] at `now`. A retry of the holder event
    /// claims again at once, so an alert whose publish failed is published by the retry; an
    /// abandoned claim expires, so an alert is never lost to a crash.
    fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
        now: Millis,
        expires_at: Millis,
    ) -> impl Future<Output = Result<AlertClaim, StoreError>> + Send;

    /// Marks the alert for (`access_key`, `identity`) as sent, for good (idempotent).
    fn confirm_alert(&self, access_key: &str, identity: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up `holder`'s unsent claim on the alert for (`access_key`, `identity`), so that
    /// any event may claim it at once (no-op when sent or held by another event).
    fn release_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that `access_key` was issued to the instance scope (credential rotation) and
    /// keeps the scope alive until at least `expires_at`.
    fn bind(
        &self,
        scope: &str,
        access_key: &str,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A shared store is a store: several detectors (Lambda environments, in tests) over one state.
impl<S: StateStore + ?Sized> StateStore for std::sync::Arc<S> {
    fn claim(
        &self,
        scope: &str,
        first: &Trusted,
        key: &str,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(scope, first, key, expires_at)
    }
    fn touch(
        &self,
        scope: &str,
        anchor: &Trusted,
        key: &str,
        lower: bool,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send {
        (**self).touch(scope, anchor, key, lower, expires_at)
    }
    fn displace(
        &self,
        scope: &str,
        old: &Anchor,
        new: &Trusted,
        key: &str,
        accept_old: Option<&Arm>,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send {
        (**self).displace(scope, old, new, key, accept_old, expires_at)
    }
    fn arm(&self, scope: &str, arm: &Arm, expires_at: Millis) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).arm(scope, arm, expires_at)
    }
    fn take_arm(
        &self,
        scope: &str,
        arm: &Arm,
        identity: &Trusted,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send {
        (**self).take_arm(scope, arm, identity)
    }
    fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
        now: Millis,
        expires_at: Millis,
    ) -> impl Future<Output = Result<AlertClaim, StoreError>> + Send {
        (**self).claim_alert(access_key, identity, holder, now, expires_at)
    }
    fn confirm_alert(&self, access_key: &str, identity: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).confirm_alert(access_key, identity)
    }
    fn release_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release_alert(access_key, identity, holder)
    }
    fn bind(
        &self,
        scope: &str,
        access_key: &str,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).bind(scope, access_key, expires_at)
    }
}
