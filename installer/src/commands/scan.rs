//! `ctguard scan` (being built; see the issue tracker).

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct ScanArgs {}

pub async fn run(_args: &ScanArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`ctguard scan` is not implemented yet")
}
