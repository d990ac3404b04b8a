//! The detection rules: classify a record, then decide with the state it is handed.
//!
//! [`classify`] is pure: it turns one CloudTrail record into at most one *use* of a temporary
//! key (an [`Observation`]) and at most one *signal* (a credential rotation, or an accepted
//! network move), or says why the record is skipped. [`Detector`] drives the decisions
//! against a [`StateStore`] and an [`AlertSink`], with a bounded write-once cache in front of
//! the store so that a warm Lambda does no I/O for identities it already knows.
//!
//! Each rule's doc comment says what it catches and what it could falsely catch.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use crate::alert::{Alert, AlertSink, ExpectedIdentity, Severity, ALERT_SCHEMA};
use crate::error::Error;
use crate::event::{AssumeRoleRequest, AssumeRoleResponse, Envelope, InstanceRequest, Record, CLOUDTRAIL_DETAIL_TYPE};
use crate::identity::{classify as classify_origin, NetworkIdentity, Origin};
use crate::policy::Policy;
use crate::state::{Claim, EventRef, StateStore, Trusted};
use crate::time::{format_rfc3339, parse_expiration, Millis};

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

/// A state-changing signal carried by a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// EC2 issued `access_key` to the instance (`sts:AssumeRole` by `ec2.amazonaws.com`).
    Rotation { scope: Scope, access_key: String, expires_at: Millis },
    /// A successful network move of the instance: one new identity becomes acceptable.
    Move { scopes: Vec<Scope>, until: Millis, expires_at: Millis },
}

/// The result of classifying one record.
#[derive(Debug)]
pub struct Classified {
    pub usage: Result<Observation, Skip>,
    pub signal: Option<Signal>,
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

fn event_ref(r: &Record, time_ms: Millis, key: Option<&str>) -> EventRef {
    let s = |t: &crate::event::Text| t.get().map(str::to_string);
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
    }
}

/// Classifies one record. `source` is the EventBridge `source` when the record came in an
/// envelope (`None` for records read from CloudTrail files).
pub fn classify(r: &Record, source: Option<&str>, policy: &Policy) -> Classified {
    let time = r.time();
    let signal = time.and_then(|t| signal_of(r, t, policy));
    Classified { usage: usage_of(r, time, source, policy), signal }
}

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
            let expires_at = creds.expiration.get().and_then(parse_expiration).unwrap_or(t + policy.default_ttl_ms);
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
                expires_at: expires_at.max(t) + policy.default_ttl_ms,
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
            Some(Signal::Move { scopes, until: t + policy.arm_window_ms, expires_at: t + policy.default_ttl_ms })
        }
        _ => None,
    }
}

/// The use rule: which records are uses of a temporary key, from which identity, in which scope.
fn usage_of(r: &Record, time: Option<Millis>, source: Option<&str>, policy: &Policy) -> Result<Observation, Skip> {
    if r.event_type.get().is_some_and(|t| t != "AwsApiCall") {
        return Err(Skip::NotApiCall);
    }
    let key = r.access_key_id().ok_or(Skip::NoAccessKey)?;
    if !is_temporary_key(key) {
        return Err(Skip::NotTemporaryKey);
    }
    let synthetic = is_synthetic_key(key);
    if let Some(src) = source {
        if !src.starts_with("aws.") && !synthetic {
            return Err(Skip::UntrustedSource);
        }
    }
    let synthetic = synthetic || source.is_some_and(|s| !s.starts_with("aws."));
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
    let account = r.account().map(str::to_string);
    let instance = r.session_name().and_then(instance_id);
    let scope = match (&instance, &account) {
        (Some(i), Some(a)) => Scope::Instance { account: a.clone(), instance_id: i.clone() },
        _ => Scope::Key(key.to_string()),
    };
    // The credential's own life when known (creation + the longest a role session lasts),
    // else the configured default from this event.
    let expires_at = r
        .session_created()
        .map(|c| c.max(time - policy.default_ttl_ms) + policy.default_ttl_ms)
        .unwrap_or(time + policy.default_ttl_ms);
    Ok(Observation {
        access_key_id: key.to_string(),
        identity,
        scope,
        event: event_ref(r, time, Some(key)),
        expires_at,
        account,
        principal_arn: r.user_identity.as_ref().and_then(|u| u.arn.get()).map(str::to_string),
        role_arn: r.role_arn().map(str::to_string),
        instance_id: instance,
        synthetic,
    })
}

