//! `ctguard verify` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct VerifyArgs {}

pub async fn run(_args: &VerifyArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard verify` is not implemented yet")
}
