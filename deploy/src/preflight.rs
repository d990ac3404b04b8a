//! Preflight: what `install` needs from AWS, checked before any change and shown at the top of
//! `install` and `install --plan`, each failure with its fix. The checks:
//!
//! - **identity**: who is calling (`sts:GetCallerIdentity`);
//! - **installing account**: the management account, a delegated administrator for StackSets,
//!   or (without `--org`/`--ou`) any account;
//! - **StackSets trusted access** and the management account's service-linked role, when
//!   auto-deployment or the StackSets mode is on (`CreateStackSet` fails without them);
//! - **cross-account role**: assumed once in every account deployed to directly;
//! - **trail**: one that logs management events, read and write, in each account's home region
//!   (EventBridge only receives CloudTrail events a trail records);
//! - **regions**: the requested regions against the account's enabled ones (`account:ListRegions`;
//!   ctguard has no EC2 client, so `ec2:DescribeRegions` is not used).
//!
//! Checks whose failure would make the run fail in a way that cannot be undone half way (no
//! trusted access, wrong installing account) are *blocking*: install stops before any change.
//! A role that cannot be assumed is not: that account fails alone, as it would anyway. A missing
//! trail stops the install through the per-target check of [`crate::deploy`] (every region,
//! not only the home one), which also honours `--allow-missing-trail`.
//!
//! Pure given a [`PreflightApi`]; [`AwsPreflight`] is the real one, [`FakePreflight`] the tests'.

use std::collections::BTreeSet;
use std::future::Future;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::org::{AwsOrg, OrgDirectory, OrgInfo};
use crate::stacks::{ApiError, AwsConnector, CallCounter, Connector, TargetApi};
use crate::targets::{Target, TargetSet, US_EAST_1};
use crate::trail::TrailVerdict;

/// The service principal of CloudFormation StackSets in Organizations (trusted access and
/// delegated administration).
pub const STACKSETS_PRINCIPAL: &str = "member.org.stacksets.cloudformation.amazonaws.com";
/// The service-linked role trusted access creates in the management account.
pub const STACKSETS_ADMIN_ROLE: &str = "AWSServiceRoleForCloudFormationStackSetsOrgAdmin";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// Not what it should be, or could not be checked; the run goes on.
    Warn,
    Fail,
}

/// One preflight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// A failure that stops install before any change.
    pub blocking: bool,
}

impl Check {
    fn pass(check: &'static str, detail: impl Into<String>) -> Self {
        Check { check, verdict: Verdict::Pass, detail: detail.into(), fix: None, blocking: false }
    }
    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { check, verdict: Verdict::Warn, detail: detail.into(), fix: Some(fix.into()), blocking: false }
    }
    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>, blocking: bool) -> Self {
        Check { check, verdict: Verdict::Fail, detail: detail.into(), fix: Some(fix.into()), blocking }
    }
}

/// Every check, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preflight {
    pub checks: Vec<Check>,
}

impl Preflight {
    /// The failures that stop install before any change.
    pub fn blocking(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.blocking).collect()
    }
}

/// What the preflight reads from AWS. Takes and returns ctguard types only.
pub trait PreflightApi: Sync {
    /// The caller's ARN (`sts:GetCallerIdentity`).
    fn caller_arn(&self) -> impl Future<Output = Result<String, ApiError>> + Send;
    /// Accounts registered as delegated administrators for `principal`.
    fn delegated_admins(&self, principal: &str) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// Service principals with trusted access to the organization.
    fn trusted_services(&self) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// Whether the IAM role `name` exists in the caller's account.
    fn role_exists(&self, name: &str) -> impl Future<Output = Result<bool, ApiError>> + Send;
    /// Assumes the cross-account role in `account` and makes one call with it.
    fn assume(&self, account: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// The trail verdict of one account × region.
    fn trail(&self, target: &Target) -> impl Future<Output = Result<TrailVerdict, ApiError>> + Send;
    /// The caller account's enabled regions (`account:ListRegions`).
    fn enabled_regions(&self) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
}

/// What the run is about to do.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub caller_account: &'a str,
    pub org: Option<&'a OrgInfo>,
    /// `--org` or `--ou`.
    pub org_wide: bool,
    /// Auto-deployment or the StackSets mode is on: StackSets will be created or updated.
    pub stacksets: bool,
    pub set: &'a TargetSet,
    /// Accounts deployed to directly through the cross-account role (the caller's own excluded).
    pub assume_in: &'a [String],
    pub role_name: &'a str,
    pub concurrency: usize,
}

