//! `ctguard keys`: every IAM user access key, its last use, and the idle ones.
//!
//! A long-term key nobody uses is pure risk: it can only be used by someone who should not have
//! it. The inventory asks IAM for each user's keys and each key's last use
//! (`iam:GetAccessKeyLastUsed`), in one account or across an organisation through an assumed
//! role, and marks a key idle when it has not been used for N days. A key never used at all is
//! idle since it was created (`CreateDate`): it is the age of the exposure that matters.
//! Idle keys can be deactivated (`UpdateAccessKey Status=Inactive`), which is reversible; ctguard
//! never deletes a key.
//!
//! IAM is reached through the [`KeyDirectory`] seam, so the assessment and the disabling logic
//! are tested against a fake directory; [`IamDirectory`] is the real one.

use std::future::Future;

use ctguard_detector::time::{format_rfc3339, Millis};
use serde::Serialize;

const DAY_MS: Millis = 86_400_000;

/// One access key as IAM lists it (no secret is ever read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMeta {
    pub user: String,
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created: Option<Millis>,
}

/// `GetAccessKeyLastUsed`: absent date means never used (or not since IAM started tracking).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastUse {
    pub at: Option<Millis>,
    pub service: Option<String>,
    pub region: Option<String>,
}

/// A failed IAM call: the operation and the service's readable error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IamError(pub String);

/// The IAM calls the inventory needs, in ctguard's own types.
pub trait KeyDirectory: Sync {
    fn users(&self) -> impl Future<Output = Result<Vec<String>, IamError>> + Send;
    fn keys(&self, user: &str) -> impl Future<Output = Result<Vec<KeyMeta>, IamError>> + Send;
    fn last_used(&self, access_key_id: &str) -> impl Future<Output = Result<LastUse, IamError>> + Send;
    /// Deactivates a key (never deletes it).
    fn deactivate(&self, user: &str, access_key_id: &str) -> impl Future<Output = Result<(), IamError>> + Send;
}

/// What to do with idle active keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Only report.
    Report,
    /// `--disable` without `--yes`: say what would be deactivated.
    Plan,
    /// `--disable --yes`.
    Disable,
}

/// One row of the inventory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyRow {
    pub account: String,
    pub user: String,
    pub access_key_id: String,
    pub status: String,
    pub created: Option<String>,
    pub last_used: Option<String>,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
    /// Whole days since the last use (or since creation when never used).
    pub idle_days: Option<u64>,
    /// Active and idle for at least the threshold.
    pub idle: bool,
    /// `would-disable`, `disabled`, `disable-failed: …`, `already-inactive`, or empty.
    pub action: String,
}

/// Whether a key is idle as of `as_of`, and for how many whole days.
pub fn assess(meta: &KeyMeta, last: &LastUse, as_of: Millis, idle_days: u64) -> (Option<u64>, bool) {
    let Some(since) = last.at.or(meta.created) else { return (None, false) };
    let idle_ms = (as_of - since).max(0);
    let idle = idle_ms >= idle_days as Millis * DAY_MS;
    (Some((idle_ms / DAY_MS) as u64), idle)
}

/// The inventory of one account's keys; keys failing `GetAccessKeyLastUsed` are listed with an
/// error action rather than dropped.
pub async fn inventory<D: KeyDirectory>(
    dir: &D,
    account: &str,
    as_of: Millis,
    idle_days: u64,
    action: Action,
) -> Result<Vec<KeyRow>, IamError> {
    let mut rows = Vec::new();
    for user in dir.users().await? {
        for meta in dir.keys(&user).await? {
            let (last, lookup_error) = match dir.last_used(&meta.access_key_id).await {
                Ok(l) => (l, None),
                Err(e) => (LastUse::default(), Some(e)),
            };
            let (days, idle_by_age) = assess(&meta, &last, as_of, idle_days);
            let active = meta.status.eq_ignore_ascii_case("Active");
            let idle = idle_by_age && active && lookup_error.is_none();
            let action_text = if let Some(e) = &lookup_error {
                format!("last-use-unknown: {e}")
            } else if idle {
                match action {
                    Action::Report => String::new(),
                    Action::Plan => "would-disable".into(),
                    Action::Disable => match dir.deactivate(&meta.user, &meta.access_key_id).await {
                        Ok(()) => "disabled".into(),
                        Err(e) => format!("disable-failed: {e}"),
                    },
                }
            } else if !active && idle_by_age {
                "already-inactive".into()
            } else {
                String::new()
            };
            rows.push(KeyRow {
                account: account.to_string(),
                user: meta.user.clone(),
                access_key_id: meta.access_key_id.clone(),
                status: meta.status.clone(),
                created: meta.created.map(format_rfc3339),
                last_used: last.at.map(format_rfc3339),
                last_used_service: last.service.clone(),
                last_used_region: last.region.clone(),
                idle_days: days,
                idle,
                action: action_text,
            });
        }
    }
    Ok(rows)
}

