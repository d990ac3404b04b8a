//! The command line: one `Command` variant per subcommand, each with its own `Args` in
//! `commands/`. Parsing only; no logic.

use clap::{Parser, Subcommand};

use crate::args::GlobalArgs;
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
    /// Deny a compromised role session everywhere except its trusted identities (asks first).
    Contain(Box<commands::contain::ContainArgs>),
    /// Remove the deny policy `contain` attached.
    Release(Box<commands::contain::ReleaseArgs>),
}
