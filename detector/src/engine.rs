//! The detection rules: classify a record, then decide with the state it is handed.
//!
//! [`classify`] is pure: it turns one CloudTrail record into at most one *use* of a temporary
//! key (an [`Observation`]) and at most one *signal* (a credential rotation, or an accepted
//! network move), or says why the record is skipped. [`Detector`] drives the decisions
//! against a [`StateStore`] and an [`AlertSink`], with a bounded write-once cache in front of
//! the store so that a warm Lambda does no I/O for identities it already knows.
//!
//! Each rule's doc comment says what it catches and what it could falsely catch.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

use crate::alert::{alert_id, Alert, AlertSink, ExpectedIdentity, Severity, ALERT_SCHEMA};
use crate::error::{Error, StoreError};
use crate::event::{AssumeRoleRequest, AssumeRoleResponse, Envelope, InstanceRequest, Record, CLOUDTRAIL_DETAIL_TYPE};
use crate::identity::{classify as classify_origin, NetworkIdentity, Origin};
use crate::policy::{Policy, MAX_ROLE_SESSION_HOURS};
use crate::state::{
    AlertClaim, Anchor, Arm, Claim, EventRef, Prune, ScopeState, StateStore, Trusted, Update, MAX_ALERTED,
    MAX_STORED_TEXT,
};
use crate::time::{format_rfc3339, parse_expiration, Millis};

/// How far an event's time may be ahead of the processing clock and still count as genuine
/// (clocks of CloudTrail, EventBridge and Lambda hosts disagree by seconds, not minutes).
/// A signal dated later is ignored; a use dated later gets the lifetime of a use dated at the
/// limit. So no event time can keep a move window open or state alive beyond its real life.
pub const MAX_CLOCK_SKEW_MS: Millis = 5 * 60_000;

/// Why a record was not used for detection. Every skip is counted, never silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Not JSON, or not an object where a record was expected.
    Malformed,
    /// An EventBridge event of another detail-type.
    NotCloudTrail,
    /// `eventType` other than `AwsApiCall` (service events, sign-ins, insights).
    NotApiCall,
    /// No `userIdentity.accessKeyId` (anonymous calls; CloudTrail omits it sometimes).
    NoAccessKey,
    /// A long-term (`AKIA…`) or unknown key id: trust on first use is for temporary keys.
    NotTemporaryKey,
    /// An AWS service acting on the principal's behalf (`*.amazonaws.com`, `AWS Internal`).
    AwsService,
    /// A console session, which fans out over AWS-internal addresses.
    Console,
    /// A private address without a VPC endpoint: proves nothing about where the caller is.
    Unattributable,
    /// No `sourceIPAddress`.
    NoSource,
    /// No parseable `eventTime`/`@timestamp`.
    NoTime,
    /// A non-AWS event source carrying a key that could be real: refused, so that anyone
    /// allowed to `PutEvents` cannot seed or poison the state of real credentials.
    UntrustedSource,
}

/// Whether an EventBridge `source` may change the state of real keys and scopes. Only AWS
/// services emit `aws.*` sources: `PutEvents` refuses them from any customer. Records read
/// from CloudTrail files (no envelope, `None`) are the customer's own logs.
pub fn is_trusted_source(source: Option<&str>) -> bool {
    source.is_none_or(|s| s.starts_with("aws."))
}

/// The EventBridge detail-type of CloudTrail management events (re-exported for the bootstrap).
pub const CLOUDTRAIL_DETAIL_TYPE_STR: &str = CLOUDTRAIL_DETAIL_TYPE;

/// What makes a scope: one key, or one EC2 instance's rotating credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Key(String),
    Instance { account: String, instance_id: String },
}

impl Scope {
    /// Storage key of the scope.
    pub fn key(&self) -> String {
        match self {
            Scope::Key(k) => format!("K#{k}"),
            Scope::Instance { account, instance_id } => format!("I#{account}#{instance_id}"),
        }
    }
    fn label(&self) -> &'static str {
        match self {
            Scope::Key(_) => "key",
            Scope::Instance { .. } => "instance",
        }
    }
}

/// One use of a temporary key from a network identity.
#[derive(Clone, Debug)]
pub struct Observation {
    pub access_key_id: String,
    pub identity: NetworkIdentity,
    pub scope: Scope,
    pub event: EventRef,
    pub expires_at: Millis,
    pub account: Option<String>,
    pub principal_arn: Option<String>,
    pub role_arn: Option<String>,
    pub instance_id: Option<String>,
    pub synthetic: bool,
}

/// A state-changing signal carried by a record. Only records from a trusted source
/// ([`is_trusted_source`]) carry one: every signal targets a real instance's scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// EC2 issued `access_key` to the instance (`sts:AssumeRole` by `ec2.amazonaws.com`).
    Rotation { scope: Scope, access_key: String, at: Millis, expires_at: Millis },
    /// A successful network move of the instance at `at`: one new identity becomes acceptable
    /// until `until`.
    Move { scopes: Vec<Scope>, at: Millis, until: Millis, expires_at: Millis },
}

impl Signal {
    /// Event time of the record that carried the signal.
    pub fn at(&self) -> Millis {
        match self {
            Signal::Rotation { at, .. } | Signal::Move { at, .. } => *at,
        }
    }
}

/// The result of classifying one record.
#[derive(Debug)]
pub struct Classified {
    pub usage: Result<Observation, Skip>,
    pub signal: Option<Signal>,
    /// The record would have carried a signal but came from an untrusted source (forged or
    /// synthetic): the signal was dropped.
    pub untrusted_signal: bool,
}

