//! `ctguard package --out FILE`: write the bundled Lambda zip.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::cli::GlobalArgs;
use crate::embedded;
use crate::exit;

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Where to write the zip (`-` for standard output).
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn run(args: &PackageArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    let zip = embedded::lambda_zip()?;
    if args.out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(zip)?;
    } else {
        let tmp = args.out.with_extension("zip.partial");
        std::fs::write(&tmp, zip).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!("wrote {} ({} bytes, sha256 {})", args.out.display(), zip.len(), embedded::code_hash(zip));
    }
    Ok(exit::OK)
}
