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
//!   marked with the identity that took it and kept while its move could still be redelivered,
//!   so that a redelivered move cannot arm twice; dropped arms (and dropped alerted records)
//!   raise the scope's *arm floor*, at or below which no move arms again;
//! - **alerted** identities: the earliest known use time of each new identity alerted on in the
//!   scope. A move's window belongs to the earliest new identity inside it, *counting alerted
//!   ones*: an identity alerted on before the move's record arrived still spends the window, so
//!   that a later identity in it (a thief) is alerted on in every delivery order. An alerted
//!   identity is never accepted by a move (a known suspect is not laundered).
//!
//! **Bounded.** A scope's item must stay far below DynamoDB's 400 KB item limit for the life of
//! an instance (years of hourly credential rotations and moves). What can no longer matter is
//! pruned ([`ScopeState::prune_plan`], by the engine, from the snapshots it reads): anchor keys
//! whose credential ended, arms whose window ended, and alerted records too old for any window,
//! each more than [`DELIVERY_HORIZON_MS`] (the latest any event can still be delivered) before
//! the event being decided. What still matters is capped, with overflow policies that can only
//! add alerts: the oldest accepted identities beyond [`MAX_ACCEPTED`] are forgotten (their next
//! use is a new identity again); arms beyond [`MAX_ARMS`] are dropped oldest first (raising the
//! floor: their moves are refused if redelivered); alerted records beyond [`MAX_ALERTED`] are
//! folded into one *overflow* time, and every window opening at or before it is spent; anchor
//! keys beyond [`MAX_ANCHOR_KEYS`] are forgotten soonest-ending first (an out-of-order alert on
//! the anchor then names its other keys). Stored event texts are clipped to
//! [`MAX_STORED_TEXT`] bytes. See [`worst_case_item_bytes`] for the resulting bound.
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

/// The latest an event can reach the detector after it happened: EventBridge retries a
/// delivery for up to 24 h, Lambda then keeps an asynchronous event for up to 6 h (see
/// `templates/ctguard-region.yaml`), plus CloudTrail's delivery delay and clock skew. State
/// that only an event older than this could still need is pruned.
pub const DELIVERY_HORIZON_MS: Millis = 32 * 3_600_000;

/// Identities accepted by moves kept per scope (the oldest are forgotten beyond it).
pub const MAX_ACCEPTED: usize = 32;
/// Live move windows kept per scope (the oldest are dropped beyond it).
pub const MAX_ARMS: usize = 64;
/// Identities alerted on recorded per scope (beyond it, folded into the overflow time).
pub const MAX_ALERTED: usize = 64;
/// Keys recorded with a scope's anchor (the soonest-ending are forgotten beyond it).
pub const MAX_ANCHOR_KEYS: usize = 200;
/// Longest text (bytes) of one field of a stored event: every stored text is clipped to it.
pub const MAX_STORED_TEXT: usize = 256;
/// Most attributes one prune removes (DynamoDB expressions are limited to 4 KB); the next
/// decision goes on.
pub const MAX_PRUNED_PER_WRITE: usize = 48;

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
    /// The caller (`userIdentity.arn`): for an instance's scope, whose call established the
    /// trust (automatic containment acts only when it was the alerting session's own).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub principal_arn: Option<String>,
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

/// An identity alerted on in a scope, and the earliest time it is known to have used it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspect {
    pub identity: String,
    pub at: Millis,
}

/// What the store holds for one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeState {
    pub anchor: Option<Anchor>,
    /// Identities accepted by an armed move, each trusted from its `first.time_ms` on.
    pub accepted: Vec<Trusted>,
    pub arms: Vec<Arm>,
    /// Identities alerted on, with their earliest known use (see [`ScopeState::arm_for`]).
    pub alerted: Vec<Suspect>,
    /// Latest use of an identity alerted on that was not recorded (beyond [`MAX_ALERTED`]):
    /// every window opening at or before it is spent (0: none).
    pub alerted_overflow: Millis,
    /// No move opening at or before this time arms the scope again: its arm was pruned or
    /// dropped, and may have been taken (0: none).
    pub arm_floor: Millis,
    /// When the credential of each key recorded with the anchor ends (its state lifetime).
    pub key_ends: Vec<(String, Millis)>,
    /// When the store may forget the scope (Unix ms; 0 when unknown).
    pub expires_at: Millis,
}

