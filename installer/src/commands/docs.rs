//! `ctguard completions <shell>` and `ctguard man`: generated from the clap definitions, so
//! they never drift from the flags.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(a: &CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "ctguard", &mut std::io::stdout().lock());
    Ok(exit::OK)
}

pub fn man() -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::io::stdout().lock().write_all(&out)?;
    Ok(exit::OK)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_man_page_cover_the_subcommands() {
        let mut buf = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), "ctguard", &mut buf);
        let bash = String::from_utf8(buf).unwrap();
        assert!(bash.contains("install") && bash.contains("--alert-email") && bash.contains("--config"));
        let mut man = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH ctguard") && man.contains("uninstall"), "{}", &man[..200.min(man.len())]);
    }

    #[test]
    fn version_names_the_release_the_commit_and_the_bundled_lambda() {
        let v = crate::cli::version();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(v.contains("commit ") && v.contains("lambda "), "{v}");
        let zip = ctguard_deploy::embedded::LAMBDA_ZIP;
        if !zip.is_empty() {
            assert!(v.contains(&ctguard_deploy::embedded::code_hash(zip)), "{v}");
        }
    }
}
