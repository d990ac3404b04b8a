//! Embeds the detector's Lambda zip, built beforehand by `cargo lambda build` (see
//! `scripts/setup.sh`). Never runs cargo itself. When no zip is found the binary still builds,
//! with an empty bundle that `ctguard package`/`install` refuse with a clear message, so that
//! `cargo check`/`clippy` work on a fresh clone.

use std::env;
use std::fs;
use std::path::PathBuf;

include!("zip_path.rs");

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    let path = match lambda_zip_path() {
        Some(p) => {
            println!("cargo:rerun-if-changed={}", p.display());
            p
        }
        None => {
            println!("cargo:warning=no Lambda zip found (run scripts/setup.sh); building without a bundled detector");
            let p = out.join("missing-bootstrap.zip");
            if let Err(e) = fs::write(&p, b"") {
                println!("cargo:warning=cannot write {}: {e}", p.display());
            }
            p
        }
    };
    println!("cargo:rustc-env=CTGUARD_BUNDLED_ZIP={}", path.display());
    for t in ["ctguard-artifacts.yaml", "ctguard-state.yaml", "ctguard-account.yaml", "ctguard-region.yaml"] {
        println!("cargo:rerun-if-changed={}", manifest.join("../templates").join(t).display());
    }
}
