//! `ctguard install` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct InstallArgs {}

pub async fn run(_args: &InstallArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard install` is not implemented yet")
}
