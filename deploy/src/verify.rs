//! `ctguard verify`: prove, per installed account × region, that a reused credential raises an
//! alert — end to end, on the real pipeline.
//!
//! Per target: a synthetic temporary key that can never be a real one (it carries `0`, outside
//! the base32 alphabet of real keys), three synthetic "AWS API Call via CloudTrail" events — a
//! first use from 192.0.2.x, a control from the same address, a reuse from 198.51.100.x (both
//! RFC 5737 documentation ranges) — sent through EventBridge `PutEvents` (source
//! `ctguard.verify`, which the installed rule matches) or the Lambda Invoke API; the outcome is
//! observed on a temporary SQS queue subscribed to the alert topic with a filter on the
//! `synthetic` attribute. Static checks run beside it. Everything created is removed at the
//! end, on failure and on Ctrl-C too.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::stacks::{ApiError, AwsConnector, Connector, TargetApi};
use crate::targets::Target;
use crate::trail::TrailVerdict;
use ctguard_aws::in_region;
use ctguard_detector::time::now_ms;

/// The deterministic names the installer gives the regional resources.
pub const FUNCTION_NAME: &str = "ctguard-detector";
pub const RULE_NAME: &str = "ctguard-detector";
/// The EventBridge source of verify's events (real AWS sources start with `aws.`, which
/// `PutEvents` refuses; the installed rule matches this one too).
pub const VERIFY_SOURCE: &str = "ctguard.verify";
/// The rule state that delivers read-only management events.
pub const EXPECTED_RULE_STATE: &str = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS";

/// How events reach the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// EventBridge PutEvents on the default bus: rule → Lambda → DynamoDB → SNS.
    Eventbridge,
    /// The Lambda Invoke API (for environments where EventBridge cannot reach Lambda).
    Invoke,
}

/// One named check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// `Some(true)` passed, `Some(false)` failed, `None` could not be checked (said why).
    pub ok: Option<bool>,
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: Some(true), detail: detail.into() }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: Some(false), detail: detail.into() }
    }
    fn unknown(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: None, detail: detail.into() }
    }
}

/// The verdict for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub account: String,
    pub region: String,
    pub pass: bool,
    /// Send of the reuse event → alert received.
    pub latency_ms: Option<u64>,
    pub reason: String,
    pub checks: Vec<Check>,
}

impl Outcome {
    /// Passes only when no check failed and the end-to-end check passed.
    fn from_checks(t: &Target, checks: Vec<Check>, latency_ms: Option<u64>) -> Outcome {
        let failed: Vec<String> =
            checks.iter().filter(|c| c.ok == Some(false)).map(|c| format!("{}: {}", c.name, c.detail)).collect();
        let e2e_ok = checks.iter().any(|c| c.name == "alert" && c.ok == Some(true));
        let pass = failed.is_empty() && e2e_ok;
        let reason = if pass {
            "a synthetic credential reuse raised exactly one alert".to_string()
        } else if failed.is_empty() {
            "the end-to-end check did not complete".to_string()
        } else {
            failed.join("; ")
        };
        Outcome { account: t.account.clone(), region: t.region.clone(), pass, latency_ms, reason, checks }
    }
}

/// What verify needs to know about the deployed function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionFacts {
    pub table: Option<String>,
    pub table_region: Option<String>,
    pub topic_arn: Option<String>,
    pub version: Option<String>,
    pub code_sha256: Option<String>,
}

/// The static side, judged without AWS: returns the checks.
pub fn static_checks(
    rule_state: Option<&str>,
    pattern: Option<&Value>,
    api_pattern_answer: Option<bool>,
    func: Option<&FunctionFacts>,
    bundled_sha256_b64: &str,
    bundled_version: &str,
    ttl_status: Option<&str>,
) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match rule_state {
        Some(EXPECTED_RULE_STATE) => Check::pass("rule state", EXPECTED_RULE_STATE),
        Some("ENABLED") => Check::fail(
            "rule state",
            "ENABLED: a rule in plain ENABLED state never receives read-only management events (sts:GetCallerIdentity, List*, Describe*), which is what credential thieves run first; expected ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
        ),
        Some(s) => Check::fail("rule state", format!("{s}; expected {EXPECTED_RULE_STATE}")),
        None => Check::fail("rule state", format!("no rule {RULE_NAME}")),
    });
    let sample = sample_read_only_event();
    out.push(match pattern {
        None => Check::fail("event pattern", "the rule has no event pattern"),
        Some(p) => {
            let local = pattern_matches(p, &sample);
            let negative = pattern_matches(p, &sample_long_term_key_event());
            match (local, negative, api_pattern_answer) {
                (true, false, Some(true)) => {
                    Check::pass("event pattern", "matches a real-shaped sts:GetCallerIdentity by an ASIA key (EventBridge TestEventPattern agrees)")
                }
                (true, false, None) => Check::pass(
                    "event pattern",
                    "matches a real-shaped sts:GetCallerIdentity by an ASIA key (TestEventPattern gave no usable answer; checked locally)",
                ),
                (true, false, Some(false)) => {
                    Check::fail("event pattern", "EventBridge TestEventPattern says the pattern does not match a real-shaped read-only event")
                }
                (false, _, _) => Check::fail("event pattern", "does not match a real-shaped sts:GetCallerIdentity by an ASIA key"),
                (true, true, _) => Check::fail("event pattern", "also matches long-term (AKIA) keys: it does not filter early"),
            }
        }
    });
    out.push(match func {
        None => Check::fail("function", format!("no function {FUNCTION_NAME}")),
        Some(f) => {
            let code = f.code_sha256.as_deref();
            match (code == Some(bundled_sha256_b64), f.version.as_deref()) {
                (true, _) => Check::pass("function", format!("runs the bundled build (CodeSha256 {bundled_sha256_b64})")),
                (false, v) => Check::fail(
                    "function",
                    format!(
                        "runs another build (CodeSha256 {}, version {}) than this ctguard's (CodeSha256 {bundled_sha256_b64}, version {bundled_version}): run `ctguard install`",
                        code.unwrap_or("?"),
                        v.unwrap_or("?")
                    ),
                ),
            }
        }
    });
    out.push(match ttl_status {
        Some("ENABLED") => Check::pass("state table TTL", "enabled"),
        Some(s) => Check::fail("state table TTL", format!("{s}: state would never expire")),
        None => Check::fail("state table TTL", "the state table could not be read"),
    });
    out
}

/// A real-shaped read-only call by a temporary key: what the rule must deliver.
pub fn sample_read_only_event() -> Value {
    json!({
        "version": "0", "id": "6f1c7f8a-0000-4000-8000-000000000000", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts", "account": "111122223333", "time": "2024-05-01T10:00:00Z", "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
            "eventType": "AwsApiCall", "readOnly": true, "managementEvent": true, "eventCategory": "Management",
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.15.0",
            "eventTime": "2024-05-01T10:00:00Z", "recipientAccountId": "111122223333",
            "userIdentity": { "type": "AssumedRole", "accessKeyId": "ASIAEXAMPLEEXAMPLE22",
                "arn": "arn:aws:sts::111122223333:assumed-role/web/i-0123456789abcdef0", "accountId": "111122223333" }
        }
    })
}