/// Runs every check (reads only).
pub async fn check<A: PreflightApi>(api: &A, i: &Inputs<'_>) -> Preflight {
    let mut checks = Vec::new();
    checks.push(match api.caller_arn().await {
        Ok(arn) => Check::pass("identity", format!("account {} as {arn}", i.caller_account)),
        Err(e) => Check::fail(
            "identity",
            format!("sts:GetCallerIdentity failed: {e}"),
            "set credentials (--profile, AWS_PROFILE, or the AWS_* variables)",
            true,
        ),
    });
    let management = i.org.is_some_and(|o| o.management_account == i.caller_account);
    checks.push(installing_account(api, i, management).await);
    if i.stacksets {
        checks.extend(trusted_access(api, management).await);
    }
    checks.push(roles(api, i).await);
    checks.push(trails(api, i).await);
    checks.push(regions(api, i).await);
    Preflight { checks }
}

async fn installing_account<A: PreflightApi>(api: &A, i: &Inputs<'_>, management: bool) -> Check {
    const WHAT: &str = "installing account";
    let Some(org) = i.org else {
        return Check::pass(WHAT, "a standalone account (no organization): a single-account install");
    };
    if management {
        return Check::pass(WHAT, format!("the management account of {}", org.id));
    }
    let register = format!(
        "run from the management account ({}), or register this account as a delegated administrator there: \
         aws organizations register-delegated-administrator --service-principal {STACKSETS_PRINCIPAL} --account-id {}",
        org.management_account, i.caller_account
    );
    match api.delegated_admins(STACKSETS_PRINCIPAL).await {
        Ok(admins) if admins.iter().any(|a| a == i.caller_account) => {
            Check::pass(WHAT, format!("a delegated administrator for StackSets in {}", org.id))
        }
        Ok(_) if i.org_wide => Check::fail(
            WHAT,
            format!("a member account of {} that is not a delegated administrator for StackSets", org.id),
            register,
            i.stacksets,
        ),
        Ok(_) => Check::pass(WHAT, format!("a member account of {} (no --org/--ou: no StackSets needed)", org.id)),
        Err(e) if i.org_wide => Check::warn(
            WHAT,
            format!("a member account of {}; cannot tell whether it is a delegated administrator ({e})", org.id),
            register,
        ),
        Err(_) => Check::pass(WHAT, format!("a member account of {} (no --org/--ou: no StackSets needed)", org.id)),
    }
}

async fn trusted_access<A: PreflightApi>(api: &A, management: bool) -> Vec<Check> {
    const WHAT: &str = "StackSets trusted access";
    let activate = "activate trusted access from the management account: aws cloudformation \
                    activate-organizations-access (or the CloudFormation console's StackSets page); it also creates the \
                    service-linked roles";
    let mut out = vec![match api.trusted_services().await {
        Ok(s) if s.iter().any(|p| p == STACKSETS_PRINCIPAL) => {
            Check::pass(WHAT, format!("{STACKSETS_PRINCIPAL} has trusted access"))
        }
        Ok(_) => Check::fail(
            WHAT,
            format!("{STACKSETS_PRINCIPAL} has no trusted access: CreateStackSet would fail"),
            activate,
            true,
        ),
        // Only the management account may list trusted services; a delegated administrator
        // cannot tell, and its StackSets calls will say.
        Err(e) => Check::warn(WHAT, format!("cannot be read from this account ({e})"), activate),
    }];
    if management {
        out.push(match api.role_exists(STACKSETS_ADMIN_ROLE).await {
            Ok(true) => Check::pass("StackSets service-linked role", format!("{STACKSETS_ADMIN_ROLE} exists")),
            Ok(false) => Check::fail(
                "StackSets service-linked role",
                format!("{STACKSETS_ADMIN_ROLE} is missing in the management account"),
                activate,
                true,
            ),
            Err(e) => Check::warn("StackSets service-linked role", format!("cannot be read ({e})"), activate),
        });
    }
    out
}