/// Real access key ids are `ASIA`/`AKIA` + 16 characters of base32 (`A–Z`, `2–7`); ctguard's
/// own test keys (`ctguard verify`) put a character outside that alphabet in, so they can never
/// collide with a real key. Alibaba Cloud `STS.` keys are never synthetic.
pub fn is_synthetic_key(key: &str) -> bool {
    key.starts_with("ASIA")
        && (key.len() < 20 || !key.bytes().skip(4).all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
}

/// Temporary credentials: AWS `ASIA…` keys and Alibaba Cloud `STS.…` tokens.
pub fn is_temporary_key(key: &str) -> bool {
    key.starts_with("ASIA") || key.starts_with("STS.")
}

/// `i-` followed by 8 or 17 hex digits, lower-cased; `None` otherwise.
pub fn instance_id(s: &str) -> Option<String> {
    let hex = s.strip_prefix("i-")?;
    ((hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn is_console(r: &Record) -> bool {
    if r.session_credential_from_console.get() == Some("true") {
        return true;
    }
    r.user_agent().is_some_and(|ua| {
        let ua = ua.trim_matches(|c| c == '[' || c == ']').to_ascii_lowercase();
        ua == "signin.amazonaws.com"
            || ua.ends_with("console.amazonaws.com")
            || (ua.starts_with("console.") && ua.ends_with(".amazonaws.com"))
    })
}

/// A text as stored in state: at most [`MAX_STORED_TEXT`] bytes (cut at a character boundary)
/// with control characters replaced, so that no caller-chosen text (a user agent) can grow a
/// scope's item: its JSON form is at most twice as long.
pub fn stored_text(t: &str) -> String {
    // The common case, a short printable ASCII text, is copied as it is.
    if t.len() <= MAX_STORED_TEXT && t.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return t.to_string();
    }
    t.char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= MAX_STORED_TEXT)
        .map(|(_, c)| if c.is_control() { '?' } else { c })
        .collect()
}

fn event_ref(r: &Record, time_ms: Millis, key: Option<&str>) -> EventRef {
    let s = |t: &crate::event::Text| t.get().map(stored_text);
    EventRef {
        event_id: s(&r.event_id),
        event_name: s(&r.event_name),
        event_source: s(&r.event_source),
        event_time: format_rfc3339(time_ms),
        time_ms,
        region: s(&r.aws_region),
        source_ip: s(&r.source_ip_address),
        vpc_endpoint_id: s(&r.vpc_endpoint_id),
        user_agent: s(&r.user_agent),
        access_key_id: key.map(str::to_string),
        principal_arn: r.user_identity.as_ref().and_then(|u| u.arn.get()).map(stored_text),
    }
}

/// Classifies one record. `source` is the EventBridge `source` when the record came in an
/// envelope (`None` for records read from CloudTrail files). A record from an untrusted
/// source never carries a signal: a forged `AssociateAddress` must not arm a real instance.
pub fn classify(r: &Record, source: Option<&str>, policy: &Policy) -> Classified {
    let c = classify_borrowed(r, source, policy);
    Classified {
        usage: c.usage.map(|u| u.observation(r, policy)),
        signal: c.signal,
        untrusted_signal: c.untrusted_signal,
    }
}

/// [`classify`] with the use left borrowed from the record, so that a caller that sees the
/// same use many times (`ctguard scan` folding repeats) copies nothing out of the record until
/// it knows the use matters.
pub fn classify_borrowed<'r>(r: &'r Record, source: Option<&str>, policy: &Policy) -> ClassifiedUse<'r> {
    let (head, signal, untrusted_signal) = classify_head(r, source, policy);
    ClassifiedUse { usage: head.map(Use), signal, untrusted_signal }
}

/// The result of [`classify_borrowed`].
pub struct ClassifiedUse<'r> {
    pub usage: Result<Use<'r>, Skip>,
    pub signal: Option<Signal>,
    pub untrusted_signal: bool,
}

/// One use of a temporary key, borrowed from its record; [`Use::observation`] copies it out.
pub struct Use<'r>(UseHead<'r>);

impl Use<'_> {
    /// Event time of the use.
    pub fn time(&self) -> Millis {
        self.0.time
    }

    /// The network identity the key was used from.
    pub fn identity(&self) -> &NetworkIdentity {
        &self.0.identity
    }

    /// Appends what identifies this use's (scope, key, identity) to `out`: equal for two uses
    /// exactly when their observations have equal scope, key and identity.
    pub fn write_id(&self, out: &mut String) {
        self.0.write_id(out);
    }

    /// The owned observation of this use (`r` is the record it was classified from).
    pub fn observation(self, r: &Record, policy: &Policy) -> Observation {
        self.0.observation(r, policy)
    }
}

/// [`classify`] up to the borrowed head of the use, so that the detector can look the use up
/// in its cache before copying anything out of the record.
fn classify_head<'r>(
    r: &'r Record,
    source: Option<&str>,
    policy: &Policy,
) -> (Result<UseHead<'r>, Skip>, Option<Signal>, bool) {
    let time = r.time();
    let signal = time.and_then(|t| signal_of(r, t, policy));
    let head = use_head(r, time, source);
    if is_trusted_source(source) {
        (head, signal, false)
    } else {
        (head, None, signal.is_some())
    }
}

/// The longest credential life a rotation can claim (an `expiration` beyond it is not EC2's).
const MAX_ROLE_SESSION_MS: Millis = MAX_ROLE_SESSION_HOURS as Millis * 3_600_000;