/// Counters of everything the detector did; returned by every invocation and by `scan`.
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
    pub alerts: u64,
    pub duplicate_alerts: u64,
    pub rotations: u64,
    pub moves_armed: u64,
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
        self.rotations += o.rotations;
        self.moves_armed += o.moves_armed;
        for (k, v) in &o.skipped {
            *self.skipped.entry(*k).or_default() += v;
        }
    }
    /// Total skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// A bounded two-generation cache of facts that never change once written: identities a
/// scope trusts, and (key, identity) pairs already alerted. Eviction drops the older half
/// wholesale, which is O(1) amortised and keeps recently used entries.
struct WriteOnceCache {
    cap: usize,
    young: HashSet<String>,
    old: HashSet<String>,
}

impl WriteOnceCache {
    fn new(cap: usize) -> Self {
        WriteOnceCache { cap: cap.max(2), young: HashSet::new(), old: HashSet::new() }
    }
    fn contains(&mut self, k: &str) -> bool {
        if self.young.contains(k) {
            return true;
        }
        if self.old.remove(k) {
            self.insert(k.to_string());
            return true;
        }
        false
    }
    fn insert(&mut self, k: String) {
        if self.young.len() >= self.cap / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k);
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
    DuplicateAlert,
}

/// The detector: rules + cache in front of a store and a sink.
pub struct Detector<S, A> {
    store: S,
    sink: A,
    policy: Policy,
    version: String,
    cache: Mutex<WriteOnceCache>,
    stats: Mutex<Stats>,
    clock: Clock,
}

/// Wall clock in Unix milliseconds; replaceable in tests.
pub type Clock = Box<dyn Fn() -> Millis + Send + Sync>;

fn system_clock() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// Default cache size: ~100k facts is a few MB and covers a large account's live keys.
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;

impl<S: StateStore, A: AlertSink> Detector<S, A> {
    pub fn new(store: S, sink: A, policy: Policy, version: impl Into<String>) -> Self {
        Detector {
            store,
            sink,
            policy,
            version: version.into(),
            cache: Mutex::new(WriteOnceCache::new(DEFAULT_CACHE_ENTRIES)),
            stats: Mutex::new(Stats::default()),
            clock: Box::new(system_clock),
        }
    }

    /// Replaces the wall clock (used only for alert-claim leases).
    pub fn with_clock(self, clock: Clock) -> Self {
        Detector { clock, ..self }
    }

    /// Replaces the cache with one of `entries` capacity (0 disables nothing: minimum 2).
    pub fn with_cache_entries(self, entries: usize) -> Self {
        Detector { cache: Mutex::new(WriteOnceCache::new(entries)), ..self }
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

    fn cached(&self, k: &str) -> bool {
        self.cache.lock().map(|mut c| c.contains(k)).unwrap_or(false)
    }

    fn remember(&self, k: String) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(k);
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
        let c = classify(r, source, &self.policy);
        self.count(|s| s.events += 1);
        if let Some(sig) = &c.signal {
            self.apply_signal(sig).await?;
        }
        match c.usage {
            Ok(obs) => Ok(vec![self.decide(&obs).await?]),
            Err(skip) => {
                self.count(|s| s.skip(skip));
                Ok(Vec::new())
            }
        }
    }

    /// Applies a rotation or accepted-move signal to the store (as [`Detector::process_record`]
    /// does for a record carrying one); `ctguard scan` uses it for pre-classified signals.
    pub async fn apply_signal(&self, sig: &Signal) -> Result<(), Error> {
        match sig {
            Signal::Rotation { scope, access_key, expires_at } => {
                self.store.bind(&scope.key(), access_key, *expires_at).await?;
                self.count(|s| s.rotations += 1);
            }
            Signal::Move { scopes, until, expires_at } => {
                for sc in scopes {
                    self.store.arm(&sc.key(), *until, *expires_at).await?;
                    self.count(|s| s.moves_armed += 1);
                }
            }
        }
        Ok(())
    }

