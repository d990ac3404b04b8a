//! Account and region selection through AWS Organizations and AWS Account Management:
//! `--org` (every active account, the management account too), `--ou` (every account below
//! the OUs, recursively), `--accounts`, or the caller's own account; `--regions` or the
//! account's enabled regions (one `account:ListRegions` call).

use std::collections::BTreeSet;
use std::future::Future;

use aws_config::SdkConfig;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::stacks::{ApiError, CallCounter};

/// Which accounts a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The caller's account only.
    Current,
    Accounts(Vec<String>),
    Ous(Vec<String>),
    Org,
}

/// The organization the caller belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgInfo {
    pub id: String,
    pub management_account: String,
    pub root_id: String,
}

/// An account as Organizations lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: String,
    /// ACTIVE (not suspended, not being closed). Unknown states count as active.
    pub active: bool,
}

/// AWS Organizations and Account Management, as the caller sees them. Takes and returns
/// ctguard types only; [`AwsOrg`] is the real one, the tests use an in-memory fake.
pub trait OrgDirectory: Sync {
    /// The organization, or `None` when the account is not in one (or may not ask).
    fn organization(&self) -> impl Future<Output = Result<Option<OrgInfo>, ApiError>> + Send;
    /// Every account of the organization (`organizations:ListAccounts`, all pages).
    fn accounts(&self) -> impl Future<Output = Result<Vec<OrgAccount>, ApiError>> + Send;
    /// Accounts directly below a root or OU.
    fn accounts_for_parent(&self, parent: &str) -> impl Future<Output = Result<Vec<OrgAccount>, ApiError>> + Send;
    /// OUs directly below a root or OU.
    fn child_ous(&self, parent: &str) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// The caller account's enabled regions (`account:ListRegions`).
    fn enabled_regions(&self) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
}

/// Why the accounts or regions of a selection could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("no active account below {0}")]
    NoAccountBelow(String),
    #[error("cannot list the account's enabled regions ({0}); pass --regions")]
    RegionsUnreadable(ApiError),
    #[error("account:ListRegions returned no enabled region; pass --regions")]
    NoRegions,
}

/// Every ACTIVE account of the organization (the management account included), sorted.
pub async fn all_accounts<D: OrgDirectory>(d: &D) -> Result<Vec<String>, OrgError> {
    Ok(active_ids(d.accounts().await?).into_iter().collect())
}

fn active_ids(accounts: Vec<OrgAccount>) -> BTreeSet<String> {
    accounts.into_iter().filter(|a| a.active).map(|a| a.id).collect()
}

/// Every ACTIVE account below `parent` (a root or an OU), recursively.
pub async fn accounts_under<D: OrgDirectory>(d: &D, parent: &str) -> Result<Vec<String>, OrgError> {
    let mut out = BTreeSet::new();
    let mut todo = vec![parent.to_string()];
    while let Some(p) = todo.pop() {
        out.extend(active_ids(d.accounts_for_parent(&p).await?));
        todo.extend(d.child_ous(&p).await?);
    }
    Ok(out.into_iter().collect())
}

/// The account ids a selection stands for.
pub async fn resolve_accounts<D: OrgDirectory>(d: &D, caller: &str, sel: &Selection) -> Result<Vec<String>, OrgError> {
    match sel {
        Selection::Current => Ok(vec![caller.to_string()]),
        Selection::Accounts(v) => Ok(v.clone()),
        Selection::Org => all_accounts(d).await,
        Selection::Ous(ous) => {
            let mut all = BTreeSet::new();
            for ou in ous {
                let under = accounts_under(d, ou).await?;
                if under.is_empty() {
                    return Err(OrgError::NoAccountBelow(ou.clone()));
                }
                all.extend(under);
            }
            Ok(all.into_iter().collect())
        }
    }
}

