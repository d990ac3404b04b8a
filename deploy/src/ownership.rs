//! Who owns each account × region: ctguard's direct stacks (`ctguard-*`, deployed by `ctguard
//! install` through a role in the account) or a service-managed StackSet instance
//! (`ctguard-*-auto`). The two create resources with the same fixed names, so an account must
//! never have both: the owner is discovered from what is deployed, never from the command
//! line, and a re-run leaves every account with the owner it has. Pure: the caller lists the
//! instances and the direct stacks.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::stacksets::Instance;
use crate::targets::Target;

/// How the organization's member accounts get the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DeployWith {
    /// Stacks in every selected account (a role in each), plus StackSets for accounts that
    /// join later (the StackSets exclude the direct accounts, `AccountFilterType: DIFFERENCE`).
    Direct,
    /// Every member account through service-managed StackSets over the root or the OUs with
    /// automatic deployment; the management account directly (StackSets never deploy there).
    StackSets,
}

impl DeployWith {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployWith::Direct => "direct",
            DeployWith::StackSets => "stacksets",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(DeployWith::Direct),
            "stacksets" => Some(DeployWith::StackSets),
            _ => None,
        }
    }
}

/// Tag on ctguard's StackSets naming the mode they were created in. StackSets created before
/// the tag existed belong to the direct mode (it was the only one).
pub const MODE_TAG: &str = "ctguard:deploy-with";

/// The owner of one account × region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
pub enum Owner {
    /// ctguard's own stacks in the account.
    Direct,
    /// Instances of these StackSets (name → instance status).
    StackSet {
        sets: BTreeMap<String, String>,
    },
    /// Both: a conflict ctguard never creates and never resolves on its own.
    Both {
        sets: BTreeMap<String, String>,
    },
    None,
}

impl Owner {
    pub fn describe(&self) -> String {
        let list =
            |s: &BTreeMap<String, String>| s.iter().map(|(n, st)| format!("{n}={st}")).collect::<Vec<_>>().join(" ");
        match self {
            Owner::Direct => "direct".into(),
            Owner::StackSet { sets } => format!("stackset ({})", list(sets)),
            Owner::Both { sets } => format!("CONFLICT: direct stacks and StackSet instances ({})", list(sets)),
            Owner::None => "none".into(),
        }
    }
}

/// Instances per account × region, from the listed instances of every ctguard StackSet.
pub fn instance_owners(instances: &BTreeMap<String, Vec<Instance>>) -> BTreeMap<Target, BTreeMap<String, String>> {
    let mut out: BTreeMap<Target, BTreeMap<String, String>> = BTreeMap::new();
    for (set, list) in instances {
        for i in list {
            let status = match &i.detailed {
                Some(d) => format!("{}/{d}", i.status),
                None => i.status.clone(),
            };
            out.entry(Target::new(i.account.clone(), i.region.clone())).or_default().insert(set.clone(), status);
        }
    }
    out
}

/// Accounts with at least one StackSet instance (anywhere): these are the StackSets' own, a
/// re-run deploys no direct stack there.
pub fn stackset_accounts(instances: &BTreeMap<String, Vec<Instance>>) -> BTreeSet<String> {
    instances.values().flatten().map(|i| i.account.clone()).collect()
}

/// The owner of `t` given whether a direct ctguard stack was seen there.
pub fn owner(t: &Target, direct: bool, by_instance: &BTreeMap<Target, BTreeMap<String, String>>) -> Owner {
    match (direct, by_instance.get(t)) {
        (true, Some(sets)) => Owner::Both { sets: sets.clone() },
        (true, None) => Owner::Direct,
        (false, Some(sets)) => Owner::StackSet { sets: sets.clone() },
        (false, None) => Owner::None,
    }
}