    /// Decides one observation: trusted, accepted, or an alert (published once).
    pub async fn decide(&self, obs: &Observation) -> Result<Decision, Error> {
        self.count(|s| s.uses += 1);
        let scope_key = obs.scope.key();
        let ident = obs.identity.key();
        let trust_fact = format!("T|{scope_key}|{ident}");
        if self.cached(&trust_fact) {
            self.count(|s| s.trusted_cached += 1);
            return Ok(Decision::Trusted);
        }
        // Allowlisted networks are trusted for this call but never become the anchor of a
        // scope: a first use from the corporate VPN must not make everything else suspicious.
        if self.policy.allows(&obs.identity, obs.role_arn.as_deref()) {
            self.count(|s| s.allowlisted += 1);
            return Ok(Decision::Allowlisted);
        }
        let alert_fact = format!("A|{}|{ident}", obs.access_key_id);
        if self.cached(&alert_fact) {
            self.count(|s| s.duplicate_alerts += 1);
            return Ok(Decision::DuplicateAlert);
        }
        let me = Trusted { identity: ident.clone(), first: obs.event.clone() };
        let state = match self.store.claim(&scope_key, &me, obs.expires_at).await? {
            Claim::Won => {
                self.remember(trust_fact);
                self.count(|s| s.first_uses += 1);
                return Ok(Decision::FirstUse);
            }
            Claim::Existing(state) => state,
        };
        if state.trusted.iter().any(|t| t.identity == ident) {
            self.remember(trust_fact);
            self.count(|s| s.trusted_stored += 1);
            return Ok(Decision::Trusted);
        }
        if let NetworkIdentity::VpcEndpoint { owner: Some(owner), .. } = &obs.identity {
            if self.policy.trust_own_account_vpce && obs.account.as_deref() == Some(owner.as_str()) {
                self.store.trust(&scope_key, &me, obs.expires_at).await?;
                self.remember(trust_fact);
                self.count(|s| s.accepted_own_vpce += 1);
                return Ok(Decision::AcceptedOwnVpce);
            }
        }
        if state.armed_until.is_some_and(|u| obs.event.time_ms <= u)
            && self.store.take_arm(&scope_key, obs.event.time_ms, &me).await?
        {
            self.remember(trust_fact);
            self.count(|s| s.accepted_moves += 1);
            return Ok(Decision::AcceptedMove);
        }
        // Out of order: this call happened before every trusted one, so the stored first use
        // is the intruder. Trust this identity and alert on the earliest stored one.
        let earliest = state.trusted.iter().min_by_key(|t| parse_time(&t.first));
        let out_of_order = earliest.is_some_and(|e| obs.event.time_ms < parse_time(&e.first));
        let (expected, seen_identity, offending) = match (out_of_order, earliest) {
            (true, Some(e)) => {
                self.store.trust(&scope_key, &me, obs.expires_at).await?;
                self.remember(trust_fact);
                (vec![me.clone()], e.identity.clone(), e.first.clone())
            }
            _ => (state.trusted.clone(), ident.clone(), obs.event.clone()),
        };
        let now = (self.clock)();
        if !self.store.claim_alert(&obs.access_key_id, &seen_identity, now, obs.expires_at).await? {
            self.count(|s| s.duplicate_alerts += 1);
            return Ok(Decision::DuplicateAlert);
        }
        let alert = self.build_alert(obs, &expected, &seen_identity, offending, out_of_order);
        // A failed publish leaves the claim unconfirmed; its lease runs out before Lambda
        // retries the event, and the retry publishes. Never acknowledged without an alert.
        self.sink.publish(&alert).await?;
        self.store.confirm_alert(&obs.access_key_id, &seen_identity).await?;
        self.remember(format!("A|{}|{seen_identity}", obs.access_key_id));
        self.count(|s| s.alerts += 1);
        Ok(Decision::Alerted(Box::new(alert)))
    }

    fn build_alert(
        &self,
        obs: &Observation,
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
            "{} of {who} used from {} (trusted: {}) in {}",
            obs.access_key_id,
            shown(seen),
            exp.join(", "),
            obs.account.as_deref().unwrap_or("unknown account"),
        );
        let reason = if out_of_order {
            "the key was used from this identity before its trusted first use was recorded (delivered out of order)"
                .to_string()
        } else if matches!(obs.scope, Scope::Instance { .. }) {
            "an EC2 instance credential was used from a network identity the instance has never used".to_string()
        } else {
            "a temporary credential was used from a network identity other than the one that first used it".to_string()
        };
        Alert {
            schema: ALERT_SCHEMA.to_string(),
            kind: "credential-reuse".to_string(),
            severity,
            synthetic: obs.synthetic,
            title,
            account: obs.account.clone(),
            regions,
            access_key_id: obs.access_key_id.clone(),
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
        }
    }
}

fn parse_time(e: &EventRef) -> Millis {
    if e.time_ms != 0 {
        return e.time_ms;
    }
    crate::time::parse_rfc3339(&e.event_time).unwrap_or(Millis::MAX)
}
