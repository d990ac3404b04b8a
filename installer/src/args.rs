//! Option groups shared by several commands: the global options every command takes and the
//! target selection of the multi-account commands. Clap types stay here, in the binary; the
//! library crates take the plain structs these convert into ([`AwsOptions`], [`TargetOptions`]).

use clap::{Args, ValueEnum};
use ctguard_aws::{AwsOptions, DEFAULT_MEMBER_ROLE};
use ctguard_deploy::session::TargetOptions;
use ctguard_deploy::targets::US_EAST_1;

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// AWS profile to use. As with aws-cli, an explicit --profile wins over credentials in the
    /// environment (AWS_ACCESS_KEY_ID), and a profile that does not exist is an error.
    /// Without it: the standard chain (environment, then AWS_PROFILE or the default profile, ...).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Region for the installing account's own calls (default: from the profile/environment).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (a local emulator). `AWS_ENDPOINT_URL` works too.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// How many targets to work on at once.
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Shorthand for `--output json`.
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalArgs {
    /// The options the AWS plumbing takes.
    pub fn aws(&self) -> AwsOptions {
        AwsOptions {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        }
    }

    /// The effective output format.
    pub fn output(&self) -> Output {
        if self.json {
            Output::Json
        } else {
            self.output
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human tables.
    Text,
    /// One JSON object per line.
    Json,
    /// Comma-separated values (where a command produces rows).
    Csv,
}

/// Which accounts × regions to work on (shared by install, status and uninstall).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
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
    /// Region of each account's state table and alert topic [default: us-east-1].
    #[arg(long)]
    pub home_region: Option<String>,
    /// Role assumed in member accounts (the caller's own account uses the caller's credentials)
    /// [default: OrganizationAccountAccessRole]. `--assume-role-name` is accepted too (the
    /// spelling `keys` used).
    #[arg(long, alias = "assume-role-name")]
    pub role_name: Option<String>,
    /// Allow a region list without us-east-1 (IAM and global STS events are then NOT detected).
    #[arg(long)]
    pub allow_no_us_east_1: bool,
}

impl TargetArgs {
    /// The plain selection the deploy library takes.
    pub fn options(&self) -> TargetOptions {
        TargetOptions {
            accounts: self.accounts.clone(),
            ou: self.ou.clone(),
            org: self.org,
            regions: self.regions.clone(),
            home_region: self.home_region.clone().unwrap_or_else(|| US_EAST_1.to_string()),
            role_name: self.role_name.clone().unwrap_or_else(|| DEFAULT_MEMBER_ROLE.to_string()),
            allow_no_us_east_1: self.allow_no_us_east_1,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use ctguard_deploy::org::Selection;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        t: TargetArgs,
    }

    #[test]
    fn selections_parse_and_conflict() {
        let p = P::parse_from(["x", "--accounts", "111111111111,222222222222", "--regions", "us-east-1,eu-west-1"]);
        assert_eq!(p.t.options().selection(), Selection::Accounts(vec!["111111111111".into(), "222222222222".into()]));
        assert_eq!(p.t.regions, vec!["us-east-1", "eu-west-1"]);
        assert_eq!(p.t.options().role_name, "OrganizationAccountAccessRole");
        assert_eq!(p.t.options().home_region, "us-east-1");
        assert_eq!(P::parse_from(["x", "--assume-role-name", "Audit"]).t.options().role_name, "Audit");
        assert_eq!(P::parse_from(["x", "--role-name", "Audit"]).t.options().role_name, "Audit");
        assert_eq!(P::parse_from(["x", "--org"]).t.options().selection(), Selection::Org);
        assert_eq!(
            P::parse_from(["x", "--ou", "ou-ab-1"]).t.options().selection(),
            Selection::Ous(vec!["ou-ab-1".into()])
        );
        assert_eq!(P::parse_from(["x"]).t.options().selection(), Selection::Current);
        assert!(P::try_parse_from(["x", "--org", "--accounts", "111111111111"]).is_err());
        assert!(P::try_parse_from(["x", "--org", "--ou", "ou-a"]).is_err());
    }
}
