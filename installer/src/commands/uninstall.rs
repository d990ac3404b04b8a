//! `ctguard uninstall` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct UninstallArgs {}

pub async fn run(_args: &UninstallArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard uninstall` is not implemented yet")
}
