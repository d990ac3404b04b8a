//! Operator policy: allowlists and tunables, read from one JSON document.
//!
//! The Lambda reads it from `CTGUARD_POLICY`; `ctguard scan --policy FILE` reads the same
//! document, so a rule tried offline behaves identically when deployed.
//!
//! ```json
//! { "allow_cidrs": ["198.51.100.0/24"],
//!   "roles": [{ "role": "arn:aws:iam::*:role/ci-*", "cidrs": ["203.0.113.0/24"] }],
//!   "default_ttl_hours": 12, "arm_window_minutes": 15, "trust_own_account_vpce": true }
//! ```

use serde::Deserialize;

use crate::identity::{Cidr, NetworkIdentity};
use crate::time::Millis;

/// An error in the policy document, naming the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("policy: {0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    allow_cidrs: Vec<String>,
    #[serde(default)]
    roles: Vec<RoleDoc>,
    #[serde(default)]
    default_ttl_hours: Option<u64>,
    #[serde(default)]
    arm_window_minutes: Option<u64>,
    #[serde(default)]
    trust_own_account_vpce: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDoc {
    role: String,
    cidrs: Vec<String>,
}

/// Validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    allow: Vec<Cidr>,
    roles: Vec<(String, Vec<Cidr>)>,
    /// State lifetime when the credential's own expiry is unknown.
    pub default_ttl_ms: Millis,
    /// How long an `AssociateAddress`/`AttachNetworkInterface`/`StartInstances` keeps one new
    /// identity acceptable for the instance.
    pub arm_window_ms: Millis,
    /// Accept, without alerting, a VPC endpoint owned by the principal's own account.
    pub trust_own_account_vpce: bool,
}

/// The longest an IAM role session can last (12 h): the default lifetime of state.
pub const MAX_ROLE_SESSION_HOURS: u64 = 12;
/// The largest default state lifetime an operator may set (`default_ttl_hours`,
/// `CTGUARD_DEFAULT_TTL_HOURS`): a week. The installer and the template check the same bound.
pub const MAX_DEFAULT_TTL_HOURS: u64 = 24 * 7;
const HOUR_MS: Millis = 3_600_000;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow: Vec::new(),
            roles: Vec::new(),
            default_ttl_ms: MAX_ROLE_SESSION_HOURS as Millis * HOUR_MS,
            arm_window_ms: 15 * 60_000,
            trust_own_account_vpce: true,
        }
    }
}

impl Policy {
    /// Parses and validates a policy document; an empty string is the default policy.
    pub fn from_json(s: &str) -> Result<Policy, PolicyError> {
        if s.trim().is_empty() {
            return Ok(Policy::default());
        }
        let doc: PolicyDoc = serde_json::from_str(s)?;
        let cidrs = |list: &[String]| -> Result<Vec<Cidr>, PolicyError> {
            list.iter().map(|c| Cidr::parse(c).map_err(PolicyError::Invalid)).collect()
        };
        let mut p = Policy { allow: cidrs(&doc.allow_cidrs)?, ..Policy::default() };
        for r in &doc.roles {
            if r.role.trim().is_empty() {
                return Err(PolicyError::Invalid("a roles[] entry has an empty `role` pattern".into()));
            }
            p.roles.push((r.role.clone(), cidrs(&r.cidrs)?));
        }
        if let Some(h) = doc.default_ttl_hours {
            if !(1..=MAX_DEFAULT_TTL_HOURS as i64).contains(&(h as i64)) {
                return Err(PolicyError::Invalid(format!(
                    "default_ttl_hours {h} is outside 1..={MAX_DEFAULT_TTL_HOURS}"
                )));
            }
            p.default_ttl_ms = h as Millis * HOUR_MS;
        }
        if let Some(m) = doc.arm_window_minutes {
            if m > 24 * 60 {
                return Err(PolicyError::Invalid(format!("arm_window_minutes {m} is over a day")));
            }
            p.arm_window_ms = m as Millis * 60_000;
        }
        if let Some(v) = doc.trust_own_account_vpce {
            p.trust_own_account_vpce = v;
        }
        Ok(p)
    }

    /// Whether `identity`, used by a principal of `role_arn`, is on an allowlist.
    pub fn allows(&self, identity: &NetworkIdentity, role_arn: Option<&str>) -> bool {
        let Some(ip) = identity.ip() else { return false };
        if self.allow.iter().any(|c| c.contains(&ip)) {
            return true;
        }
        let Some(role) = role_arn else { return false };
        self.roles.iter().any(|(pat, cidrs)| glob_match(pat, role) && cidrs.iter().any(|c| c.contains(&ip)))
    }
}

impl Policy {
    /// The allowlisted networks for a principal of `role_arn` (CIDR text): calls from them are
    /// accepted without being recorded, so a containment must spare them too.
    pub fn networks_for(&self, role_arn: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = self.allow.iter().map(ToString::to_string).collect();
        if let Some(role) = role_arn {
            for (pat, cidrs) in &self.roles {
                if glob_match(pat, role) {
                    out.extend(cidrs.iter().map(ToString::to_string));
                }
            }
        }
        out
    }
}

/// `*` matches any run of characters (including none); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> NetworkIdentity {
        NetworkIdentity::V4(s.parse().expect("ip"))
    }

    #[test]
    fn allowlists_global_and_per_role() {
        let p = Policy::from_json(
            r#"{"allow_cidrs":["198.51.100.0/24"],"roles":[{"role":"arn:aws:iam::*:role/ci-*","cidrs":["203.0.113.0/24"]}]}"#,
        )
        .expect("policy");
        assert!(p.allows(&ip("198.51.100.9"), None));
        assert!(p.allows(&ip("203.0.113.5"), Some("arn:aws:iam::111122223333:role/ci-deploy")));
        assert!(!p.allows(&ip("203.0.113.5"), Some("arn:aws:iam::111122223333:role/web")));
        assert!(!p.allows(&ip("203.0.113.5"), None));
        assert!(!p.allows(&NetworkIdentity::Opaque("x".into()), None));
    }

    #[test]
    fn the_networks_a_containment_must_spare() {
        let p = Policy::from_json(
            r#"{"allow_cidrs":["198.51.100.0/24"],"roles":[{"role":"arn:aws:iam::*:role/ci-*","cidrs":["203.0.113.0/24"]}]}"#,
        )
        .expect("policy");
        assert_eq!(
            p.networks_for(Some("arn:aws:iam::111122223333:role/ci-deploy")),
            ["198.51.100.0/24", "203.0.113.0/24"]
        );
        assert_eq!(p.networks_for(Some("arn:aws:iam::111122223333:role/web")), ["198.51.100.0/24"]);
        assert_eq!(p.networks_for(None), ["198.51.100.0/24"]);
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        for (doc, needle) in [
            (r#"{"allow_cidrs":["10.0.0.0/99"]}"#, "prefix"),
            (r#"{"alow_cidrs":[]}"#, "unknown field"),
            (r#"{"default_ttl_hours":0}"#, "default_ttl_hours"),
            (r#"{"roles":[{"role":"","cidrs":[]}]}"#, "empty"),
            ("{", "JSON"),
        ] {
            let e = Policy::from_json(doc).expect_err(doc).to_string();
            assert!(e.contains(needle), "{doc}: {e}");
        }
        assert!(Policy::from_json("").is_ok());
    }

    #[test]
    fn globs() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("arn:*:role/x", "arn:aws:iam::1:role/x"));
        assert!(!glob_match("a*c", "abd"));
        assert!(!glob_match("abc", "abcd"));
    }
}
