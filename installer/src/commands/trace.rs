//! `ctguard trace` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct TraceArgs {}

pub async fn run(_args: &TraceArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard trace` is not implemented yet")
}