async fn roles<A: PreflightApi>(api: &A, i: &Inputs<'_>) -> Check {
    const WHAT: &str = "cross-account role";
    if i.assume_in.is_empty() {
        return Check::pass(WHAT, "not needed (no other account is deployed to directly)");
    }
    let failed: Vec<(String, String)> = stream::iter(i.assume_in)
        .map(|a| async move { api.assume(a).await.err().map(|e| (a.clone(), e.message)) })
        .buffer_unordered(i.concurrency.max(1))
        .filter_map(|x| async move { x })
        .collect()
        .await;
    if failed.is_empty() {
        return Check::pass(WHAT, format!("{} assumed in {} accounts", i.role_name, i.assume_in.len()));
    }
    let mut failed = failed;
    failed.sort();
    Check::fail(
        WHAT,
        format!(
            "{} cannot be assumed in {} of {} accounts (they will fail alone): {}",
            i.role_name,
            failed.len(),
            i.assume_in.len(),
            failed.iter().map(|(a, e)| format!("{a}: {e}")).collect::<Vec<_>>().join("; ")
        ),
        format!(
            "create a role named {} trusting account {} in those accounts (accounts invited into the organization \
             have none), or pass --role-name",
            i.role_name, i.caller_account
        ),
        false,
    )
}

async fn trails<A: PreflightApi>(api: &A, i: &Inputs<'_>) -> Check {
    const WHAT: &str = "trail";
    let homes: Vec<Target> = i.set.accounts.iter().map(|a| Target::new(a.clone(), i.set.home_region.clone())).collect();
    let mut bad: Vec<String> = stream::iter(&homes)
        .map(|t| async move {
            match api.trail(t).await {
                Ok(TrailVerdict::Ok { .. }) => None,
                Ok(TrailVerdict::Missing { reason }) => Some(format!("{t}: {reason}")),
                Err(e) => Some(format!("{t}: cannot be read: {e}")),
            }
        })
        .buffer_unordered(i.concurrency.max(1))
        .filter_map(|x| async move { x })
        .collect()
        .await;
    bad.sort();
    if bad.is_empty() {
        return Check::pass(
            WHAT,
            format!("management events (read and write) are logged in the home region of {} accounts", homes.len()),
        );
    }
    Check::fail(
        WHAT,
        format!("{} of {} accounts: {}", bad.len(), homes.len(), bad.join("; ")),
        "create a trail that logs management events, read and write (from the management account an organization \
         trail covers every account: aws cloudtrail create-trail --is-organization-trail --is-multi-region-trail), \
         or pass --allow-missing-trail (the detector is then blind there)",
        // The per-target check of the install stops it (every region, --allow-missing-trail).
        false,
    )
}

async fn regions<A: PreflightApi>(api: &A, i: &Inputs<'_>) -> Check {
    const WHAT: &str = "regions";
    match api.enabled_regions().await {
        Ok(enabled) => {
            let on: BTreeSet<&str> = enabled.iter().map(String::as_str).collect();
            let off: Vec<&str> = i.set.regions.iter().map(String::as_str).filter(|r| !on.contains(r)).collect();
            if off.is_empty() {
                Check::pass(
                    WHAT,
                    format!(
                        "{} enabled in account {} (account:ListRegions)",
                        i.set.regions.join(","),
                        i.caller_account
                    ),
                )
            } else {
                Check::fail(
                    WHAT,
                    format!("not enabled in account {} (account:ListRegions): {}", i.caller_account, off.join(",")),
                    "enable the regions (aws account enable-region) or leave them out of --regions",
                    true,
                )
            }
        }
        Err(e) => Check::warn(
            WHAT,
            format!(
                "account:ListRegions unavailable ({e}): {} checked against the published region names only",
                i.set.regions.join(",")
            ),
            "allow account:ListRegions to the installing principal, so opt-in regions that are not enabled are caught \
             before the run",
        ),
    }
}

