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
//! The alert itself comes from a file, or by its id from the account's state table
//! ([`AlertRecords`]): the detector keeps a record of every alert it publishes there
//! (`pk` = `ALERT#<id>`, `alert` = the alert's JSON) for as long as the credential's state.

use std::future::Future;
use std::net::IpAddr;

use ctguard_detector::notify::role_session;
use ctguard_detector::Alert;
use serde_json::{json, Value};

/// Prefix of every policy ctguard attaches; `release` deletes only names it could have written.
pub const POLICY_PREFIX: &str = "ctguard-contain-";

#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Iam(String),
    /// No record of the alert in the state table, or the table could not be read.
    #[error("{0}")]
    Alert(String),
}

/// The state-table key prefix of an alert's record (`ALERT#ctguard-…`).
pub const ALERT_KEY_PREFIX: &str = "ALERT#";

/// An alert id as the detector makes them (`ctguard-` and 32 hex digits), lower-cased; the
/// error says what one looks like.
pub fn alert_id(s: &str) -> Result<String, ContainError> {
    let id = s.trim().to_ascii_lowercase();
    let ok = id.strip_prefix("ctguard-").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(id)
    } else {
        Err(ContainError::Invalid(format!(
            "`{s}` is not a ctguard alert id (`ctguard-` and 32 hex digits, as in the alert's `id` and its SNS \
             attribute `alert_id`)"
        )))
    }
}

/// Where alerts are looked up by id: the account's state table.
pub trait AlertRecords {
    /// The stored alert JSON of `id`, or `None` when there is no record of it.
    fn alert_json(&self, id: &str) -> impl Future<Output = Result<Option<String>, ContainError>> + Send;
    /// Where the records are, for messages (`table ctguard-state in 111122223333/us-east-1`).
    fn describe(&self) -> String;
}

/// The alert `id` from its record: parsed, and checked to be that alert. Not found names the
/// likely reasons and the way around them.
pub async fn alert_by_id<R: AlertRecords>(records: &R, id: &str) -> Result<Alert, ContainError> {
    let id = alert_id(id)?;
    let json = records.alert_json(&id).await?.ok_or_else(|| {
        ContainError::Alert(format!(
            "no record of alert {id} in the {}: the record may have expired (it is kept 30 days), or the \
             alert came from another account (or another home region: --home-region); use --alert-file \
             with the alert's JSON (the message an SQS/Lambda/HTTP subscriber received)",
            records.describe()
        ))
    })?;
    let alert: Alert = serde_json::from_str(&json).map_err(|e| {
        ContainError::Alert(format!(
            "the record of alert {id} in the {} is not a ctguard alert: {e}",
            records.describe()
        ))
    })?;
    // The id is a hash of the key and the identity seen: a record rewritten by someone who can
    // write to the table (to exempt an address, or to aim the deny at another session) no
    // longer matches its own key and identity.
    let derived = ctguard_detector::alert_id(&alert.access_key_id, &alert.seen_identity);
    if alert.id != id || derived != id {
        return Err(ContainError::Alert(format!(
            "the record of alert {id} in the {} holds another alert ({}, key and identity hashing to {derived}): \
             refusing to act on it",
            records.describe(),
            alert.id
        )));
    }
    if alert.expected.iter().any(|e| e.identity == alert.seen_identity) {
        return Err(ContainError::Alert(format!(
            "the record of alert {id} in the {} lists the identity it alerts on ({}) as expected: refusing to \
             act on it",
            records.describe(),
            alert.seen_identity
        )));
    }
    Ok(alert)
}

/// [`AlertRecords`] on DynamoDB: the state table in the account's home region.
pub struct DynamoAlertRecords {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub account: String,
    pub region: String,
}

impl AlertRecords for DynamoAlertRecords {
    async fn alert_json(&self, id: &str) -> Result<Option<String>, ContainError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        use aws_smithy_types::error::metadata::ProvideErrorMetadata;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("{ALERT_KEY_PREFIX}{id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                let why = ctguard_aws::err_text(&e);
                if e.code() == Some("ResourceNotFoundException") {
                    ContainError::Alert(format!(
                        "there is no {}: is ctguard installed in this account with this --home-region? ({why})",
                        self.describe()
                    ))
                } else {
                    ContainError::Alert(format!("dynamodb:GetItem on the {}: {why}", self.describe()))
                }
            })?;
        let Some(item) = out.item else { return Ok(None) };
        match item.get("alert") {
            Some(AttributeValue::S(json)) => Ok(Some(json.clone())),
            _ => Err(ContainError::Alert(format!(
                "the record of alert {id} in the {} has no `alert` string attribute",
                self.describe()
            ))),
        }
    }

    fn describe(&self) -> String {
        format!("state table {} of account {} in {}", self.table, self.account, self.region)
    }
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
}