/// The rotation and move rules.
///
/// Rotation catches: a thief who lifts a freshly rotated instance key and uses it before the
/// instance does (plain per-key TOFU would trust the thief). It binds the key to its instance so
/// the instance's trusted identities apply. Falsely catches: nothing by itself.
///
/// Move accepts: the first new identity after a successful `AssociateAddress`,
/// `AttachNetworkInterface` or `StartInstances` of the instance. Could hide: a thief whose
/// first use falls inside that window (minutes), before the instance's own first new call.
fn signal_of(r: &Record, t: Millis, policy: &Policy) -> Option<Signal> {
    if r.error_code.get().is_some() {
        return None;
    }
    let name = r.event_name.get()?;
    let account = r.account().unwrap_or("unknown").to_string();
    match (r.event_source.get()?, name) {
        ("sts.amazonaws.com", "AssumeRole") => {
            let by_ec2 = r.source_ip_address.get() == Some("ec2.amazonaws.com")
                || r.user_identity.as_ref().and_then(|u| u.invoked_by.get()) == Some("ec2.amazonaws.com");
            if !by_ec2 {
                return None;
            }
            let req: AssumeRoleRequest = r.request()?;
            let instance = instance_id(req.role_session_name.get()?)?;
            let resp: AssumeRoleResponse = r.response()?;
            let creds = resp.credentials?;
            let key = creds.access_key_id.get()?.to_string();
            let expires_at = creds
                .expiration
                .get()
                .and_then(parse_expiration)
                .unwrap_or(t + policy.default_ttl_ms)
                .clamp(t, t + MAX_ROLE_SESSION_MS);
            let account = req
                .role_arn
                .get()
                .and_then(|a| a.split(':').nth(4))
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .unwrap_or(account);
            Some(Signal::Rotation {
                scope: Scope::Instance { account, instance_id: instance },
                access_key: key,
                at: t,
                expires_at: expires_at + policy.default_ttl_ms,
            })
        }
        ("ec2.amazonaws.com", "AssociateAddress" | "AttachNetworkInterface" | "StartInstances") => {
            let req: InstanceRequest = r.request()?;
            let mut ids: Vec<String> = req.instance_id.get().and_then(instance_id).into_iter().collect();
            if let Some(set) = req.instances_set {
                ids.extend(set.items.iter().filter_map(|i| i.instance_id.as_deref().and_then(instance_id)));
            }
            if ids.is_empty() {
                return None;
            }
            let scopes =
                ids.into_iter().map(|i| Scope::Instance { account: account.clone(), instance_id: i }).collect();
            Some(Signal::Move { scopes, at: t, until: t + policy.arm_window_ms, expires_at: t + policy.default_ttl_ms })
        }
        _ => None,
    }
}

/// The borrowed head of a use: what the trust cache is keyed on.
struct UseHead<'r> {
    key: &'r str,
    identity: NetworkIdentity,
    time: Millis,
    synthetic: bool,
    account: Option<&'r str>,
    instance: Option<String>,
}

/// The use rule: which records are uses of a temporary key, from which identity, in which scope.
fn use_head<'r>(r: &'r Record, time: Option<Millis>, source: Option<&str>) -> Result<UseHead<'r>, Skip> {
    if r.event_type.get().is_some_and(|t| t != "AwsApiCall") {
        return Err(Skip::NotApiCall);
    }
    let key = r.access_key_id().ok_or(Skip::NoAccessKey)?;
    // AWS access key ids are at most 128 characters: a longer one is forged, and would only
    // grow state.
    if !is_temporary_key(key) || key.len() > 128 {
        return Err(Skip::NotTemporaryKey);
    }
    let synthetic = is_synthetic_key(key);
    if !is_trusted_source(source) && !synthetic {
        return Err(Skip::UntrustedSource);
    }
    if is_console(r) {
        return Err(Skip::Console);
    }
    let identity =
        match classify_origin(r.source_ip_address.get(), r.vpc_endpoint_id.get(), r.vpc_endpoint_account_id.get()) {
            Origin::Identity(i) => i,
            Origin::AwsService => return Err(Skip::AwsService),
            Origin::Unattributable => return Err(Skip::Unattributable),
            Origin::Missing => return Err(Skip::NoSource),
        };
    let time = time.ok_or(Skip::NoTime)?;
    Ok(UseHead {
        key,
        identity,
        time,
        synthetic,
        account: r.account(),
        instance: r.session_name().and_then(instance_id),
    })
}

impl UseHead<'_> {
    /// A synthetic key only ever touches its own scope: a synthetic event naming a real
    /// instance's session must not anchor that instance's trust.
    fn scope(&self) -> Scope {
        match (&self.instance, self.account, self.synthetic) {
            (Some(i), Some(a), false) => Scope::Instance { account: a.to_string(), instance_id: i.clone() },
            _ => Scope::Key(self.key.to_string()),
        }
    }

    /// The detector's cache key of "this key, from this identity, in this scope".
    fn trust_fact(&self) -> String {
        let mut f = String::with_capacity(96);
        f.push_str("T|");
        self.write_id(&mut f);
        f
    }

    /// `<scope key>|<key>|<identity>`, as [`Scope::key`] spells the scope.
    fn write_id(&self, f: &mut String) {
        use std::fmt::Write;
        let _ = match (&self.instance, self.account, self.synthetic) {
            (Some(i), Some(a), false) => write!(f, "I#{a}#{i}|{}|{}", self.key, self.identity),
            _ => write!(f, "K#{}|{}|{}", self.key, self.key, self.identity),
        };
    }

    fn observation(self, r: &Record, policy: &Policy) -> Observation {
        let time = self.time;
        // The credential's own life when known (creation + the longest a role session lasts),
        // else the configured default from this event; never beyond the default from this event.
        // A session already older than that lifetime is a longer kind (36 h `GetSessionToken`,
        // or a lifetime set below 12 h): its end is unknown, and state written for it must not
        // be born expired (its TTL would delete the anchor while the key still works).
        let ttl = policy.default_ttl_ms;
        let expires_at =
            r.session_created().map(|c| c + ttl).filter(|end| *end > time).unwrap_or(time + ttl).min(time + ttl);
        Observation {
            access_key_id: self.key.to_string(),
            scope: self.scope(),
            event: event_ref(r, time, Some(self.key)),
            expires_at,
            account: self.account.map(str::to_string),
            principal_arn: r.user_identity.as_ref().and_then(|u| u.arn.get()).map(str::to_string),
            role_arn: r.role_arn().map(Cow::into_owned),
            instance_id: self.instance,
            synthetic: self.synthetic,
            identity: self.identity,
        }
    }
}