// ------------------------------------------------------------------------------------------
// AWS

/// [`PreflightApi`] with the session's connector: the caller's credentials for STS,
/// Organizations, IAM and Account; the cross-account role for the rest.
pub struct AwsPreflight<'a> {
    connector: &'a AwsConnector,
    org: aws_sdk_organizations::Client,
    counter: CallCounter,
}

impl<'a> AwsPreflight<'a> {
    pub fn new(connector: &'a AwsConnector) -> Self {
        let counter = CallCounter::default();
        // Organizations is a global service answered in us-east-1.
        let cfg = ctguard_aws::in_region(connector.base(), US_EAST_1);
        let org = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&cfg).interceptor(counter.clone()).build(),
        );
        AwsPreflight { connector, org, counter }
    }

    /// Calls made by the checks (per-target trail reads excluded).
    pub fn calls(&self) -> u64 {
        self.counter.get()
    }
}

impl PreflightApi for AwsPreflight<'_> {
    async fn caller_arn(&self) -> Result<String, ApiError> {
        ctguard_aws::caller_identity(self.connector.base())
            .await
            .map(|(_, arn)| arn)
            .map_err(|e| ApiError::new(e.to_string()))
    }

    async fn delegated_admins(&self, principal: &str) -> Result<Vec<String>, ApiError> {
        let mut pages = self.org.list_delegated_administrators().service_principal(principal).into_paginator().send();
        let mut out = Vec::new();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk("organizations:ListDelegatedAdministrators", &e))?;
            out.extend(p.delegated_administrators().iter().filter_map(|d| d.id().map(str::to_string)));
        }
        Ok(out)
    }

    async fn trusted_services(&self) -> Result<Vec<String>, ApiError> {
        let mut pages = self.org.list_aws_service_access_for_organization().into_paginator().send();
        let mut out = Vec::new();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk("organizations:ListAWSServiceAccessForOrganization", &e))?;
            out.extend(p.enabled_service_principals().iter().filter_map(|s| s.service_principal().map(str::to_string)));
        }
        Ok(out)
    }

    async fn role_exists(&self, name: &str) -> Result<bool, ApiError> {
        let iam = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(self.connector.base()).interceptor(self.counter.clone()).build(),
        );
        match iam.get_role().role_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(false),
            Err(e) => Err(ApiError::from_sdk("iam:GetRole", &e)),
        }
    }

    async fn assume(&self, account: &str) -> Result<(), ApiError> {
        let cfg = self.connector.account_config(account).await;
        ctguard_aws::caller_account(&cfg).await.map(|_| ()).map_err(|e| ApiError::new(e.to_string()))
    }

    async fn trail(&self, target: &Target) -> Result<TrailVerdict, ApiError> {
        self.connector.connect(target).await?.trail().await
    }

    async fn enabled_regions(&self) -> Result<Vec<String>, ApiError> {
        let base = self.connector.base();
        AwsOrg::new(&ctguard_aws::in_region(base, US_EAST_1), base, &self.counter).enabled_regions().await
    }
}

// ------------------------------------------------------------------------------------------
// Fake

#[cfg(any(test, feature = "test-support"))]
/// An in-memory [`PreflightApi`]: every answer is a field.
#[derive(Debug, Clone)]
pub struct FakePreflight {
    pub arn: Result<String, String>,
    pub delegated: Result<Vec<String>, String>,
    pub trusted: Result<Vec<String>, String>,
    pub roles: Vec<String>,
    /// Accounts whose cross-account role cannot be assumed, with the reason.
    pub unassumable: std::collections::BTreeMap<String, String>,
    /// Targets without a usable trail, with the reason.
    pub no_trail: std::collections::BTreeMap<Target, String>,
    pub enabled: Result<Vec<String>, String>,
}