/// IAM's character set for role, session and policy names.
fn iam_name(s: &str, min: usize, max: usize) -> bool {
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

impl Containment {
    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<(), ContainError> {
        let bad = |m: String| Err(ContainError::Invalid(m));
        if !crate::targets::is_account_id(&self.account) {
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
        if a.synthetic || ctguard_detector::engine::is_synthetic_key(&a.access_key_id) {
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
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
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
        };
        for e in &a.expected {
            let id = &e.identity;
            if let Some(ip) = id.strip_prefix("ip:").or_else(|| id.strip_prefix("ip6:")).and_then(cidr) {
                c.allow_ips.push(ip);
            } else if let Some(v) = id.strip_prefix("vpce:") {
                c.allow_vpces.push(v.split_once('@').map(|(v, _)| v).unwrap_or(v).to_string());
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// The inline policy's name on the role.
    pub fn policy_name(&self) -> String {
        format!("{POLICY_PREFIX}{}", self.session)
    }

    /// The deny policy, given the role's unique id (`AROA…`, from `iam:GetRole`).
    pub fn policy(&self, role_id: &str) -> Value {
        let mut cond = serde_json::Map::new();
        cond.insert("StringEquals".into(), json!({ "aws:userid": format!("{role_id}:{}", self.session) }));
        if !self.allow_ips.is_empty() {
            cond.insert("NotIpAddress".into(), json!({ "aws:SourceIp": self.allow_ips }));
        }
        if !self.allow_vpces.is_empty() {
            cond.insert("StringNotEqualsIfExists".into(), json!({ "aws:SourceVpce": self.allow_vpces }));
        }
        cond.insert("BoolIfExists".into(), json!({ "aws:ViaAWSService": "false" }));
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "CtguardContainSession",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": Value::Object(cond),
            }],
        })
    }
}

/// The IAM calls containment needs, on one account.
pub trait RolePolicies {
    /// The role's unique id (`AROA…`).
    fn role_id(&self, role: &str) -> impl Future<Output = Result<String, ContainError>> + Send;
    /// The inline policy's document, or `None` when the role has no such policy.
    fn get(&self, role: &str, name: &str) -> impl Future<Output = Result<Option<Value>, ContainError>> + Send;
    fn put(&self, role: &str, name: &str, doc: &Value) -> impl Future<Output = Result<(), ContainError>> + Send;
    /// Deletes the inline policy; `false` when it was not there.
    fn delete(&self, role: &str, name: &str) -> impl Future<Output = Result<bool, ContainError>> + Send;
}

/// [`RolePolicies`] on IAM.
pub struct IamRolePolicies {
    pub client: aws_sdk_iam::Client,
}

fn iam_err<E>(
    op: &str,
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> ContainError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    ContainError::Iam(format!("iam:{op}: {}", ctguard_aws::err_text(e)))
}

fn is_no_such_entity<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    e.code() == Some("NoSuchEntity")
}

impl RolePolicies for IamRolePolicies {
    async fn role_id(&self, role: &str) -> Result<String, ContainError> {
        let out = self.client.get_role().role_name(role).send().await.map_err(|e| iam_err("GetRole", &e))?;
        out.role.map(|r| r.role_id).ok_or_else(|| ContainError::Iam(format!("iam:GetRole returned no role `{role}`")))
    }

    async fn get(&self, role: &str, name: &str) -> Result<Option<Value>, ContainError> {
        match self.client.get_role_policy().role_name(role).policy_name(name).send().await {
            Ok(out) => {
                // IAM returns the document URL-encoded.
                let raw = out.policy_document;
                let text = percent_decode(&raw);
                Ok(Some(serde_json::from_str(&text).unwrap_or(Value::String(text))))
            }
            Err(e) if is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(iam_err("GetRolePolicy", &e)),
        }
    }

    async fn put(&self, role: &str, name: &str, doc: &Value) -> Result<(), ContainError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(doc.to_string())
            .send()
            .await
            .map_err(|e| iam_err("PutRolePolicy", &e))?;
        Ok(())
    }

    async fn delete(&self, role: &str, name: &str) -> Result<bool, ContainError> {
        match self.client.delete_role_policy().role_name(role).policy_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_no_such_entity(&e) => Ok(false),
            Err(e) => Err(iam_err("DeleteRolePolicy", &e)),
        }
    }
}

/// Decodes `%XX` escapes (IAM's policy documents); anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (b.get(i), b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (Some(c), _, _) => {
                out.push(*c);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Attaches the deny policy; returns the document attached.