fn sample_long_term_key_event() -> Value {
    let mut v = sample_read_only_event();
    v["detail"]["userIdentity"] =
        json!({"type": "IAMUser", "accessKeyId": "AKIAEXAMPLEEXAMPLE22", "accountId": "111122223333"});
    v["detail"]["eventName"] = json!("GetCallerIdentity");
    v
}

/// Whether the function's resource policy lets EventBridge invoke it for the rule: an Allow
/// for `events.amazonaws.com` (or `*`) on `lambda:InvokeFunction`, whose `aws:SourceArn` and
/// `aws:SourceAccount` conditions, if any, admit the rule and its account. A statement with any
/// other condition is not counted (it cannot be judged here); a matching Deny fails the check.
pub fn invoke_permission(policy: Option<&str>, rule_arn: Option<&str>, account: &str) -> Check {
    const NAME: &str = "invoke permission";
    let Some(rule_arn) = rule_arn else { return Check::unknown(NAME, "the rule's ARN is unknown") };
    let Some(policy) = policy else {
        return Check::fail(
            NAME,
            "the function has no resource policy, so events.amazonaws.com may not invoke it: EventBridge cannot deliver (events go to the rule's DLQ)",
        );
    };
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return Check::unknown(NAME, "the function's resource policy is not JSON");
    };
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![doc["Statement"].clone()],
        _ => Vec::new(),
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    let applies = |st: &Value| {
        let principal = &st["Principal"];
        let to_events = principal == "*"
            || list(&principal["Service"]).iter().any(|s| s == "events.amazonaws.com")
            || list(&principal["AWS"]).iter().any(|s| s == "*");
        let action = list(&st["Action"]).iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a == "lambda:*" || a == "lambda:invokefunction"
        });
        let conditions = st["Condition"].as_object().map(|ops| {
            ops.iter().all(|(op, kv)| {
                kv.as_object().is_some_and(|kv| {
                    kv.iter().all(|(key, want)| {
                        let want = list(want);
                        match (op.as_str(), key.to_ascii_lowercase().as_str()) {
                            ("ArnLike" | "ArnEquals" | "StringLike", "aws:sourcearn") => {
                                want.iter().any(|w| ctguard_detector::policy::glob_match(w, rule_arn))
                            }
                            ("StringEquals", "aws:sourcearn") => want.iter().any(|w| w == rule_arn),
                            ("StringEquals" | "StringLike", "aws:sourceaccount") => {
                                want.iter().any(|w| ctguard_detector::policy::glob_match(w, account))
                            }
                            _ => false,
                        }
                    })
                })
            })
        });
        to_events && action && conditions.unwrap_or(true)
    };
    if statements.iter().any(|st| st["Effect"] == "Deny" && applies(st)) {
        return Check::fail(NAME, format!("the function's resource policy denies EventBridge for {rule_arn}"));
    }
    if statements.iter().any(|st| st["Effect"] == "Allow" && applies(st)) {
        Check::pass(NAME, format!("events.amazonaws.com may invoke the function for {rule_arn}"))
    } else {
        Check::fail(
            NAME,
            format!("no statement of the function's resource policy lets events.amazonaws.com invoke it for {rule_arn}: EventBridge cannot deliver (events go to the rule's DLQ)"),
        )
    }
}

/// Evaluates an EventBridge event pattern against an event, for the operators the templates
/// use: exact values, `prefix`, `suffix`, `anything-but` (value, list, prefix, suffix),
/// `exists`, and `$or`. Unknown operators never match (so a check cannot pass by accident).
pub fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    let Some(obj) = pattern.as_object() else { return false };
    obj.iter().all(|(k, p)| {
        if k == "$or" {
            return p.as_array().is_some_and(|alts| alts.iter().any(|a| pattern_matches(a, event)));
        }
        let field = event.get(k);
        match p {
            Value::Object(_) => field.is_some_and(|f| f.is_object() && pattern_matches(p, f)),
            Value::Array(allowed) => match field {
                Some(Value::Array(vals)) => vals.iter().any(|v| allowed.iter().any(|a| leaf_matches(a, Some(v)))),
                other => allowed.iter().any(|a| leaf_matches(a, other)),
            },
            _ => false,
        }
    })
}

fn leaf_matches(rule: &Value, value: Option<&Value>) -> bool {
    match rule {
        Value::Object(op) => {
            let s = value.and_then(Value::as_str);
            if let Some(pre) = op.get("prefix").and_then(Value::as_str) {
                return s.is_some_and(|s| s.starts_with(pre));
            }
            if let Some(suf) = op.get("suffix").and_then(Value::as_str) {
                return s.is_some_and(|s| s.ends_with(suf));
            }
            if let Some(e) = op.get("exists").and_then(Value::as_bool) {
                return value.is_some() == e;
            }
            if let Some(ab) = op.get("anything-but") {
                let Some(v) = value else { return false };
                return match ab {
                    Value::Array(list) => !list.contains(v),
                    Value::Object(inner) => {
                        if let Some(pre) = inner.get("prefix").and_then(Value::as_str) {
                            !s.is_some_and(|s| s.starts_with(pre))
                        } else if let Some(suf) = inner.get("suffix").and_then(Value::as_str) {
                            !s.is_some_and(|s| s.ends_with(suf))
                        } else {
                            false
                        }
                    }
                    other => other != v,
                };
            }
            false
        }
        literal => value == Some(literal),
    }
}

/// How every synthetic key starts (the state table's policy lets the installer delete only
/// these keys' items: `templates/ctguard-state.yaml`).
pub const SYNTHETIC_KEY_PREFIX: &str = "ASIA0CTGV";

/// The state items a synthetic key leaves: its scope (`K#KEY`) and its alert claim
/// (`A#KEY#IDENTITY`), which verify removes after its test.
pub fn synthetic_state_keys(key: &str, reuse_identity: &str) -> [String; 2] {
    [format!("K#{key}"), format!("A#{key}#{reuse_identity}")]
}

/// A synthetic temporary key: `ASIA0CTGV` + 11 base32 characters. The `0` is outside the
/// alphabet of real keys (`A–Z`, `2–7`), so it can never collide with a real credential, and
/// the detector flags its alerts `synthetic`.
pub fn synthetic_key(seed: u64) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut x = seed | 1;
    let mut k = String::from(SYNTHETIC_KEY_PREFIX);
    for _ in 0..11 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k.push(B32[(x % 32) as usize] as char);
    }
    k
}

