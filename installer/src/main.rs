//! `ctguard`: parse, dispatch, map the outcome to an exit code. No logic lives here.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let matches = ctguard_installer::cli::Cli::command().version(ctguard_installer::cli::version()).get_matches();
    let cli = match ctguard_installer::cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    ctguard_installer::init_tracing();
    match ctguard_installer::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::from(ctguard_installer::exit::OK);
            }
            eprintln!("ctguard: error: {e:#}");
            ExitCode::from(ctguard_installer::exit::USAGE)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
