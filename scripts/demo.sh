#!/usr/bin/env bash
# The main job on a local, emulated AWS Organization: installs everything ctguard needs
# (scripts/setup.sh), starts moto server on a free loopback port, creates an Organization with
# four member accounts in two OUs (plus the management account) and a logging trail in each,
# then runs `ctguard install --org`, `status`, `verify` and `uninstall`, as a platform team
# would. Everything stays on this machine; the emulator is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctguard-target}"
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
CTGUARD="$CARGO_TARGET_DIR/debug/ctguard"
REGIONS="us-east-1,eu-west-1"

port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; kill "${fn_pid:-}" "${emu_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

: >"$work/aws-config"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$work/aws-config" \
  AWS_SHARED_CREDENTIALS_FILE="$work/aws-config"
unset AWS_PROFILE AWS_SESSION_TOKEN

say() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; }

echo "==> emulated Organization at $AWS_ENDPOINT_URL (moto; management account 123456789012)" >&2
python scripts/emulated_org.py "$AWS_ENDPOINT_URL" "$REGIONS" | sed 's/^/    member account /' >&2

say ctguard scan   # offline replay of the bundled sample logs
"$CTGUARD" scan || true

say ctguard install --org --regions "$REGIONS" --no-auto-deploy
"$CTGUARD" install --org --regions "$REGIONS" --no-auto-deploy

say ctguard install --org --regions "$REGIONS" --no-auto-deploy   # again: nothing to change
"$CTGUARD" install --org --regions "$REGIONS" --no-auto-deploy

say ctguard status --org --regions "$REGIONS"
"$CTGUARD" status --org --regions "$REGIONS"

# moto cannot run Lambda code (it needs Docker) and its EventBridge cannot deliver to a Lambda,
# so `verify` sends its synthetic events with the Lambda Invoke API to the very bootstrap that
# ships, run under cargo-lambda's runtime emulator with the deployed function's configuration
# (management account, us-east-1). Every other hop is the emulated AWS.
echo "(emulator gap: moto's CloudFormation does not apply TimeToLiveSpecification; enabling TTL on ctguard-state as AWS would)" >&2
python - <<PY
import boto3
boto3.client("dynamodb", endpoint_url="$AWS_ENDPOINT_URL", region_name="us-east-1").update_time_to_live(
    TableName="ctguard-state", TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
PY
emu_port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/emu" && cat >"$work/emu/Cargo.toml" <<TOML
[package]
name = "ctguard-lambda-emulator"
version = "0.0.0"
edition = "2021"
[[bin]]
name = "ctguard-detector"
path = "main.rs"
[workspace]
TOML
echo 'fn main() {}' >"$work/emu/main.rs"
(cd "$work/emu" && exec cargo-lambda lambda watch --only-lambda-apis -A 127.0.0.1 -P "$emu_port" >"$work/emu.log" 2>&1) &
emu_pid=$!
"$CTGUARD" package --out "$work/bootstrap.zip" 2>/dev/null
python -m zipfile -e "$work/bootstrap.zip" "$work/fn" && chmod +x "$work/fn/bootstrap"
python - >"$work/fn.env" <<PY
import boto3
env = boto3.client("lambda", endpoint_url="$AWS_ENDPOINT_URL", region_name="us-east-1").get_function_configuration(
    FunctionName="ctguard-detector")["Environment"]["Variables"]
print("\n".join(f"{k}={v}" for k, v in env.items()))
PY
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$emu_port") 2>/dev/null && break; sleep 0.1; done
env $(cat "$work/fn.env") AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$emu_port/.rt/ctguard-detector" \
  AWS_LAMBDA_FUNCTION_NAME=ctguard-detector AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
  RUST_LOG=warn "$work/fn/bootstrap" >"$work/fn.log" 2>&1 &
fn_pid=$!

say ctguard verify --via invoke --regions us-east-1 --invoke-endpoint "http://127.0.0.1:$emu_port"
"$CTGUARD" verify --via invoke --regions us-east-1 --invoke-endpoint "http://127.0.0.1:$emu_port" --timeout 20

say ctguard uninstall --org --regions "$REGIONS" --yes
"$CTGUARD" uninstall --org --regions "$REGIONS" --yes