/// The three synthetic events: (first use, control, reuse), as EventBridge envelopes.
pub fn synthetic_events(key: &str, account: &str, region: &str, now_ms: i64, seed: u64) -> [Value; 3] {
    let first_ip = format!("192.0.2.{}", 10 + seed % 200);
    let reuse_ip = format!("198.51.100.{}", 10 + seed % 200);
    let ev = |ip: &str, offset_ms: i64, n: u32| {
        let t = ctguard_detector::time::format_rfc3339(now_ms + offset_ms);
        json!({
            "version": "0", "id": format!("ctguard-verify-{seed:016x}-{n}"), "detail-type": ctguard_detector::event::CLOUDTRAIL_DETAIL_TYPE,
            "source": VERIFY_SOURCE, "account": account, "time": t, "region": region, "resources": [],
            "detail": {
                "eventVersion": "1.08", "eventID": format!("ctguard-verify-{seed:016x}-{n}"), "eventTime": t,
                "eventType": "AwsApiCall", "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
                "awsRegion": region, "sourceIPAddress": ip, "userAgent": format!("ctguard-verify/{}", ctguard_detector::VERSION),
                "recipientAccountId": account, "readOnly": true, "managementEvent": true, "eventCategory": "Management",
                "userIdentity": {
                    "type": "AssumedRole", "accessKeyId": key, "accountId": account,
                    "principalId": "AROACTGUARDVERIFY:synthetic",
                    "arn": format!("arn:aws:sts::{account}:assumed-role/ctguard-verify/synthetic"),
                    "sessionContext": {
                        "sessionIssuer": { "type": "Role", "arn": format!("arn:aws:iam::{account}:role/ctguard-verify") },
                        "attributes": { "creationDate": t, "mfaAuthenticated": "false" }
                    }
                }
            }
        })
    };
    [ev(&first_ip, -2000, 1), ev(&first_ip, -1000, 2), ev(&reuse_ip, 0, 3)]
}

/// An account × region where verify reads, sends or creates something.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl Place {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Place {
        Place { account: account.into(), region: region.into() }
    }
}

/// Something verify created, to be removed whatever happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Queue { at: Place, url: String },
    Subscription { at: Place, arn: String },
    StateItem { at: Place, table: String, pk: String },
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Created::Queue { url, .. } => write!(f, "queue {url}"),
            Created::Subscription { arn, .. } => write!(f, "subscription {arn}"),
            Created::StateItem { pk, .. } => write!(f, "state item {pk}"),
        }
    }
}

/// The regional rule as verify sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleFacts {
    pub state: Option<String>,
    pub pattern: Option<Value>,
    pub arn: Option<String>,
}

/// Why a synthetic event did not reach the detector, or the detector failed on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("EventBridge PutEvents failed: {0}")]
    PutEvents(ApiError),
    #[error("EventBridge refused the event: {0}")]
    Refused(String),
    #[error("the detector failed: {kind}: {message}")]
    DetectorFailed { kind: String, message: String },
    #[error("Lambda Invoke failed: {0}")]
    Invoke(ApiError),
}

/// Why the end-to-end check could not run to its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the function has no {0}")]
    MissingSetting(&'static str),
    #[error("`{0}` is not an SNS topic ARN")]
    BadTopic(String),
    #[error("cannot create the observer queue: {0}")]
    Queue(ApiError),
    #[error("the alert topic {topic} accepts no subscription: {error}")]
    Subscribe { topic: String, error: ApiError },
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("cannot read the observer queue: {0}")]
    Receive(ApiError),
    #[error("cannot read the state table {table}: {error}")]
    State { table: String, error: ApiError },
}

/// Every AWS call verify makes, in any account × region. Takes and returns ctguard types
/// only; implemented on [`AwsConnector`] (assuming the member role where needed) and by an
/// in-memory fake in the tests.
pub trait VerifyApi: Sync {
    /// The deployed function's configuration.
    fn function(&self, at: &Place) -> impl Future<Output = Result<FunctionFacts, ApiError>> + Send;
    fn rule(&self, at: &Place) -> impl Future<Output = Result<RuleFacts, ApiError>> + Send;
    /// The function's resource policy (`None`: it has none).
    fn function_policy(&self, at: &Place) -> impl Future<Output = Result<Option<String>, ApiError>> + Send;
    /// EventBridge TestEventPattern.
    fn test_pattern(
        &self,
        at: &Place,
        pattern: &str,
        event: &str,
    ) -> impl Future<Output = Result<bool, ApiError>> + Send;
    /// The state table's TimeToLiveStatus.
    fn ttl_status(&self, at: &Place, table: &str) -> impl Future<Output = Result<Option<String>, ApiError>> + Send;
    fn trail(&self, t: &Target) -> impl Future<Output = Result<TrailVerdict, ApiError>> + Send;
    /// Creates an SQS queue with `policy`; returns its URL.
    fn create_queue(
        &self,
        at: &Place,
        name: &str,
        policy: &str,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
    /// Subscribes the queue to the topic with a filter policy; returns the subscription ARN.
    fn subscribe(
        &self,
        at: &Place,
        topic: &str,
        queue_arn: &str,
        filter_policy: &str,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
    /// Sends one CloudTrail `detail` to the default bus with verify's source.
    fn put_event(&self, at: &Place, detail: &str) -> impl Future<Output = Result<(), SendError>> + Send;
    /// Invokes the function with `payload` (at `endpoint` when given: a local runtime emulator).
    fn invoke(
        &self,
        at: &Place,
        endpoint: Option<&str>,
        payload: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
    /// Message bodies waiting in the queue (waits up to a second for some).
    fn receive(&self, at: &Place, url: &str) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// Whether the state item exists (`Some`) and has a `ttl` attribute.
    fn state_item_has_ttl(
        &self,
        at: &Place,
        table: &str,
        pk: &str,
    ) -> impl Future<Output = Result<Option<bool>, ApiError>> + Send;
    fn remove(&self, c: &Created) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Everything created so far, shared with the Ctrl-C handler.
#[derive(Clone, Default)]
pub struct Cleanup(Arc<Mutex<Vec<Created>>>);

impl Cleanup {
    async fn add(&self, c: Created) {
        self.0.lock().await.push(c);
    }

    /// Removes everything registered (latest first); returns what could not be removed.
    pub async fn run<V: VerifyApi>(&self, api: &V) -> Vec<String> {
        let items: Vec<Created> = std::mem::take(&mut *self.0.lock().await);
        let mut left = Vec::new();
        for c in items.into_iter().rev() {
            if let Err(e) = api.remove(&c).await {
                left.push(format!("{c}: {e}"));
            }
        }
        left
    }
}

/// Options of one verification.
#[derive(Debug, Clone)]
pub struct Options {
    pub via: Via,
    pub timeout: Duration,
    /// Send Invoke calls here instead of the Lambda endpoint (a local runtime emulator).
    pub invoke_endpoint: Option<String>,
    pub bundled_sha256_b64: String,
    pub bundled_version: String,
}

/// Verifies one installed target; never returns early without cleaning up.
pub async fn verify_target<V: VerifyApi>(api: &V, t: &Target, opts: &Options, cleanup: &Cleanup, seed: u64) -> Outcome {
    let at = Place::new(&t.account, &t.region);
    let mut checks = Vec::new();
    let func = match api.function(&at).await {
        Ok(f) => Some(f),
        Err(e) => {
            checks.push(Check::fail("function", format!("cannot read {FUNCTION_NAME}: {e}")));
            None
        }
    };
    let judged = static_side(api, &at, func.as_ref(), opts, &mut checks).await;
    checks.extend(judged);
    checks.push(match api.trail(t).await {
        Ok(v) if v.is_ok() => Check::pass("trail", v.describe()),
        Ok(v) => Check::fail("trail", v.describe()),
        Err(e) => Check::unknown("trail", format!("cannot read trails: {e}")),
    });
    let latency = match func.as_ref() {
        Some(f) => match end_to_end(api, t, f, opts, cleanup, seed).await {
            Ok((c, lat)) => {
                checks.extend(c);
                lat
            }
            Err(e) => {
                checks.push(Check::fail("alert", e.to_string()));
                None
            }
        },
        None => {
            checks.push(Check::fail("alert", "no function to send events to"));
            None
        }
    };
    Outcome::from_checks(t, checks, latency)
}

/// Reads the rule, its pattern (asking TestEventPattern too), and the state table's TTL, and
/// judges them with [`static_checks`]. Read failures are pushed to `checks` as they happen.
async fn static_side<V: VerifyApi>(
    api: &V,
    at: &Place,
    func: Option<&FunctionFacts>,
    opts: &Options,
    checks: &mut Vec<Check>,
) -> Vec<Check> {
    let rule = match api.rule(at).await {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::fail("rule", format!("cannot read rule {RULE_NAME}: {e}")));
            RuleFacts::default()
        }
    };
    // TestEventPattern answers a bare boolean; an emulator that does not implement it answers
    // `false` for everything, so a negative control tells "no" from "no answer".
    let api_answer = match &rule.pattern {
        Some(p) => {
            let p = p.to_string();
            let yes = api.test_pattern(at, &p, &sample_read_only_event().to_string()).await;
            let no = api.test_pattern(at, &p, &sample_long_term_key_event().to_string()).await;
            match (yes, no) {
                (Ok(true), Ok(false)) => Some(true),
                (Ok(false), Ok(true)) => Some(false),
                _ => None,
            }
        }
        None => None,
    };
    let ttl_status = match func.and_then(|f| f.table.as_deref()) {
        Some(table) => {
            let table_at = Place::new(&at.account, func.and_then(|f| f.table_region.as_deref()).unwrap_or(&at.region));
            api.ttl_status(&table_at, table).await.ok().flatten()
        }
        None => None,
    };
    let mut judged = static_checks(
        rule.state.as_deref(),
        rule.pattern.as_ref(),
        api_answer,
        func,
        &opts.bundled_sha256_b64,
        &opts.bundled_version,
        ttl_status.as_deref(),
    );
    if func.is_some() {
        judged.push(match api.function_policy(at).await {
            Ok(policy) => invoke_permission(policy.as_deref(), rule.arn.as_deref(), &at.account),
            Err(e) => Check::unknown("invoke permission", format!("cannot read the function's policy: {e}")),
        });
    }
    judged
}

/// The observer: a temporary queue, subscribed to the alert topic for synthetic alerts only.
struct Observer {
    at: Place,
    url: String,
}

/// Creates the observer queue with the topic (its account and region) and subscribes it.
async fn observe_topic<V: VerifyApi>(
    api: &V,
    topic: &str,
    cleanup: &Cleanup,
    seed: u64,
) -> Result<Observer, VerifyError> {
    let parts: Vec<&str> = topic.split(':').collect();
    let at = match parts.as_slice() {
        [_, _, "sns", r, a, _] => Place::new(*a, *r),
        _ => return Err(VerifyError::BadTopic(topic.to_string())),
    };
    let qname = format!("ctguard-verify-{seed:016x}");
    let queue_arn = format!("arn:aws:sqs:{}:{}:{qname}", at.region, at.account);
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Sid": "FromAlertTopic", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic}} }]
    });
    let url = api.create_queue(&at, &qname, &policy.to_string()).await.map_err(VerifyError::Queue)?;
    cleanup.add(Created::Queue { at: at.clone(), url: url.clone() }).await;
    let filter = json!({"synthetic": ["true"]}).to_string();
    let arn = api
        .subscribe(&at, topic, &queue_arn, &filter)
        .await
        .map_err(|error| VerifyError::Subscribe { topic: topic.to_string(), error })?;
    cleanup.add(Created::Subscription { at: at.clone(), arn }).await;
    Ok(Observer { at, url })
}

