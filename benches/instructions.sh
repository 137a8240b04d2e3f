#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: bare Pingora,
# the gateway, and the gateway with one managed key + an rpm limit + a
# monthly budget (the governance target's configuration), each serving the
# same N chat requests (Authorization header included) from the mock
# upstream after a warm-up; then the gateway translating the same request
# for an Anthropic upstream (the mock's /v1/messages).
#
# Why: wall-clock CPU per request on these shared VMs drifts by more than
# the margins the targets judge (pairs a minute apart differ by ±10 us on a
# 60 us request), while an instruction count is the same whatever else the
# host runs. It does not see what instructions cost (cache misses, atomics
# bouncing between cores, SHA-NI: valgrind hides CPU extensions, so SHA-256
# runs its AVX code here), so it complements load.sh, never replaces it.
#
#   N=1500       measured requests per target (after 200 warm-up requests)
#   SKIP_BUILD=1 use the release binaries already built
#   GW_BIN=path  measure another gateway build (a before/after pair)
#   KEEP_PROFILES=dir  keep the callgrind profiles there (for callgrind_annotate;
#                build with CARGO_PROFILE_RELEASE_STRIP=none to get symbols)
#
# Output: a table and target/instructions-summary.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-1500}
WARM=200
log() { echo "==> $*" >&2; }
die() { echo "instructions.sh: $*" >&2; exit 1; }
for t in valgrind callgrind_control python3; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install valgrind python3)"
done
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries"
    cargo build --release --bin switchyard >&2
    cargo build --release --example mock_upstream --example bare_pingora >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
