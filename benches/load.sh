#!/usr/bin/env bash
# Switchyard load test: gateway vs. direct-to-upstream baseline, measured in
# the same run on the same machine. See benches/README.md for what each number
# means.
#
#   bash benches/load.sh
#
# Env knobs:
#   DURATION=10          seconds per wrk run (4 measured runs + warm-ups)
#   STREAMS=1000         concurrent open SSE streams for the memory test
#   STREAM_RUNS=0        1 = also measure SSE streaming throughput (c=32)
#   GATEWAY_THREADS=     gateway worker threads (default: gateway default = cores)
#   MOCK_THREADS=        mock upstream worker threads (default: cores)
#   LOAD_JSON=target/load-summary.json   where the JSON summary goes
#   SKIP_BUILD=0         1 = use the binaries already in target/release
#
# Everything runs on 127.0.0.1 with ports chosen by the kernel; every process
# the script starts is stopped on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-10}
STREAMS=${STREAMS:-1000}
STREAM_RUNS=${STREAM_RUNS:-0}
GATEWAY_THREADS=${GATEWAY_THREADS:-}
LOAD_JSON=${LOAD_JSON:-target/load-summary.json}
SKIP_BUILD=${SKIP_BUILD:-0}
MODEL=gpt-4o-mini
HOLD_MS=120000

[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 600 ]] ||
    { echo "DURATION must be 1..600 seconds" >&2; exit 2; }
[[ "$STREAMS" =~ ^[0-9]+$ && "$STREAMS" -le 20000 ]] ||
    { echo "STREAMS must be 0..20000" >&2; exit 2; }

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'load.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
if ! command -v wrk >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing wrk"
        apt-get install -y wrk >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } ||
            die "could not install wrk"
    else
        die "wrk is required: install it (Debian/Ubuntu: sudo apt-get install wrk) and re-run"
    fi
fi
CLK_TCK=$(getconf CLK_TCK)

# Each open stream costs the gateway two descriptors (caller + upstream), the
# mock one and the client one.
need_fds=$((STREAMS * 2 + 1024))
if [[ $(ulimit -n) -lt $need_fds ]]; then
    ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
[[ $(ulimit -n) -ge $need_fds ]] ||
    die "open-file limit $(ulimit -n) < $need_fds needed for $STREAMS streams (raise the hard limit or lower STREAMS)"

# ---------------------------------------------------------------- build
if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binary and bench examples (a few minutes when cold)"
    # Two invocations: building the examples (which use dev-dependencies)
    # in the same one would unify dev-dependency features into the binary.
    cargo build --release --bin switchyard >&2
    cargo build --release --example mock_upstream --example hold_streams >&2
fi
GW_BIN=$ROOT/target/release/switchyard
MOCK_BIN=$ROOT/target/release/examples/mock_upstream
HOLD_BIN=$ROOT/target/release/examples/hold_streams
for b in "$GW_BIN" "$MOCK_BIN" "$HOLD_BIN"; do
    [[ -x "$b" ]] || die "missing $b (run without SKIP_BUILD=1)"