/// The mode an existing installation was made in, from its StackSets' tags (`None`: no
/// ctguard StackSet exists).
pub fn discovered_mode<'a>(tags: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> Option<DeployWith> {
    let mut mode = None;
    for t in tags {
        let m = t.get(MODE_TAG).and_then(|v| DeployWith::parse(v)).unwrap_or(DeployWith::Direct);
        // A mix (should not happen) is reported as direct: the more conservative reading,
        // under which no account is handed to a StackSet.
        mode = Some(mode.map_or(m, |old: DeployWith| old.min(m)));
    }
    mode
}

/// The mode of this run: the existing installation's, else the one asked for, else StackSets
/// for organization-wide installs with automatic deployment and direct otherwise. Asking for
/// the other mode than the installed one is refused: it would move every account between
/// owners, and ctguard moves none without being told per account.
pub fn resolve_mode(
    asked: Option<DeployWith>,
    installed: Option<DeployWith>,
    org_wide: bool,
    auto_deploy: bool,
) -> Result<DeployWith, String> {
    match (asked, installed) {
        (Some(a), Some(i)) if a != i => Err(format!(
            "ctguard is installed here with --deploy-with {} (its StackSets say so); switching to {} would move \
             every account to another owner. Uninstall first, or keep --deploy-with {}",
            i.as_str(),
            a.as_str(),
            i.as_str()
        )),
        (_, Some(i)) => Ok(i),
        (Some(a), None) => Ok(a),
        (None, None) if org_wide && auto_deploy => Ok(DeployWith::StackSets),
        (None, None) => Ok(DeployWith::Direct),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inst(a: &str, r: &str, d: &str) -> Instance {
        Instance {
            account: a.into(),
            region: r.into(),
            ou: Some("r-root".into()),
            status: "CURRENT".into(),
            detailed: Some(d.into()),
            reason: None,
            overrides: Default::default(),
        }
    }

    #[test]
    fn owners_come_from_what_is_deployed() {
        let i =
            BTreeMap::from([("ctguard-region-auto".to_string(), vec![inst("222222222222", "us-east-1", "SUCCEEDED")])]);
        let by = instance_owners(&i);
        let t = Target::new("222222222222", "us-east-1");
        assert!(matches!(owner(&t, false, &by), Owner::StackSet { .. }));
        assert_eq!(owner(&t, false, &by).describe(), "stackset (ctguard-region-auto=CURRENT/SUCCEEDED)");
        assert!(matches!(owner(&t, true, &by), Owner::Both { .. }));
        assert_eq!(owner(&Target::new("333333333333", "us-east-1"), true, &by), Owner::Direct);
        assert_eq!(owner(&Target::new("333333333333", "us-east-1"), false, &by), Owner::None);
        assert_eq!(stackset_accounts(&i), BTreeSet::from(["222222222222".to_string()]));
    }

    #[test]
    fn the_installed_mode_wins_and_switching_is_refused() {
        use DeployWith::*;
        assert_eq!(resolve_mode(None, None, true, true), Ok(StackSets));
        assert_eq!(resolve_mode(None, None, true, false), Ok(Direct));
        assert_eq!(resolve_mode(None, None, false, true), Ok(Direct));
        assert_eq!(resolve_mode(None, Some(Direct), true, true), Ok(Direct));
        assert_eq!(resolve_mode(Some(StackSets), None, true, true), Ok(StackSets));
        let e = resolve_mode(Some(StackSets), Some(Direct), true, true).unwrap_err();
        assert!(e.contains("move every account"), "{e}");
        let legacy = BTreeMap::new();
        let new = BTreeMap::from([(MODE_TAG.to_string(), "stacksets".to_string())]);
        assert_eq!(discovered_mode([&legacy]), Some(Direct), "untagged StackSets are the direct mode's");
        assert_eq!(discovered_mode([&new]), Some(StackSets));
        assert_eq!(discovered_mode([&new, &legacy]), Some(Direct));
        assert_eq!(discovered_mode(std::iter::empty()), None);
    }
}
