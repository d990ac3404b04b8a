//! Records the commit the binary is built from, for `ctguard --version` ("unknown" outside a
//! git checkout, e.g. from a source archive), and refuses a release build (what `cargo install
//! --path installer` makes) without the detector's Lambda zip: such a binary could not install
//! anything. Debug builds go on without it, so `cargo check`/`clippy`/`test` work on a fresh clone.

use std::process::Command;

include!("../deploy/zip_path.rs");

fn main() {
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let zip = lambda_zip_path();
    if release && zip.is_none() {
        panic!(
            "\n\nctguard: no detector Lambda zip to bundle, and a release binary without it cannot install anything.\n\
             Build the zip first, then point CTGUARD_LAMBDA_ZIP at it:\n\
             \n    bash scripts/setup.sh        # builds target/lambda/bootstrap/bootstrap.zip (and a release ctguard)\n\
             \n    CTGUARD_LAMBDA_ZIP=\"$CARGO_TARGET_DIR/lambda/bootstrap/bootstrap.zip\" cargo install --path installer\n\
             \n(CARGO_TARGET_DIR defaults to ./target.)\n"
        );
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CTGUARD_COMMIT={commit}");
    // HEAD and the branch it points to, wherever git keeps them (a worktree's `.git` is a file).
    for p in [git(&["rev-parse", "--git-path", "HEAD"]), branch_ref()].into_iter().flatten() {
        println!("cargo:rerun-if-changed={p}");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The file of the branch HEAD points to (absent when detached or packed).
fn branch_ref() -> Option<String> {
    let name = git(&["symbolic-ref", "-q", "HEAD"])?;
    git(&["rev-parse", "--git-path", &name]).filter(|p| std::path::Path::new(p).is_file())
}
