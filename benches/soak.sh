#!/usr/bin/env bash
# RSS soak (issue 10, item 14; not in CI): the release gateway in front of the
# mock upstream under wrk c=32 chat load for SOAK_SECONDS, RSS sampled every
# 15 s, then IDLE_SECONDS idle, then the store's size on disk.
#
#   SOAK_SECONDS=600 IDLE_SECONDS=60 bash benches/soak.sh
#
# Set EXTRA_ENV="NAME=value ..." to pass variables to the gateway only.
# Expects the release binaries (`bash benches/load.sh` builds them).
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
IDLE_SECONDS=${IDLE_SECONDS:-60}
TARGET=${CARGO_TARGET_DIR:-target}
T=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-soak.XXXXXX")
PIDS=()
# The gateway gets SIGINT (fast stop), the mock SIGTERM (it ignores SIGINT).
cleanup() {
    kill -INT "${GP:-}" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$T"
}
trap cleanup EXIT
# shellcheck source=benches/lib.sh
source benches/lib.sh  # (the script has cd-ed to the repository root)

"$TARGET/release/examples/mock_upstream" 127.0.0.1:0 >"$T/mock.out" 2>&1 &
PIDS+=($!)
MA=$(wait_line "$T/mock.out" "mock ready on" 20 | awk '{print $4}')
mkdir "$T/data"
# shellcheck disable=SC2086
env SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$T/data" OPENAI_API_KEY=k \
    OPENAI_BASE_URL="http://$MA/v1" OPENAI_MODELS=gpt-4o-mini SWITCHYARD_LOG=warn ${EXTRA_ENV:-} \
    "$TARGET/release/switchyard" serve >"$T/gw.out" 2>"$T/gw.err" &
GP=$!
PIDS+=("$GP")
GA=$(wait_line "$T/gw.out" "ready on" 20 | awk '{print $4}')
cat >"$T/post.lua" <<'L'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
L
rss() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$GP/status"; }
echo "idle before load: $(rss) MiB"
wrk -t2 -c32 -d"${SOAK_SECONDS}s" -s "$T/post.lua" "http://$GA/v1/chat/completions" >"$T/wrk.out" &
WP=$!
s=0
while kill -0 "$WP" 2>/dev/null; do sleep 15; s=$((s + 15)); echo "load +${s}s: $(rss) MiB"; done
grep -E "Requests/sec|Non-2xx|errors" "$T/wrk.out" || true
for i in $(seq 1 $((IDLE_SECONDS / 15))); do sleep 15; echo "idle +$((i * 15))s: $(rss) MiB"; done
echo "store on disk: $(du -sh "$T/data/store" | cut -f1)"
