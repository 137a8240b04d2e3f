#!/usr/bin/env bash
# Builds the release binary and starts the gateway in the foreground.
# Reads provider keys from the environment or from ./.env (see .env.template);
# extra arguments go to `switchyard serve` (e.g. --config conf/switchyard.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
if [ -f .env ]; then set -a; . ./.env; set +a; fi
exec target/release/switchyard serve "$@"