async fn end_to_end<V: VerifyApi>(
    api: &V,
    t: &Target,
    f: &FunctionFacts,
    opts: &Options,
    cleanup: &Cleanup,
    seed: u64,
) -> Result<(Vec<Check>, Option<u64>), VerifyError> {
    let topic = f.topic_arn.clone().ok_or(VerifyError::MissingSetting("CTGUARD_TOPIC_ARN"))?;
    let table = f.table.clone().ok_or(VerifyError::MissingSetting("CTGUARD_TABLE"))?;
    let observer = observe_topic(api, &topic, cleanup, seed).await?;

    let key = synthetic_key(seed);
    let at = Place::new(&t.account, &t.region);
    let table_at = Place::new(&t.account, f.table_region.as_deref().unwrap_or(&t.region));
    let events = synthetic_events(&key, &t.account, &t.region, now_ms(), seed);
    let reuse_identity = format!("ip:{}", events[2]["detail"]["sourceIPAddress"].as_str().unwrap_or_default());
    for pk in synthetic_state_keys(&key, &reuse_identity) {
        cleanup.add(Created::StateItem { at: table_at.clone(), table: table.clone(), pk }).await;
    }
    let mut checks = Vec::new();
    let sent_at = send_events(api, &at, opts, &events).await?;
    checks.push(Check::pass(
        "send",
        match opts.via {
            Via::Eventbridge => "3 events accepted by EventBridge PutEvents (source ctguard.verify)",
            Via::Invoke => "3 events processed by the function (Lambda Invoke)",
        },
    ));
    let (alerts, latency) = await_alerts(api, &observer, &key, sent_at, opts.timeout).await?;
    checks.extend(judge_alerts(&alerts, &reuse_identity, opts.timeout));
    if alerts.is_empty() && opts.via == Via::Eventbridge {
        checks.push(direct_invoke(api, &at, opts, &events[0]).await);
    }
    // The state record: present, with a TTL. (A failure here is a check, not an early
    // return: the checks above, the diagnosis above all, must reach the report.)
    checks.push(match api.state_item_has_ttl(&table_at, &table, &format!("K#{key}")).await {
        Ok(Some(true)) => Check::pass("state", "first use recorded, with a TTL"),
        Ok(Some(false)) => Check::fail("state", "first use recorded without a TTL"),
        Ok(None) => Check::fail("state", format!("no state record for the synthetic key in {table}")),
        Err(e) => Check::fail("state", format!("cannot read the state table {table}: {e}")),
    });
    Ok((checks, latency))
}

/// After EventBridge delivered no alert: does the function itself work? The first-use event
/// again (idempotent), with the Lambda Invoke API. A failure names the function's error; a
/// success points at delivery (rule, pattern, target, invoke permission).
async fn direct_invoke<V: VerifyApi>(api: &V, at: &Place, opts: &Options, first_use: &Value) -> Check {
    match api.invoke(at, opts.invoke_endpoint.as_deref(), &first_use.to_string()).await {
        Ok(()) => Check::fail(
            "delivery",
            "the function processes the event when invoked directly, so EventBridge did not deliver it: see the rule's state, pattern and target, and the invoke permission (undeliverable events go to the DLQ)",
        ),
        Err(e @ SendError::Invoke(_)) => {
            Check::unknown("direct invoke", format!("cannot invoke the function to diagnose: {e}"))
        }
        Err(e) => Check::fail("direct invoke", e.to_string()),
    }
}

