//! `ctguard contain` / `release`: the containment of [`ctguard_detector::contain`] (policy,
//! checks, the generic contain/release) on IAM through the SDK, and the alert records it reads.
//!
//! The alert comes from a file, or by its id from the account's state table
//! ([`AlertRecords`]): the detector keeps a record of every alert it publishes there
//! (`pk` = `ALERT#<id>`, `alert` = the alert's JSON) for 30 days.

use std::future::Future;

use ctguard_detector::alert::ALERT_RECORD_PREFIX;
pub use ctguard_detector::contain::{
    cidr, contain, policy_document, release, ContainError, Containment, Role, RolePolicies, POLICY_PREFIX,
};
use ctguard_detector::Alert;
use serde_json::Value;

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
            .key("pk", AttributeValue::S(format!("{ALERT_RECORD_PREFIX}{id}")))
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
    async fn role(&self, role: &str) -> Result<Role, ContainError> {
        let out = self.client.get_role().role_name(role).send().await.map_err(|e| iam_err("GetRole", &e))?;
        let r = out.role.ok_or_else(|| ContainError::Iam(format!("iam:GetRole returned no role `{role}`")))?;
        let tags = r.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect();
        Ok(Role { id: r.role_id, tags })
    }

    async fn get(&self, role: &str, name: &str) -> Result<Option<Value>, ContainError> {
        match self.client.get_role_policy().role_name(role).policy_name(name).send().await {
            Ok(out) => Ok(Some(policy_document(&out.policy_document))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
