//! Which accounts × regions a command works on. Pure: the account list comes from
//! [`crate::org`] (or the command line), the region list from the command line or from one
//! `account:ListRegions` call; this module only validates and expands them.
//!
//! Two rules are enforced here because getting them wrong makes the detector silently blind:
//! IAM and the global STS endpoint log their events only in us-east-1, so a deployment without
//! us-east-1 misses `sts:GetCallerIdentity`-style reconnaissance (refused unless
//! `--allow-no-us-east-1`, and then loudly warned); and the home region (state table, alert
//! topic) must be one of the deployed regions, or no stack would ever create the table.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// The region where IAM and global STS events are delivered.
pub const US_EAST_1: &str = "us-east-1";

/// One account × region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub account: String,
    pub region: String,
}

impl Target {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Target { account: account.into(), region: region.into() }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// Validation failures; each message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no account selected")]
    NoAccounts,
    #[error("no region selected (pass --regions)")]
    NoRegions,
    #[error("`{0}` is not an AWS account id (12 digits)")]
    BadAccount(String),
    #[error("`{0}` is not an AWS region name (like eu-west-1)")]
    BadRegion(String),
    #[error(
        "us-east-1 is not among the regions ({0}): IAM and global STS events are delivered only \
         there, so the detector would never see them; add us-east-1 or pass --allow-no-us-east-1"
    )]
    MissingUsEast1(String),
    #[error("the home region {home} (state table and alert topic) must be one of the regions ({regions})")]
    HomeNotDeployed { home: String, regions: String },
}

/// A validated selection: accounts × regions, plus the home region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSet {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub home_region: String,
    /// Things the user asked for that weaken detection; printed before anything runs.
    pub warnings: Vec<String>,
}

impl TargetSet {
    /// Every account × region, accounts first, in a stable order.
    pub fn targets(&self) -> Vec<Target> {
        let mut v = Vec::with_capacity(self.accounts.len() * self.regions.len());
        for a in &self.accounts {
            for r in &self.regions {
                v.push(Target::new(a.clone(), r.clone()));
            }
        }
        v
    }

    /// True when `t` is its account's home-region target (where the account stacks live).
    pub fn is_home(&self, t: &Target) -> bool {
        t.region == self.home_region
    }
}

/// Account id and region shapes: one definition for every crate (forensics checks them too).
pub use ctguard_aws::{is_account_id, is_region};

/// Validates and expands a selection. Accounts and regions are de-duplicated and sorted
/// (us-east-1 first among regions, so global events are covered first).
pub fn expand(
    accounts: &[String],
    regions: &[String],
    home_region: &str,
    allow_no_us_east_1: bool,
) -> Result<TargetSet, TargetError> {
    let accounts: BTreeSet<String> = accounts.iter().map(|a| a.trim().to_string()).collect();
    if accounts.is_empty() {
        return Err(TargetError::NoAccounts);
    }
    if let Some(bad) = accounts.iter().find(|a| !is_account_id(a)) {
        return Err(TargetError::BadAccount(bad.clone()));
    }
    let set: BTreeSet<String> = regions.iter().map(|r| r.trim().to_string()).collect();
    if set.is_empty() {
        return Err(TargetError::NoRegions);
    }
    if let Some(bad) = set.iter().find(|r| !is_region(r)) {
        return Err(TargetError::BadRegion(bad.clone()));
    }
    let mut regions: Vec<String> = set.into_iter().collect();
    regions.sort_by_key(|r| (r != US_EAST_1, r.clone()));
    let listed = regions.join(",");
    let mut warnings = Vec::new();
    if !regions.iter().any(|r| r == US_EAST_1) {
        if !allow_no_us_east_1 {
            return Err(TargetError::MissingUsEast1(listed));
        }
        warnings.push(format!(
            "us-east-1 is not deployed (regions: {listed}): IAM and global STS calls made with \
             stolen credentials (GetCallerIdentity, CreateUser, AttachRolePolicy, ...) will NOT be detected"
        ));
    }
    if !regions.iter().any(|r| r == home_region) {
        return Err(TargetError::HomeNotDeployed { home: home_region.to_string(), regions: listed });
    }
    Ok(TargetSet { accounts: accounts.into_iter().collect(), regions, home_region: home_region.to_string(), warnings })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn expands_accounts_by_regions_deduplicated_us_east_1_first() {
        let t = expand(
            &s(&["222222222222", "111111111111", "222222222222"]),
            &s(&["eu-west-1", "us-east-1", "eu-west-1"]),
            "us-east-1",
            false,
        )
        .unwrap();
        assert_eq!(t.accounts, s(&["111111111111", "222222222222"]));
        assert_eq!(t.regions, s(&["us-east-1", "eu-west-1"]));
        assert!(t.warnings.is_empty());
        let all: Vec<String> = t.targets().iter().map(ToString::to_string).collect();
        assert_eq!(
            all,
            s(&[
                "111111111111/us-east-1",
                "111111111111/eu-west-1",
                "222222222222/us-east-1",
                "222222222222/eu-west-1"
            ])
        );
        assert!(t.is_home(&Target::new("111111111111", "us-east-1")));
        assert!(!t.is_home(&Target::new("111111111111", "eu-west-1")));
    }

    #[test]
    fn us_east_1_is_required_unless_explicitly_waived_with_a_warning() {
        let e = expand(&s(&["111111111111"]), &s(&["eu-west-1"]), "eu-west-1", false).unwrap_err();
        assert!(matches!(e, TargetError::MissingUsEast1(_)));
        assert!(e.to_string().contains("--allow-no-us-east-1"));
        let t = expand(&s(&["111111111111"]), &s(&["eu-west-1"]), "eu-west-1", true).unwrap();
        assert_eq!(t.warnings.len(), 1);
        assert!(t.warnings[0].contains("will NOT be detected"), "{}", t.warnings[0]);
    }

    #[test]
    fn home_region_must_be_deployed() {
        let e = expand(&s(&["111111111111"]), &s(&["us-east-1"]), "eu-west-1", false).unwrap_err();
        assert_eq!(e, TargetError::HomeNotDeployed { home: "eu-west-1".into(), regions: "us-east-1".into() });
    }

    #[test]
    fn rejects_malformed_ids_and_empty_lists() {
        assert_eq!(expand(&[], &s(&["us-east-1"]), "us-east-1", false), Err(TargetError::NoAccounts));
        assert_eq!(expand(&s(&["111111111111"]), &[], "us-east-1", false), Err(TargetError::NoRegions));
        assert_eq!(
            expand(&s(&["12345"]), &s(&["us-east-1"]), "us-east-1", false),
            Err(TargetError::BadAccount("12345".into()))
        );
        assert_eq!(
            expand(&s(&["111111111111"]), &s(&["us-east-1", "mars"]), "us-east-1", false),
            Err(TargetError::BadRegion("mars".into()))
        );
    }
}