#[cfg(any(test, feature = "test-support"))]
impl Default for FakePreflight {
    /// Everything in order: StackSets trusted, its role present, every region enabled.
    fn default() -> Self {
        FakePreflight {
            arn: Ok("arn:aws:iam::111111111111:user/platform".into()),
            delegated: Ok(Vec::new()),
            trusted: Ok(vec![STACKSETS_PRINCIPAL.into()]),
            roles: vec![STACKSETS_ADMIN_ROLE.into()],
            unassumable: Default::default(),
            no_trail: Default::default(),
            enabled: Ok(["us-east-1", "us-west-2", "eu-west-1"].iter().map(|s| s.to_string()).collect()),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl PreflightApi for FakePreflight {
    async fn caller_arn(&self) -> Result<String, ApiError> {
        self.arn.clone().map_err(ApiError::new)
    }
    async fn delegated_admins(&self, _principal: &str) -> Result<Vec<String>, ApiError> {
        self.delegated.clone().map_err(ApiError::new)
    }
    async fn trusted_services(&self) -> Result<Vec<String>, ApiError> {
        self.trusted.clone().map_err(ApiError::new)
    }
    async fn role_exists(&self, name: &str) -> Result<bool, ApiError> {
        Ok(self.roles.iter().any(|r| r == name))
    }
    async fn assume(&self, account: &str) -> Result<(), ApiError> {
        self.unassumable.get(account).map_or(Ok(()), |e| Err(ApiError::new(e.clone())))
    }
    async fn trail(&self, target: &Target) -> Result<TrailVerdict, ApiError> {
        Ok(match self.no_trail.get(target) {
            Some(reason) => TrailVerdict::Missing { reason: reason.clone() },
            None => TrailVerdict::Ok { name: "org-trail".into() },
        })
    }
    async fn enabled_regions(&self) -> Result<Vec<String>, ApiError> {
        self.enabled.clone().map_err(ApiError::new)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::targets::expand;

    const MGMT: &str = "111111111111";
    const MEMBER: &str = "222222222222";

    fn org() -> OrgInfo {
        OrgInfo { id: "o-abcdefghij".into(), management_account: MGMT.into(), root_id: "r-abcd".into() }
    }

    fn set() -> TargetSet {
        expand(
            &[MGMT.to_string(), MEMBER.to_string()],
            &["us-east-1".to_string(), "eu-west-1".to_string()],
            "us-east-1",
            false,
        )
        .unwrap()
    }

    async fn run(api: &FakePreflight, caller: &str, stacksets: bool) -> Preflight {
        let o = org();
        let s = set();
        let assume_in: Vec<String> = s.accounts.iter().filter(|a| *a != caller).cloned().collect();
        let i = Inputs {
            caller_account: caller,
            org: Some(&o),
            org_wide: true,
            stacksets,
            set: &s,
            assume_in: &assume_in,
            role_name: "OrganizationAccountAccessRole",
            concurrency: 4,
        };
        check(api, &i).await
    }

    fn get<'a>(p: &'a Preflight, name: &str) -> &'a Check {
        p.checks.iter().find(|c| c.check == name).unwrap_or_else(|| panic!("no check {name}: {p:#?}"))
    }

    #[tokio::test]
    async fn everything_in_order_passes_and_blocks_nothing() {
        let p = run(&FakePreflight::default(), MGMT, true).await;
        assert!(p.checks.iter().all(|c| c.verdict == Verdict::Pass), "{p:#?}");
        assert!(p.blocking().is_empty());
        assert!(get(&p, "installing account").detail.contains("management account"));
        assert!(get(&p, "regions").detail.contains("account:ListRegions"));
        assert!(get(&p, "cross-account role").detail.contains("assumed in 1 accounts"));
    }

    #[tokio::test]
    async fn no_trusted_access_blocks_only_when_stacksets_are_used() {
        let api = FakePreflight { trusted: Ok(vec![]), roles: vec![], ..FakePreflight::default() };
        let p = run(&api, MGMT, true).await;
        let blocking: Vec<&str> = p.blocking().iter().map(|c| c.check).collect();
        assert_eq!(blocking, vec!["StackSets trusted access", "StackSets service-linked role"]);
        assert!(get(&p, "StackSets trusted access").fix.as_deref().unwrap().contains("activate-organizations-access"));
        let p = run(&api, MGMT, false).await;
        assert!(p.blocking().is_empty(), "{p:#?}");
        assert!(p.checks.iter().all(|c| !c.check.starts_with("StackSets")));
    }

    #[tokio::test]
    async fn a_member_that_is_no_delegated_administrator_is_told_how_to_become_one() {
        let p = run(&FakePreflight::default(), MEMBER, true).await;
        let c = get(&p, "installing account");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.blocking);
        assert!(c.fix.as_deref().unwrap().contains("register-delegated-administrator"), "{c:?}");
        let api = FakePreflight { delegated: Ok(vec![MEMBER.into()]), ..FakePreflight::default() };
        let p = run(&api, MEMBER, true).await;
        assert_eq!(get(&p, "installing account").verdict, Verdict::Pass, "{p:#?}");
        // A delegated administrator cannot read trusted access: a warning, never a pass.
        let api = FakePreflight {
            delegated: Ok(vec![MEMBER.into()]),
            trusted: Err("AccessDenied".into()),
            ..FakePreflight::default()
        };
        let p = run(&api, MEMBER, true).await;
        assert_eq!(get(&p, "StackSets trusted access").verdict, Verdict::Warn);
        assert!(
            p.checks.iter().all(|c| c.check != "StackSets service-linked role"),
            "only the management account has it"
        );
    }

    #[tokio::test]
    async fn unassumable_roles_missing_trails_and_disabled_regions_are_named_with_their_fix() {
        let mut api = FakePreflight::default();
        api.unassumable.insert(MEMBER.into(), "AccessDenied: not authorized to perform sts:AssumeRole".into());
        api.no_trail.insert(Target::new(MEMBER, "us-east-1"), "no trail".into());
        api.enabled = Ok(vec!["us-east-1".into()]);
        let p = run(&api, MGMT, false).await;
        let role = get(&p, "cross-account role");
        assert_eq!(role.verdict, Verdict::Fail);
        assert!(!role.blocking, "that account fails alone");
        assert!(role.detail.contains(MEMBER) && role.detail.contains("sts:AssumeRole"), "{role:?}");
        assert!(role.fix.as_deref().unwrap().contains("--role-name"));
        let trail = get(&p, "trail");
        assert_eq!(trail.verdict, Verdict::Fail);
        assert!(trail.detail.contains(&format!("{MEMBER}/us-east-1: no trail")), "{trail:?}");
        assert!(trail.fix.as_deref().unwrap().contains("--allow-missing-trail"));
        let regions = get(&p, "regions");
        assert!(regions.blocking && regions.detail.contains("eu-west-1"), "{regions:?}");
        // ListRegions refused: said, with the source used instead.
        api.enabled = Err("AccessDeniedException".into());
        let p = run(&api, MGMT, false).await;
        let regions = get(&p, "regions");
        assert_eq!(regions.verdict, Verdict::Warn);
        assert!(regions.detail.contains("published region names"), "{regions:?}");
    }

    #[tokio::test]
    async fn unknown_credentials_block() {
        let api = FakePreflight { arn: Err("ExpiredToken".into()), ..FakePreflight::default() };
        let p = run(&api, MGMT, false).await;
        assert_eq!(p.blocking().first().map(|c| c.check), Some("identity"));
    }
}
