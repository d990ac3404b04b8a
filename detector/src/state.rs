//! The state seam: what the engine needs to remember, expressed in ctguard's own types.
//!
//! A *scope* is the unit of trust: one temporary key (`K#ASIA…`), or one EC2 instance whose
//! rotating role credentials share their trust (`I#<account>#i-…`). Every operation is a
//! single conditional write, so two Lambda environments racing on the same scope can never
//! both win, and every write is idempotent under redelivery of the same event.
//!
//! Implementations: `DynamoStore` in the Lambda bootstrap, [`crate::memory::MemoryStore`] for
//! tests and offline replay.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::time::Millis;

/// How long a claim to publish an alert is held before a retry may take it over. Shorter than
/// Lambda's first asynchronous retry (about a minute), longer than any publish.
pub const ALERT_LEASE_MS: Millis = 30_000;

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

/// An identity trusted for a scope, with the event that established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    /// [`crate::identity::NetworkIdentity::key`] form.
    pub identity: String,
    pub first: EventRef,
}

/// What the store holds for one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeState {
    pub trusted: Vec<Trusted>,
    /// An accepted move is armed until this time (event time, ms).
    pub armed_until: Option<Millis>,
}

/// Outcome of [`StateStore::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This call recorded the scope's first identity.
    Won,
    /// The scope already had identities; here is what it holds.
    Existing(ScopeState),
}

/// Persistent, shared state of the detector.
pub trait StateStore: Send + Sync {
    /// Records `first` as the scope's first trusted identity unless the scope already has one
    /// (a conditional write: exactly one concurrent caller wins). Returns the existing state
    /// otherwise, in the same round trip.
    fn claim(
        &self,
        scope: &str,
        first: &Trusted,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Adds an identity to a scope's trusted set (an accepted move or a trusted endpoint).
    fn trust(
        &self,
        scope: &str,
        identity: &Trusted,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Arms one accepted new identity for the scope until `until`.
    fn arm(
        &self,
        scope: &str,
        until: Millis,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Consumes the armed move (if still armed at `at`) and trusts `identity`; false when
    /// nothing was armed or another caller consumed it first.
    fn take_arm(
        &self,
        scope: &str,
        at: Millis,
        identity: &Trusted,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims the right to publish the alert for (`access_key`, `identity`): true when no
    /// alert was sent for it and no other caller holds a fresh claim (a lease of
    /// [`ALERT_LEASE_MS`] from `now`). A claim whose publish failed expires, so the retried
    /// event publishes it: a detection is never lost to a failed publish.
    fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        now: Millis,
        expires_at: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks the alert for (`access_key`, `identity`) as sent, for good.
    fn confirm_alert(&self, access_key: &str, identity: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that `access_key` was issued to the instance scope (credential rotation) and
    /// keeps the scope alive until at least `expires_at`.
    fn bind(
        &self,
        scope: &str,
        access_key: &str,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