/// The caller account's enabled regions (opt-in regions included once enabled).
pub async fn enabled_regions<D: OrgDirectory>(d: &D) -> Result<Vec<String>, OrgError> {
    let out = d.enabled_regions().await.map_err(OrgError::RegionsUnreadable)?;
    if out.is_empty() {
        return Err(OrgError::NoRegions);
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// AWS

/// Organizations (answered in us-east-1) and Account Management (the caller's region), with
/// every call counted.
pub struct AwsOrg {
    org: aws_sdk_organizations::Client,
    account: aws_sdk_account::Client,
}

impl AwsOrg {
    /// `org_cfg`: a configuration in us-east-1; `cfg`: the caller's own.
    pub fn new(org_cfg: &SdkConfig, cfg: &SdkConfig, counter: &CallCounter) -> Self {
        let org = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(org_cfg).interceptor(counter.clone()).build(),
        );
        let account = aws_sdk_account::Client::from_conf(
            aws_sdk_account::config::Builder::from(cfg).interceptor(counter.clone()).build(),
        );
        AwsOrg { org, account }
    }
}

fn org_account(a: &aws_sdk_organizations::types::Account) -> Option<OrgAccount> {
    let active = a
        .state()
        .map(|s| s.as_str() == "ACTIVE")
        .or_else(|| a.status().map(|s| s.as_str() == "ACTIVE"))
        .unwrap_or(true);
    a.id().map(|id| OrgAccount { id: id.to_string(), active })
}

impl OrgDirectory for AwsOrg {
    async fn organization(&self) -> Result<Option<OrgInfo>, ApiError> {
        let o = match self.org.describe_organization().send().await {
            Ok(o) => o,
            Err(e) if matches!(e.code(), Some("AWSOrganizationsNotInUseException") | Some("AccessDeniedException")) => {
                return Ok(None)
            }
            Err(e) => return Err(ApiError::from_sdk("organizations:DescribeOrganization", &e)),
        };
        let Some(o) = o.organization() else {
            return Ok(None);
        };
        let roots =
            self.org.list_roots().send().await.map_err(|e| ApiError::from_sdk("organizations:ListRoots", &e))?;
        let root_id = roots.roots().first().and_then(|r| r.id()).unwrap_or_default().to_string();
        Ok(Some(OrgInfo {
            id: o.id().unwrap_or_default().to_string(),
            management_account: o.master_account_id().unwrap_or_default().to_string(),
            root_id,
        }))
    }

    async fn accounts(&self) -> Result<Vec<OrgAccount>, ApiError> {
        let mut pages = self.org.list_accounts().into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ApiError::from_sdk("organizations:ListAccounts", &e))?;
            out.extend(page.accounts().iter().filter_map(org_account));
        }
        Ok(out)
    }

    async fn accounts_for_parent(&self, parent: &str) -> Result<Vec<OrgAccount>, ApiError> {
        let mut pages = self.org.list_accounts_for_parent().parent_id(parent).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| ApiError::from_sdk(&format!("organizations:ListAccountsForParent {parent}"), &e))?;
            out.extend(page.accounts().iter().filter_map(org_account));
        }
        Ok(out)
    }

    async fn child_ous(&self, parent: &str) -> Result<Vec<String>, ApiError> {
        let mut pages = self.org.list_organizational_units_for_parent().parent_id(parent).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                ApiError::from_sdk(&format!("organizations:ListOrganizationalUnitsForParent {parent}"), &e)
            })?;
            out.extend(page.organizational_units().iter().filter_map(|o| o.id().map(str::to_string)));
        }
        Ok(out)
    }

    async fn enabled_regions(&self) -> Result<Vec<String>, ApiError> {
        use aws_sdk_account::types::RegionOptStatus as S;
        let mut pages = self
            .account
            .list_regions()
            .region_opt_status_contains(S::Enabled)
            .region_opt_status_contains(S::EnabledByDefault)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ApiError::from_sdk("account:ListRegions", &e))?;
            out.extend(page.regions().iter().filter_map(|r| r.region_name().map(str::to_string)));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An organization tree in memory: parent → (accounts, child OUs).
    #[derive(Default)]
    struct FakeOrg {
        tree: BTreeMap<String, (Vec<OrgAccount>, Vec<String>)>,
        regions: Vec<String>,
    }

    fn acct(id: &str, active: bool) -> OrgAccount {
        OrgAccount { id: id.into(), active }
    }

    impl OrgDirectory for FakeOrg {
        async fn organization(&self) -> Result<Option<OrgInfo>, ApiError> {
            Ok(Some(OrgInfo { id: "o-1".into(), management_account: "111111111111".into(), root_id: "r-1".into() }))
        }
        async fn accounts(&self) -> Result<Vec<OrgAccount>, ApiError> {
            Ok(self.tree.values().flat_map(|(a, _)| a.clone()).collect())
        }
        async fn accounts_for_parent(&self, parent: &str) -> Result<Vec<OrgAccount>, ApiError> {
            Ok(self.tree.get(parent).map(|(a, _)| a.clone()).unwrap_or_default())
        }
        async fn child_ous(&self, parent: &str) -> Result<Vec<String>, ApiError> {
            Ok(self.tree.get(parent).map(|(_, o)| o.clone()).unwrap_or_default())
        }
        async fn enabled_regions(&self) -> Result<Vec<String>, ApiError> {
            if self.regions.is_empty() {
                return Err(ApiError::new("account:ListRegions: AccessDenied"));
            }
            Ok(self.regions.clone())
        }
    }

    fn org() -> FakeOrg {
        let mut tree = BTreeMap::new();
        tree.insert("r-1".to_string(), (vec![acct("111111111111", true)], vec!["ou-a".to_string()]));
        tree.insert(
            "ou-a".to_string(),
            (vec![acct("222222222222", true), acct("333333333333", false)], vec!["ou-b".into()]),
        );
        tree.insert("ou-b".to_string(), (vec![acct("444444444444", true)], vec![]));
        tree.insert("ou-empty".to_string(), (vec![acct("555555555555", false)], vec![]));
        FakeOrg { tree, regions: vec!["us-east-1".into()] }
    }

    #[tokio::test]
    async fn selections_resolve_to_active_accounts_recursively() {
        let o = org();
        let all = resolve_accounts(&o, "111111111111", &Selection::Org).await.unwrap();
        assert_eq!(all, ["111111111111", "222222222222", "444444444444"]);
        let ou = resolve_accounts(&o, "111111111111", &Selection::Ous(vec!["ou-a".into()])).await.unwrap();
        assert_eq!(ou, ["222222222222", "444444444444"], "nested OUs included, suspended accounts not");
        let err = resolve_accounts(&o, "111111111111", &Selection::Ous(vec!["ou-empty".into()])).await.unwrap_err();
        assert_eq!(err, OrgError::NoAccountBelow("ou-empty".into()));
        assert_eq!(resolve_accounts(&o, "999999999999", &Selection::Current).await.unwrap(), ["999999999999"]);
    }

    #[tokio::test]
    async fn regions_must_be_readable_and_non_empty() {
        assert_eq!(enabled_regions(&org()).await.unwrap(), ["us-east-1"]);
        let e = enabled_regions(&FakeOrg::default()).await.unwrap_err();
        assert!(e.to_string().contains("pass --regions"), "{e}");
    }
}
