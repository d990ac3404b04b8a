#!/usr/bin/env bash
# Installs everything ctguard needs on a fresh machine, idempotently:
#  1. the pinned Python tools (moto server, cargo-lambda, zig, cfn-lint) in ./.venv;
#  2. the detector's Lambda zip, built by cargo-lambda with zig (glibc <= 2.34 for provided.al2023);
#  3. the `ctguard` binary, which embeds that zip: a release build, printed at the end
#     (CTGUARD_PROFILE=debug builds the debug binary instead: what scripts/test.sh uses, since
#     the tests need the debug build and a second, release build would cost minutes).
# Build output goes to $CARGO_TARGET_DIR (default ~/.cache/ctguard-target) so repeat runs are
# incremental even from a fresh clone.
set -euo pipefail
# Nothing here reads the terminal; a closed or odd stdin must not reach rustc's target probes.
exec </dev/null
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctguard-target}"

step() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 2
fi

step "Python tools (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! cmp -s scripts/requirements.txt .venv/.ctguard-requirements 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt .venv/.ctguard-requirements
fi
export PATH="$PWD/.venv/bin:$PATH"

step "Lambda package (cargo lambda build --release)"
cargo lambda build --release -p ctguard-detector --bin bootstrap --features lambda --output-format zip 2>&1 \
  | grep -v '^\s*Compiling ' >&2 || true
zip="$CARGO_TARGET_DIR/lambda/bootstrap/bootstrap.zip"
if [ ! -s "$zip" ]; then
  echo "cargo lambda build did not produce $zip" >&2
  exit 1
fi

profile="${CTGUARD_PROFILE:-release}"
case "$profile" in
  release) flag=(--release) ;;
  debug) flag=() ;;
  *) echo "CTGUARD_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
bin="$CARGO_TARGET_DIR/$profile/ctguard"
step "ctguard binary ($profile, embeds $zip)"
# pipefail: the build's own status decides, not grep's.
CTGUARD_LAMBDA_ZIP="$zip" cargo build ${flag[@]+"${flag[@]}"} -p ctguard 2>&1 | { grep -v '^\s*Compiling ' >&2 || true; } \
  || { echo "cargo build ${flag[*]+${flag[*]}} -p ctguard failed" >&2; exit 1; }
"$bin" package --out - >/dev/null \
  || { echo "the ctguard binary has no bundled Lambda zip" >&2; exit 1; }
echo "ready: $bin" >&2
echo "  (put it on your PATH, e.g.: install -m 755 \"$bin\" ~/.local/bin/ctguard)" >&2
