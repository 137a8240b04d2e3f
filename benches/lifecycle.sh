#!/usr/bin/env bash
# Lifecycle under load (not in CI): config reloads, three binary upgrades,
# SIGTERM and kill -9, each while `lifecycle_load` keeps WORKERS keep-alive
# connections busy. Prints, per phase, requests sent / answered / failed,
# and at the end records stored vs requests answered.
#
#   bash benches/lifecycle.sh
#
# Env knobs: PHASE_SECONDS=8 (load per phase), WORKERS=16, SKIP_BUILD=0.
#
# A failed request is one that was sent and got no answer (the load client
# never retries). Connection refusals after a stop are counted apart: no
# request was sent.
set -euo pipefail
cd "$(dirname "$0")/.."

PHASE_SECONDS=${PHASE_SECONDS:-8}
WORKERS=${WORKERS:-16}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-target}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'lifecycle.sh: %s\n' "$*" >&2; exit 1; }

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    cargo build --release --bin switchyard >&2
    cargo build --release --example mock_upstream --example lifecycle_load >&2
fi
GW_BIN=$TARGET/release/switchyard
MOCK_BIN=$TARGET/release/examples/mock_upstream
LOAD_BIN=$TARGET/release/examples/lifecycle_load

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-lifecycle.XXXXXX")
PIDS=()
cleanup() {
    local p
    # Gateways get SIGINT (fast stop), the mock SIGTERM (it ignores SIGINT).
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=benches/lib.sh
source benches/lib.sh  # (the script has cd-ed to the repository root)

"$MOCK_BIN" 127.0.0.1:0 >"$TMP/mock.out" 2>&1 &
PIDS+=($!)
MOCK_ADDR=$(wait_line "$TMP/mock.out" "mock ready on" 20 | awk '{print $4}') || die "mock did not start"

DATA=$TMP/data
mkdir -p "$DATA"
cat >"$DATA/switchyard.yaml" <<EOF
server:
  grace_period_seconds: 30
providers:
  openai:
    type: openai
    base_url: http://$MOCK_ADDR/v1
    api_key: k
    models: [gpt-4o-mini]
EOF
export SWITCHYARD_DATA_DIR=$DATA SWITCHYARD_CONFIG=$DATA/switchyard.yaml SWITCHYARD_LOG=warn

N=0
# start_gw [ARGS...]: starts a gateway, sets GW_PID (and ADDR the first time).
start_gw() {
    N=$((N + 1))
    local out=$TMP/gw$N.out
    "$GW_BIN" serve "$@" >"$out" 2>"$out.err" &
    GW_PID=$!
    PIDS+=("$GW_PID")
}
wait_ready() { wait_line "$TMP/gw$N.out" "switchyard ready on" 60 | awk '{print $4}'; }

wait_exit() { # PID TIMEOUT_S: seconds it took
    local t0 i
    t0=$(date +%s.%N)
    for i in $(seq 1 $(($2 * 20))); do
        kill -0 "$1" 2>/dev/null || { echo "$(date +%s.%N) - $t0" | bc; return 0; }
        sleep 0.05
    done
    echo "timeout"
}

load() { "$LOAD_BIN" "$ADDR" "$WORKERS" "$1"; }

# run_phase NAME ACTION: load for PHASE_SECONDS, ACTION at half time.
ANSWERED=0
SENT=0
FAILED=0
run_phase() {
    local name=$1 action=$2 result
    load "$PHASE_SECONDS" >"$TMP/phase.json" &
    local lp=$!
    sleep "$(echo "$PHASE_SECONDS / 2" | bc -l)"
    eval "$action"
    wait "$lp"
    result=$(cat "$TMP/phase.json")
    printf '%-22s %s\n' "$name" "$result"
    ANSWERED=$((ANSWERED + $(jq .ok <<<"$result")))
    SENT=$((SENT + $(jq .sent <<<"$result")))
    FAILED=$((FAILED + $(jq .failed <<<"$result")))
}

stored() { # records in the store, all time
    curl -s "http://$ADDR/admin/usage/summary" | jq '.totals.requests // error(tostring)'
}
flush() { curl -s -X POST "http://$ADDR/admin/runtime/flush" >/dev/null; }

start_gw --listen 127.0.0.1:0
ADDR=$(wait_ready) || die "gateway did not start"
log "gateway on $ADDR, mock on $MOCK_ADDR, $WORKERS keep-alive workers, ${PHASE_SECONDS}s per phase"

run_phase "baseline" ":"
run_phase "reload x5 (SIGHUP)" 'for i in 1 2 3 4 5; do kill -HUP $GW_PID; sleep 0.2; done'
for u in 1 2 3; do
    run_phase "upgrade $u" '
        OLD=$GW_PID
        rm -f "$DATA/switchyard-upgrade.sock"
        start_gw --upgrade --listen "$ADDR"
        for _ in $(seq 1 100); do [[ -S "$DATA/switchyard-upgrade.sock" ]] && break; sleep 0.05; done
        kill -QUIT "$OLD"
        echo "upgrade $u: old process exited after $(wait_exit "$OLD" 60) s" >>"$TMP/notes"'
done
wait_ready >/dev/null
flush
BEFORE_STOP=$(stored)
log "stored before the stop: $BEFORE_STOP of $ANSWERED answered"

run_phase "SIGTERM" 'T0=$GW_PID; kill -TERM "$T0"; echo "SIGTERM under load: exited after $(wait_exit "$T0" 60) s" >>"$TMP/notes"'
start_gw --listen "$ADDR"
ADDR=$(wait_ready)
AFTER_TERM=$(stored)
echo "after SIGTERM + restart: $AFTER_TERM records stored, $ANSWERED answered" >>"$TMP/notes"

run_phase "kill -9" 'kill -9 "$GW_PID"'
start_gw --listen "$ADDR"
ADDR=$(wait_ready)
AFTER_KILL=$(stored)
echo "after kill -9 + restart: $AFTER_KILL records stored, $ANSWERED answered ($((ANSWERED - AFTER_KILL)) lost with the kill)" >>"$TMP/notes"
IDLE_T0=$GW_PID
kill -TERM "$IDLE_T0"
echo "idle SIGTERM: exited after $(wait_exit "$IDLE_T0" 60) s" >>"$TMP/notes"

echo
cat "$TMP/notes"
echo "total: sent $SENT, answered $ANSWERED, failed $FAILED"
