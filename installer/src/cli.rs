//! The command line: one `Command` variant per subcommand, each with its own `Args` in
//! `commands/`. Parsing only; no logic.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

/// Catch stolen AWS temporary credentials across an AWS Organization.
#[derive(Debug, Parser)]
#[command(name = "ctguard", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// AWS profile to use (default: the standard credential chain).
    #[arg(long, global = true, env = "AWS_PROFILE")]
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the bundled Lambda zip (bootstrap at its root).
    Package(commands::package::PackageArgs),
    /// Print the bundled CloudFormation templates.
    Template(commands::template::TemplateArgs),
    /// Deploy the detector to the selected accounts × regions.
    Install(Box<commands::install::InstallArgs>),
    /// Show, per account × region, what is deployed and whether it is healthy.
    Status(Box<commands::status::StatusArgs>),
    /// Prove, per account × region, that a reused credential raises an alert.
    Verify(Box<commands::verify::VerifyArgs>),
    /// Remove everything ctguard created.
    Uninstall(Box<commands::uninstall::UninstallArgs>),
    /// Replay CloudTrail/ActionTrail logs through the detector and print the alerts.
    Scan(Box<commands::scan::ScanArgs>),
    /// Everything one access key did: last use, sources, risky operations, timeline.
    Trace(Box<commands::trace::TraceArgs>),
    /// IAM user access keys and their last use; find and disable idle ones.
    Keys(Box<commands::keys::KeysArgs>),
}
