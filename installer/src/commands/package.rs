//! `ctguard package --out FILE`: write the bundled Lambda zip.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::args::GlobalArgs;
use crate::exit;
use ctguard_deploy::embedded;

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
    } else if args.out.exists() && !args.out.is_file() {
        // A device, FIFO or directory: write through it, never replace it (renaming a temporary
        // file over `/dev/null` as root would replace the device itself).
        std::fs::write(&args.out, zip).with_context(|| format!("writing {}", args.out.display()))?;
    } else {
        // A regular file: write beside it and rename, so a reader never sees half a zip.
        let mut tmp = args.out.clone().into_os_string();
        tmp.push(".partial");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, zip).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!("wrote {} ({} bytes, sha256 {})", args.out.display(), zip.len(), embedded::code_hash(zip));
    }
    Ok(exit::OK)
}
