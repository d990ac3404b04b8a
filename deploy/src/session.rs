//! The set-up every multi-account command shares: load the SDK config once, identify the
//! caller, resolve `--org`/`--ou`/`--accounts` and `--regions` into a validated
//! [`TargetSet`], and build the [`AwsConnector`]. Also the entry point other commands (such as
//! `verify`) use to find installed targets: [`discover_installed`].

use ctguard_aws::{self as aws, AwsError, AwsOptions};

use crate::deploy::{self, Installed};
use crate::org::{self, AwsOrg, OrgDirectory, OrgError, OrgInfo, Selection};
use crate::stacks::{AwsConnector, CallCounter};
use crate::stacksets::CfnStackSets;
use crate::targets::{self, TargetError, TargetSet, US_EAST_1};

/// Which accounts × regions to work on (shared by install, status, verify and uninstall); the
/// `ctguard` binary fills it from its `--accounts/--ou/--org/--regions/…` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOptions {
    /// Work on these accounts (comma-separated ids). Default: the caller's account.
    pub accounts: Vec<String>,
    /// Work on every active account below these organizational units (comma-separated, recursive).
    pub ou: Vec<String>,
    /// Work on every active account of the organization, the management account included.
    pub org: bool,
    /// Regions (comma-separated). Default: the caller account's enabled regions.
    pub regions: Vec<String>,
    /// Region of each account's state table and alert topic.
    pub home_region: String,
    /// Role assumed in member accounts (the caller's own account uses the caller's credentials).
    pub role_name: String,
    /// Allow a region list without us-east-1 (IAM and global STS events are then NOT detected).
    pub allow_no_us_east_1: bool,
}

impl TargetOptions {
    pub fn selection(&self) -> Selection {
        if self.org {
            Selection::Org
        } else if !self.ou.is_empty() {
            Selection::Ous(self.ou.clone())
        } else if !self.accounts.is_empty() {
            Selection::Accounts(self.accounts.clone())
        } else {
            Selection::Current
        }
    }
}

/// Everything a command needs to reach its targets.
pub struct Session {
    pub connector: AwsConnector,
    pub set: TargetSet,
    pub caller_account: String,
    pub org: Option<OrgInfo>,
    pub selection: Selection,
    /// Calls made while setting up (STS, Organizations, Account).
    pub setup_calls: CallCounter,
}

impl Session {
    /// Whether the caller is not the organization's management account: its StackSets calls
    /// then go as a delegated administrator (`CallAs: DELEGATED_ADMIN`).
    pub fn delegated_admin(&self) -> bool {
        self.org.as_ref().is_some_and(|o| o.management_account != self.caller_account)
    }

    /// ctguard's StackSets as this caller reaches them, from its home region: as the management
    /// account (`CallAs: SELF`) or as a delegated administrator.
    pub fn stack_sets(&self) -> CfnStackSets {
        CfnStackSets::new(&aws::in_region(self.connector.base(), &self.set.home_region), self.delegated_admin())
    }
}

/// Why a multi-account command could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error("--org/--ou need AWS Organizations, and the caller's account is not in an organization")]
    NotInOrganization,
    #[error(transparent)]
    Targets(#[from] TargetError),
    #[error(transparent)]
    Input(#[from] crate::validate::InputError),
}

/// Loads the configuration, identifies the caller and resolves the targets.
pub async fn open(g: &AwsOptions, t: &TargetOptions) -> Result<Session, SessionError> {
    let base = aws::load(g).await;
    let setup_calls = CallCounter::default();
    let caller_account = aws::caller_account(&base).await?;
    let selection = t.selection();
    // Organizations is a global service answered in us-east-1.
    let directory = AwsOrg::new(&aws::in_region(&base, US_EAST_1), &base, &setup_calls);
    let org = match selection {
        Selection::Current | Selection::Accounts(_) => directory.organization().await.unwrap_or(None),
        _ => Some(directory.organization().await.map_err(OrgError::from)?.ok_or(SessionError::NotInOrganization)?),
    };
    let accounts = org::resolve_accounts(&directory, &caller_account, &selection).await?;
    let regions = if t.regions.is_empty() {
        org::enabled_regions(&directory).await?
    } else {
        // Refuse an unknown region before any target is touched: against the account's own
        // list when it answers, against every published region name otherwise.
        let enabled = org::enabled_regions(&directory).await.ok();
        crate::validate::regions(&t.regions, enabled.as_deref())?;
        t.regions.clone()
    };
    let set = targets::expand(&accounts, &regions, &t.home_region, t.allow_no_us_east_1)?;
    let connector = AwsConnector::new(base, caller_account.clone(), t.role_name.clone());
    Ok(Session { connector, set, caller_account, org, selection, setup_calls })
}

/// Finds what is installed in the selected accounts × regions: every target with its ctguard
/// stacks and their outputs (`FunctionArn`, `RuleArn`, `DlqUrl`, `DlqArn`, `RoleArn`,
/// `LogGroupName` on the regional stack; `StateTableArn` on the state stack; `AlertTopicArn` on
/// the account stack). Makes no change. Targets that could not be read carry `error`.
pub async fn discover_installed(
    g: &AwsOptions,
    t: &TargetOptions,
    concurrency: usize,
) -> Result<(Session, Vec<Installed>), SessionError> {
    let s = open(g, t).await?;
    let found = deploy::discover(&s.connector, &s.set, concurrency).await;
    Ok((s, found))
}