fn millis(dt: &aws_smithy_types::DateTime) -> Millis {
    dt.secs() * 1000 + i64::from(dt.subsec_nanos() / 1_000_000)
}

/// IAM's "N/A" means no value.
fn meaningful(s: &str) -> Option<String> {
    (!s.is_empty() && s != "N/A").then(|| s.to_string())
}

/// The real directory: one account's IAM.
pub struct IamDirectory {
    pub client: aws_sdk_iam::Client,
}

impl KeyDirectory for IamDirectory {
    async fn users(&self) -> Result<Vec<String>, IamError> {
        let users = self
            .client
            .list_users()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| IamError(format!("iam:ListUsers: {}", ctguard_aws::err_text(&e))))?;
        Ok(users.into_iter().map(|u| u.user_name).collect())
    }

    async fn keys(&self, user: &str) -> Result<Vec<KeyMeta>, IamError> {
        let keys = self
            .client
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| IamError(format!("iam:ListAccessKeys {user}: {}", ctguard_aws::err_text(&e))))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                Some(KeyMeta {
                    user: k.user_name.unwrap_or_else(|| user.to_string()),
                    access_key_id: k.access_key_id?,
                    status: k.status.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    created: k.create_date.as_ref().map(millis),
                })
            })
            .collect())
    }

    async fn last_used(&self, access_key_id: &str) -> Result<LastUse, IamError> {
        let out = self
            .client
            .get_access_key_last_used()
            .access_key_id(access_key_id)
            .send()
            .await
            .map_err(|e| IamError(format!("iam:GetAccessKeyLastUsed: {}", ctguard_aws::err_text(&e))))?;
        let Some(l) = out.access_key_last_used else { return Ok(LastUse::default()) };
        Ok(LastUse {
            at: l.last_used_date.as_ref().map(millis),
            service: meaningful(&l.service_name),
            region: meaningful(&l.region),
        })
    }

    async fn deactivate(&self, user: &str, access_key_id: &str) -> Result<(), IamError> {
        self.client
            .update_access_key()
            .user_name(user)
            .access_key_id(access_key_id)
            .status(aws_sdk_iam::types::StatusType::Inactive)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| IamError(format!("iam:UpdateAccessKey: {}", ctguard_aws::err_text(&e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    const NOW: Millis = 1_700_000_000_000;

    #[derive(Default)]
    struct FakeDirectory {
        keys: Vec<KeyMeta>,
        last: HashMap<String, LastUse>,
        fail_last: Vec<String>,
        refuse_disable: bool,
        disabled: Mutex<Vec<String>>,
    }

    impl KeyDirectory for FakeDirectory {
        async fn users(&self) -> Result<Vec<String>, IamError> {
            let mut u: Vec<String> = self.keys.iter().map(|k| k.user.clone()).collect();
            u.dedup();
            Ok(u)
        }
        async fn keys(&self, user: &str) -> Result<Vec<KeyMeta>, IamError> {
            Ok(self.keys.iter().filter(|k| k.user == user).cloned().collect())
        }
        async fn last_used(&self, id: &str) -> Result<LastUse, IamError> {
            if self.fail_last.iter().any(|f| f == id) {
                return Err(IamError("AccessDenied".into()));
            }
            Ok(self.last.get(id).cloned().unwrap_or_default())
        }
        async fn deactivate(&self, _user: &str, id: &str) -> Result<(), IamError> {
            if self.refuse_disable {
                return Err(IamError("AccessDenied: no".into()));
            }
            self.disabled.lock().map_err(|e| IamError(e.to_string()))?.push(id.to_string());
            Ok(())
        }
    }

    fn key(user: &str, id: &str, status: &str, created_days_ago: i64) -> KeyMeta {
        KeyMeta {
            user: user.into(),
            access_key_id: id.into(),
            status: status.into(),
            created: Some(NOW - created_days_ago * DAY_MS),
        }
    }

    fn used(days_ago: i64) -> LastUse {
        LastUse { at: Some(NOW - days_ago * DAY_MS), service: Some("s3".into()), region: Some("us-east-1".into()) }
    }

    fn fake() -> FakeDirectory {
        let mut d = FakeDirectory {
            keys: vec![
                key("alice", "AKIAUSEDRECENTLY0001", "Active", 400),
                key("alice", "AKIAUSEDLONGAGO00002", "Active", 400),
                key("bob", "AKIANEVERUSEDOLD0003", "Active", 120),
                key("bob", "AKIANEVERUSEDNEW0004", "Active", 3),
                key("carol", "AKIAINACTIVEOLD00005", "Inactive", 300),
            ],
            ..FakeDirectory::default()
        };
        d.last.insert("AKIAUSEDRECENTLY0001".into(), used(2));
        d.last.insert("AKIAUSEDLONGAGO00002".into(), used(200));
        d
    }

    fn summary(rows: &[KeyRow]) -> Vec<(&str, Option<u64>, bool, &str)> {
        rows.iter().map(|r| (r.access_key_id.as_str(), r.idle_days, r.idle, r.action.as_str())).collect()
    }

    #[tokio::test]
    async fn idle_by_last_use_or_creation() {
        let d = fake();
        let rows = inventory(&d, "1", NOW, 90, Action::Plan).await.expect("inventory");
        assert_eq!(
            summary(&rows),
            [
                ("AKIAUSEDRECENTLY0001", Some(2), false, ""),
                ("AKIAUSEDLONGAGO00002", Some(200), true, "would-disable"),
                ("AKIANEVERUSEDOLD0003", Some(120), true, "would-disable"),
                ("AKIANEVERUSEDNEW0004", Some(3), false, ""),
                ("AKIAINACTIVEOLD00005", Some(300), false, "already-inactive"),
            ]
        );
        assert!(d.disabled.lock().expect("lock").is_empty(), "a plan disables nothing");
        assert_eq!(rows[1].last_used_service.as_deref(), Some("s3"));
        assert_eq!(rows[2].last_used, None);
    }

    #[tokio::test]
    async fn disabling_only_touches_idle_active_keys() {
        let d = fake();
        let rows = inventory(&d, "1", NOW, 90, Action::Disable).await.expect("inventory");
        assert_eq!(*d.disabled.lock().expect("lock"), ["AKIAUSEDLONGAGO00002", "AKIANEVERUSEDOLD0003"]);
        assert_eq!(rows.iter().filter(|r| r.action == "disabled").count(), 2);
        let mut refusing = fake();
        refusing.refuse_disable = true;
        let rows = inventory(&refusing, "1", NOW, 90, Action::Disable).await.expect("inventory");
        assert!(rows[1].action.starts_with("disable-failed: AccessDenied"));
    }

    #[tokio::test]
    async fn unknown_last_use_is_never_disabled() {
        let mut d = fake();
        d.fail_last.push("AKIANEVERUSEDOLD0003".into());
        let rows = inventory(&d, "1", NOW, 90, Action::Disable).await.expect("inventory");
        assert!(!rows[2].idle);
        assert!(rows[2].action.starts_with("last-use-unknown"));
        assert_eq!(*d.disabled.lock().expect("lock"), ["AKIAUSEDLONGAGO00002"]);
    }

    #[test]
    fn thresholds() {
        let m = key("u", "k", "Active", 10);
        assert_eq!(assess(&m, &LastUse::default(), NOW, 10), (Some(10), true));
        assert_eq!(assess(&m, &LastUse::default(), NOW, 11), (Some(10), false));
        assert_eq!(assess(&m, &used(0), NOW, 0), (Some(0), true), "0 days: everything is idle");
        let no_dates = KeyMeta { created: None, ..m };
        assert_eq!(assess(&no_dates, &LastUse::default(), NOW, 0), (None, false));
    }
}
