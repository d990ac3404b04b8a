//! Containment that keeps the workload running: an inline deny policy on the role that blocks
//! one compromised session everywhere except from its trusted network identities.
//!
//! The statement denies every action to the session (`aws:userid` = `ROLEID:SESSION`, which
//! every credential of that session shares, including an EC2 instance's rotated ones) when
//! the call comes neither from a trusted public address (`aws:SourceIp`) nor through a trusted
//! VPC endpoint (`aws:SourceVpce`), and is not made by an AWS service on the session's behalf
//! (`aws:ViaAWSService`). Conditions of one statement are ANDed, so the deny applies only when
//! all of them hold:
//! - `NotIpAddress aws:SourceIp`: a call through a VPC endpoint has no `aws:SourceIp`; a
//!   negated operator on a missing key matches, so such calls fall to the next condition;
//! - `StringNotEqualsIfExists aws:SourceVpce`: a public call has no `aws:SourceVpce` and
//!   matches; a call through a trusted endpoint does not;
//! - `BoolIfExists aws:ViaAWSService false`: calls made by a service for the session (KMS by
//!   S3, CloudFormation) are left alone, as their source is the service's.
//!
//! An explicit deny beats every allow, so the legitimate host keeps working while the thief's
//! copy of the credentials is refused. The policy is named after the session, so `release`
//! finds it without state, and re-running `contain` replaces it (idempotent).
//!
//! The same builder serves `ctguard contain` (a person reads the policy and approves it) and
//! the detector's opt-in automatic containment, which acts only on HIGH,
//! in-order alerts of an EC2 instance's credentials used from a public address, only when
//! every trusted address was first used by that very session, only on roles of its own account
//! that carry the opt-in tag [`AUTO_CONTAIN_TAG`], and never replaces a containment already on
//! the session ([`auto_eligible`], [`auto_apply`]). Its deny is [`Containment::public_only`].
//! The pieces here are pure, or generic over [`RolePolicies`]; the IAM calls live with their
//! callers (the installer's SDK client, the Lambda's signed Query calls).

use std::future::Future;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::alert::{Alert, Severity};
use crate::identity::NetworkIdentity;
use crate::is_account_id;
use crate::notify::role_session;

/// Prefix of every policy ctguard attaches; `release` deletes only names it could have written.
pub const POLICY_PREFIX: &str = "ctguard-contain-";

/// The role tag that opts a role into automatic containment (value [`AUTO_CONTAIN_VALUE`]).
/// The detector's IAM permissions are conditioned on it (`aws:ResourceTag/ctguard-auto-contain`)
/// and the detector checks it again on the role it reads.
pub const AUTO_CONTAIN_TAG: &str = "ctguard-auto-contain";
pub const AUTO_CONTAIN_VALUE: &str = "true";

#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Iam(String),
    /// IAM refused the call (`AccessDenied`): for the detector, a role without the opt-in tag.
    #[error("{0}")]
    Denied(String),
    /// IAM has no such entity (`NoSuchEntity`): the role or the policy.
    #[error("{0}")]
    NotFound(String),
    /// No record of the alert in the state table, or the table could not be read.
    #[error("{0}")]
    Alert(String),
}

/// IAM's character set for role, session and policy names.
pub fn iam_name(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// `ip` or `ip/prefix`, as a CIDR; `None` when it is neither.
pub fn cidr(s: &str) -> Option<String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some(format!("{ip}/{len}"))
}

