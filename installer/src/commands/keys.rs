//! `ctguard keys` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct KeysArgs {}

pub async fn run(_args: &KeysArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard keys` is not implemented yet")
}