/// Counters of everything the detector did; returned by every invocation and by `scan`.
///
/// Every use ends in exactly one of `first_uses`, `trusted_cached`, `trusted_stored`,
/// `allowlisted`, `accepted_moves`, `accepted_own_vpce`, `displacements`, `duplicate_alerts`,
/// or an alert of its own (`alerts - out_of_order_alerts`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub events: u64,
    pub uses: u64,
    pub first_uses: u64,
    pub trusted_cached: u64,
    pub trusted_stored: u64,
    pub allowlisted: u64,
    pub accepted_moves: u64,
    pub accepted_own_vpce: u64,
    /// Alerts published (every copy this detector handed to the sink).
    pub alerts: u64,
    /// Uses whose alert was already sent.
    pub duplicate_alerts: u64,
    /// Uses earlier than the scope's anchor, delivered late: they became the anchor.
    pub displacements: u64,
    /// Of `alerts`, those naming an anchor displaced by an earlier use (out-of-order delivery).
    pub out_of_order_alerts: u64,
    pub rotations: u64,
    pub moves_armed: u64,
    /// Moves refused because their window opens at or before the scope's arm floor.
    pub moves_refused: u64,
    /// Writes that pruned a scope's state (what could no longer matter, or over a bound).
    pub prunes: u64,
    /// Signals dropped because their record came from an untrusted (non-`aws.*`) source.
    pub untrusted_signals: u64,
    /// Signals dropped because their event time was beyond the processing clock's skew allowance.
    pub future_signals: u64,
    pub skipped: BTreeMap<Skip, u64>,
}

impl Stats {
    fn skip(&mut self, s: Skip) {
        *self.skipped.entry(s).or_default() += 1;
    }
    /// Adds another set of counters into this one.
    pub fn merge(&mut self, o: &Stats) {
        self.events += o.events;
        self.uses += o.uses;
        self.first_uses += o.first_uses;
        self.trusted_cached += o.trusted_cached;
        self.trusted_stored += o.trusted_stored;
        self.allowlisted += o.allowlisted;
        self.accepted_moves += o.accepted_moves;
        self.accepted_own_vpce += o.accepted_own_vpce;
        self.alerts += o.alerts;
        self.duplicate_alerts += o.duplicate_alerts;
        self.displacements += o.displacements;
        self.out_of_order_alerts += o.out_of_order_alerts;
        self.rotations += o.rotations;
        self.moves_armed += o.moves_armed;
        self.moves_refused += o.moves_refused;
        self.prunes += o.prunes;
        self.untrusted_signals += o.untrusted_signals;
        self.future_signals += o.future_signals;
        for (k, v) in &o.skipped {
            *self.skipped.entry(*k).or_default() += v;
        }
    }
    /// Total skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// A bounded two-generation cache of facts "nothing to do for this use from time T on":
/// (scope, key, identity) trusted since T, and (key, identity) alerted since T. A fact only
/// covers uses at or after its time, because an earlier use delivered late may still change the
/// scope (displace its anchor, or lower the anchor's time). Eviction drops the older half
/// wholesale, which is O(1) amortised and keeps recently used entries.
struct FactCache {
    cap: usize,
    young: HashMap<String, Millis>,
    old: HashMap<String, Millis>,
}

impl FactCache {
    fn new(cap: usize) -> Self {
        FactCache { cap: cap.max(2), young: HashMap::new(), old: HashMap::new() }
    }
    fn covers(&mut self, k: &str, t: Millis) -> bool {
        if let Some(since) = self.young.get(k) {
            return *since <= t;
        }
        if let Some(since) = self.old.remove(k) {
            self.insert(k.to_string(), since);
            return since <= t;
        }
        false
    }
    fn insert(&mut self, k: String, since: Millis) {
        if let Some(s) = self.young.get_mut(&k) {
            *s = (*s).min(since);
            return;
        }
        if self.young.len() >= self.cap / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, since);
    }
}

/// What happened to one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Trusted,
    FirstUse,
    Allowlisted,
    AcceptedMove,
    AcceptedOwnVpce,
    Alerted(Box<Alert>),
    /// The use came before the scope's anchor (delivered out of order) and became the anchor;
    /// the alerts this call published on the old anchor, one per key it used (none when they
    /// were already sent, or when the old anchor's first use fell inside a move window).
    Displaced(Vec<Alert>),
    DuplicateAlert,
}

/// The detector: rules + cache in front of a store and a sink.
pub struct Detector<S, A> {
    store: S,
    sink: A,
    policy: Policy,
    version: String,
    cache: Mutex<FactCache>,
    stats: Mutex<Stats>,
    clock: Clock,
}

/// Wall clock in Unix milliseconds; replaceable in tests.
pub type Clock = Box<dyn Fn() -> Millis + Send + Sync>;

/// Default cache size: ~100k facts is a few MB and covers a large account's live keys.
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;

/// How often one decision re-reads a scope that changed under it before giving up (the event is
/// then retried): each round means another environment changed the scope in between.
const MAX_ROUNDS: usize = 8;

/// Attempts at recording a published alert as sent. Failing all of them is the one way, besides
/// a lost SNS acknowledgement, that a retry publishes a second copy.
const CONFIRM_ATTEMPTS: usize = 3;

/// One decision's fixed inputs.
struct Ctx<'a> {
    obs: &'a Observation,
    scope: &'a str,
    ident: &'a str,
    me: Trusted,
    /// The event this decision runs for: it holds the alert claims it makes.
    holder: String,
    now: Millis,
    expires_at: Millis,
}

enum Step {
    Done(Decision),
    Again(Box<ScopeState>),
}

impl<S: StateStore, A: AlertSink> Detector<S, A> {
    pub fn new(store: S, sink: A, policy: Policy, version: impl Into<String>) -> Self {
        Detector {
            store,
            sink,
            policy,
            version: version.into(),
            cache: Mutex::new(FactCache::new(DEFAULT_CACHE_ENTRIES)),
            stats: Mutex::new(Stats::default()),
            clock: Box::new(crate::time::now_ms),
        }
    }

    /// Replaces the processing clock (alert-claim leases, and the limit on future event times).
    pub fn with_clock(self, clock: Clock) -> Self {
        Detector { clock, ..self }
    }

    /// Replaces the cache with one of `entries` capacity (0 disables nothing: minimum 2).
    pub fn with_cache_entries(self, entries: usize) -> Self {
        Detector { cache: Mutex::new(FactCache::new(entries)), ..self }
    }