fn is_vpce(s: &str) -> bool {
    s.strip_prefix("vpce-")
        .is_some_and(|h| !h.is_empty() && h.len() <= 32 && h.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// What to contain: the session of a role in an account, and where it may still call from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Containment {
    pub account: String,
    pub role: String,
    pub session: String,
    /// The compromised key, for the record (the deny covers the whole session).
    pub access_key: Option<String>,
    /// CIDRs (`203.0.113.10/32`, `2001:db8::/64`).
    pub allow_ips: Vec<String>,
    pub allow_vpces: Vec<String>,
    /// What automatic containment writes: calls over the internet (no `aws:SourceVpce`) are
    /// denied unless from a trusted address, and calls through a VPC endpoint unless from the
    /// instance's own VPC (`aws:Ec2InstanceSourceVpc`, which its credentials carry). Calls
    /// through the account's own endpoints are trusted without being recorded, so no list of
    /// trusted endpoints could be complete: `allow_vpces` is then not part of the policy.
    pub public_only: bool,
}

impl Containment {
    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<(), ContainError> {
        let bad = |m: String| Err(ContainError::Invalid(m));
        if !is_account_id(&self.account) {
            return bad(format!("account `{}` is not a 12-digit AWS account id", self.account));
        }
        if !iam_name(&self.role, 1, 64) {
            return bad(format!("role `{}` is not an IAM role name", self.role));
        }
        if !iam_name(&self.session, 2, 64) {
            return bad(format!("session `{}` is not a role session name", self.session));
        }
        if let Some(ip) = self.allow_ips.iter().find(|ip| cidr(ip).as_deref() != Some(ip.as_str())) {
            return bad(format!("trusted address `{ip}` is not a CIDR"));
        }
        if let Some(v) = self.allow_vpces.iter().find(|v| !is_vpce(v)) {
            return bad(format!("trusted endpoint `{v}` is not a VPC endpoint id (vpce-…)"));
        }
        if self.allow_ips.is_empty() && self.allow_vpces.is_empty() {
            // Without a trusted identity the deny would stop the legitimate workload too.
            return bad(
                "no trusted identity: give --allow-ip and/or --allow-vpce (or an alert with expected identities)"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// The containment an alert calls for: its role and session, its expected identities.
    pub fn from_alert(a: &Alert) -> Result<Containment, ContainError> {
        if a.synthetic || crate::engine::is_synthetic_key(&a.access_key_id) {
            return Err(ContainError::Invalid(format!(
                "alert {} is a synthetic test alert (ctguard verify): there is no session to contain",
                a.id
            )));
        }
        let principal = a.principal_arn.as_deref().unwrap_or("");
        let (role, session) = role_session(principal).ok_or_else(|| {
            ContainError::Invalid(format!(
                "the alert's principal `{principal}` is not an assumed-role session: nothing to contain by policy"
            ))
        })?;
        // The role's own account (the session ARN's), which differs from the account the calls
        // were made against when another account's role session was used there.
        let account = principal
            .split(':')
            .nth(4)
            .filter(|a| is_account_id(a))
            .map(str::to_string)
            .or_else(|| a.account.clone())
            .ok_or_else(|| ContainError::Invalid("the alert names no account".into()))?;
        let mut c = Containment {
            account,
            role: role.to_string(),
            session: session.to_string(),
            access_key: Some(a.access_key_id.clone()),
            allow_ips: Vec::new(),
            allow_vpces: Vec::new(),
            public_only: false,
        };
        for e in &a.expected {
            match NetworkIdentity::from_key(&e.identity) {
                Some(NetworkIdentity::V4(ip)) => c.allow_ips.push(format!("{ip}/32")),
                Some(NetworkIdentity::V6Net(net)) => c.allow_ips.push(format!("{net}/64")),
                Some(NetworkIdentity::VpcEndpoint { id, .. }) => c.allow_vpces.push(id),
                _ => {}
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// The inline policy's name on the role.
    pub fn policy_name(&self) -> String {
        format!("{POLICY_PREFIX}{}", self.session)
    }

    /// The command that removes this containment.
    pub fn release_command(&self) -> String {
        format!("ctguard release --account {} --role {} --session {}", self.account, self.role, self.session)
    }

    /// The deny policy, given the role's unique id (`AROA…`, from `iam:GetRole`).
    pub fn policy(&self, role_id: &str) -> Value {
        let mut cond = serde_json::Map::new();
        cond.insert("StringEquals".into(), json!({ "aws:userid": format!("{role_id}:{}", self.session) }));
        if !self.allow_ips.is_empty() {
            cond.insert("NotIpAddress".into(), json!({ "aws:SourceIp": self.allow_ips }));
        }
        if self.public_only {
            cond.insert("Null".into(), json!({ "aws:SourceVpce": "true" }));
        } else if !self.allow_vpces.is_empty() {
            cond.insert("StringNotEqualsIfExists".into(), json!({ "aws:SourceVpce": self.allow_vpces }));
        }
        cond.insert("BoolIfExists".into(), json!({ "aws:ViaAWSService": "false" }));
        let mut statements = vec![json!({
            "Sid": "CtguardContainSession",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": Value::Object(cond),
        })];
        if self.public_only {
            // Through a VPC endpoint, only from the instance's own VPC: an EC2 instance's
            // credentials carry the VPC they were delivered to (`aws:Ec2InstanceSourceVpc`),
            // so a thief calling through an endpoint in a VPC of their own is denied too.
            statements.push(json!({
                "Sid": "CtguardContainSessionOtherVpcs",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": { "aws:userid": format!("{role_id}:{}", self.session) },
                    "Null": { "aws:SourceVpc": "false" },
                    "StringNotEquals": { "aws:SourceVpc": "${aws:Ec2InstanceSourceVpc}" },
                    "BoolIfExists": { "aws:ViaAWSService": "false" },
                },
            }));
        }
        json!({ "Version": "2012-10-17", "Statement": statements })
    }
}

/// A policy document as IAM returns it (URL-encoded JSON): the JSON, or the decoded text as a
/// string when it is not JSON. Malformed escapes are kept as they are.
pub fn policy_document(raw: &str) -> Value {
    let text = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A role as containment needs it: its unique id and its tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// `AROA…`
    pub id: String,
    pub tags: Vec<(String, String)>,
}

impl Role {
    /// Whether the role opted into automatic containment. IAM tag keys are matched without
    /// regard to case (as IAM does); the value exactly.
    pub fn opted_in(&self) -> bool {
        self.tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(AUTO_CONTAIN_TAG) && v == AUTO_CONTAIN_VALUE)
    }
}

/// The IAM calls containment needs, on one account.
pub trait RolePolicies {
    fn role(&self, role: &str) -> impl Future<Output = Result<Role, ContainError>> + Send;
    /// The inline policy's document, or `None` when the role has no such policy.
    fn get(&self, role: &str, name: &str) -> impl Future<Output = Result<Option<Value>, ContainError>> + Send;
    fn put(&self, role: &str, name: &str, doc: &Value) -> impl Future<Output = Result<(), ContainError>> + Send;
    /// Deletes the inline policy; `false` when it was not there.
    fn delete(&self, role: &str, name: &str) -> impl Future<Output = Result<bool, ContainError>> + Send;
}

/// Attaches the deny policy; returns the document attached.
pub async fn contain<R: RolePolicies>(iam: &R, c: &Containment) -> Result<Value, ContainError> {
    c.validate()?;
    let doc = c.policy(&iam.role(&c.role).await?.id);
    iam.put(&c.role, &c.policy_name(), &doc).await?;
    Ok(doc)
}

/// Removes the deny policy; `false` when there was none.
pub async fn release<R: RolePolicies>(iam: &R, role: &str, session: &str) -> Result<bool, ContainError> {
    if !iam_name(role, 1, 64) || !iam_name(session, 2, 64) {
        return Err(ContainError::Invalid(format!("`{role}`/`{session}` is not a role and session name")));
    }
    iam.delete(role, &format!("{POLICY_PREFIX}{session}")).await
}

/// What the detector's automatic containment did for one alert; carried in the alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoContainment {
    pub status: AutoStatus,
    /// The role and the inline policy, when the alert named a containable session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Why, in a sentence.
    pub detail: String,
    /// How to undo it (when applied or already there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutoStatus {
    /// The deny policy is on the role (written now, or found identical).
    Applied,
    /// A containment of this session was already there, different (a person's, with more
    /// trusted identities, or an earlier alert's): left as it is.
    AlreadyContained,
    /// Not a HIGH alert of an EC2 instance's credentials of this account's role.
    NotEligible,
    /// The role does not carry the opt-in tag (or the detector may not read it).
    NotOptedIn,
    /// IAM failed, or took too long.
    Failed,
}

impl AutoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoStatus::Applied => "applied",
            AutoStatus::AlreadyContained => "already-contained",
            AutoStatus::NotEligible => "not-eligible",
            AutoStatus::NotOptedIn => "not-opted-in",
            AutoStatus::Failed => "failed",
        }
    }
}

/// The containment the detector may apply by itself for `alert` in `account` (its own), or
/// why not. Only when a person would most likely do the same:
/// - a HIGH alert, in order (not one whose trusted call arrived late), never a synthetic one;
/// - of an EC2 instance's credentials, used from a public address (a VPC endpoint identity is
///   left to a person);
/// - for a role of `account` (IAM is per account);
/// - every trusted address was first used by this very session (`principal_arn` of its first
///   call): the instance's scope is keyed by account and instance id, and a session of another
///   role named after the instance must not decide which addresses the deny spares.
///
/// The deny is [`Containment::public_only`], and `networks` (the allowlist's CIDRs for the
/// role: calls from them are accepted without being recorded) are trusted too.
pub fn auto_eligible(alert: &Alert, account: &str, networks: &[String]) -> Result<Containment, String> {
    if alert.synthetic {
        return Err("a synthetic test alert".into());
    }
    if alert.severity != Severity::High {
        return Err(format!("a {} alert (only HIGH alerts are contained automatically)", alert.severity.as_str()));
    }
    if alert.out_of_order {
        // The trusted identity's call was delivered late: which of the two came first is what
        // the alert is about, so neither may be denied without a person.
        return Err("an out-of-order alert (which identity came first is in doubt)".into());
    }
    if alert.scope != "instance" {
        return Err(format!(
            "trust scope `{}` (only EC2 instance credentials are contained automatically)",
            crate::notify::clean(&alert.scope)
        ));
    }
    let public = |id: &str| NetworkIdentity::from_key(id).and_then(|i| i.ip()).is_some();
    if !public(&alert.seen_identity) {
        return Err(format!(
            "the credentials were used from {} (only uses from a public address are contained automatically)",
            crate::notify::clean(&alert.seen_identity)
        ));
    }
    let mut c = Containment::from_alert(alert).map_err(|e| e.to_string())?;
    if c.account != account {
        return Err(format!("the role is in account {}, not this detector's ({account})", c.account));
    }
    for e in alert.expected.iter().filter(|e| public(&e.identity)) {
        if e.first_seen.principal_arn.is_none() || e.first_seen.principal_arn != alert.principal_arn {
            return Err(format!(
                "the trusted address {} was first used by {}, not by this session",
                crate::notify::clean(&e.identity),
                e.first_seen
                    .principal_arn
                    .as_deref()
                    .map(crate::notify::clean)
                    .unwrap_or_else(|| "an unrecorded caller".into())
            ));
        }
    }
    c.public_only = true;
    for n in networks {
        let n = cidr(n).ok_or_else(|| format!("allowlisted network `{}` is not a CIDR", crate::notify::clean(n)))?;
        if !c.allow_ips.contains(&n) {
            c.allow_ips.push(n);
        }
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// What became of a containment whose IAM calls did not finish in time: the role and the
/// policy are known, whether the policy landed is not.
pub fn auto_timed_out(c: &Containment, budget: std::time::Duration) -> AutoContainment {
    AutoContainment {
        status: AutoStatus::Failed,
        role: Some(c.role.clone()),
        policy: Some(c.policy_name()),
        detail: format!(
            "IAM did not answer within {budget:?}: the deny may or may not be on role {}; check it, and contain \
             by hand if it is not",
            c.role
        ),
        release: Some(c.release_command()),
    }
}

/// The outcome for an alert [`auto_eligible`] refused.
pub fn not_eligible(why: &str) -> AutoContainment {
    AutoContainment {
        status: AutoStatus::NotEligible,
        role: None,
        policy: None,
        detail: format!("not contained automatically: {why}"),
        release: None,
    }
}

/// Applies an eligible containment: the opt-in tag read on the role, an existing containment
/// respected, then the deny policy.
pub async fn auto_apply<R: RolePolicies>(iam: &R, c: &Containment) -> AutoContainment {
    let name = c.policy_name();
    let out = |status: AutoStatus, detail: String| AutoContainment {
        status,
        role: Some(c.role.clone()),
        policy: Some(name.clone()),
        release: (status == AutoStatus::Applied).then(|| c.release_command()),
        detail,
    };
    let not_tagged = || {
        format!(
            "not contained automatically: role {} does not carry the tag {AUTO_CONTAIN_TAG}={AUTO_CONTAIN_VALUE}",
            c.role
        )
    };
    let role = match iam.role(&c.role).await {
        Ok(r) if r.opted_in() => r,
        Ok(_) => return out(AutoStatus::NotOptedIn, not_tagged()),
        // The detector's permission is conditioned on the tag: a refusal means no tag (or a
        // service control policy or permissions boundary that denies it).
        Err(ContainError::Denied(e)) => {
            return out(AutoStatus::NotOptedIn, format!("{}, or IAM denies the detector otherwise ({e})", not_tagged()))
        }
        Err(e) => return out(AutoStatus::Failed, format!("reading role {}: {e}", c.role)),
    };
    let doc = c.policy(&role.id);
    match iam.get(&c.role, &name).await {
        Ok(Some(existing)) if existing == doc => {
            return out(AutoStatus::Applied, format!("the session was already denied by {name} (the same policy)"))
        }
        Ok(Some(_)) => {
            return out(
                AutoStatus::AlreadyContained,
                format!(
                    "role {} already has a containment {name} of this session (a person's or an earlier alert's): \
                     left as it is; `{}` removes it",
                    c.role,
                    c.release_command()
                ),
            )
        }
        Ok(None) => {}
        Err(e) => return out(AutoStatus::Failed, format!("reading policy {name}: {e}")),
    }
    match iam.put(&c.role, &name, &doc).await {
        Ok(()) => out(
            AutoStatus::Applied,
            format!(
                "session {} of role {} is denied over the internet except from {} (calls through VPC endpoints and \
                 by AWS services for it are left alone)",
                c.session,
                c.role,
                if c.allow_ips.is_empty() { "nowhere".to_string() } else { c.allow_ips.join(", ") }
            ),
        ),
        Err(e) => out(AutoStatus::Failed, format!("attaching {name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    fn c() -> Containment {
        Containment {
            account: "123456789012".into(),
            role: "app".into(),
            session: "i-0123456789abcdef0".into(),
            access_key: Some("ASIAQWERTYQWERTYQWER".into()),
            allow_ips: vec!["203.0.113.10/32".into()],
            allow_vpces: vec!["vpce-0abc123".into()],
            public_only: false,
        }
    }

    #[test]
    fn the_deny_names_the_session_and_spares_trusted_identities_and_services() {
        let p = c().policy("AROAEXAMPLEID");
        let s = &p["Statement"][0];
        assert_eq!(
            (s["Effect"].as_str(), s["Action"].as_str(), s["Resource"].as_str()),
            (Some("Deny"), Some("*"), Some("*"))
        );
        let cond = s["Condition"].as_object().expect("conditions");
        assert_eq!(cond.len(), 4, "{cond:?}");
        assert_eq!(cond["StringEquals"], json!({"aws:userid": "AROAEXAMPLEID:i-0123456789abcdef0"}));
        assert_eq!(cond["NotIpAddress"], json!({"aws:SourceIp": ["203.0.113.10/32"]}));
        // IfExists: a public call has no SourceVpce and must still be denied.
        assert_eq!(cond["StringNotEqualsIfExists"], json!({"aws:SourceVpce": ["vpce-0abc123"]}));
        assert_eq!(cond["BoolIfExists"], json!({"aws:ViaAWSService": "false"}));
        assert_eq!(p["Version"], "2012-10-17");
    }

    #[test]
    fn absent_kinds_of_trust_add_no_condition() {
        let mut only_ip = c();
        only_ip.allow_vpces.clear();
        let p = only_ip.policy("AROAX");
        let cond = p["Statement"][0]["Condition"].as_object().expect("conditions").clone();
        assert!(!cond.contains_key("StringNotEqualsIfExists"), "no vpce condition: any endpoint call is denied");
        let mut only_vpce = c();
        only_vpce.allow_ips.clear();
        let p = only_vpce.policy("AROAX");
        assert!(p["Statement"][0]["Condition"].get("NotIpAddress").is_none());
    }

    /// A corruption of a valid containment, and the field its error must name.
    type Case = (fn(&mut Containment), &'static str);

    #[test]
    fn bad_input_is_refused_with_the_field_named() {
        let cases: Vec<Case> = vec![
            (|c| c.account = "12345".into(), "account"),
            (|c| c.role = "a b".into(), "role"),
            (|c| c.session = "x".into(), "session"),
            (|c| c.session = "s\"}],\"x".into(), "session"),
            (|c| c.allow_ips = vec!["203.0.113.10".into()], "not a CIDR"),
            (|c| c.allow_ips = vec!["203.0.113.10/33".into()], "not a CIDR"),
            (|c| c.allow_vpces = vec!["vpc-1".into()], "VPC endpoint"),
            (
                |c| {
                    c.allow_ips.clear();
                    c.allow_vpces.clear()
                },
                "no trusted identity",
            ),
        ];
        for (f, want) in cases {
            let mut x = c();
            f(&mut x);
            let e = x.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(c().validate().is_ok());
    }

    #[test]
    fn policy_documents_are_decoded_keeping_malformed_escapes() {
        assert_eq!(policy_document("%7B%22a%22%3A1%7D"), json!({"a": 1}));
        assert_eq!(policy_document("{\"a\":1}"), json!({"a": 1}), "not encoded: as it is");
        assert_eq!(policy_document("100%"), json!("100%"));
        assert_eq!(policy_document("%zz"), json!("%zz"));
    }

    #[test]
    fn cidrs_are_normalised() {
        assert_eq!(cidr("203.0.113.10").as_deref(), Some("203.0.113.10/32"));
        assert_eq!(cidr("2001:db8::/64").as_deref(), Some("2001:db8::/64"));
        assert_eq!(cidr("2001:db8::1").as_deref(), Some("2001:db8::1/128"));
        assert_eq!(cidr("nope"), None);
        assert_eq!(cidr("10.0.0.0/x"), None);
    }

    /// IAM in memory: roles with tags, inline policies, calls counted, failures injected.
    #[derive(Default)]
    struct FakeIam {
        roles: BTreeMap<String, Role>,
        policies: Mutex<BTreeMap<(String, String), Value>>,
        calls: Mutex<Vec<String>>,
        deny_untagged: bool,
        fail_put: bool,
    }

    impl FakeIam {
        fn with_role(name: &str, tags: &[(&str, &str)]) -> FakeIam {
            let mut f = FakeIam::default();
            let tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            f.roles.insert(name.into(), Role { id: "AROAEXAMPLEID".into(), tags });
            f
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
        fn policy(&self, role: &str, name: &str) -> Option<Value> {
            self.policies.lock().expect("lock").get(&(role.to_string(), name.to_string())).cloned()
        }
    }

    impl RolePolicies for FakeIam {
        async fn role(&self, role: &str) -> Result<Role, ContainError> {
            self.calls.lock().expect("lock").push(format!("GetRole {role}"));
            match self.roles.get(role) {
                Some(r) if self.deny_untagged && !r.opted_in() => Err(ContainError::Denied("AccessDenied".into())),
                Some(r) => Ok(r.clone()),
                None => Err(ContainError::NotFound("iam:GetRole: NoSuchEntity".into())),
            }
        }
        async fn get(&self, role: &str, name: &str) -> Result<Option<Value>, ContainError> {
            self.calls.lock().expect("lock").push(format!("GetRolePolicy {role} {name}"));
            Ok(self.policy(role, name))
        }
        async fn put(&self, role: &str, name: &str, doc: &Value) -> Result<(), ContainError> {
            self.calls.lock().expect("lock").push(format!("PutRolePolicy {role} {name}"));
            if self.fail_put {
                return Err(ContainError::Iam("iam:PutRolePolicy: throttled".into()));
            }
            self.policies.lock().expect("lock").insert((role.into(), name.into()), doc.clone());
            Ok(())
        }
        async fn delete(&self, role: &str, name: &str) -> Result<bool, ContainError> {
            Ok(self.policies.lock().expect("lock").remove(&(role.to_string(), name.to_string())).is_some())
        }
    }

    /// What the detector does for `alert`: [`auto_eligible`], then [`auto_apply`] (the
    /// bootstrap's notifier puts its time budget around the second).
    async fn auto_contain<R: RolePolicies>(
        iam: &R,
        alert: &Alert,
        account: &str,
        networks: &[String],
    ) -> AutoContainment {
        match auto_eligible(alert, account, networks) {
            Ok(c) => auto_apply(iam, &c).await,
            Err(why) => not_eligible(&why),
        }
    }

    const ACCT: &str = "123456789012";
    const NAME: &str = "ctguard-contain-i-0123456789abcdef0";

    fn alert() -> Alert {
        let mut a = crate::notify::tests::sample(false);
        a.severity = Severity::High;
        a.scope = "instance".into();
        a
    }

    #[tokio::test]
    async fn an_opted_in_instance_role_is_contained_once_and_a_retry_agrees() {
        let iam = FakeIam::with_role("app", &[("Ctguard-Auto-Contain", "true")]);
        let out = auto_contain(&iam, &alert(), ACCT, &[]).await;
        assert_eq!(out.status, AutoStatus::Applied, "{out:?}");
        assert_eq!((out.role.as_deref(), out.policy.as_deref()), (Some("app"), Some(NAME)));
        let release = out.release.expect("release command");
        assert!(release.contains("ctguard release --account 123456789012 --role app --session i-0123"), "{release}");
        let doc = iam.policy("app", NAME).expect("the deny is attached");
        let want = auto_eligible(&alert(), ACCT, &[]).expect("eligible").policy("AROAEXAMPLEID");
        assert_eq!(doc, want);
        // Over the internet only: calls through any VPC endpoint are left alone.
        let cond = &doc["Statement"][0]["Condition"];
        assert_eq!(cond["Null"], json!({"aws:SourceVpce": "true"}), "{doc}");
        assert!(cond.get("StringNotEqualsIfExists").is_none(), "{doc}");
        assert_eq!(cond["NotIpAddress"]["aws:SourceIp"], json!(["203.0.113.10/32"]));
        // Through an endpoint: from the instance's own VPC only.
        let other = &doc["Statement"][1];
        assert_eq!((other["Effect"].as_str(), other["Action"].as_str()), (Some("Deny"), Some("*")));
        assert_eq!(other["Condition"]["StringEquals"]["aws:userid"], "AROAEXAMPLEID:i-0123456789abcdef0");
        assert_eq!(other["Condition"]["Null"], json!({"aws:SourceVpc": "false"}));
        assert_eq!(other["Condition"]["StringNotEquals"], json!({"aws:SourceVpc": "${aws:Ec2InstanceSourceVpc}"}));
        assert_eq!(other["Condition"]["BoolIfExists"], json!({"aws:ViaAWSService": "false"}));
        assert_eq!(doc["Statement"].as_array().map(Vec::len), Some(2));
        // A person's containment names its trusted endpoints instead: one statement.
        assert_eq!(c().policy("AROAX")["Statement"].as_array().map(Vec::len), Some(1));
        // A retried delivery of the same alert finds the same policy: applied, not rewritten.
        let again = auto_contain(&iam, &alert(), ACCT, &[]).await;
        assert_eq!(again.status, AutoStatus::Applied, "{again:?}");
        assert_eq!(iam.calls().iter().filter(|c| c.starts_with("PutRolePolicy")).count(), 1, "{:?}", iam.calls());
    }

    #[tokio::test]
    async fn a_role_without_the_tag_is_never_written() {
        for (tags, deny) in [
            (vec![], false),
            (vec![("ctguard-auto-contain", "false")], false),
            (vec![("ctguard-auto-contain", "TRUE")], false),
            (vec![("other", "true")], true),
        ] {
            let mut iam = FakeIam::with_role("app", &tags);
            iam.deny_untagged = deny;
            let out = auto_contain(&iam, &alert(), ACCT, &[]).await;
            assert_eq!(out.status, AutoStatus::NotOptedIn, "{tags:?}: {out:?}");
            assert!(out.detail.contains("ctguard-auto-contain=true"), "{}", out.detail);
            assert!(out.release.is_none());
            assert_eq!(iam.calls(), ["GetRole app"], "{tags:?}");
        }
    }

    #[tokio::test]
    async fn an_existing_different_containment_is_left_as_it_is() {
        let iam = FakeIam::with_role("app", &[(AUTO_CONTAIN_TAG, AUTO_CONTAIN_VALUE)]);
        let mut wider = Containment::from_alert(&alert()).expect("containable");
        wider.allow_ips.push("192.0.2.0/24".into());
        iam.put("app", NAME, &wider.policy("AROAEXAMPLEID")).await.expect("a person's containment");
        let out = auto_contain(&iam, &alert(), ACCT, &[]).await;
        assert_eq!(out.status, AutoStatus::AlreadyContained, "{out:?}");
        assert_eq!(iam.policy("app", NAME), Some(wider.policy("AROAEXAMPLEID")), "not overwritten");
        assert!(out.release.is_none(), "not ours to undo: {out:?}");
        assert!(out.detail.contains("ctguard release --account 123456789012 --role app"), "{}", out.detail);
    }

    #[tokio::test]
    async fn only_high_instance_alerts_of_this_account_are_eligible_and_ask_nothing_of_iam() {
        type Change = fn(&mut Alert);
        let cases: [(Change, &str); 9] = [
            (|a| a.seen_identity = "vpce:vpce-0abc@999999999999".into(), "only uses from a public address"),
            (|a| a.expected[0].first_seen.principal_arn = None, "an unrecorded caller"),
            (
                |a| {
                    a.expected[0].first_seen.principal_arn =
                        Some("arn:aws:sts::123456789012:assumed-role/other/i-0123456789abcdef0".into())
                },
                "first used by arn:aws:sts::123456789012:assumed-role/other/i-0123456789abcdef0",
            ),
            (|a| a.out_of_order = true, "out-of-order"),
            (|a| a.severity = Severity::Medium, "MEDIUM"),
            (|a| a.scope = "key".into(), "trust scope `key`"),
            (|a| a.synthetic = true, "synthetic"),
            (
                |a| a.principal_arn = Some("arn:aws:sts::444455556666:assumed-role/app/i-0123456789abcdef0".into()),
                "account 444455556666",
            ),
            (|a| a.principal_arn = Some("arn:aws:iam::123456789012:user/alice".into()), "not an assumed-role"),
        ];
        for (change, want) in cases {
            let iam = FakeIam::with_role("app", &[(AUTO_CONTAIN_TAG, AUTO_CONTAIN_VALUE)]);
            let mut a = alert();
            change(&mut a);
            let out = auto_contain(&iam, &a, ACCT, &[]).await;
            assert_eq!(out.status, AutoStatus::NotEligible, "{want}: {out:?}");
            assert!(out.detail.contains(want), "{want}: {}", out.detail);
            assert!(iam.calls().is_empty(), "{want}: {:?}", iam.calls());
        }
    }

    #[test]
    fn allowlisted_networks_are_trusted_and_endpoint_only_workloads_lose_only_the_internet() {
        let c = auto_eligible(&alert(), ACCT, &["198.51.100.0/24".into(), "203.0.113.10".into()]).expect("eligible");
        assert_eq!(c.allow_ips, ["203.0.113.10/32", "198.51.100.0/24"], "normalised, no duplicate");
        assert!(auto_eligible(&alert(), ACCT, &["nope".into()]).expect_err("bad").contains("not a CIDR"));
        // An instance seen only through VPC endpoints: every internet call of the session is denied.
        let mut a = alert();
        a.expected[0].identity = "vpce:vpce-0abc123@123456789012".into();
        let c = auto_eligible(&a, ACCT, &[]).expect("eligible");
        let p = c.policy("AROAX");
        let cond = &p["Statement"][0]["Condition"];
        assert!(cond.get("NotIpAddress").is_none() && cond["Null"]["aws:SourceVpce"] == "true", "{p}");
        let t = auto_timed_out(&c, std::time::Duration::from_secs(4));
        assert_eq!((t.status, t.policy.as_deref()), (AutoStatus::Failed, Some(NAME)));
        assert!(t.detail.contains("may or may not") && t.release.is_some(), "{t:?}");
    }

    #[tokio::test]
    async fn iam_failures_are_reported_not_raised() {
        let mut iam = FakeIam::with_role("app", &[(AUTO_CONTAIN_TAG, AUTO_CONTAIN_VALUE)]);
        iam.fail_put = true;
        let out = auto_contain(&iam, &alert(), ACCT, &[]).await;
        assert_eq!(out.status, AutoStatus::Failed, "{out:?}");
        assert!(out.detail.contains("throttled"), "{}", out.detail);
        let gone = FakeIam::default();
        let out = auto_contain(&gone, &alert(), ACCT, &[]).await;
        assert_eq!(out.status, AutoStatus::Failed, "{out:?}");
        assert!(out.detail.contains("NoSuchEntity"), "{}", out.detail);
    }

    #[test]
    fn the_outcome_serializes_in_kebab_case_without_empty_fields() {
        let o = AutoContainment {
            status: AutoStatus::NotEligible,
            role: None,
            policy: None,
            detail: "d".into(),
            release: None,
        };
        assert_eq!(serde_json::to_value(&o).expect("json"), json!({"status": "not-eligible", "detail": "d"}));
        for s in [
            AutoStatus::Applied,
            AutoStatus::AlreadyContained,
            AutoStatus::NotEligible,
            AutoStatus::NotOptedIn,
            AutoStatus::Failed,
        ] {
            assert_eq!(serde_json::to_value(s).expect("json"), json!(s.as_str()));
        }
    }
}