done

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-load.XXXXXX")
PIDS=()   # long-lived processes we started
WRK_PID=  # the wrk run in progress, if any
cleanup() {
    local p
    [[ -n "$WRK_PID" ]] && PIDS+=("$WRK_PID")
    # The gateway gets SIGINT (fast shutdown; SIGTERM would wait out the
    # graceful period), everything else SIGTERM.
    for p in "${PIDS[@]}"; do
        if [[ "$p" == "${GW_PID:-}" ]]; then kill -INT "$p" 2>/dev/null || true; else kill "$p" 2>/dev/null || true; fi
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE PATTERN TIMEOUT_S PID: prints the first matching line.
wait_line() {
    local i
    for i in $(seq 1 $(($3 * 10))); do
        if grep -m1 -- "$2" "$1" 2>/dev/null; then return 0; fi
        kill -0 "$4" 2>/dev/null || { cat "$1" "$1.err" >&2 2>/dev/null; return 1; }
        sleep 0.1
    done
    return 1
}

# http HOSTPORT METHOD PATH [BODY]: one request over bash's /dev/tcp, whole
# response on stdout (Connection: close), at most 10 s.
http() {
    timeout 10 bash -c '
        exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
        printf "%s %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" \
            "$2" "$3" "$1" "${#4}" "$4" >&3
        cat <&3' _ "$1" "$2" "$3" "${4:-}"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# utime+stime of all threads, in clock ticks (fields 14, 15 after the comm).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

log "starting mock upstream"
"$MOCK_BIN" 127.0.0.1:0 >"$TMP/mock.out" 2>"$TMP/mock.out.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_ADDR=$(wait_line "$TMP/mock.out" "mock ready on" 20 "$MOCK_PID" | awk '{print $4}') ||
    die "mock did not start"
[[ "$MOCK_ADDR" == 127.0.0.1:* ]] || die "mock address $MOCK_ADDR is not 127.0.0.1"

log "starting gateway"
mkdir -p "$TMP/data"
GW_ENV=(SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/data"
    OPENAI_API_KEY=k OPENAI_BASE_URL="http://$MOCK_ADDR/v1" OPENAI_MODELS=$MODEL
    SWITCHYARD_LOG=warn)
if [[ -n "$GATEWAY_THREADS" ]]; then
    printf 'server:\n  threads: %d\n' "$GATEWAY_THREADS" >"$TMP/switchyard.yaml"
    GW_ENV+=(SWITCHYARD_CONFIG="$TMP/switchyard.yaml")
fi
env "${GW_ENV[@]}" "$GW_BIN" serve >"$TMP/gw.out" 2>"$TMP/gw.out.err" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_ADDR=$(wait_line "$TMP/gw.out" "switchyard ready on" 30 "$GW_PID" | awk '{print $4}') ||
    die "gateway did not start"
[[ "$GW_ADDR" == 127.0.0.1:* ]] || die "gateway address $GW_ADDR is not 127.0.0.1"
log "mock on $MOCK_ADDR, gateway on $GW_ADDR (pid $GW_PID)"

sleep 1
IDLE_RSS=$(rss_kib "$GW_PID")

# ---------------------------------------------------------------- request body
# ~1 KB realistic chat request.
BODY='{"model":"'$MODEL'","temperature":0.7,"max_tokens":512,"user":"bench-user-42","messages":[{"role":"system","content":"You are a helpful assistant for an operations team. Answer precisely, quote configuration keys verbatim, and keep answers under two hundred words unless asked for detail."},{"role":"user","content":"Our API gateway sits in front of three model providers. Requests sometimes take 30 seconds when a provider is slow. What timeouts should we configure on the gateway, and how should retries interact with streaming responses?"},{"role":"assistant","content":"Set a short connect timeout (2-5 s), a generous per-read timeout for streams (60-300 s, since models pause while thinking), and retry only before the first response byte has been sent to the caller. Once a stream has started, a retry would duplicate tokens."},{"role":"user","content":"Makes sense. Summarize that as a checklist, and add one line about idle keep-alive connections to upstreams."}]}'
STREAM_BODY=${BODY/\"user\":/\"stream\":true,\"user\":}
lua_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
write_lua() { # FILE BODY
    cat >"$1" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "$(lua_escape "$2")"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f mean=%.1f err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
}
write_lua "$TMP/post.lua" "$BODY"
write_lua "$TMP/stream.lua" "$STREAM_BODY"

# Sanity: one request each way must succeed.
for a in "$MOCK_ADDR" "$GW_ADDR"; do
    r=$(http "$a" POST /v1/chat/completions "$BODY" || true)
    [[ "$r" == "HTTP/1.1 200"* ]] || die "sanity request to $a failed: ${r:0:300}"
    r=$(http "$a" POST /v1/chat/completions "$STREAM_BODY" || true)
    [[ "$r" == *"data: [DONE]"* ]] || die "sanity stream via $a failed: ${r:0:300}"
done

# ---------------------------------------------------------------- wrk runs
declare -A R # R[name.key] = value
# run_wrk NAME ADDR THREADS CONNS SECONDS LUA [PID_TO_SAMPLE]
run_wrk() {
    local name=$1 addr=$2 t=$3 c=$4 d=$5 lua=$6 pid=${7:-}
    local out="$TMP/wrk.$name.out" c0=0 m0 maxrss=0 i
    [[ -n "$pid" ]] && c0=$(cpu_ticks "$pid")
    m0=$(cpu_ticks "$MOCK_PID")
    wrk -t"$t" -c"$c" -d"${d}s" --timeout 10s --latency -s "$lua" \
        "http://$addr/v1/chat/completions" >"$out" 2>&1 &
    WRK_PID=$!
    for i in $(seq 1 $((d * 4 + 80))); do
        kill -0 "$WRK_PID" 2>/dev/null || break
        if [[ -n "$pid" ]]; then
            local r
            r=$(rss_kib "$pid")
            ((r > maxrss)) && maxrss=$r
        fi
        sleep 0.25
    done
    kill "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
    WRK_PID=
    local line
    line=$(grep -m1 '^WRK_RESULT' "$out") || { cat "$out" >&2; die "wrk run $name produced no result"; }
    local kv
    for kv in ${line#WRK_RESULT }; do R[$name.${kv%%=*}]=${kv#*=}; done
    R[$name.rps]=$(awk -v n="${R[$name.requests]}" -v us="${R[$name.duration_us]}" 'BEGIN{printf "%.1f", n / (us / 1e6)}')
    R[$name.errors]=$((${R[$name.err_connect]} + ${R[$name.err_read]} + ${R[$name.err_write]} + ${R[$name.err_status]} + ${R[$name.err_timeout]}))
    R[$name.mock_cpu_us_per_req]=$(awk -v t="$(( $(cpu_ticks "$MOCK_PID") - m0 ))" -v hz="$CLK_TCK" -v n="${R[$name.requests]}" \
        'BEGIN{printf "%.1f", n ? t * 1e6 / hz / n : 0}')
    if [[ -n "$pid" ]]; then
        R[$name.cpu_us_per_req]=$(awk -v t="$(( $(cpu_ticks "$pid") - c0 ))" -v hz="$CLK_TCK" -v n="${R[$name.requests]}" \
            'BEGIN{printf "%.1f", n ? t * 1e6 / hz / n : 0}')
        R[$name.max_rss_kib]=$maxrss
    fi
    log "$(printf '%-12s %9s req/s  p50 %8s us  p99 %8s us  errors %s' "$name" "${R[$name.rps]}" \
        "${R[$name.p50]}" "${R[$name.p99]}" "${R[$name.errors]}")"
}

WARM=$((DURATION < 3 ? DURATION : 3))
log "warm-up (${WARM}s each, not counted)"
run_wrk warm_direct "$MOCK_ADDR" 2 32 "$WARM" "$TMP/post.lua"
run_wrk warm_gw "$GW_ADDR" 2 32 "$WARM" "$TMP/post.lua" "$GW_PID"

log "measuring, ${DURATION}s per run"
run_wrk direct_c1 "$MOCK_ADDR" 1 1 "$DURATION" "$TMP/post.lua"
run_wrk gw_c1 "$GW_ADDR" 1 1 "$DURATION" "$TMP/post.lua" "$GW_PID"
run_wrk direct_c32 "$MOCK_ADDR" 2 32 "$DURATION" "$TMP/post.lua"
run_wrk gw_c32 "$GW_ADDR" 2 32 "$DURATION" "$TMP/post.lua" "$GW_PID"
if [[ "$STREAM_RUNS" == 1 ]]; then
    run_wrk sse_direct_c32 "$MOCK_ADDR" 2 32 "$DURATION" "$TMP/stream.lua"
    run_wrk sse_gw_c32 "$GW_ADDR" 2 32 "$DURATION" "$TMP/stream.lua" "$GW_PID"
fi
sleep 1
RSS_AFTER_LOAD=$(rss_kib "$GW_PID")

# ---------------------------------------------------------------- open streams
HOLD_OK=0 HOLD_FAILED=0 HOLD_RSS=0 HOLD_MS_TAKEN=0 RSS_AFTER_STREAMS=0
if ((STREAMS > 0)); then
    log "opening $STREAMS concurrent SSE streams through the gateway"
    http "$MOCK_ADDR" POST "/mock/hold?ms=$HOLD_MS" >/dev/null || die "could not set the mock hold"
    timeout 150 "$HOLD_BIN" "$GW_ADDR" "$STREAMS" "$GW_PID" "$MODEL" 90 >"$TMP/hold.out" 2>"$TMP/hold.err" || true
    http "$MOCK_ADDR" POST /mock/release >/dev/null || true
    line=$(grep -m1 '^HOLD_RESULT' "$TMP/hold.out") || { cat "$TMP/hold.err" >&2; die "hold_streams produced no result"; }
    for kv in ${line#HOLD_RESULT }; do
        case ${kv%%=*} in
            ok) HOLD_OK=${kv#*=} ;; failed) HOLD_FAILED=${kv#*=} ;;
            rss_kib) HOLD_RSS=${kv#*=} ;; elapsed_ms) HOLD_MS_TAKEN=${kv#*=} ;;
        esac
    done
    [[ -s "$TMP/hold.err" ]] && sed 's/^/    /' "$TMP/hold.err" >&2
    log "$HOLD_OK/$STREAMS streams open after ${HOLD_MS_TAKEN} ms, gateway RSS $((HOLD_RSS / 1024)) MiB"
    sleep 2
    RSS_AFTER_STREAMS=$(rss_kib "$GW_PID")
fi
kill -0 "$GW_PID" 2>/dev/null || die "the gateway died during the run"

BIN_BYTES=$(stat -c %s "$GW_BIN")

# ---------------------------------------------------------------- summary
f() { awk "BEGIN{printf \"%.1f\", $*}"; }
ADD_P50_C1=$(f "${R[gw_c1.p50]} - ${R[direct_c1.p50]}")
ADD_P99_C1=$(f "${R[gw_c1.p99]} - ${R[direct_c1.p99]}")
ADD_P50_C32=$(f "${R[gw_c32.p50]} - ${R[direct_c32.p50]}")
ADD_P99_C32=$(f "${R[gw_c32.p99]} - ${R[direct_c32.p99]}")
RATIO_C1=$(awk -v a="${R[gw_c1.rps]}" -v b="${R[direct_c1.rps]}" 'BEGIN{printf "%.3f", b ? a / b : 0}')
RATIO_C32=$(awk -v a="${R[gw_c32.rps]}" -v b="${R[direct_c32.rps]}" 'BEGIN{printf "%.3f", b ? a / b : 0}')
CPU=${R[gw_c32.cpu_us_per_req]}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }

pass() { awk "BEGIN{exit !($1)}" && echo PASS || echo FAIL; }
T_CPU=$(pass "$CPU <= 50")
T_P50=$(pass "$ADD_P50_C1 <= 100")
T_IDLE=$(pass "$IDLE_RSS <= 20 * 1024")
if ((STREAMS < 1000)); then
    T_STREAMS=SKIP # the target is defined at 1,000 streams
elif ((HOLD_OK == STREAMS)); then
    T_STREAMS=$(pass "$HOLD_RSS <= 150 * 1024")
else
    T_STREAMS=FAIL # not every stream could be opened
fi
T_BIN=$(pass "$BIN_BYTES <= 20000000")
ERRS=$((${R[direct_c1.errors]} + ${R[gw_c1.errors]} + ${R[direct_c32.errors]} + ${R[gw_c32.errors]}))

{
    echo
    echo "Switchyard load test — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, ${DURATION}s per run"
    echo "gateway threads: ${GATEWAY_THREADS:-default}; wrk, mock and gateway share this machine:"
    echo "absolute numbers are lower bounds, compare against the direct baseline."
    echo
    printf '%-28s %14s %14s %14s\n' "" "direct (mock)" "via gateway" "added / ratio"
    printf '%-28s %14s %14s %14s\n' "c=1   p50 latency (us)" "${R[direct_c1.p50]}" "${R[gw_c1.p50]}" "+$ADD_P50_C1"
    printf '%-28s %14s %14s %14s\n' "c=1   p99 latency (us)" "${R[direct_c1.p99]}" "${R[gw_c1.p99]}" "+$ADD_P99_C1"
    printf '%-28s %14s %14s %14s\n' "c=1   throughput (req/s)" "${R[direct_c1.rps]}" "${R[gw_c1.rps]}" "x$RATIO_C1"
    printf '%-28s %14s %14s %14s\n' "c=32  p50 latency (us)" "${R[direct_c32.p50]}" "${R[gw_c32.p50]}" "+$ADD_P50_C32"
    printf '%-28s %14s %14s %14s\n' "c=32  p99 latency (us)" "${R[direct_c32.p99]}" "${R[gw_c32.p99]}" "+$ADD_P99_C32"
    printf '%-28s %14s %14s %14s\n' "c=32  throughput (req/s)" "${R[direct_c32.rps]}" "${R[gw_c32.rps]}" "x$RATIO_C32"
    printf '%-28s %14s %14s\n' "mock CPU/req c=32 (us)" "${R[direct_c32.mock_cpu_us_per_req]}" "${R[gw_c32.mock_cpu_us_per_req]}"
    if [[ "$STREAM_RUNS" == 1 ]]; then
        printf '%-28s %14s %14s %14s\n' "SSE c=32 p50 latency (us)" "${R[sse_direct_c32.p50]}" "${R[sse_gw_c32.p50]}" \
            "+$(f "${R[sse_gw_c32.p50]} - ${R[sse_direct_c32.p50]}")"
        printf '%-28s %14s %14s %14s\n' "SSE c=32 throughput (req/s)" "${R[sse_direct_c32.rps]}" "${R[sse_gw_c32.rps]}" \
            "x$(awk -v a="${R[sse_gw_c32.rps]}" -v b="${R[sse_direct_c32.rps]}" 'BEGIN{printf "%.3f", b ? a / b : 0}')"
        printf '%-28s %14s %14s\n' "SSE gateway CPU/req (us)" "" "${R[sse_gw_c32.cpu_us_per_req]}"
    fi
    echo
    printf '%-44s %12s\n' "gateway CPU per request, c=32 (us)" "$CPU"
    printf '%-44s %12s\n' "gateway CPU per request, c=1 (us)" "${R[gw_c1.cpu_us_per_req]}"
    printf '%-44s %12s\n' "gateway RSS idle (MiB)" "$(mib "$IDLE_RSS")"
    printf '%-44s %12s\n' "gateway RSS peak under c=32 load (MiB)" "$(mib "${R[gw_c32.max_rss_kib]}")"
    printf '%-44s %12s\n' "gateway RSS after load (MiB)" "$(mib "$RSS_AFTER_LOAD")"
    printf '%-44s %12s\n' "gateway RSS with $HOLD_OK/$STREAMS open streams (MiB)" "$(mib "$HOLD_RSS")"
    printf '%-44s %12s\n' "  of which added by the streams (MiB)" "$(mib "$((HOLD_RSS - RSS_AFTER_LOAD))")"
    printf '%-44s %12s\n' "gateway RSS 2 s after streams closed (MiB)" "$(mib "$RSS_AFTER_STREAMS")"
    printf '%-44s %12s\n' "binary size, stripped (MB)" "$(awk -v b="$BIN_BYTES" 'BEGIN{printf "%.1f", b / 1e6}')"
    printf '%-44s %12s\n' "wrk errors (all measured runs)" "$ERRS"
    echo
    echo "targets"
    printf '  %-4s  CPU per request @c=32 %8s us   (<= 50 us)\n' "$T_CPU" "$CPU"
    printf '  %-4s  added p50 @c=1        %8s us   (<= 100 us)\n' "$T_P50" "$ADD_P50_C1"
    printf '  %-4s  idle RSS              %8s MiB  (<= 20 MiB)\n' "$T_IDLE" "$(mib "$IDLE_RSS")"
    printf '  %-4s  RSS, %s streams     %8s MiB  (<= 150 MiB)\n' "$T_STREAMS" "$STREAMS" "$(mib "$HOLD_RSS")"
    printf '  %-4s  binary size           %8s MB   (<= 20 MB)\n' "$T_BIN" "$(awk -v b="$BIN_BYTES" 'BEGIN{printf "%.1f", b / 1e6}')"
    ((ERRS == 0)) || echo "  WARNING: wrk reported $ERRS errors; the latency numbers include failed requests"
}

mkdir -p "$(dirname "$LOAD_JSON")"
{
    printf '{\n'
    printf '  "timestamp": "%s", "cores": %d, "duration_s": %d, "gateway_threads": "%s",\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$DURATION" "${GATEWAY_THREADS:-default}"
    printf '  "runs": {\n'
    first=1
    for run in direct_c1 gw_c1 direct_c32 gw_c32 sse_direct_c32 sse_gw_c32; do
        [[ -n "${R[$run.requests]:-}" ]] || continue
        ((first)) || printf ',\n'
        first=0
        printf '    "%s": {"requests": %s, "rps": %s, "p50_us": %s, "p90_us": %s, "p99_us": %s, "p999_us": %s, "max_us": %s, "errors": %s, "mock_cpu_us_per_req": %s' \
            "$run" "${R[$run.requests]}" "${R[$run.rps]}" "${R[$run.p50]}" "${R[$run.p90]}" "${R[$run.p99]}" \
            "${R[$run.p999]}" "${R[$run.max]}" "${R[$run.errors]}" "${R[$run.mock_cpu_us_per_req]}"
        [[ -n "${R[$run.cpu_us_per_req]:-}" ]] &&
            printf ', "gateway_cpu_us_per_req": %s, "gateway_max_rss_kib": %s' "${R[$run.cpu_us_per_req]}" "${R[$run.max_rss_kib]}"
        printf '}'
    done
    printf '\n  },\n'
    printf '  "added_p50_us_c1": %s, "added_p99_us_c1": %s, "added_p50_us_c32": %s, "added_p99_us_c32": %s,\n' \
        "$ADD_P50_C1" "$ADD_P99_C1" "$ADD_P50_C32" "$ADD_P99_C32"
    printf '  "throughput_ratio_c1": %s, "throughput_ratio_c32": %s,\n' "$RATIO_C1" "$RATIO_C32"
    printf '  "gateway_cpu_us_per_req_c32": %s, "gateway_cpu_us_per_req_c1": %s,\n' "$CPU" "${R[gw_c1.cpu_us_per_req]}"
    printf '  "rss_idle_kib": %s, "rss_load_c32_max_kib": %s, "rss_after_load_kib": %s,\n' \
        "$IDLE_RSS" "${R[gw_c32.max_rss_kib]}" "$RSS_AFTER_LOAD"
    printf '  "streams_wanted": %s, "streams_open": %s, "streams_failed": %s, "streams_open_ms": %s, "rss_streams_kib": %s, "rss_added_by_streams_kib": %s, "rss_after_streams_kib": %s,\n' \
        "$STREAMS" "$HOLD_OK" "$HOLD_FAILED" "$HOLD_MS_TAKEN" "$HOLD_RSS" "$((HOLD_RSS - RSS_AFTER_LOAD))" "$RSS_AFTER_STREAMS"
    printf '  "binary_bytes": %s, "wrk_errors": %s,\n' "$BIN_BYTES" "$ERRS"
    printf '  "targets": {"cpu_per_request_le_50us": "%s", "added_p50_c1_le_100us": "%s", "idle_rss_le_20mib": "%s", "rss_streams_le_150mib": "%s", "binary_le_20mb": "%s"}\n' \
        "$T_CPU" "$T_P50" "$T_IDLE" "$T_STREAMS" "$T_BIN"
    printf '}\n'
} >"$LOAD_JSON"
echo
echo "JSON summary: $LOAD_JSON"