    pub fn store(&self) -> &S {
        &self.store
    }
    pub fn sink(&self) -> &A {
        &self.sink
    }
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A snapshot of the counters so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn cached(&self, k: &str, t: Millis) -> bool {
        self.cache.lock().map(|mut c| c.covers(k, t)).unwrap_or(false)
    }

    fn remember(&self, k: String, since: Millis) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(k, since);
        }
    }

    /// Counts a record skipped before it reached the rules (e.g. an envelope of another type).
    pub fn note_skip(&self, skip: Skip) {
        self.count(|s| {
            s.events += 1;
            s.skip(skip)
        });
    }

    /// Processes one EventBridge event (JSON text). Malformed input is counted, not an error;
    /// only a store or sink failure is, so that the event is retried rather than lost.
    pub async fn process_envelope(&self, json: &str) -> Result<Vec<Decision>, Error> {
        let env: Envelope = match serde_json::from_str(json) {
            Ok(e) => e,
            Err(_) => {
                self.count(|s| {
                    s.events += 1;
                    s.skip(Skip::Malformed)
                });
                return Ok(Vec::new());
            }
        };
        if env.detail_type.get() != Some(CLOUDTRAIL_DETAIL_TYPE) || env.detail.is_none() {
            self.count(|s| {
                s.events += 1;
                s.skip(Skip::NotCloudTrail)
            });
            return Ok(Vec::new());
        }
        let detail = env.detail.map(|d| d.get()).unwrap_or("null");
        self.process_json(detail, Some(env.source.get().unwrap_or(""))).await
    }

    /// Processes one bare CloudTrail record (JSON text).
    pub async fn process_json(&self, json: &str, source: Option<&str>) -> Result<Vec<Decision>, Error> {
        // serde would happily read a struct from a JSON array; a record is an object.
        let parsed = if json.trim_start().starts_with('{') { Record::parse(json).ok() } else { None };
        match parsed {
            Some(r) => self.process_record(&r, source).await,
            None => {
                self.count(|s| {
                    s.events += 1;
                    s.skip(Skip::Malformed)
                });
                Ok(Vec::new())
            }
        }
    }

    /// Processes one parsed record.
    pub async fn process_record(&self, r: &Record<'_>, source: Option<&str>) -> Result<Vec<Decision>, Error> {
        let (head, signal, untrusted_signal) = classify_head(r, source, &self.policy);
        self.count(|s| {
            s.events += 1;
            s.untrusted_signals += u64::from(untrusted_signal);
        });
        if let Some(sig) = &signal {
            self.apply_signal(sig).await?;
        }
        match head {
            Ok(head) => {
                // The warm path: a use already known to need nothing is answered before
                // anything is copied out of the record (the same check `decide` starts with).
                if self.cached(&head.trust_fact(), head.time) {
                    self.count(|s| {
                        s.uses += 1;
                        s.trusted_cached += 1;
                    });
                    return Ok(vec![Decision::Trusted]);
                }
                Ok(vec![self.decide(&head.observation(r, &self.policy)).await?])
            }
            Err(skip) => {
                self.count(|s| s.skip(skip));
                Ok(Vec::new())
            }
        }
    }

    /// Applies a rotation or accepted-move signal to the store (as [`Detector::process_record`]
    /// does for a record carrying one); `ctguard scan` uses it for pre-classified signals.
    /// A signal dated beyond the processing clock's skew allowance cannot be genuine and is
    /// ignored: it must not hold a move window open or keep a scope alive.
    pub async fn apply_signal(&self, sig: &Signal) -> Result<(), Error> {
        if sig.at() > (self.clock)() + MAX_CLOCK_SKEW_MS {
            self.count(|s| s.future_signals += 1);
            return Ok(());
        }
        match sig {
            Signal::Rotation { scope, access_key, expires_at, .. } => {
                self.store.bind(&scope.key(), access_key, *expires_at).await?;
                self.count(|s| s.rotations += 1);
            }
            Signal::Move { scopes, at, until, expires_at } => {
                let arm = Arm { from: *at, until: *until, taken_by: None };
                for sc in scopes {
                    let scope = sc.key();
                    let state = self.store.arm(&scope, &arm, *expires_at).await?;
                    if state.arms.iter().any(|a| a.from == arm.from) {
                        self.count(|s| s.moves_armed += 1);
                    } else {
                        // At or below the arm floor: its arm was pruned (a redelivery beyond the
                        // horizon) or dropped over the cap. Refusing it can only add alerts.
                        self.count(|s| s.moves_refused += 1);
                    }
                    self.tidy(&scope, &state, *at).await?;
                }
            }
        }
        Ok(())
    }

    /// How long state written for `obs` lives: the credential's life, computed from an event
    /// time no later than the processing clock allows.
    fn lifetime(&self, obs: &Observation, now: Millis) -> Millis {
        let t = obs.event.time_ms.min(now + MAX_CLOCK_SKEW_MS);
        obs.expires_at.min(t + self.policy.default_ttl_ms)
    }

    /// Own-account VPC endpoint rule: calls through an endpoint of the principal's own account
    /// are accepted (a gateway endpoint for S3 beside a NAT gateway for everything else is one
    /// of the most common VPC layouts). Could hide: a thief inside one of the account's own
    /// VPCs, who could use the key from there anyway.
    fn own_vpce(&self, obs: &Observation) -> bool {
        match &obs.identity {
            NetworkIdentity::VpcEndpoint { owner: Some(owner), .. } => {
                self.policy.trust_own_account_vpce && obs.account.as_deref() == Some(owner.as_str())
            }
            _ => false,
        }
    }

    /// Decides one observation: trusted, accepted, or an alert (published once).
    ///
    /// Trust on first use in *event time*: the scope's anchor is its earliest use that no rule
    /// accepted. A use from another identity alerts; a use from another identity that happened
    /// *before* the anchor (delivered late) becomes the anchor and the old anchor is alerted on.
    /// Uses accepted by a rule (allowlist, own VPC endpoint) are never stored, and identities
    /// accepted by an armed move never anchor, so neither can decide what is "first".
    ///
    /// Every alert is published and confirmed *before* the state change that makes a retry
    /// skip it; until then the event is not acknowledged (an error makes Lambda retry it).
    pub async fn decide(&self, obs: &Observation) -> Result<Decision, Error> {
        self.count(|s| s.uses += 1);
        let t = obs.event.time_ms;
        let scope_key = obs.scope.key();
        let ident = obs.identity.key();
        let key = obs.access_key_id.as_str();
        let trust_fact = format!("T|{scope_key}|{key}|{ident}");
        if self.cached(&trust_fact, t) {
            self.count(|s| s.trusted_cached += 1);
            return Ok(Decision::Trusted);
        }
        // Allowlisted networks are trusted for this call but never stored, so never the anchor
        // of a scope: a first use from the corporate VPN must not make everything else suspicious.
        if self.policy.allows(&obs.identity, obs.role_arn.as_deref()) {
            self.count(|s| s.allowlisted += 1);
            return Ok(Decision::Allowlisted);
        }
        if self.own_vpce(obs) {
            self.count(|s| s.accepted_own_vpce += 1);
            return Ok(Decision::AcceptedOwnVpce);
        }
        let alert_fact = format!("A|{key}|{ident}");
        if self.cached(&alert_fact, t) {
            self.count(|s| s.duplicate_alerts += 1);
            return Ok(Decision::DuplicateAlert);
        }
        let now = (self.clock)();
        let c = Ctx {
            obs,
            scope: &scope_key,
            ident: &ident,
            me: Trusted { identity: ident.clone(), first: obs.event.clone() },
            holder: obs.event.event_id.clone().unwrap_or_else(|| format!("{key}|{ident}|{t}")),
            now,
            expires_at: self.lifetime(obs, now),
        };
        let mut state = match self.store.claim(&scope_key, &c.me, key, c.expires_at).await? {
            Claim::Won => {
                self.remember(trust_fact, t);
                self.count(|s| s.first_uses += 1);
                return Ok(Decision::FirstUse);
            }
            Claim::Existing(state) => state,
        };
        let mut published = Vec::new();
        for _ in 0..MAX_ROUNDS {
            match self.step(&c, &state, &mut published).await? {
                Step::Done(d) => {
                    self.tidy(&scope_key, &state, t.min(now + MAX_CLOCK_SKEW_MS)).await?;
                    return Ok(d);
                }
                Step::Again(s) => state = s,
            }
        }
        Err(StoreError::Transient(format!("scope {scope_key} changed {MAX_ROUNDS} times during one decision")).into())
    }

    /// One decision against one snapshot of the scope; `Again` when the scope changed first.
    async fn step(&self, c: &Ctx<'_>, state: &ScopeState, published: &mut Vec<Alert>) -> Result<Step, Error> {
        let obs = c.obs;
        let t = obs.event.time_ms;
        let key = obs.access_key_id.as_str();
        let trust_fact = || format!("T|{}|{key}|{}", c.scope, c.ident);
        let Some(anchor) = &state.anchor else {
            // The scope lost its anchor between two calls (it expired): claim it again.
            return Ok(match self.store.claim(c.scope, &c.me, key, c.expires_at).await? {
                Claim::Won => {
                    self.remember(trust_fact(), t);
                    self.count(|s| s.first_uses += 1);
                    Step::Done(Decision::FirstUse)
                }
                Claim::Existing(s) => Step::Again(s),
            });
        };
        if anchor.identity == c.ident {
            // The anchor's identity: record this key with it (an out-of-order alert on the
            // anchor must name every key it used) and an earlier time, if this use is earlier.
            let lower = t < anchor.first.time_ms;
            if lower || !anchor.keys.iter().any(|k| k == key) {
                let expires = c.expires_at.max(state.expires_at);
                if let Update::Changed(s) = self.store.touch(c.scope, &c.me, key, c.expires_at, lower, expires).await? {
                    return Ok(Step::Again(s));
                }
            }
            self.remember(trust_fact(), t.min(anchor.first.time_ms));
            self.count(|s| s.trusted_stored += 1);
            return Ok(Step::Done(Decision::Trusted));
        }
        if let Some(a) = state.accepted.iter().find(|a| a.identity == c.ident && a.first.time_ms <= t) {
            self.remember(trust_fact(), a.first.time_ms);
            self.count(|s| s.trusted_stored += 1);
            return Ok(Step::Done(Decision::Trusted));
        }
        if anchor.is_later_than(t, c.ident) {
            return self.displace(c, state, anchor, published).await;
        }
        if let Some((arm, holder)) = state.arm_for(t, c.ident) {
            // A move accepts the first *new* identity: one already alerted on (or being alerted
            // on) is a known suspect and is not laundered by a move. The claim doubles as that
            // check, and is released once the arm is taken.
            match self.store.claim_alert(key, c.ident, &c.holder, c.now, c.expires_at).await? {
                AlertClaim::Sent => {
                    // Alerted before the move was known, yet the earliest new identity in the
                    // window so far: the window is spent on it. Its record keeps later
                    // identities out; a later holder loses its acceptance (alerted first).
                    self.note_alerted(c, state, c.ident, t).await?;
                    if holder.is_some() {
                        self.unseat(c, state, holder, published).await?;
                        if let Update::Changed(s) = self.store.take_arm(c.scope, arm, &c.me, false).await? {
                            return Ok(Step::Again(s));
                        }
                    }
                    return Ok(Step::Done(self.duplicate(key, c.ident, t)));
                }
                AlertClaim::Held => return Err(Error::AlertInFlight(alert_id(key, c.ident))),
                AlertClaim::Claimed => {}
            }
            self.unseat(c, state, holder, published).await?;
            return Ok(match self.store.take_arm(c.scope, arm, &c.me, true).await? {
                Update::Applied => {
                    // The probe's claim is not an alert in flight: let it go, so that an
                    // earlier use taking this arm over can alert on this identity at once.
                    self.store.release_alert(key, c.ident, &c.holder).await?;
                    self.remember(trust_fact(), t);
                    self.count(|s| s.accepted_moves += 1);
                    Step::Done(Decision::AcceptedMove)
                }
                Update::Changed(s) => Step::Again(s),
            });
        }
        // A new identity, later than the anchor: the alert; then the scope records the
        // identity as alerted on (a move known later must not go to a later identity).
        let expected = state.trusted();
        let build = || self.build_alert(obs, key, &expected, c.ident, obs.event.clone(), false);
        let sent = self.ensure_alert(c, key, c.ident, build).await?;
        self.note_alerted(c, state, c.ident, t).await?;
        Ok(Step::Done(match sent {
            Some(alert) => {
                self.remember(format!("A|{key}|{}", c.ident), t);
                Decision::Alerted(Box::new(alert))
            }
            None => self.duplicate(key, c.ident, t),
        }))
    }

    /// Records in an instance's scope that `ident`, alerted on, used it at `at` (unless the
    /// snapshot already has it at or before `at`). Key scopes have no moves, so no record.
    /// Written after the alert is confirmed and before any change that could make a retry
    /// skip this decision, so a failure here is retried with the alert already sent. Beyond
    /// [`MAX_ALERTED`] records, the use only raises the scope's overflow time (every window
    /// opening at or before it is spent).
    async fn note_alerted(&self, c: &Ctx<'_>, state: &ScopeState, ident: &str, at: Millis) -> Result<(), Error> {
        if !matches!(c.obs.scope, Scope::Instance { .. })
            || state.alerted_since(ident, at)
            || at <= state.alerted_overflow
        {
            return Ok(());
        }
        let known = state.alerted.iter().any(|x| x.identity == ident);
        if !known && state.alerted.len() >= MAX_ALERTED {
            return Ok(self.store.prune(c.scope, &Prune { alerted_overflow: at, ..Prune::default() }).await?);
        }
        let expires = c.expires_at.max(state.expires_at);
        Ok(self.store.note_alerted(c.scope, ident, at, expires).await?)
    }

    /// Prunes what `state` (a snapshot of `scope` read while deciding an event at `at`) holds
    /// that can no longer matter or is over a bound; see [`ScopeState::prune_plan`].
    async fn tidy(&self, scope: &str, state: &ScopeState, at: Millis) -> Result<(), Error> {
        if let Some(p) = state.prune_plan(at, self.policy.arm_window_ms) {
            self.store.prune(scope, &p).await?;
            self.count(|s| s.prunes += 1);
        }
        Ok(())
    }

    fn duplicate(&self, key: &str, ident: &str, t: Millis) -> Decision {
        self.remember(format!("A|{key}|{ident}"), t);
        self.count(|s| s.duplicate_alerts += 1);
        Decision::DuplicateAlert
    }

    /// The out-of-order rule: this use happened before the scope's anchor, so the anchor is
    /// the intruder (TOFU in event time). Alerts on the old anchor, once per key it used,
    /// *then* makes this use the anchor; a failure in between leaves the old anchor in place,
    /// so the retry owes, and sends, the same alerts. If the old anchor's first use fell inside
    /// a move window, it was the instance's accepted move, not an intruder: no alert.
    async fn displace(
        &self,
        c: &Ctx<'_>,
        state: &ScopeState,
        anchor: &Anchor,
        published: &mut Vec<Alert>,
    ) -> Result<Step, Error> {
        let arm = state.arm_for(anchor.first.time_ms, &anchor.identity);
        if let Some((_, holder)) = arm {
            self.unseat(c, state, holder, published).await?;
        } else {
            let expected = [c.me.clone()];
            for k in &anchor.keys {
                let build = || self.build_alert(c.obs, k, &expected, &anchor.identity, anchor.first.clone(), true);
                if let Some(alert) = self.ensure_alert(c, k, &anchor.identity, build).await? {
                    self.count(|s| s.out_of_order_alerts += 1);
                    published.push(alert);
                }
                self.remember(format!("A|{k}|{}", anchor.identity), anchor.first.time_ms);
            }
            self.note_alerted(c, state, &anchor.identity, anchor.first.time_ms).await?;
        }
        let expires = c.expires_at.max(state.expires_at);
        let accept_old = arm.map(|(a, _)| a);
        match self
            .store
            .displace(c.scope, anchor, &c.me, &c.obs.access_key_id, c.expires_at, accept_old, expires)
            .await?
        {
            Update::Applied => {
                self.remember(format!("T|{}|{}|{}", c.scope, c.obs.access_key_id, c.ident), c.obs.event.time_ms);
                self.count(|s| s.displacements += 1);
                Ok(Step::Done(Decision::Displaced(std::mem::take(published))))
            }
            Update::Changed(s) => Ok(Step::Again(s)),
        }
    }

    /// Before an earlier use takes a move's arm from the use that `holder` accepted, the holder
    /// is alerted on: it was not the move's first new identity after all. Unless the holder is
    /// the scope's anchor (its earlier use, delivered late, displaced the old anchor): the
    /// anchor is trusted without the arm, and in event-time order it never needed it.
    async fn unseat(
        &self,
        c: &Ctx<'_>,
        state: &ScopeState,
        holder: Option<&Trusted>,
        published: &mut Vec<Alert>,
    ) -> Result<(), Error> {
        let is_anchor = |h: &Trusted| state.anchor.as_ref().is_some_and(|a| a.identity == h.identity);
        let Some(h) = holder.filter(|h| h.identity != c.ident && !is_anchor(h)) else { return Ok(()) };
        let key = h.first.access_key_id.as_deref().unwrap_or(&c.obs.access_key_id);
        let expected: Vec<Trusted> = state.trusted().into_iter().filter(|t| t.identity != h.identity).collect();
        let build = || self.build_alert(c.obs, key, &expected, &h.identity, h.first.clone(), true);
        if let Some(alert) = self.ensure_alert(c, key, &h.identity, build).await? {
            self.count(|s| s.out_of_order_alerts += 1);
            published.push(alert);
        }
        self.note_alerted(c, state, &h.identity, h.first.time_ms).await
    }

    /// Makes sure the alert for (`key`, `seen`) is sent: claims it for this event, publishes,
    /// confirms. `Ok(None)` when it was already sent. A claim held by another event's live
    /// invocation is an error (retry later), never an acknowledgement: an event is acknowledged
    /// only once every alert it owes is confirmed sent.
    async fn ensure_alert(
        &self,
        c: &Ctx<'_>,
        key: &str,
        seen: &str,
        build: impl FnOnce() -> Alert,
    ) -> Result<Option<Alert>, Error> {
        match self.store.claim_alert(key, seen, &c.holder, c.now, c.expires_at).await? {
            AlertClaim::Sent => Ok(None),
            AlertClaim::Held => Err(Error::AlertInFlight(alert_id(key, seen))),
            AlertClaim::Claimed => {
                let alert = build();
                self.sink.publish(&alert).await?;
                self.count(|s| s.alerts += 1);
                // Confirming is idempotent, and a confirmation lost after SNS accepted the
                // alert is what would make the retry publish a second copy: try harder.
                let mut result = Ok(());
                for _ in 0..CONFIRM_ATTEMPTS {
                    result = self.store.confirm_alert(key, seen).await;
                    if result.is_ok() {
                        break;
                    }
                }
                result?;
                Ok(Some(alert))
            }
        }
    }

    fn build_alert(
        &self,
        obs: &Observation,
        key: &str,
        expected: &[Trusted],
        seen: &str,
        offending: EventRef,
        out_of_order: bool,
    ) -> Alert {
        let mut regions: Vec<String> = expected.iter().filter_map(|t| t.first.region.clone()).collect();
        regions.extend(offending.region.clone());
        regions.dedup();
        let seen_id = NetworkIdentity::from_key(seen);
        let severity = match seen_id {
            Some(NetworkIdentity::V4(_) | NetworkIdentity::V6Net(_)) => Severity::High,
            Some(NetworkIdentity::VpcEndpoint { .. }) => Severity::High,
            _ => Severity::Medium,
        };
        let who = obs
            .role_arn
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .or(obs.principal_arn.as_deref())
            .unwrap_or("unknown principal");
        let shown = |k: &str| k.split_once(':').map(|(_, v)| v.to_string()).unwrap_or_else(|| k.to_string());
        let exp: Vec<String> = expected.iter().map(|t| shown(&t.identity)).collect();
        let title = format!(
            "{key} of {who} used from {} (trusted: {}) in {}",
            shown(seen),
            exp.join(", "),
            obs.account.as_deref().unwrap_or("unknown account"),
        );
        let reason = if out_of_order {
            "a use of the scope's credentials from the trusted identity happened earlier but was delivered later: \
             this identity was not the first to use them"
                .to_string()
        } else if matches!(obs.scope, Scope::Instance { .. }) {
            "an EC2 instance credential was used from a network identity the instance has never used".to_string()
        } else {
            "a temporary credential was used from a network identity other than the one that first used it".to_string()
        };
        Alert {
            schema: ALERT_SCHEMA.to_string(),
            id: alert_id(key, seen),
            kind: "credential-reuse".to_string(),
            severity,
            synthetic: obs.synthetic,
            title,
            account: obs.account.clone(),
            regions,
            access_key_id: key.to_string(),
            principal_arn: obs.principal_arn.clone(),
            role_arn: obs.role_arn.clone(),
            instance_id: obs.instance_id.clone(),
            scope: obs.scope.label().to_string(),
            expected: expected
                .iter()
                .map(|t| ExpectedIdentity { identity: t.identity.clone(), first_seen: t.first.clone() })
                .collect(),
            seen_identity: seen.to_string(),
            offending,
            out_of_order,
            reason,
            detector_version: self.version.clone(),
            containment: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warm path's cache key (from the borrowed head) and `decide`'s (from the observation)
    /// must be the same string, or the warm path would never hit.
    #[test]
    fn the_cache_key_of_a_head_is_the_one_decide_writes() {
        let policy = Policy::default();
        for (session, key) in [
            ("i-0123456789abcdef0", "ASIAAAAAAAAAAAAAAAA2"),
            ("fn", "ASIAAAAAAAAAAAAAAAA2"),
            ("i-0123456789abcdef0", "ASIA0CTGUARDVERIFY01"),
        ] {
            let json = format!(
                r#"{{"eventTime":"2024-05-01T10:00:00Z","eventType":"AwsApiCall","sourceIPAddress":"203.0.113.9",
                "recipientAccountId":"111122223333","userIdentity":{{"type":"AssumedRole","accessKeyId":"{key}",
                "arn":"arn:aws:sts::111122223333:assumed-role/web/{session}"}}}}"#
            );
            let r = Record::parse(&json).expect("record");
            let head = use_head(&r, r.time(), None).expect("a use");
            let fact = head.trust_fact();
            let obs = head.observation(&r, &policy);
            assert_eq!(fact, format!("T|{}|{}|{}", obs.scope.key(), obs.access_key_id, obs.identity.key()));
            let Ok(borrowed) = classify_borrowed(&r, None, &policy).usage else { panic!("a use") };
            let mut id = String::new();
            borrowed.write_id(&mut id);
            assert_eq!(format!("T|{id}"), fact, "scan folds uses on the same id");
        }
    }

    /// `stored_text`'s shortcut for short printable ASCII gives what the general path gives.
    #[test]
    fn stored_text_shortcut_matches_the_general_rule() {
        let general = |t: &str| -> String {
            t.char_indices()
                .take_while(|(i, c)| i + c.len_utf8() <= MAX_STORED_TEXT)
                .map(|(_, c)| if c.is_control() { '?' } else { c })
                .collect()
        };
        let long = "a".repeat(MAX_STORED_TEXT);
        let cases = [
            "",
            "aws-cli/2.15 Python/3.11",
            "tab\there",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}control",
            "caf\u{e9} \u{1f600}",
            long.as_str(),
            &format!("{long}b"),
            &format!("{}\u{e9}", "a".repeat(MAX_STORED_TEXT - 1)),
        ];
        for c in cases {
            assert_eq!(stored_text(c), general(c), "{c:?}");
        }
    }
}
