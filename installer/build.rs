//! Records the commit the binary is built from, for `ctguard --version` ("unknown" outside a
//! git checkout, e.g. from a source archive).

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CTGUARD_COMMIT={commit}");
    // HEAD and the branch it points to, wherever git keeps them (a worktree's `.git` is a file).
    for p in [git(&["rev-parse", "--git-path", "HEAD"]), branch_ref()].into_iter().flatten() {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-env-changed=CTGUARD_LAMBDA_ZIP");
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
