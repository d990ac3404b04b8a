#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the emulator's Lambda executor tests, unit
# tests, scenario tests, and the end-to-end tests against moto server (with the project's Lambda
# executor, scripts/moto_lambda.py) and cargo-lambda's runtime emulator (which the tests start).
set -euo pipefail
# Nothing here reads the terminal; a closed or odd stdin must not reach rustc's target probes.
exec </dev/null
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctguard-target}"
# The debug binary: the tests need it, and a release build here would cost minutes.
CTGUARD_PROFILE=debug bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export CTGUARD_LAMBDA_ZIP="$CARGO_TARGET_DIR/lambda/bootstrap/bootstrap.zip"

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --features ctguard-detector/lambda -- -D warnings
echo "==> templates: cfn-lint and moto deploy check" >&2
cfn-lint templates/*.yaml
python scripts/moto_check_templates.py
echo "==> the emulator's Lambda executor (scripts/moto_lambda.py)" >&2
timeout 600 python scripts/moto_lambda_test.py
timeout 300 python scripts/moto_cbor_test.py
echo "==> cargo test" >&2
cargo test --workspace --features ctguard-detector/lambda --lib --bins --tests
echo "==> athena: the scan SQL on DuckDB (sqlglot-translated) against the shared datasets" >&2
cargo build -p ctguard
DATA=../shared/data
python scripts/athena_sql_check.py "$CARGO_TARGET_DIR/debug/ctguard" "$DATA/flaws2-cloudtrail" \
  "$DATA/stratus-red-team-detonation-logs" "$DATA/otrf-aws-cloud-breach-s3" "$DATA/panther-cloudtrail-rule-tests"
