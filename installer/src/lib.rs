//! The `ctguard` binary's library: commands, AWS plumbing, output. `main.rs` only dispatches.

pub mod autodeploy;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod embedded;
pub mod exit;
pub mod forensics;
pub mod inspect;
pub mod org;
pub mod output;
pub mod plan;
pub mod progress;
pub mod session;
pub mod stacks;
pub mod targets;
pub mod trail;
pub mod verify;

use cli::{Cli, Command};

/// Logs go to stderr, controlled by `CTGUARD_LOG` (e.g. `CTGUARD_LOG=debug`); quiet by default.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CTGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Runs one command and returns its exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = cli.global;
    match cli.command {
        Command::Package(a) => commands::package::run(&a, &g),
        Command::Template(a) => commands::template::run(&a, &g),
        other => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
            rt.block_on(async move {
                match other {
                    Command::Install(a) => commands::install::run(&a, &g).await,
                    Command::Status(a) => commands::status::run(&a, &g).await,
                    Command::Verify(a) => commands::verify::run(&a, &g).await,
                    Command::Uninstall(a) => commands::uninstall::run(&a, &g).await,
                    Command::Scan(a) => commands::scan::run(&a, &g).await,
                    Command::Trace(a) => commands::trace::run(&a, &g).await,
                    Command::Keys(a) => commands::keys::run(&a, &g).await,
                    Command::Package(_) | Command::Template(_) => unreachable!("handled above"),
                }
            })
        }
    }
}