/// Sends the first use, the control and the reuse, in order; returns when the reuse was sent.
async fn send_events<V: VerifyApi>(
    api: &V,
    at: &Place,
    opts: &Options,
    events: &[Value; 3],
) -> Result<Instant, SendError> {
    let mut sent_at = Instant::now();
    for (i, ev) in events.iter().enumerate() {
        if i == 2 {
            sent_at = Instant::now();
        }
        match opts.via {
            Via::Eventbridge => api.put_event(at, &ev["detail"].to_string()).await?,
            Via::Invoke => api.invoke(at, opts.invoke_endpoint.as_deref(), &ev.to_string()).await?,
        }
        if i == 0 && opts.via == Via::Eventbridge {
            // Give the first use a head start; the detector orders by event time anyway.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(sent_at)
}

/// How long after the first alert a second one is still waited for.
const QUIET_PERIOD: Duration = Duration::from_secs(3);

/// Reads the observer queue: the first alert for `key`, then a quiet period in which no
/// second may come. Returns the alerts for `key` and the latency of the first.
async fn await_alerts<V: VerifyApi>(
    api: &V,
    observer: &Observer,
    key: &str,
    sent_at: Instant,
    timeout: Duration,
) -> Result<(Vec<Value>, Option<u64>), VerifyError> {
    let deadline = Instant::now() + timeout;
    let mut alerts: Vec<Value> = Vec::new();
    let mut latency = None;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || quiet_until.is_some_and(|q| now >= q) {
            return Ok((alerts, latency));
        }
        let bodies = api.receive(&observer.at, &observer.url).await.map_err(VerifyError::Receive)?;
        for body in bodies {
            let envelope: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let alert: Value =
                envelope["Message"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
            if alert["access_key_id"] == key {
                if latency.is_none() {
                    latency = Some(sent_at.elapsed().as_millis() as u64);
                    quiet_until = Some(Instant::now() + QUIET_PERIOD);
                }
                alerts.push(alert);
            }
        }
    }
}

/// Exactly one synthetic alert, for the reuse: the pass; none, another, or more: the failures.
fn judge_alerts(alerts: &[Value], reuse_identity: &str, timeout: Duration) -> Vec<Check> {
    match alerts {
        [] => vec![Check::fail(
            "alert",
            format!("no alert reached the topic's subscribers within {} s", timeout.as_secs()),
        )],
        [a] if a["seen_identity"] == reuse_identity && a["synthetic"] == true => vec![
            Check::pass("alert", format!("one synthetic alert for the reuse from {reuse_identity}")),
            Check::pass("control", "no alert for the reuse from the first address"),
        ],
        [a] => vec![Check::fail(
            "alert",
            format!(
                "one alert, but for {} (synthetic {}), expected {reuse_identity}",
                a["seen_identity"], a["synthetic"]
            ),
        )],
        many => vec![Check::fail(
            "control",
            format!("{} alerts for one reuse (the control from the first address alerted too?)", many.len()),
        )],
    }
}

// ------------------------------------------------------------------------------------------
// AWS

impl AwsConnector {
    /// The configuration of `at` (the account's credentials, its region).
    async fn config_at(&self, at: &Place) -> SdkConfig {
        in_region(&self.account_config(&at.account).await, &at.region)
    }
}

impl VerifyApi for AwsConnector {
    async fn function(&self, at: &Place) -> Result<FunctionFacts, ApiError> {
        let c = ctguard_aws::client!(aws_sdk_lambda, &self.config_at(at).await)
            .get_function_configuration()
            .function_name(FUNCTION_NAME)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        let vars = c.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
        Ok(FunctionFacts {
            table: vars.get("CTGUARD_TABLE").cloned(),
            table_region: vars.get("CTGUARD_TABLE_REGION").cloned(),
            topic_arn: vars.get("CTGUARD_TOPIC_ARN").cloned(),
            version: vars.get("CTGUARD_VERSION").cloned(),
            code_sha256: c.code_sha256().map(str::to_string),
        })
    }

    async fn rule(&self, at: &Place) -> Result<RuleFacts, ApiError> {
        let r = ctguard_aws::client!(aws_sdk_eventbridge, &self.config_at(at).await)
            .describe_rule()
            .name(RULE_NAME)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        Ok(RuleFacts {
            state: r.state().map(|s| s.as_str().to_string()),
            pattern: r.event_pattern().and_then(|p| serde_json::from_str::<Value>(p).ok()),
            arn: r.arn().map(str::to_string),
        })
    }

    async fn function_policy(&self, at: &Place) -> Result<Option<String>, ApiError> {
        match ctguard_aws::client!(aws_sdk_lambda, &self.config_at(at).await)
            .get_policy()
            .function_name(FUNCTION_NAME)
            .send()
            .await
        {
            Ok(p) => Ok(p.policy().map(str::to_string)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(ApiError::from_sdk_text(&e)),
        }
    }

    async fn test_pattern(&self, at: &Place, pattern: &str, event: &str) -> Result<bool, ApiError> {
        ctguard_aws::client!(aws_sdk_eventbridge, &self.config_at(at).await)
            .test_event_pattern()
            .event_pattern(pattern)
            .event(event)
            .send()
            .await
            .map(|o| o.result)
            .map_err(|e| ApiError::from_sdk_text(&e))
    }

    async fn ttl_status(&self, at: &Place, table: &str) -> Result<Option<String>, ApiError> {
        let o = ctguard_aws::client!(aws_sdk_dynamodb, &self.config_at(at).await)
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        Ok(o.time_to_live_description().and_then(|d| d.time_to_live_status()).map(|s| s.as_str().to_string()))
    }

    async fn trail(&self, t: &Target) -> Result<TrailVerdict, ApiError> {
        let api = self.connect(t).await.map_err(|e| ApiError::new(format!("cannot connect: {e}")))?;
        api.trail().await
    }

    async fn create_queue(&self, at: &Place, name: &str, policy: &str) -> Result<String, ApiError> {
        ctguard_aws::client!(aws_sdk_sqs, &self.config_at(at).await)
            .create_queue()
            .queue_name(name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod, "600")
            .tags("ctguard:owner", "ctguard")
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?
            .queue_url
            .ok_or_else(|| ApiError::new("CreateQueue returned no URL"))
    }

    async fn subscribe(
        &self,
        at: &Place,
        topic: &str,
        queue_arn: &str,
        filter_policy: &str,
    ) -> Result<String, ApiError> {
        ctguard_aws::client!(aws_sdk_sns, &self.config_at(at).await)
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("FilterPolicy", filter_policy)
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?
            .subscription_arn
            .ok_or_else(|| ApiError::new("Subscribe returned no ARN"))
    }

    async fn put_event(&self, at: &Place, detail: &str) -> Result<(), SendError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name("default")
            .source(VERIFY_SOURCE)
            .detail_type(ctguard_detector::event::CLOUDTRAIL_DETAIL_TYPE)
            .detail(detail)
            .build();
        let out = ctguard_aws::client!(aws_sdk_eventbridge, &self.config_at(at).await)
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| SendError::PutEvents(ApiError::from_sdk_text(&e)))?;
        if out.failed_entry_count > 0 {
            let why: Vec<String> = out
                .entries()
                .iter()
                .filter_map(|e| e.error_code().map(|c| format!("{c}: {}", e.error_message().unwrap_or(""))))
                .collect();
            return Err(SendError::Refused(why.join("; ")));
        }
        Ok(())
    }

    async fn invoke(&self, at: &Place, endpoint: Option<&str>, payload: &str) -> Result<(), SendError> {
        let cfg = self.config_at(at).await;
        let lambda_cfg = match endpoint {
            Some(e) => cfg.into_builder().endpoint_url(e).build(),
            None => cfg,
        };
        let out = ctguard_aws::client!(aws_sdk_lambda, &lambda_cfg)
            .invoke()
            .function_name(FUNCTION_NAME)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await;
        let failure = |body: &[u8]| {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            SendError::DetectorFailed {
                kind: v["errorType"].as_str().unwrap_or("error").to_string(),
                message: v["errorMessage"].as_str().unwrap_or("(no message)").to_string(),
            }
        };
        match out {
            Ok(o) if o.function_error.is_none() => Ok(()),
            Ok(o) => Err(failure(o.payload.as_ref().map(|b| b.as_ref()).unwrap_or(b""))),
            // Local runtime emulators answer a failed invocation with HTTP 500 and the
            // same error body that Lambda puts under X-Amz-Function-Error.
            Err(e) => match e.raw_response().and_then(|r| r.body().bytes()) {
                Some(body) if serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("errorType").is_some()) => {
                    Err(failure(body))
                }
                _ => Err(SendError::Invoke(ApiError::from_sdk_text(&e))),
            },
        }
    }

    async fn receive(&self, at: &Place, url: &str) -> Result<Vec<String>, ApiError> {
        let out = ctguard_aws::client!(aws_sdk_sqs, &self.config_at(at).await)
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?;
        Ok(out.messages().iter().map(|m| m.body().unwrap_or("null").to_string()).collect())
    }

    async fn state_item_has_ttl(&self, at: &Place, table: &str, pk: &str) -> Result<Option<bool>, ApiError> {
        let item = ctguard_aws::client!(aws_sdk_dynamodb, &self.config_at(at).await)
            .get_item()
            .table_name(table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk_text(&e))?
            .item;
        Ok(item.map(|i| i.contains_key("ttl")))
    }

    async fn remove(&self, c: &Created) -> Result<(), ApiError> {
        let r = match c {
            Created::Subscription { at, arn } => ctguard_aws::client!(aws_sdk_sns, &self.config_at(at).await)
                .unsubscribe()
                .subscription_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ApiError::from_sdk_text(&e)),
            Created::Queue { at, url } => ctguard_aws::client!(aws_sdk_sqs, &self.config_at(at).await)
                .delete_queue()
                .queue_url(url)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ApiError::from_sdk_text(&e)),
            Created::StateItem { at, table, pk } => ctguard_aws::client!(aws_sdk_dynamodb, &self.config_at(at).await)
                .delete_item()
                .table_name(table)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
                .send()
                .await
                .map(|_| ())
                .or_else(|e| {
                    // No table, no item: nothing was left behind.
                    if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
                        Ok(())
                    } else {
                        Err(ApiError::from_sdk_text(&e))
                    }
                }),
        };
        r
    }
}

