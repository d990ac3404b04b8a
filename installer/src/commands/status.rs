//! `ctguard status` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {}

pub async fn run(_args: &StatusArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard status` is not implemented yet")
}
