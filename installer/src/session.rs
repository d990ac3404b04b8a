//! The set-up every multi-account command shares: load the SDK config once, identify the
//! caller, resolve `--org`/`--ou`/`--accounts` and `--regions` into a validated
//! [`TargetSet`], and build the [`AwsConnector`]. Also the entry point other commands (such as
//! `verify`) use to find installed targets: [`discover_installed`].

use clap::Args;

use crate::aws::{self, DEFAULT_MEMBER_ROLE};
use crate::cli::GlobalArgs;
use crate::deploy::{self, Installed};
use crate::org::{self, OrgInfo, Selection};
use crate::stacks::{AwsConnector, CallCounter};
use crate::targets::{self, TargetSet, US_EAST_1};

/// Which accounts × regions to work on (shared by install, status and uninstall).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Work on these accounts (comma-separated ids). Default: the caller's account.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["ou", "org"])]
    pub accounts: Vec<String>,
    /// Work on every active account below these organizational units (comma-separated, recursive).
    #[arg(long, value_delimiter = ',', conflicts_with = "org")]
    pub ou: Vec<String>,
    /// Work on every active account of the organization, the management account included.
    #[arg(long)]
    pub org: bool,
    /// Regions (comma-separated). Default: the caller account's enabled regions.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Region of each account's state table and alert topic.
    #[arg(long, default_value = US_EAST_1)]
    pub home_region: String,
    /// Role assumed in member accounts (the caller's own account uses the caller's credentials).
    #[arg(long, default_value = DEFAULT_MEMBER_ROLE)]
    pub role_name: String,
    /// Allow a region list without us-east-1 (IAM and global STS events are then NOT detected).
    #[arg(long)]
    pub allow_no_us_east_1: bool,
}

impl TargetArgs {
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

/// Loads the configuration, identifies the caller and resolves the targets.
pub async fn open(g: &GlobalArgs, t: &TargetArgs) -> anyhow::Result<Session> {
    let base = aws::load(g).await;
    let setup_calls = CallCounter::default();
    let caller_account = aws::caller_account(&base).await?;
    let selection = t.selection();
    // Organizations is a global service answered in us-east-1.
    let org_cfg = aws::in_region(&base, US_EAST_1);
    let org = match selection {
        Selection::Current | Selection::Accounts(_) => org::describe(&org_cfg, &setup_calls).await.unwrap_or(None),
        _ => Some(org::describe(&org_cfg, &setup_calls).await?.ok_or_else(|| {
            anyhow::anyhow!("--org/--ou need AWS Organizations, and the caller's account is not in an organization")
        })?),
    };
    let accounts = org::resolve_accounts(&org_cfg, &setup_calls, &caller_account, &selection).await?;
    let regions =
        if t.regions.is_empty() { org::enabled_regions(&base, &setup_calls).await? } else { t.regions.clone() };
    let set = targets::expand(&accounts, &regions, &t.home_region, t.allow_no_us_east_1)?;
    let connector = AwsConnector::new(base, caller_account.clone(), t.role_name.clone());
    Ok(Session { connector, set, caller_account, org, selection, setup_calls })
}

/// Finds what is installed in the selected accounts × regions: every target with its ctguard
/// stacks and their outputs (`FunctionArn`, `RuleArn`, `DlqUrl`, `DlqArn`, `RoleArn`,
/// `LogGroupName` on the regional stack; `StateTableArn` on the state stack; `AlertTopicArn` on
/// the account stack). Makes no change. Targets that could not be read carry `error`.
pub async fn discover_installed(g: &GlobalArgs, t: &TargetArgs) -> anyhow::Result<(Session, Vec<Installed>)> {
    let s = open(g, t).await?;
    let found = deploy::discover(&s.connector, &s.set, g.concurrency as usize).await;
    Ok((s, found))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        t: TargetArgs,
    }

    #[test]
    fn selections_parse_and_conflict() {
        let p = P::parse_from(["x", "--accounts", "111111111111,222222222222", "--regions", "us-east-1,eu-west-1"]);
        assert_eq!(p.t.selection(), Selection::Accounts(vec!["111111111111".into(), "222222222222".into()]));
        assert_eq!(p.t.regions, vec!["us-east-1", "eu-west-1"]);
        assert_eq!(p.t.role_name, "OrganizationAccountAccessRole");
        assert_eq!(P::parse_from(["x", "--org"]).t.selection(), Selection::Org);
        assert_eq!(P::parse_from(["x", "--ou", "ou-ab-1"]).t.selection(), Selection::Ous(vec!["ou-ab-1".into()]));
        assert_eq!(P::parse_from(["x"]).t.selection(), Selection::Current);
        assert!(P::try_parse_from(["x", "--org", "--accounts", "111111111111"]).is_err());
        assert!(P::try_parse_from(["x", "--org", "--ou", "ou-a"]).is_err());
    }
}