/// The closing line: how many targets passed and the send → alert latency across targets
/// (median, min, max), over every target where an alert arrived.
pub fn summary(outcomes: &[Outcome], via: Via) -> String {
    let passed = outcomes.iter().filter(|o| o.pass).count();
    let mut lat: Vec<u64> = outcomes.iter().filter_map(|o| o.latency_ms).collect();
    lat.sort_unstable();
    let head = format!("{passed} of {} target(s) passed", outcomes.len());
    let (Some(min), Some(max)) = (lat.first(), lat.last()) else { return format!("{head}; no alert arrived") };
    let mid = lat.len() / 2;
    let median = if lat.len() % 2 == 1 { lat[mid] } else { (lat[mid - 1] + lat[mid]) / 2 };
    let hop = match via {
        Via::Eventbridge => "PutEvents",
        Via::Invoke => "Invoke",
    };
    format!("{head}; {hop} → alert latency: median {median} ms (min {min}, max {max}, over {} target(s))", lat.len())
}

/// Per-target results keyed for stable output.
pub fn sorted(outcomes: Vec<Outcome>) -> Vec<Outcome> {
    let mut m: BTreeMap<(String, String), Outcome> = BTreeMap::new();
    for o in outcomes {
        m.insert((o.account.clone(), o.region.clone()), o);
    }
    m.into_values().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// The deployed pipeline in memory: a trust-on-first-use detector per key that publishes
    /// an SNS-shaped alert to every subscribed queue when a key is used from a second address.
    #[derive(Default)]
    struct FakeVerify {
        /// Alert on every use after the first, the control included (a broken detector).
        alert_every_use: bool,
        /// Subscribe fails (a topic policy that refuses the caller).
        refuse_subscription: bool,
        first_ip: StdMutex<HashMap<String, String>>,
        queued: StdMutex<Vec<String>>,
        live: StdMutex<Vec<String>>,
        removed: StdMutex<Vec<String>>,
    }

    impl FakeVerify {
        fn detect(&self, detail: &Value) {
            let key = detail["userIdentity"]["accessKeyId"].as_str().unwrap_or_default().to_string();
            let ip = detail["sourceIPAddress"].as_str().unwrap_or_default().to_string();
            let mut first = self.first_ip.lock().unwrap();
            let first_use = !first.contains_key(&key);
            let trusted = first.entry(key.clone()).or_insert_with(|| ip.clone()).clone();
            let alert = if self.alert_every_use { !first_use } else { trusted != ip };
            // Published to the topic; only a subscribed queue receives it.
            let subscribed = self.live.lock().unwrap().iter().any(|l| l.starts_with("sub"));
            if alert && subscribed {
                let alert = json!({"access_key_id": key, "seen_identity": format!("ip:{ip}"), "synthetic": true});
                self.queued.lock().unwrap().push(json!({"Message": alert.to_string()}).to_string());
            }
        }
    }

    impl VerifyApi for FakeVerify {
        async fn function(&self, _at: &Place) -> Result<FunctionFacts, ApiError> {
            Ok(FunctionFacts {
                table: Some("ctguard-state".into()),
                table_region: Some("us-east-1".into()),
                topic_arn: Some("arn:aws:sns:us-east-1:111122223333:ctguard-alerts".into()),
                ..facts()
            })
        }
        async fn rule(&self, at: &Place) -> Result<RuleFacts, ApiError> {
            Ok(RuleFacts {
                state: Some(EXPECTED_RULE_STATE.into()),
                pattern: Some(region_pattern()),
                arn: Some(format!("arn:aws:events:{}:{}:rule/{RULE_NAME}", at.region, at.account)),
            })
        }
        async fn function_policy(&self, at: &Place) -> Result<Option<String>, ApiError> {
            // What the region template grants: EventBridge, for the rule, from its account.
            let rule = format!("arn:aws:events:{}:{}:rule/{RULE_NAME}", at.region, at.account);
            Ok(Some(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction",
                    "Condition": {"ArnLike": {"AWS:SourceArn": rule}, "StringEquals": {"AWS:SourceAccount": at.account}}}]})
                .to_string(),
            ))
        }
        async fn test_pattern(&self, _at: &Place, pattern: &str, event: &str) -> Result<bool, ApiError> {
            let (p, e): (Value, Value) = (serde_json::from_str(pattern).unwrap(), serde_json::from_str(event).unwrap());
            Ok(pattern_matches(&p, &e))
        }
        async fn ttl_status(&self, _at: &Place, _table: &str) -> Result<Option<String>, ApiError> {
            Ok(Some("ENABLED".into()))
        }
        async fn trail(&self, _t: &Target) -> Result<TrailVerdict, ApiError> {
            Ok(TrailVerdict::Ok { name: "org-trail".into() })
        }
        async fn create_queue(&self, _at: &Place, name: &str, _policy: &str) -> Result<String, ApiError> {
            self.live.lock().unwrap().push(format!("queue {name}"));
            Ok(format!("https://sqs/{name}"))
        }
        async fn subscribe(&self, _at: &Place, _t: &str, queue_arn: &str, filter: &str) -> Result<String, ApiError> {
            if self.refuse_subscription {
                return Err(ApiError::new("AuthorizationError: not allowed"));
            }
            assert!(filter.contains("synthetic"), "only synthetic alerts are observed");
            self.live.lock().unwrap().push(format!("sub {queue_arn}"));
            Ok(format!("{queue_arn}:sub"))
        }
        async fn put_event(&self, _at: &Place, detail: &str) -> Result<(), SendError> {
            self.detect(&serde_json::from_str(detail).unwrap());
            Ok(())
        }
        async fn invoke(&self, _at: &Place, _endpoint: Option<&str>, payload: &str) -> Result<(), SendError> {
            let ev: Value = serde_json::from_str(payload).unwrap();
            self.detect(&ev["detail"]);
            Ok(())
        }
        async fn receive(&self, _at: &Place, _url: &str) -> Result<Vec<String>, ApiError> {
            Ok(std::mem::take(&mut *self.queued.lock().unwrap()))
        }
        async fn state_item_has_ttl(&self, _at: &Place, _table: &str, pk: &str) -> Result<Option<bool>, ApiError> {
            let key = pk.trim_start_matches("K#");
            Ok(self.first_ip.lock().unwrap().contains_key(key).then_some(true))
        }
        async fn remove(&self, c: &Created) -> Result<(), ApiError> {
            self.removed.lock().unwrap().push(c.to_string());
            Ok(())
        }
    }

    fn opts(via: Via) -> Options {
        Options {
            via,
            timeout: Duration::from_secs(5),
            invoke_endpoint: None,
            bundled_sha256_b64: "abc=".into(),
            bundled_version: "0.1.0".into(),
        }
    }

    #[tokio::test]
    async fn a_healthy_pipeline_passes_and_everything_created_is_removed() {
        let fake = FakeVerify::default();
        let cleanup = Cleanup::default();
        let t = Target::new("111122223333", "us-east-1");
        let o = verify_target(&fake, &t, &opts(Via::Invoke), &cleanup, 42).await;
        assert!(o.pass, "{o:#?}");
        assert!(o.latency_ms.is_some());
        assert!(o.checks.iter().any(|c| c.name == "control" && c.ok == Some(true)));
        assert!(cleanup.run(&fake).await.is_empty());
        let removed = fake.removed.lock().unwrap().clone();
        assert_eq!(removed.len(), 4, "queue, subscription, two state items: {removed:?}");
        assert!(removed[0].starts_with("state item"), "latest first: {removed:?}");
        assert!(removed[3].starts_with("queue"), "{removed:?}");
        assert!(cleanup.run(&fake).await.is_empty(), "a second run has nothing left to remove");
        assert_eq!(fake.removed.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn an_alert_for_the_control_fails_the_control_check() {
        let fake = FakeVerify { alert_every_use: true, ..Default::default() };
        let cleanup = Cleanup::default();
        let t = Target::new("111122223333", "us-east-1");
        let o = verify_target(&fake, &t, &opts(Via::Invoke), &cleanup, 7).await;
        assert!(!o.pass);
        assert!(o.reason.contains("control"), "{}", o.reason);
        cleanup.run(&fake).await;
    }

    #[tokio::test]
    async fn a_refused_subscription_fails_and_still_removes_the_queue() {
        let fake = FakeVerify { refuse_subscription: true, ..Default::default() };
        let cleanup = Cleanup::default();
        let t = Target::new("111122223333", "us-east-1");
        let o = verify_target(&fake, &t, &opts(Via::Eventbridge), &cleanup, 9).await;
        assert!(!o.pass);
        assert!(o.reason.contains("accepts no subscription"), "{}", o.reason);
        assert!(fake.first_ip.lock().unwrap().is_empty(), "nothing sent without an observer");
        cleanup.run(&fake).await;
        let removed = fake.removed.lock().unwrap().clone();
        assert_eq!(removed.len(), 1);
        assert!(removed[0].starts_with("queue https://sqs/ctguard-verify-"), "{removed:?}");
    }

    fn region_pattern() -> Value {
        let t: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(include_str!("../../templates/ctguard-region.yaml")).expect("template YAML");
        let p = &t["Resources"]["DetectorRule"]["Properties"]["EventPattern"];
        serde_json::to_value(p).expect("pattern as JSON")
    }

    #[test]
    fn the_shipped_pattern_matches_read_only_asia_calls_and_verify_events_only() {
        let p = region_pattern();
        assert!(pattern_matches(&p, &sample_read_only_event()));
        assert!(!pattern_matches(&p, &sample_long_term_key_event()));
        let [a, b, c] = synthetic_events(&synthetic_key(7), "111122223333", "eu-west-1", 1_714_557_600_000, 7);
        for e in [a, b, c] {
            assert!(pattern_matches(&p, &e), "verify's events must reach the detector: {e}");
        }
        let mut foreign = sample_read_only_event();
        foreign["source"] = json!("evil.app");
        assert!(!pattern_matches(&p, &foreign));
    }

    #[test]
    fn matcher_operators() {
        let ev = json!({"a": "aws.s3", "b": {"c": "x.amazonaws.com"}, "l": ["p", "q"]});
        assert!(pattern_matches(&json!({"a": [{"prefix": "aws."}]}), &ev));
        assert!(!pattern_matches(&json!({"a": [{"prefix": "gcp."}]}), &ev));
        assert!(pattern_matches(&json!({"b": {"c": [{"suffix": ".amazonaws.com"}]}}), &ev));
        assert!(!pattern_matches(&json!({"b": {"c": [{"anything-but": {"suffix": ".amazonaws.com"}}]}}), &ev));
        assert!(pattern_matches(&json!({"l": ["q"]}), &ev));
        assert!(pattern_matches(&json!({"z": [{"exists": false}]}), &ev));
        assert!(pattern_matches(&json!({"$or": [{"a": ["no"]}, {"l": ["p"]}]}), &ev));
        assert!(!pattern_matches(&json!({"a": [{"unknown-op": 1}]}), &ev));
    }

    #[test]
    fn synthetic_keys_can_never_be_real() {
        for seed in 0..1000 {
            let k = synthetic_key(seed);
            assert_eq!(k.len(), 20);
            assert!(k.starts_with("ASIA"));
            assert!(ctguard_detector::engine::is_synthetic_key(&k), "{k}");
        }
        assert_ne!(synthetic_key(1), synthetic_key(2));
    }

    #[test]
    fn synthetic_events_use_documentation_addresses() {
        let evs = synthetic_events("ASIA0CTGVAAAAAAAAAAA", "111122223333", "us-east-1", 1_714_557_600_000, 3);
        let ips: Vec<&str> = evs.iter().map(|e| e["detail"]["sourceIPAddress"].as_str().unwrap_or("")).collect();
        assert!(ips[0].starts_with("192.0.2.") && ips[1] == ips[0] && ips[2].starts_with("198.51.100."), "{ips:?}");
        let t: Vec<&str> = evs.iter().map(|e| e["detail"]["eventTime"].as_str().unwrap_or("")).collect();
        assert!(t[0] < t[1] && t[1] < t[2], "{t:?}");
    }

    fn facts() -> FunctionFacts {
        FunctionFacts { code_sha256: Some("abc=".into()), version: Some("0.1.0".into()), ..Default::default() }
    }

    #[test]
    fn static_checks_fail_with_reasons() {
        let p = region_pattern();
        let ok =
            static_checks(Some(EXPECTED_RULE_STATE), Some(&p), None, Some(&facts()), "abc=", "0.1.0", Some("ENABLED"));
        assert!(ok.iter().all(|c| c.ok == Some(true)), "{ok:#?}");
        let bad =
            static_checks(Some("ENABLED"), Some(&p), Some(false), Some(&facts()), "xyz=", "0.2.0", Some("DISABLED"));
        let failed: Vec<_> = bad.iter().filter(|c| c.ok == Some(false)).map(|c| c.name).collect();
        assert_eq!(failed, vec!["rule state", "event pattern", "function", "state table TTL"]);
        assert!(bad[0].detail.contains("read-only"));
        let none = static_checks(None, None, None, None, "abc=", "0.1.0", None);
        assert!(none.iter().all(|c| c.ok == Some(false)));
    }

    #[test]
    fn outcome_needs_the_end_to_end_alert() {
        let t = Target::new("111122223333", "us-east-1");
        let o = Outcome::from_checks(&t, vec![Check::pass("rule state", "")], None);
        assert!(!o.pass);
        let o = Outcome::from_checks(&t, vec![Check::pass("alert", ""), Check::unknown("trail", "x")], Some(5));
        assert!(o.pass);
        let o = Outcome::from_checks(&t, vec![Check::pass("alert", ""), Check::fail("state", "gone")], Some(5));
        assert!(!o.pass);
        assert!(o.reason.contains("state: gone"));
    }

    fn outcome(pass: bool, latency_ms: Option<u64>) -> Outcome {
        Outcome {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            pass,
            latency_ms,
            reason: String::new(),
            checks: Vec::new(),
        }
    }

    #[test]
    fn summary_gives_the_median_latency() {
        let odd = [outcome(true, Some(90)), outcome(true, Some(10)), outcome(false, Some(40)), outcome(false, None)];
        assert_eq!(
            summary(&odd, Via::Eventbridge),
            "2 of 4 target(s) passed; PutEvents → alert latency: median 40 ms (min 10, max 90, over 3 target(s))"
        );
        let even = [outcome(true, Some(10)), outcome(true, Some(31))];
        assert!(
            summary(&even, Via::Invoke).contains("Invoke → alert latency: median 20 ms"),
            "{}",
            summary(&even, Via::Invoke)
        );
        assert_eq!(summary(&[outcome(false, None)], Via::Eventbridge), "0 of 1 target(s) passed; no alert arrived");
        assert_eq!(summary(&[], Via::Eventbridge), "0 of 0 target(s) passed; no alert arrived");
    }

    const RULE: &str = "arn:aws:events:us-east-1:111122223333:rule/ctguard-detector";

    fn policy(statement: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()
    }

    #[test]
    fn invoke_permission_needs_an_allow_for_the_rule() {
        let cfn = json!({"Sid": "x", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:us-east-1:111122223333:function:ctguard-detector",
            "Condition": {"ArnLike": {"AWS:SourceArn": RULE}, "StringEquals": {"AWS:SourceAccount": "111122223333"}}});
        assert_eq!(invoke_permission(Some(&policy(cfn.clone())), Some(RULE), "111122223333").ok, Some(true));
        // Another rule, another account, another principal, another action: not this rule's.
        let other = RULE.replace("ctguard-detector", "other");
        assert_eq!(invoke_permission(Some(&policy(cfn.clone())), Some(&other), "111122223333").ok, Some(false));
        assert_eq!(invoke_permission(Some(&policy(cfn.clone())), Some(RULE), "444455556666").ok, Some(false));
        let mut s3 = cfn.clone();
        s3["Principal"]["Service"] = json!("s3.amazonaws.com");
        assert_eq!(invoke_permission(Some(&policy(s3)), Some(RULE), "111122223333").ok, Some(false));
        let mut get = cfn.clone();
        get["Action"] = json!(["lambda:GetFunction"]);
        assert_eq!(invoke_permission(Some(&policy(get)), Some(RULE), "111122223333").ok, Some(false));
        // Wildcards and no conditions admit it; an unknown condition is not counted; a Deny wins.
        let wide = json!({"Effect": "Allow", "Principal": "*", "Action": "lambda:*",
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:events:*:111122223333:rule/*"}}});
        assert_eq!(invoke_permission(Some(&policy(wide)), Some(RULE), "111122223333").ok, Some(true));
        let odd = json!({"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}});
        assert_eq!(invoke_permission(Some(&policy(odd)), Some(RULE), "111122223333").ok, Some(false));
        let deny =
            json!({"Version": "2012-10-17", "Statement": [cfn, {"Effect": "Deny", "Principal": "*", "Action": "*"}]});
        let c = invoke_permission(Some(&deny.to_string()), Some(RULE), "111122223333");
        assert_eq!(c.ok, Some(false));
        assert!(c.detail.contains("denies"), "{}", c.detail);
        // No policy at all, garbage, unknown rule.
        let none = invoke_permission(None, Some(RULE), "111122223333");
        assert_eq!(none.ok, Some(false));
        assert!(none.detail.contains("no resource policy"));
        assert_eq!(invoke_permission(Some("{not json"), Some(RULE), "111122223333").ok, None);
        assert_eq!(invoke_permission(Some("{}"), None, "111122223333").ok, None);
        assert_eq!(invoke_permission(Some(r#"{"Statement": 7}"#), Some(RULE), "111122223333").ok, Some(false));
    }
}
