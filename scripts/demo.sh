#!/usr/bin/env bash
# The main job on a local, emulated AWS Organization: installs everything ctguard needs
# (scripts/setup.sh), starts the emulator (moto server with the project's Lambda executor,
# scripts/moto_lambda.py: deployed functions run) on a free loopback port, creates an
# Organization with four member accounts in two OUs (plus the management account) and a logging
# trail in each, then runs `ctguard install --org`, `status`, `verify` (EventBridge PutEvents →
# rule → Lambda → DynamoDB → SNS, in every account × region) and `uninstall`, as a platform team
# would. Everything stays on this machine; the emulator and its function processes are stopped
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctguard-target}"
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
CTGUARD="$CARGO_TARGET_DIR/release/ctguard"
REGIONS="us-east-1,eu-west-1"

work=$(mktemp -d)
# Port 0: the emulator binds a free port itself and prints it; it stops itself after an hour.
python scripts/moto_lambda.py --port 0 --max-lifetime 3600 >"$work/moto.out" 2>"$work/moto.log" &
moto_pid=$!
cleanup() {
  # SIGTERM: the emulator stops its function processes, then exits; SIGKILL if it has not in 10 s.
  kill "$moto_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$moto_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$moto_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
endpoint=
for _ in $(seq 300); do
  endpoint=$(sed -n 's/^moto_lambda listening on //p' "$work/moto.out")
  [ -n "$endpoint" ] && break
  kill -0 "$moto_pid" 2>/dev/null || { cat "$work/moto.log" >&2; echo "the emulator did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$endpoint" ] || { cat "$work/moto.log" >&2; echo "the emulator did not start within 30 s" >&2; exit 1; }

: >"$work/aws-config"
export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$work/aws-config" \
  AWS_SHARED_CREDENTIALS_FILE="$work/aws-config"
unset AWS_PROFILE AWS_SESSION_TOKEN

say() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; }

echo "==> emulated Organization at $AWS_ENDPOINT_URL (moto with the Lambda executor; management account 123456789012)" >&2
python scripts/emulated_org.py "$AWS_ENDPOINT_URL" "$REGIONS" | sed 's/^/    member account /' >&2

say ctguard scan   # offline replay of the bundled sample logs
"$CTGUARD" scan || true

say ctguard install --org --regions "$REGIONS" --no-auto-deploy
"$CTGUARD" install --org --regions "$REGIONS" --no-auto-deploy

say ctguard install --org --regions "$REGIONS" --no-auto-deploy   # again: nothing to change
"$CTGUARD" install --org --regions "$REGIONS" --no-auto-deploy

say ctguard status --org --regions "$REGIONS"
"$CTGUARD" status --org --regions "$REGIONS"

# Every hop is the emulated AWS: PutEvents on each account's default bus, the installed rule,
# the deployed function (the bundled bootstrap, run by scripts/moto_lambda.py with the
# function's configuration, as its execution role), DynamoDB, SNS, and verify's SQS observer.
say ctguard verify --org --regions "$REGIONS"
"$CTGUARD" verify --org --regions "$REGIONS" --timeout 30

say ctguard uninstall --org --regions "$REGIONS" --yes
"$CTGUARD" uninstall --org --regions "$REGIONS" --yes

echo "demo finished in ${SECONDS} s" >&2
