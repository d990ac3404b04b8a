//! The `ctguard` binary's own code: the command line, one module per command, output and
//! progress rendering, exit codes. The work is done by the library crates below it:
//! `ctguard-deploy` (install, status, verify, uninstall), `ctguard-forensics` (scan, trace,
//! keys) and `ctguard-aws` (SDK configuration). `main.rs` only dispatches.

pub mod args;
pub mod cli;
pub mod commands;
pub mod config;
pub mod exit;
pub mod output;
pub mod progress;
pub mod prompt;

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
        Command::Completions(a) => commands::docs::completions(&a),
        Command::Man => commands::docs::man(),
        other => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
            rt.block_on(async move {
                match other {
                    Command::Install(a) => commands::install::run(&a, &g).await,
                    Command::Status(a) => commands::status::run(&a, &g).await,
                    Command::Verify(a) => commands::verify::run(&a, &g).await,
                    Command::Redrive(a) => commands::redrive::run(&a, &g).await,
                    Command::Uninstall(a) => commands::uninstall::run(&a, &g).await,
                    Command::Scan(a) => commands::scan::run(&a, &g).await,
                    Command::Trace(a) => commands::trace::run(&a, &g).await,
                    Command::Keys(a) => commands::keys::run(&a, &g).await,
                    Command::Contain(a) => commands::contain::run_contain(&a, &g).await,
                    Command::Release(a) => commands::contain::run_release(&a, &g).await,
                    Command::Package(_) | Command::Template(_) | Command::Completions(_) | Command::Man => {
                        unreachable!("handled above")
                    }
                }
            })
        }
    }
}