impl ScopeState {
    /// The arm a use at `time` from `identity` may take, and the accepted use that holds it now
    /// (`None`: nobody accepted). The window belongs to the earliest new identity inside it,
    /// whatever order the uses were delivered in: an arm held by a *later* use is taken over,
    /// and an arm is not offered at all when an identity alerted on used the scope inside the
    /// window earlier than this use (it was the move's first new identity, delivered before the
    /// move was known: the window is spent on it). An arm handed to an alerted identity (no
    /// longer in `accepted`) is offered only to a use earlier than that identity's record.
    pub fn arm_for(&self, time: Millis, identity: &str) -> Option<(&Arm, Option<&Trusted>)> {
        let me = (time, identity);
        self.arms.iter().filter(|a| a.covers(time)).find_map(|a| {
            if a.from <= self.alerted_overflow
                || self.alerted.iter().any(|s| a.covers(s.at) && (s.at, s.identity.as_str()) < me)
            {
                return None;
            }
            match &a.taken_by {
                None => Some((a, None)),
                Some(by) => match self.accepted.iter().find(|x| &x.identity == by) {
                    Some(holder) => {
                        (me < (holder.first.time_ms, holder.identity.as_str())).then_some((a, Some(holder)))
                    }
                    // Spent on an alerted identity, later than this use (checked above).
                    None => self.alerted.iter().any(|s| &s.identity == by && a.covers(s.at)).then_some((a, None)),
                },
            }
        })
    }

    /// Whether the scope already records `identity` as alerted on with a use at or before `at`.
    pub fn alerted_since(&self, identity: &str, at: Millis) -> bool {
        self.alerted.iter().any(|s| s.identity == identity && s.at <= at)
    }

    /// What can be removed from the scope when deciding an event at `at` (event time, never
    /// beyond the processing clock's allowance), with move windows of `window`; `None` when
    /// nothing. Removing only what is dead or over a bound, it is safe against any newer state
    /// (a stale snapshot prunes less, or evicts one entry early: never silences detection).
    pub fn prune_plan(&self, at: Millis, window: Millis) -> Option<Prune> {
        let dead = |end: Millis| end.saturating_add(DELIVERY_HORIZON_MS) < at;
        let mut p = Prune::default();
        let mut budget = MAX_PRUNED_PER_WRITE;
        let mut take = |n: usize| {
            let k = n.min(budget);
            budget -= k;
            k
        };
        // Anchor keys: ended ones (with their ends, whether still the anchor's or not: no use of
        // such a key can still be delivered, so no concurrent write can be re-adding it), then
        // the anchor's soonest-ending keys beyond the cap (keys without a recorded end first).
        let anchor_keys = self.anchor.as_ref().map(|a| a.keys.as_slice()).unwrap_or_default();
        let mut gone: Vec<&str> = self.key_ends.iter().filter(|(_, e)| dead(*e)).map(|(k, _)| k.as_str()).collect();
        let end_of = |k: &str| self.key_ends.iter().find(|(x, _)| x == k).map(|(_, e)| *e).unwrap_or(0);
        let mut live: Vec<(Millis, &str)> =
            anchor_keys.iter().filter(|k| !gone.contains(&k.as_str())).map(|k| (end_of(k), k.as_str())).collect();
        live.sort();
        let over = live.len().saturating_sub(MAX_ANCHOR_KEYS);
        gone.extend(live.iter().take(over).map(|(_, k)| *k));
        let n = take(gone.len());
        p.keys = gone.into_iter().take(n).map(str::to_string).collect();
        // Arms: ended windows, then the oldest beyond the cap; the floor rises past them.
        let mut arms: Vec<&Arm> = self.arms.iter().collect();
        arms.sort_by_key(|a| a.from);
        let (ended, live): (Vec<&Arm>, Vec<&Arm>) = arms.into_iter().partition(|a| dead(a.until));
        let over = live.len().saturating_sub(MAX_ARMS);
        let dropped: Vec<&Arm> = ended.into_iter().chain(live.into_iter().take(over)).collect();
        let n = take(dropped.len());
        p.arms = dropped.iter().take(n).map(|a| a.from).collect();
        // Never below the floor as read, or the write would be refused as a lowering.
        p.arm_floor = p.arms.iter().copied().max().map_or(0, |f| f.max(self.arm_floor));
        // (Raised further below past dropped alerted records.)
        // Accepted identities: the oldest beyond the cap.
        let mut accepted: Vec<&Trusted> = self.accepted.iter().collect();
        accepted.sort_by_key(|t| (t.first.time_ms, t.identity.as_str()));
        let n = take(accepted.len().saturating_sub(MAX_ACCEPTED));
        p.accepted = accepted.iter().take(n).map(|t| t.identity.clone()).collect();
        // Alerted records: too old for any window a deliverable move or use could open, then
        // the oldest beyond the cap, folded into the overflow time.
        let mut alerted: Vec<&Suspect> = self.alerted.iter().collect();
        alerted.sort_by_key(|s| (s.at, s.identity.as_str()));
        let (old, live): (Vec<&Suspect>, Vec<&Suspect>) =
            alerted.into_iter().partition(|s| dead(s.at.saturating_add(window)));
        let over = live.len().saturating_sub(MAX_ALERTED);
        let n = take(old.len() + over);
        let n_old = old.len().min(n);
        let folded: Vec<&Suspect> = live.into_iter().take(n - n_old).collect();
        p.alerted_overflow = folded.iter().map(|s| s.at).max().map_or(0, |o| o.max(self.alerted_overflow));
        p.alerted = old.iter().take(n_old).chain(folded.iter()).map(|s| s.identity.clone()).collect();
        // A window that could cover a dropped record must not arm later either (a move that
        // late is beyond the horizon; this keeps even such a delivery from reopening it).
        let floor = old.iter().take(n_old).map(|s| s.at).max().unwrap_or(0);
        if floor > p.arm_floor.max(self.arm_floor) {
            p.arm_floor = floor;
        }
        (!p.is_empty()).then_some(p)
    }

