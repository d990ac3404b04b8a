//! Embeds the detector's Lambda zip, built beforehand by `cargo lambda build` (see
//! `scripts/setup.sh`). Never runs cargo itself. When no zip is found the binary still builds,
//! with an empty bundle that `ctguard package`/`install` refuse with a clear message, so that
//! `cargo check`/`clippy` work on a fresh clone.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=CTGUARD_LAMBDA_ZIP");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let target = env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| manifest.join("../target"));
    let candidates =
        [env::var("CTGUARD_LAMBDA_ZIP").ok().map(PathBuf::from), Some(target.join("lambda/bootstrap/bootstrap.zip"))];
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    let path = match found {
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
