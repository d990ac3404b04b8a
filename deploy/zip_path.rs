// Where the detector's Lambda zip is looked for at build time: `CTGUARD_LAMBDA_ZIP`, else where
// `scripts/setup.sh` builds it (`$CARGO_TARGET_DIR/lambda/bootstrap/bootstrap.zip`). Shared by
// the build scripts of ctguard-deploy (which embeds it) and ctguard (which refuses a release
// build without it) through `include!`.

/// The zip to embed, if one exists.
fn lambda_zip_path() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    println!("cargo:rerun-if-env-changed=CTGUARD_LAMBDA_ZIP");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| manifest.join("../target"));
    [std::env::var("CTGUARD_LAMBDA_ZIP").ok().map(PathBuf::from), Some(target.join("lambda/bootstrap/bootstrap.zip"))]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}
