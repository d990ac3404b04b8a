//! The alert: versioned JSON carrying everything a responder needs, and nothing secret.

use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::SinkError;
use crate::state::EventRef;

/// Schema identifier; bump on incompatible change.
pub const ALERT_SCHEMA: &str = "ctguard.alert/v1";

/// The state-table key prefix of an alert's record (`ALERT#ctguard-…`), which the detector
/// writes and `ctguard contain --alert ID` reads.
pub const ALERT_RECORD_PREFIX: &str = "ALERT#";

/// How urgent an alert is; also an SNS message attribute for subscription filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
        }
    }
}

/// An identity the credential was trusted for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedIdentity {
    pub identity: String,
    pub first_seen: EventRef,
}

/// The stable id of the alert for `access_key` used from `identity` (its
/// [`crate::identity::NetworkIdentity::key`] form): the same for every copy of the alert, from
/// any Lambda environment or retry, so that a subscriber can drop duplicates.
/// `ctguard-` + the first 128 bits of SHA-256(key, NUL, identity), in hex.
pub fn alert_id(access_key: &str, identity: &str) -> String {
    let mut h = Sha256::new();
    h.update(access_key.as_bytes());
    h.update([0u8]);
    h.update(identity.as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(8 + 32);
    id.push_str("ctguard-");
    for b in digest.iter().take(16) {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A credential-reuse finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: String,
    /// [`alert_id`] of (`access_key_id`, `seen_identity`); also the SNS message attribute
    /// `alert_id`. Copies of one alert share it.
    pub id: String,
    pub kind: String,
    pub severity: Severity,
    /// True for ctguard's own test traffic (`ctguard verify`): never a real incident.
    pub synthetic: bool,
    pub title: String,
    pub account: Option<String>,
    /// Regions involved: where trust was established, then where the offending call was made.
    pub regions: Vec<String>,
    pub access_key_id: String,
    pub principal_arn: Option<String>,
    pub role_arn: Option<String>,
    pub instance_id: Option<String>,
    /// The trust scope (`key` or `instance`).
    pub scope: String,
    pub expected: Vec<ExpectedIdentity>,
    pub seen_identity: String,
    pub offending: EventRef,
    /// True when the offending call happened *before* the trusted one but arrived later.
    pub out_of_order: bool,
    pub reason: String,
    pub detector_version: String,
    /// What the detector's automatic containment did (`install --auto-contain`); absent when
    /// it is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<crate::contain::AutoContainment>,
}

/// Characters SNS accepts in a subject, and its length limit.
const SUBJECT_MAX: usize = 100;

impl Alert {
    /// A one-line, SNS-safe subject (ASCII, no control characters, at most 100 characters).
    pub fn subject(&self) -> String {
        let prefix = if self.synthetic { "[ctguard SYNTHETIC] " } else { "[ctguard] " };
        let raw = format!("{prefix}{}", self.title);
        let mut s: String = raw.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
        if s.len() > SUBJECT_MAX {
            s.truncate(SUBJECT_MAX - 3);
            s.push_str("...");
        }
        s
    }

    /// The message body: pretty JSON of the alert.
    pub fn body(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Where alerts go.
pub trait AlertSink: Send + Sync {
    /// Publishes one alert; an error must be surfaced, never swallowed, and say whether the
    /// alert may have gone out anyway ([`SinkError::Ambiguous`]).
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<(), SinkError>> + Send;
}

impl<A: AlertSink + ?Sized> AlertSink for std::sync::Arc<A> {
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).publish(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_stable_and_separate_key_from_identity() {
        let a = alert_id("ASIAAAAAAAAAAAAAAAA2", "ip:198.51.100.66");
        assert_eq!(a, alert_id("ASIAAAAAAAAAAAAAAAA2", "ip:198.51.100.66"));
        assert_eq!(a.len(), "ctguard-".len() + 32);
        assert!(a.starts_with("ctguard-") && a[8..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, alert_id("ASIAAAAAAAAAAAAAAAA3", "ip:198.51.100.66"));
        assert_ne!(a, alert_id("ASIAAAAAAAAAAAAAAAA2", "ip:198.51.100.67"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(alert_id("ab", "c"), alert_id("a", "bc"));
    }
}