GW_BIN=${GW_BIN:-$TARGET/release/switchyard}
MOCK_BIN=$TARGET/release/examples/mock_upstream
BARE_BIN=$TARGET/release/examples/bare_pingora
for b in "$GW_BIN" "$MOCK_BIN" "$BARE_BIN"; do [[ -x "$b" ]] || die "missing $b (run without SKIP_BUILD=1)"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-instr.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${KEEP_PROFILES:-}" ]]; then
        mkdir -p "$KEEP_PROFILES" && cp "$TMP"/*.cg.* "$KEEP_PROFILES"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

MODEL=gpt-4o-mini
CLAUDE=claude-3-5-haiku-20241022 # the mock's Anthropic endpoint: the gateway translates
KEY=sk-sy-load-test-key-0123456789abcdefghijklmnopqrstuvw
"$MOCK_BIN" 127.0.0.1:0 >"$TMP/mock.out" 2>"$TMP/mock.out.err" &
PIDS+=("$!")
MOCK_ADDR=$(wait_line "$TMP/mock.out" "mock ready on" 20 "$!" | awk '{print $4}') || die "mock did not start"
HASH=$(printf '%s' "$KEY" | "$GW_BIN" keys hash)
printf 'providers:\n  openai: {base_url: "http://%s/v1", api_key: k, models: [%s]}\n  anthropic: {base_url: "http://%s", api_key: k, models: [%s]}\n' \
    "$MOCK_ADDR" "$MODEL" "$MOCK_ADDR" "$CLAUDE" >"$TMP/plain.yaml"
{
    cat "$TMP/plain.yaml"
    printf 'keys:\n  - {name: load, hash: "%s", limits: {rpm: 100000000}, budget: {usd: 1000000000, period: month}}\n' "$HASH"
} >"$TMP/governed.yaml"

# drive ADDR COUNT: COUNT chat requests on 4 keep-alive connections; prints
# how many got a 200.
drive() {
    python3 - "$1" "$2" "${DRIVE_MODEL:-$MODEL}" "$KEY" <<'PY'
import http.client, json, sys, threading
addr, count, model, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
host, port = addr.rsplit(":", 1)
body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello there, how are you today?"}], "max_tokens": 16})
headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
ok = [0] * 4
def run(i):
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    for _ in range(count // 4 + (1 if i < count % 4 else 0)):
        c.request("POST", "/v1/chat/completions", body, headers)
        r = c.getresponse()
        r.read()
        ok[i] += r.status == 200
threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(ok))
PY
}

declare -A INSTR
# measure NAME READY_PATTERN CMD...: instructions per request of one server,
# run with the variables in ENVS (set outside valgrind: it does not follow
# an `env` that execs the server).
ENVS=()
measure() {
    local name=$1 pattern=$2
    shift 2
    env "${ENVS[@]}" valgrind --tool=callgrind --callgrind-out-file="$TMP/$name.cg.%p" --dump-instr=no "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.out.err" &
    local pid=$!
    PIDS+=("$pid")
    local addr
    addr=$(wait_line "$TMP/$name.out" "$pattern" 300 "$pid" | awk '{print $4}') || die "$name did not start"
    log "$name on $addr (under callgrind): $WARM warm-up requests, then $N measured"
    [[ $(drive "$addr" "$WARM") == "$WARM" ]] || die "$name: warm-up requests failed"
    callgrind_control -z "$pid" >/dev/null 2>&1
    local ok
    ok=$(drive "$addr" "$N")
    callgrind_control -d "$pid" >/dev/null 2>&1
    [[ "$ok" == "$N" ]] || die "$name: $ok of $N requests answered 200"
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    local total
    total=$(cat "$TMP/$name.cg.$pid".* | awk '/^totals:/ {s += $2} END {print s}')
    INSTR[$name]=$((total / N))
}

measure bare "bare ready on" "$BARE_BIN" 127.0.0.1:0 "$MOCK_ADDR"
mkdir -p "$TMP/d1" "$TMP/d2"
ENVS=(SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/d1" SWITCHYARD_LOG=warn SWITCHYARD_CONFIG="$TMP/plain.yaml")
measure gateway "switchyard ready on" "$GW_BIN" serve
ENVS=(SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/d2" SWITCHYARD_LOG=warn SWITCHYARD_CONFIG="$TMP/governed.yaml")
measure governed "switchyard ready on" "$GW_BIN" serve
mkdir -p "$TMP/d3"
ENVS=(SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/d3" SWITCHYARD_LOG=warn SWITCHYARD_CONFIG="$TMP/plain.yaml")
DRIVE_MODEL=$CLAUDE measure translated "switchyard ready on" "$GW_BIN" serve

B=${INSTR[bare]} G=${INSTR[gateway]} K=${INSTR[governed]} T=${INSTR[translated]}
RATIO=$(awk -v g="$G" -v b="$B" 'BEGIN{printf "%.3f", g / b}')
TR_RATIO=$(awk -v t="$T" -v g="$G" 'BEGIN{printf "%.3f", t / g}')
ADD=$((K - G))
ADD_PCT=$(awk -v a="$ADD" -v g="$G" 'BEGIN{printf "%.2f", 100 * a / g}')
printf '\n%-44s %12s\n' "instructions per request (callgrind, N=$N)" ""
printf '%-44s %12s\n' "bare Pingora" "$B"
printf '%-44s %12s\n' "gateway" "$G"
printf '%-44s %12s\n' "gateway, key + rpm + monthly budget" "$K"
printf '%-44s %12s\n' "gateway, translated (OpenAI -> Anthropic)" "$T"
printf '%-44s %12s\n' "gateway / bare Pingora" "x$RATIO"
printf '%-44s %12s\n' "translated / same dialect" "x$TR_RATIO"
printf '%-44s %12s\n' "added by the key and its limits" "+$ADD (+$ADD_PCT %)"
mkdir -p "$TARGET"
printf '{"n": %d, "bare": %d, "gateway": %d, "governed": %d, "translated": %d, "gateway_over_bare": %s, "translated_over_gateway": %s, "governance_added": %d, "governance_added_pct": %s}\n' \
    "$N" "$B" "$G" "$K" "$T" "$RATIO" "$TR_RATIO" "$ADD" "$ADD_PCT" >"$TARGET/instructions-summary.json"
echo "JSON summary: $TARGET/instructions-summary.json"