    /// Every identity the scope trusts: the anchor first, then the accepted ones.
    pub fn trusted(&self) -> Vec<Trusted> {
        let anchor = self.anchor.iter().map(|a| Trusted { identity: a.identity.clone(), first: a.first.clone() });
        anchor.chain(self.accepted.iter().cloned()).collect()
    }
}

/// What to remove from a scope (see [`ScopeState::prune_plan`]). Applied as one write without
/// a condition on what it removes (everything named is dead or over a bound); the floor and
/// the overflow time only ever rise (a prune that would lower either changes nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prune {
    /// Keys to forget (from the anchor's keys and their ends).
    pub keys: Vec<String>,
    /// Arms to drop, by their `from`.
    pub arms: Vec<Millis>,
    /// The arm floor to raise to (0: unchanged).
    pub arm_floor: Millis,
    /// Accepted identities to forget.
    pub accepted: Vec<String>,
    /// Alerted records to drop.
    pub alerted: Vec<String>,
    /// The overflow time to raise to (0: unchanged).
    pub alerted_overflow: Millis,
}

impl Prune {
    pub fn is_empty(&self) -> bool {
        self == &Prune::default()
    }
}

/// An upper bound of the DynamoDB item size (bytes) of one scope at every cap, with every
/// text at its longest: what [`ScopeState::prune_plan`]'s bounds guarantee, given that no
/// more than `keys_per_horizon` anchor keys end within one delivery horizon plus a lifetime
/// (at most [`MAX_ANCHOR_KEYS`] count anyway). Identities are at most 64 bytes
/// (`vpce:vpce-<17 hex>@<12 digits>` is 41). See `memory::item_bytes` for the counting.
pub fn worst_case_item_bytes() -> usize {
    const IDENT: usize = 64;
    const KEY: usize = 128;
    const NUM: usize = 8; // a 13-digit number: 1 + 13/2 bytes, rounded up
                          // Ten texts of an event at the cap (control characters are replaced when clipped, so JSON
                          // escapes at most double a byte), plus their field names.
    let event = 10 * (MAX_STORED_TEXT * 2 + 20);
    let scope = 2 + 80 + 3 + NUM + 8 + KEY; // pk, ttl, last_key
    let anchor = 6 + IDENT + 9 + NUM + 9 + event + 11; // anchor, anchor_at, anchor_ev, anchor_keys
    let keys = MAX_ANCHOR_KEYS * (KEY + 5 + KEY + NUM); // set element + kend#<key>
    let accepted = MAX_ACCEPTED * (4 + IDENT + 3 + 3 + NUM + 3 + event);
    let arms = MAX_ARMS * (4 + 13 + NUM + 6 + 13 + IDENT);
    let alerted = MAX_ALERTED * (3 + IDENT + NUM) + 2 * (10 + NUM);
    scope + anchor + keys + accepted + arms + alerted
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

    /// Records a use of the anchor's identity: adds `key` (its credential ending at `key_end`,
    /// recorded unless known) to the anchor's keys and, when
    /// `lower` is set, moves the anchor's time back to `anchor.first` (an earlier use delivered
    /// late). Applied only while the anchor is still `anchor.identity` (and, when lowering,
    /// still later than `anchor.first`).
    fn touch(
        &self,
        scope: &str,
        anchor: &Trusted,
        key: &str,
        key_end: Millis,
        lower: bool,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send;

    /// Replaces the anchor `old` (exactly as read: identity, time, keys) by the earlier use
    /// `new` with `key` (ending at `key_end`). With `accept_old`, the old anchor's identity becomes accepted, taking
    /// that arm from whoever `arm.taken_by` says holds it (its first use fell inside the move
    /// window, before the holder's). The caller publishes whatever alert the old anchor (or the
    /// arm's previous holder) owes *before* this call, so that no retry finds its reason gone.
    #[allow(clippy::too_many_arguments)]
    fn displace(
        &self,
        scope: &str,
        old: &Anchor,
        new: &Trusted,
        key: &str,
        key_end: Millis,
        accept_old: Option<&Arm>,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send;

    /// Arms one accepted new identity for the scope in `arm`'s window (idempotent: a
    /// redelivered move finds its arm, taken or not, and changes nothing), unless the move
    /// opens at or before the scope's arm floor (refused). Returns the scope as it is after.
    fn arm(
        &self,
        scope: &str,
        arm: &Arm,
        expires_at: Millis,
    ) -> impl Future<Output = Result<ScopeState, StoreError>> + Send;

    /// Removes what `prune` names and raises the arm floor and overflow time to its values
    /// (see [`Prune`]); changes nothing when either would be lowered.
    fn prune(&self, scope: &str, prune: &Prune) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `arm` for `identity`, which becomes accepted from `identity.first` when `accept`
    /// (otherwise the arm is only spent on it: an identity alerted on is never accepted).
    /// Applied only while the arm is held by `arm.taken_by` (`None`: free); a previous holder
    /// other than `identity` is no longer accepted.
    fn take_arm(
        &self,
        scope: &str,
        arm: &Arm,
        identity: &Trusted,
        accept: bool,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send;

    /// Records that `identity`, alerted on, used the scope at `at`: keeps the earliest such
    /// time (idempotent, commutative). Only ever makes a move's window unavailable to later
    /// identities, so writing it early or twice can add an alert, never lose one.
    fn note_alerted(
        &self,
        scope: &str,
        identity: &str,
        at: Millis,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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
        key_end: Millis,
        lower: bool,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send {
        (**self).touch(scope, anchor, key, key_end, lower, expires_at)
    }
    fn displace(
        &self,
        scope: &str,
        old: &Anchor,
        new: &Trusted,
        key: &str,
        key_end: Millis,
        accept_old: Option<&Arm>,
        expires_at: Millis,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send {
        (**self).displace(scope, old, new, key, key_end, accept_old, expires_at)
    }
    fn arm(
        &self,
        scope: &str,
        arm: &Arm,
        expires_at: Millis,
    ) -> impl Future<Output = Result<ScopeState, StoreError>> + Send {
        (**self).arm(scope, arm, expires_at)
    }
    fn prune(&self, scope: &str, prune: &Prune) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).prune(scope, prune)
    }
    fn take_arm(
        &self,
        scope: &str,
        arm: &Arm,
        identity: &Trusted,
        accept: bool,
    ) -> impl Future<Output = Result<Update, StoreError>> + Send {
        (**self).take_arm(scope, arm, identity, accept)
    }
    fn note_alerted(
        &self,
        scope: &str,
        identity: &str,
        at: Millis,
        expires_at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).note_alerted(scope, identity, at, expires_at)
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