pub async fn contain<R: RolePolicies>(iam: &R, c: &Containment) -> Result<Value, ContainError> {
    c.validate()?;
    let doc = c.policy(&iam.role_id(&c.role).await?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Containment {
        Containment {
            account: "123456789012".into(),
            role: "app".into(),
            session: "i-0123456789abcdef0".into(),
            access_key: Some("ASIAQWERTYQWERTYQWER".into()),
            allow_ips: vec!["203.0.113.10/32".into()],
            allow_vpces: vec!["vpce-0abc123".into()],
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
    fn cidrs_are_normalised() {
        assert_eq!(cidr("203.0.113.10").as_deref(), Some("203.0.113.10/32"));
        assert_eq!(cidr("2001:db8::/64").as_deref(), Some("2001:db8::/64"));
        assert_eq!(cidr("2001:db8::1").as_deref(), Some("2001:db8::1/128"));
        assert_eq!(cidr("nope"), None);
        assert_eq!(cidr("10.0.0.0/x"), None);
    }

    struct Records(Option<String>);

    impl AlertRecords for Records {
        async fn alert_json(&self, _id: &str) -> Result<Option<String>, ContainError> {
            Ok(self.0.clone())
        }
        fn describe(&self) -> String {
            "state table ctguard-state of account 123456789012 in us-east-1".into()
        }
    }

    const ID: &str = "ctguard-0123456789abcdef0123456789abcdef";

    fn stored(id: &str) -> String {
        serde_json::json!({
            "schema": "ctguard.alert/v1", "id": id, "kind": "credential-reuse", "severity": "HIGH",
            "synthetic": false, "title": "t", "account": "123456789012", "regions": ["us-east-1"],
            "access_key_id": "ASIAQWERTYQWERTYQWER",
            "principal_arn": "arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0",
            "scope": "instance",
            "expected": [{"identity": "ip:203.0.113.10", "first_seen": {"event_time": "2024-05-01T10:00:00Z"}}],
            "seen_identity": "ip:198.51.100.66",
            "offending": {"event_time": "2024-05-01T10:03:00Z", "event_name": "ListBuckets"},
            "out_of_order": false, "reason": "r", "detector_version": "t"
        })
        .to_string()
    }

    #[test]
    fn alert_ids_are_checked_and_lower_cased() {
        assert_eq!(alert_id(ID).ok().as_deref(), Some(ID));
        assert_eq!(alert_id(&ID.to_uppercase().replace("CTGUARD", "ctguard")).ok().as_deref(), Some(ID));
        for bad in ["", "ctguard-", "ctguard-0123", &format!("{ID}0"), "ctguard-0123456789abcdef0123456789abcdeg", "x"]
        {
            let e = alert_id(bad).expect_err(bad).to_string();
            assert!(e.contains("32 hex digits"), "{e}");
        }
    }

    /// The id the detector gives the stored alert: a hash of its key and seen identity.
    fn real_id() -> String {
        ctguard_detector::alert_id("ASIAQWERTYQWERTYQWER", "ip:198.51.100.66")
    }

    #[tokio::test]
    async fn an_alert_is_found_by_id_or_the_error_says_why_not() {
        let id = real_id();
        let a = alert_by_id(&Records(Some(stored(&id))), &id).await.expect("the stored alert");
        let c = Containment::from_alert(&a).expect("containable");
        assert_eq!((c.role.as_str(), c.session.as_str()), ("app", "i-0123456789abcdef0"));
        assert_eq!(c.allow_ips, ["203.0.113.10/32"]);

        let e = alert_by_id(&Records(None), &id).await.expect_err("absent").to_string();
        for needle in ["no record of alert", "expired", "30 days", "another account", "--alert-file", "123456789012"] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let other = "ctguard-ffffffffffffffffffffffffffffffff";
        let e = alert_by_id(&Records(Some(stored(other))), &id).await.expect_err("another alert").to_string();
        assert!(e.contains("holds another alert"), "{e}");
        let e = alert_by_id(&Records(Some("{\"id\": 1}".into())), &id).await.expect_err("not an alert").to_string();
        assert!(e.contains("is not a ctguard alert"), "{e}");
    }

    #[tokio::test]
    async fn a_rewritten_record_is_refused() {
        let id = real_id();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(&stored(&id)).expect("json");
            f(&mut v);
            Records(Some(v.to_string()))
        };
        // The id kept, the identity changed (to aim the deny elsewhere): no longer its hash.
        let r = with(&|v| v["seen_identity"] = json!("ip:192.0.2.1"));
        let e = alert_by_id(&r, &id).await.expect_err("rewritten").to_string();
        assert!(e.contains("holds another alert"), "{e}");
        // The thief's address added to the trusted ones: refused.
        let r = with(&|v| {
            if let Some(e) = v["expected"].as_array_mut() {
                e.push(json!({"identity": "ip:198.51.100.66", "first_seen": {"event_time": "x"}}));
            }
        });
        let e = alert_by_id(&r, &id).await.expect_err("seen is expected").to_string();
        assert!(e.contains("as expected"), "{e}");
    }

    #[tokio::test]
    async fn synthetic_alerts_are_not_contained_and_the_role_account_is_the_sessions() {
        let mut a = alert_by_id(&Records(Some(stored(&real_id()))), &real_id()).await.expect("alert");
        a.synthetic = true;
        let e = Containment::from_alert(&a).expect_err("synthetic").to_string();
        assert!(e.contains("synthetic"), "{e}");
        a.synthetic = false;
        a.principal_arn = Some("arn:aws:sts::444455556666:assumed-role/app/i-0123456789abcdef0".into());
        assert_eq!(Containment::from_alert(&a).expect("containable").account, "444455556666");
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
