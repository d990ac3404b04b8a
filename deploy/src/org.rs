//! Account and region selection through AWS Organizations and AWS Account Management:
//! `--org` (every active account, the management account too), `--ou` (every account below
//! the OUs, recursively), `--accounts`, or the caller's own account; `--regions` or the
//! account's enabled regions (one `account:ListRegions` call).

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::stacks::CallCounter;
use ctguard_aws::err_text;

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

macro_rules! org_client {
    ($cfg:expr, $counter:expr) => {
        aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from($cfg).interceptor($counter.clone()).build(),
        )
    };
}

/// The organization, or `None` when the account is not in one (or may not ask).
pub async fn describe(cfg: &SdkConfig, counter: &CallCounter) -> anyhow::Result<Option<OrgInfo>> {
    let org = org_client!(cfg, counter);
    let o = match org.describe_organization().send().await {
        Ok(o) => o,
        Err(e) if matches!(e.code(), Some("AWSOrganizationsNotInUseException") | Some("AccessDeniedException")) => {
            return Ok(None)
        }
        Err(e) => anyhow::bail!("organizations:DescribeOrganization: {}", err_text(&e)),
    };
    let Some(o) = o.organization() else {
        return Ok(None);
    };
    let roots =
        org.list_roots().send().await.map_err(|e| anyhow::anyhow!("organizations:ListRoots: {}", err_text(&e)))?;
    let root_id = roots.roots().first().and_then(|r| r.id()).unwrap_or_default().to_string();
    Ok(Some(OrgInfo {
        id: o.id().unwrap_or_default().to_string(),
        management_account: o.master_account_id().unwrap_or_default().to_string(),
        root_id,
    }))
}

/// Every ACTIVE account of the organization (the management account included).
pub async fn all_accounts(cfg: &SdkConfig, counter: &CallCounter) -> anyhow::Result<Vec<String>> {
    let org = org_client!(cfg, counter);
    let mut pages = org.list_accounts().into_paginator().send();
    let mut out = BTreeSet::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow::anyhow!("organizations:ListAccounts: {}", err_text(&e)))?;
        for a in page.accounts() {
            let active = a
                .state()
                .map(|s| s.as_str() == "ACTIVE")
                .or_else(|| a.status().map(|s| s.as_str() == "ACTIVE"))
                .unwrap_or(true);
            if active {
                out.extend(a.id().map(str::to_string));
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Every ACTIVE account below `parent` (a root or an OU), recursively.
pub async fn accounts_under(cfg: &SdkConfig, counter: &CallCounter, parent: &str) -> anyhow::Result<Vec<String>> {
    let org = org_client!(cfg, counter);
    let mut out = BTreeSet::new();
    let mut todo = vec![parent.to_string()];
    while let Some(p) = todo.pop() {
        let mut pages = org.list_accounts_for_parent().parent_id(&p).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| anyhow::anyhow!("organizations:ListAccountsForParent {p}: {}", err_text(&e)))?;
            for a in page.accounts() {
                let active = a
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| a.status().map(|s| s.as_str() == "ACTIVE"))
                    .unwrap_or(true);
                if active {
                    out.extend(a.id().map(str::to_string));
                }
            }
        }
        let mut pages = org.list_organizational_units_for_parent().parent_id(&p).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| anyhow::anyhow!("organizations:ListOrganizationalUnitsForParent {p}: {}", err_text(&e)))?;
            todo.extend(page.organizational_units().iter().filter_map(|o| o.id().map(str::to_string)));
        }
    }
    Ok(out.into_iter().collect())
}

/// The account ids a selection stands for.
pub async fn resolve_accounts(
    cfg: &SdkConfig,
    counter: &CallCounter,
    caller: &str,
    sel: &Selection,
) -> anyhow::Result<Vec<String>> {
    match sel {
        Selection::Current => Ok(vec![caller.to_string()]),
        Selection::Accounts(v) => Ok(v.clone()),
        Selection::Org => all_accounts(cfg, counter).await,
        Selection::Ous(ous) => {
            let mut all = BTreeSet::new();
            for ou in ous {
                let under = accounts_under(cfg, counter, ou).await?;
                if under.is_empty() {
                    anyhow::bail!("no active account below {ou}");
                }
                all.extend(under);
            }
            Ok(all.into_iter().collect())
        }
    }
}

/// The caller account's enabled regions (opt-in regions included once enabled).
pub async fn enabled_regions(cfg: &SdkConfig, counter: &CallCounter) -> anyhow::Result<Vec<String>> {
    use aws_sdk_account::types::RegionOptStatus as S;
    let client = aws_sdk_account::Client::from_conf(
        aws_sdk_account::config::Builder::from(cfg).interceptor(counter.clone()).build(),
    );
    let mut pages = client
        .list_regions()
        .region_opt_status_contains(S::Enabled)
        .region_opt_status_contains(S::EnabledByDefault)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "cannot list the account's enabled regions (account:ListRegions: {}); pass --regions",
                err_text(&e)
            )
        })?;
        out.extend(page.regions().iter().filter_map(|r| r.region_name().map(str::to_string)));
    }
    if out.is_empty() {
        anyhow::bail!("account:ListRegions returned no enabled region; pass --regions");
    }
    Ok(out)
}
