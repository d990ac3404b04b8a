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

/// `ctguard --version`: the version, the commit it was built from and the SHA-256 of the
/// bundled Lambda zip (what `install` deploys), so a report names exactly what ran.
pub fn version() -> &'static str {
    let zip = ctguard_deploy::embedded::LAMBDA_ZIP;
    let lambda = if zip.is_empty() {
        "none bundled".to_string()
    } else {
        format!("sha256 {}", ctguard_deploy::embedded::code_hash(zip))
    };
    // Leaked once per process: clap keeps a `'static` version string.
    Box::leak(
        format!("{} (commit {}, lambda {lambda})", env!("CARGO_PKG_VERSION"), env!("CTGUARD_COMMIT")).into_boxed_str(),
    )
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
    /// Replay each target's dead-letter queue through the detector; delete what succeeded.
    Redrive(Box<commands::redrive::RedriveArgs>),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::docs::CompletionsArgs),
    /// Print the man page (roff), e.g. `ctguard man > /usr/local/share/man/man1/ctguard.1`.
    Man,
}
