#!/usr/bin/env bash
# Switchyard load test: gateway vs. direct-to-upstream baseline, vs. a bare
# Pingora proxy (the floor), and OpenAI->Anthropic translation vs. same-dialect
# proxying (CPU per request, time to first token), all measured in the same run
# on the same machine. See benches/README.md for what each number means.
#
#   bash benches/load.sh
#
# Env knobs:
#   DURATION=10          seconds per wrk run (8 measured runs + warm-ups)
#   STREAMS=1000         concurrent open SSE streams for the memory test
#   STREAM_RUNS=0        1 = also measure SSE streaming throughput (c=32)
#   TTFT_N=200           sequential streams per time-to-first-token run
#   TTFT_HOLD_MS=0       >0: the mock sends the first token alone and holds
#                        this long before each later event during TTFT runs
#   GATEWAY_THREADS=     gateway (and bare Pingora) worker threads
#                        (default: the gateway's default = cores)
#   MOCK_THREADS=        mock upstream worker threads (default: cores)
#   LOAD_JSON=target/load-summary.json   where the JSON summary goes
#   SKIP_BUILD=0         1 = use the binaries already in target/release
#   GOVERNANCE_RUNS=1    0 = skip the third gateway (one managed key with
#                        an rpm limit and a budget, both generous: the
#                        issue's target configuration)
#   GOV_LIMITS='{rpm: 100000000}'   the third gateway's key's `limits:`
#                        (e.g. add `tpm: 1000000000000, concurrency: 10000`
#                        to measure every kind of limit at once)
#   REDIS_RUNS=1         0 = skip the fourth gateway (the third's key and
#                        limits, counted in a real redis-server)
#   GOV_PAIRS=3          back-to-back c=32 pairs (no key, key; and Redis)
#                        of identical requests (each with the key's
#                        Authorization header; the first gateway has no
#                        keys and ignores it) whose median decides the
#                        governance verdicts: the
#                        machine's speed drifts between runs minutes apart
#                        by more than the margins judged (+3 us, x0.8)
#   CPU_PAIRS=5          interleaved c=32 triples (bare Pingora, gateway,
#                        translated) whose per-triple ratios' medians decide
#                        the two x1.3 CPU targets (one run's CPU per request
#                        moves by more than their margins on a shared VM);
#                        0 = judge by the single runs
#   POLL=1               1 (as root) = idle CPUs poll instead of halting for
#                        the whole run (see ../shared/notes/benchmarking.md:
#                        waking a halted vCPU costs ~0.3 ms, which would
#                        swamp every c=1 figure); 0 = leave them halting
#   RESILIENCE_RUNS=1    0 = skip the second gateway (fallbacks + circuit
#                        breakers on healthy targets, a provider failing half
#                        its calls, one failing all of them)
#
# Everything runs on 127.0.0.1 with ports chosen by the kernel; every process
# the script starts is stopped on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-10}
STREAMS=${STREAMS:-1000}
STREAM_RUNS=${STREAM_RUNS:-0}
TTFT_N=${TTFT_N:-200}
TTFT_HOLD_MS=${TTFT_HOLD_MS:-0}
GATEWAY_THREADS=${GATEWAY_THREADS:-}
LOAD_JSON=${LOAD_JSON:-target/load-summary.json}
SKIP_BUILD=${SKIP_BUILD:-0}
RESILIENCE_RUNS=${RESILIENCE_RUNS:-1}
GOVERNANCE_RUNS=${GOVERNANCE_RUNS:-1}
REDIS_RUNS=${REDIS_RUNS:-$GOVERNANCE_RUNS}
GOV_LIMITS=${GOV_LIMITS:-'{rpm: 100000000}'}
GOV_PAIRS=${GOV_PAIRS:-3}
CPU_PAIRS=${CPU_PAIRS:-5}
POLL=${POLL:-1}
MODEL=gpt-4o-mini
CLAUDE=claude-3-5-haiku-20241022 # routed to the mock's Anthropic endpoint
HOLD_MS=120000

[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 600 ]] ||
    { echo "DURATION must be 1..600 seconds" >&2; exit 2; }
[[ "$STREAMS" =~ ^[0-9]+$ && "$STREAMS" -le 20000 ]] ||
    { echo "STREAMS must be 0..20000" >&2; exit 2; }
[[ "$TTFT_N" =~ ^[0-9]+$ && "$TTFT_N" -ge 1 && "$TTFT_N" -le 100000 ]] ||
    { echo "TTFT_N must be 1..100000" >&2; exit 2; }
[[ "$TTFT_HOLD_MS" =~ ^[0-9]+$ && "$TTFT_HOLD_MS" -le 100 ]] ||
    { echo "TTFT_HOLD_MS must be 0..100" >&2; exit 2; }
[[ -z "$GATEWAY_THREADS" || "$GATEWAY_THREADS" =~ ^[1-9][0-9]*$ ]] ||
    { echo "GATEWAY_THREADS must be a positive integer" >&2; exit 2; }

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
if [[ "$REDIS_RUNS" == 1 ]] && ! command -v redis-server >/dev/null 2>&1; then
    die "redis-server is required for REDIS_RUNS=1 (bash scripts/deps.sh installs it; or REDIS_RUNS=0)"
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
    cargo build --release --example mock_upstream --example hold_streams \
        --example bare_pingora --example ttft >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
GW_BIN=$TARGET/release/switchyard
MOCK_BIN=$TARGET/release/examples/mock_upstream
HOLD_BIN=$TARGET/release/examples/hold_streams
BARE_BIN=$TARGET/release/examples/bare_pingora
TTFT_BIN=$TARGET/release/examples/ttft
for b in "$GW_BIN" "$MOCK_BIN" "$HOLD_BIN" "$BARE_BIN" "$TTFT_BIN"; do
    [[ -x "$b" ]] || die "missing $b (run without SKIP_BUILD=1)"
done

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-load.XXXXXX")
PIDS=()   # long-lived processes we started
WRK_PID=  # the wrk run in progress, if any
cleanup() {
    local p
    [[ -n "$WRK_PID" ]] && PIDS+=("$WRK_PID")
    # The Pingora processes (gateway, bare) get SIGINT (fast shutdown;
    # SIGTERM would wait out the graceful period), everything else SIGTERM.
    for p in "${PIDS[@]}"; do
        if [[ "$p" == "${GW_PID:-}" || "$p" == "${GW2_PID:-}" || "$p" == "${GW3_PID:-}" || "$p" == "${GW4_PID:-}" || "$p" == "${BARE_PID:-}" ]]; then
            kill -INT "$p" 2>/dev/null || true
        else
            kill "$p" 2>/dev/null || true
        fi
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Idle CPUs poll while this script runs (the PM QoS request lasts as long as
# the process holding /dev/cpu_dma_latency open).
CPU_MODE=halting
if [[ "$POLL" == 1 && $(id -u) -eq 0 && -w /dev/cpu_dma_latency ]]; then
    ( exec 9>/dev/cpu_dma_latency && printf 0 >&9 && exec sleep 100000 ) &
    PIDS+=("$!")
    CPU_MODE=polling
fi

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

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
# Anthropic's base URL is given without /v1 (SDK convention).
GW_ENV=(SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/data"
    OPENAI_API_KEY=k OPENAI_BASE_URL="http://$MOCK_ADDR/v1" OPENAI_MODELS="$MODEL"
    ANTHROPIC_API_KEY=k ANTHROPIC_BASE_URL="http://$MOCK_ADDR" ANTHROPIC_MODELS="$CLAUDE"
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

log "starting bare Pingora (the floor)"
# Same worker threads as the gateway: its default is the core count
# (available_parallelism), which is also bare_pingora's default.
"$BARE_BIN" 127.0.0.1:0 "$MOCK_ADDR" ${GATEWAY_THREADS:+"$GATEWAY_THREADS"} \
    >"$TMP/bare.out" 2>"$TMP/bare.out.err" &
BARE_PID=$!
PIDS+=("$BARE_PID")
BARE_LINE=$(wait_line "$TMP/bare.out" "bare ready on" 30 "$BARE_PID") || die "bare_pingora did not start"
BARE_ADDR=$(awk '{print $4}' <<<"$BARE_LINE")
BARE_THREADS=$(sed -n 's/.*(\([0-9]*\) threads).*/\1/p' <<<"$BARE_LINE")
[[ "$BARE_ADDR" == 127.0.0.1:* ]] || die "bare_pingora address $BARE_ADDR is not 127.0.0.1"
log "mock on $MOCK_ADDR, gateway on $GW_ADDR (pid $GW_PID), bare Pingora on $BARE_ADDR (pid $BARE_PID, $BARE_THREADS threads)"

if [[ "$RESILIENCE_RUNS" == 1 ]]; then
    log "starting a second gateway: fallbacks and circuit breakers, plus failing providers"
    mkdir -p "$TMP/data2"
    # Healthy targets with fallbacks and breakers (what that costs), `flaky`
    # failing every second call and `down` every call (what failover costs);
    # the failing ones have no breaker, so every request really fails over.
    {
        [[ -n "$GATEWAY_THREADS" ]] && printf 'server:\n  threads: %d\n' "$GATEWAY_THREADS"
        cat <<EOF
circuit_breaker: {}
providers:
  openai: {base_url: "http://$MOCK_ADDR/v1", api_key: k, models: [$MODEL]}
  anthropic: {base_url: "http://$MOCK_ADDR", api_key: k, models: [$CLAUDE]}
  flaky: {type: openai, base_url: "http://$MOCK_ADDR/fail50/v1", api_key: k, discover_models: false, circuit_breaker: {enabled: false}}
  down: {type: openai, base_url: "http://$MOCK_ADDR/fail100/v1", api_key: k, discover_models: false, circuit_breaker: {enabled: false}}
fallbacks:
  $MODEL: [anthropic/$CLAUDE]
  flaky/$MODEL: [openai/$MODEL]
  down/$MODEL: [openai/$MODEL]
EOF
    } >"$TMP/resilient.yaml"
    env SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/data2" SWITCHYARD_LOG=warn \
        SWITCHYARD_CONFIG="$TMP/resilient.yaml" "$GW_BIN" serve >"$TMP/gw2.out" 2>"$TMP/gw2.out.err" &
    GW2_PID=$!
    PIDS+=("$GW2_PID")
    GW2_ADDR=$(wait_line "$TMP/gw2.out" "switchyard ready on" 30 "$GW2_PID" | awk '{print $4}') ||
        { cat "$TMP/gw2.out.err" >&2; die "the second gateway did not start"; }
fi

GOV_KEY=sk-sy-load-test-key-0123456789abcdefghijklmnopqrstuvw
if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
    log "starting a third gateway: one managed key with limits and a budget"
    mkdir -p "$TMP/data3"
    GOV_HASH=$(printf '%s' "$GOV_KEY" | "$GW_BIN" keys hash)
    {
        [[ -n "$GATEWAY_THREADS" ]] && printf 'server:\n  threads: %d\n' "$GATEWAY_THREADS"
        cat <<EOF
providers:
  openai: {base_url: "http://$MOCK_ADDR/v1", api_key: k, models: [$MODEL]}
keys:
  - {name: load, hash: "$GOV_HASH", limits: $GOV_LIMITS, budget: {usd: 1000000000, period: month}}
EOF
    } >"$TMP/governed.yaml"
    env SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/data3" SWITCHYARD_LOG=warn \
        SWITCHYARD_CONFIG="$TMP/governed.yaml" "$GW_BIN" serve >"$TMP/gw3.out" 2>"$TMP/gw3.out.err" &
    GW3_PID=$!
    PIDS+=("$GW3_PID")
    GW3_ADDR=$(wait_line "$TMP/gw3.out" "switchyard ready on" 30 "$GW3_PID" | awk '{print $4}') ||
        { cat "$TMP/gw3.out.err" >&2; die "the third gateway did not start"; }
fi

if [[ "$REDIS_RUNS" == 1 ]]; then
    [[ "$GOVERNANCE_RUNS" == 1 ]] || die "REDIS_RUNS=1 needs GOVERNANCE_RUNS=1 (it is measured against it)"
    log "starting redis-server and a fourth gateway: the same key and limits, counted in Redis"
    mkdir -p "$TMP/redis" "$TMP/data4"
    # A free port: bind 0, read it back, release it (redis-server takes no
    # port 0 for TCP).
    REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
        die "could not pick a free port for redis-server"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" --save '' --appendonly no \
        >"$TMP/redis.out" 2>"$TMP/redis.out.err" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_line "$TMP/redis.out" "Ready to accept connections" 20 "$REDIS_PID" >/dev/null ||
        die "redis-server did not start"
    { cat "$TMP/governed.yaml"; printf 'limiter: {redis_url: "redis://127.0.0.1:%s"}\n' "$REDIS_PORT"; } >"$TMP/redis.yaml"
    env SWITCHYARD_LISTEN=127.0.0.1:0 SWITCHYARD_DATA_DIR="$TMP/data4" SWITCHYARD_LOG=warn \
        SWITCHYARD_CONFIG="$TMP/redis.yaml" "$GW_BIN" serve >"$TMP/gw4.out" 2>"$TMP/gw4.out.err" &
    GW4_PID=$!
    PIDS+=("$GW4_PID")
    GW4_ADDR=$(wait_line "$TMP/gw4.out" "switchyard ready on" 30 "$GW4_PID" | awk '{print $4}') ||
        { cat "$TMP/gw4.out.err" >&2; die "the fourth gateway did not start"; }
fi

sleep 1
IDLE_RSS=$(rss_kib "$GW_PID")

# ---------------------------------------------------------------- request body
# ~1 KB realistic chat request.
SYS='You are a helpful assistant for an operations team. Answer precisely, quote configuration keys verbatim, and keep answers under two hundred words unless asked for detail.'
U1='Our API gateway sits in front of three model providers. Requests sometimes take 30 seconds when a provider is slow. What timeouts should we configure on the gateway, and how should retries interact with streaming responses?'
A1='Set a short connect timeout (2-5 s), a generous per-read timeout for streams (60-300 s, since models pause while thinking), and retry only before the first response byte has been sent to the caller. Once a stream has started, a retry would duplicate tokens.'
U2='Makes sense. Summarize that as a checklist, and add one line about idle keep-alive connections to upstreams.'
BODY='{"model":"'$MODEL'","temperature":0.7,"max_tokens":512,"user":"bench-user-42","messages":[{"role":"system","content":"'$SYS'"},{"role":"user","content":"'$U1'"},{"role":"assistant","content":"'$A1'"},{"role":"user","content":"'$U2'"}]}'
STREAM_BODY=${BODY/\"user\":/\"stream\":true,\"user\":}
# The same request for the Anthropic-routed model: the gateway translates it.
TR_BODY=${BODY/\"model\":\"$MODEL\"/\"model\":\"$CLAUDE\"}
TR_STREAM_BODY=${STREAM_BODY/\"model\":\"$MODEL\"/\"model\":\"$CLAUDE\"}
# Its Anthropic Messages equivalent, sent straight to the mock (TTFT baseline).
ANTH_STREAM_BODY='{"model":"'$CLAUDE'","max_tokens":512,"temperature":0.7,"stream":true,"metadata":{"user_id":"bench-user-42"},"system":"'$SYS'","messages":[{"role":"user","content":"'$U1'"},{"role":"assistant","content":"'$A1'"},{"role":"user","content":"'$U2'"}]}'
[[ "$TR_BODY" == *"\"$CLAUDE\""* && "$TR_STREAM_BODY" == *"\"stream\":true"* ]] || die "could not build the translated bodies"
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
write_lua "$TMP/tr.lua" "$TR_BODY"
write_lua "$TMP/tr_stream.lua" "$TR_STREAM_BODY"
FLAKY_BODY=${BODY/\"model\":\"$MODEL\"/\"model\":\"flaky/$MODEL\"}
DOWN_BODY=${BODY/\"model\":\"$MODEL\"/\"model\":\"down/$MODEL\"}
write_lua "$TMP/flaky.lua" "$FLAKY_BODY"
write_lua "$TMP/gov.lua" "$BODY"
sed -i "2a wrk.headers[\"Authorization\"] = \"Bearer $GOV_KEY\"" "$TMP/gov.lua"
write_lua "$TMP/down.lua" "$DOWN_BODY"
printf '%s' "$STREAM_BODY" >"$TMP/stream.json"
printf '%s' "$TR_STREAM_BODY" >"$TMP/tr_stream.json"
printf '%s' "$ANTH_STREAM_BODY" >"$TMP/anth_stream.json"

# Sanity: one request and one stream each way must succeed.
for a in "$MOCK_ADDR" "$GW_ADDR" "$BARE_ADDR"; do
    r=$(http "$a" POST /v1/chat/completions "$BODY" || true)
    [[ "$r" == "HTTP/1.1 200"* ]] || die "sanity request to $a failed: ${r:0:300}"
    r=$(http "$a" POST /v1/chat/completions "$STREAM_BODY" || true)
    [[ "$r" == *"data: [DONE]"* ]] || die "sanity stream via $a failed: ${r:0:300}"
done
# Translated: the OpenAI request to the Claude model must come back as an
# OpenAI chat.completion (and chunk stream) carrying the mock's answer.
ANSWER='Pingora is a Rust framework for building fast'
r=$(http "$GW_ADDR" POST /v1/chat/completions "$TR_BODY" || true)
for want in "HTTP/1.1 200" "x-switchyard-provider: anthropic" '"object":"chat.completion"' \
    "\"content\":\"$ANSWER" '"finish_reason":"stop"' '"prompt_tokens":243' '"completion_tokens":48'; do
    [[ "$r" == *"$want"* ]] || die "translated request: no '$want' in the response: ${r:0:600}"
done
r=$(http "$GW_ADDR" POST /v1/chat/completions "$TR_STREAM_BODY" || true)
for want in "HTTP/1.1 200" "x-switchyard-provider: anthropic" '"object":"chat.completion.chunk"' \
    '"content":"Pingora ' '"finish_reason":"stop"' "data: [DONE]"; do
    [[ "$r" == *"$want"* ]] || die "translated stream: no '$want' in the response: ${r:0:600}"
done
[[ "$r" != *'"error"'* ]] || die "translated stream carried an error: ${r:0:600}"
r=$(http "$MOCK_ADDR" POST /v1/messages "$ANTH_STREAM_BODY" || true)
[[ "$r" == *"event: content_block_delta"* && "$r" == *"event: message_stop"* ]] ||
    die "sanity Anthropic stream from the mock failed: ${r:0:300}"
if [[ "$RESILIENCE_RUNS" == 1 ]]; then
    r=$(http "$GW2_ADDR" POST /v1/chat/completions "$DOWN_BODY" || true)
    for want in "HTTP/1.1 200" "x-switchyard-provider: openai" "x-switchyard-attempts: 2"; do
        [[ "$r" == *"$want"* ]] || die "failover sanity: no '$want' in the response: ${r:0:600}"
    done
fi

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
run_wrk warm_bare "$BARE_ADDR" 2 32 "$WARM" "$TMP/post.lua" "$BARE_PID"
run_wrk warm_tr "$GW_ADDR" 2 32 "$WARM" "$TMP/tr.lua" "$GW_PID"
if [[ "$RESILIENCE_RUNS" == 1 ]]; then
    run_wrk warm_res "$GW2_ADDR" 2 32 "$WARM" "$TMP/post.lua" "$GW2_PID"
fi
if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
    r=$(http "$GW3_ADDR" POST /v1/chat/completions "$BODY" || true)
    [[ "$r" == *"invalid_api_key"* ]] || die "the governed gateway served a request without its key: $r"
    run_wrk warm_gov "$GW3_ADDR" 2 32 "$WARM" "$TMP/gov.lua" "$GW3_PID"
fi
if [[ "$REDIS_RUNS" == 1 ]]; then
    for _ in $(seq 1 50); do
        r=$(http "$GW4_ADDR" GET /metrics || true)
        [[ "$r" == *"switchyard_limiter_backend_up 1"* ]] && break
        sleep 0.1
    done
    [[ "$r" == *"switchyard_limiter_backend_up 1"* ]] || die "the Redis gateway is not connected to redis-server: ${r:0:300}"
    run_wrk warm_redis "$GW4_ADDR" 2 32 "$WARM" "$TMP/gov.lua" "$GW4_PID"
fi

log "measuring, ${DURATION}s per run"
# gw_* = same dialect (OpenAI -> OpenAI mock), tr_* = translated (OpenAI
# request -> Anthropic mock -> OpenAI response), bare_* = bare Pingora.
run_wrk direct_c1 "$MOCK_ADDR" 1 1 "$DURATION" "$TMP/post.lua"
run_wrk gw_c1 "$GW_ADDR" 1 1 "$DURATION" "$TMP/post.lua" "$GW_PID"
run_wrk bare_c1 "$BARE_ADDR" 1 1 "$DURATION" "$TMP/post.lua" "$BARE_PID"
run_wrk tr_c1 "$GW_ADDR" 1 1 "$DURATION" "$TMP/tr.lua" "$GW_PID"
run_wrk direct_c32 "$MOCK_ADDR" 2 32 "$DURATION" "$TMP/post.lua"
run_wrk gw_c32 "$GW_ADDR" 2 32 "$DURATION" "$TMP/post.lua" "$GW_PID"
run_wrk bare_c32 "$BARE_ADDR" 2 32 "$DURATION" "$TMP/post.lua" "$BARE_PID"
run_wrk tr_c32 "$GW_ADDR" 2 32 "$DURATION" "$TMP/tr.lua" "$GW_PID"
if [[ "$RESILIENCE_RUNS" == 1 ]]; then
    # res_* = the same traffic through fallbacks + breakers on healthy
    # targets; flaky = half the primary's calls fail (twice as long);
    # down = every primary call fails at once and the fallback serves.
    run_wrk res_c1 "$GW2_ADDR" 1 1 "$DURATION" "$TMP/post.lua" "$GW2_PID"
    run_wrk res_c32 "$GW2_ADDR" 2 32 "$DURATION" "$TMP/post.lua" "$GW2_PID"
    run_wrk flaky_c32 "$GW2_ADDR" 2 32 $((DURATION * 2)) "$TMP/flaky.lua" "$GW2_PID"
    run_wrk down_c1 "$GW2_ADDR" 1 1 "$DURATION" "$TMP/down.lua" "$GW2_PID"
fi
if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
    # gov_* = the same traffic with a managed key: hash lookup, grant,
    # the limits in GOV_LIMITS (default: rpm) and a budget reserved and settled per request.
    run_wrk gov_c1 "$GW3_ADDR" 1 1 "$DURATION" "$TMP/gov.lua" "$GW3_PID"
    run_wrk gov_c32 "$GW3_ADDR" 2 32 "$DURATION" "$TMP/gov.lua" "$GW3_PID"
fi
if [[ "$REDIS_RUNS" == 1 ]]; then
    # redis_* = the same key and limits with every count in redis-server:
    # one EVALSHA to admit and one (not awaited) to settle per request.
    r0=$(cpu_ticks "$REDIS_PID")
    run_wrk redis_c1 "$GW4_ADDR" 1 1 "$DURATION" "$TMP/gov.lua" "$GW4_PID"
    r1=$(cpu_ticks "$REDIS_PID")
    run_wrk redis_c32 "$GW4_ADDR" 2 32 "$DURATION" "$TMP/gov.lua" "$GW4_PID"
    r2=$(cpu_ticks "$REDIS_PID")
    R[redis_c1.redis_cpu_us_per_req]=$(awk -v t="$((r1 - r0))" -v hz="$CLK_TCK" -v n="${R[redis_c1.requests]}" 'BEGIN{printf "%.1f", n ? t * 1e6 / hz / n : 0}')
    R[redis_c32.redis_cpu_us_per_req]=$(awk -v t="$((r2 - r1))" -v hz="$CLK_TCK" -v n="${R[redis_c32.requests]}" 'BEGIN{printf "%.1f", n ? t * 1e6 / hz / n : 0}')
    # Where redis-server's time went (per command, scripts' inner calls too).
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | grep '^cmdstat' | sed 's/^/    /' >&2 || true
    fi
    r=$(http "$GW4_ADDR" GET /metrics || true)
    REDIS_BACKEND_ERRORS=$(sed -n 's/^switchyard_limiter_backend_errors_total \([0-9]*\).*/\1/p' <<<"$r")
    [[ -n "$REDIS_BACKEND_ERRORS" ]] || die "no switchyard_limiter_backend_errors_total on the Redis gateway: ${r:0:300}"
fi
# Interleaved pairs for the governance verdicts (see GOV_PAIRS).
PAIR_ADD=()
PAIR_RATIO=()
PAIR_RUNS=()
if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
    for i in $(seq 1 "$GOV_PAIRS"); do
        # The same requests on both sides, `Authorization` header included
        # (every OpenAI SDK sends one, to an open gateway too): the pair
        # measures what key management adds, not what one header costs.
        run_wrk "pair${i}_gw" "$GW_ADDR" 2 32 "$DURATION" "$TMP/gov.lua" "$GW_PID"
        run_wrk "pair${i}_gov" "$GW3_ADDR" 2 32 "$DURATION" "$TMP/gov.lua" "$GW3_PID"
        PAIR_ADD+=("$(awk -v a="${R[pair${i}_gov.cpu_us_per_req]}" -v b="${R[pair${i}_gw.cpu_us_per_req]}" 'BEGIN{printf "%.1f", a - b}')")
        PAIR_RUNS+=("pair${i}_gw" "pair${i}_gov")
        if [[ "$REDIS_RUNS" == 1 ]]; then
            run_wrk "pair${i}_redis" "$GW4_ADDR" 2 32 "$DURATION" "$TMP/gov.lua" "$GW4_PID"
            PAIR_RATIO+=("$(awk -v a="${R[pair${i}_redis.rps]}" -v b="${R[pair${i}_gov.rps]}" 'BEGIN{printf "%.3f", (b > 0 ? a / b : 0)}')")
            PAIR_RUNS+=("pair${i}_redis")
        fi
    done
    if [[ "$REDIS_RUNS" == 1 ]]; then
        # The counter is cumulative: read again, it covers the pairs too.
        r=$(http "$GW4_ADDR" GET /metrics || true)
        REDIS_BACKEND_ERRORS=$(sed -n 's/^switchyard_limiter_backend_errors_total \([0-9]*\).*/\1/p' <<<"$r")
        [[ -n "$REDIS_BACKEND_ERRORS" ]] || die "no switchyard_limiter_backend_errors_total on the Redis gateway: ${r:0:300}"
    fi
fi
# The median of its arguments (0 when none).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# Interleaved triples for the two CPU ratio targets: bare Pingora, the
# gateway (same dialect) and the gateway translating, back to back, so each
# ratio compares runs seconds apart.
CPU_RATIO_GB=()
CPU_RATIO_TR=()
for i in $(seq 1 "$CPU_PAIRS"); do
    run_wrk "cpu${i}_bare" "$BARE_ADDR" 2 32 "$DURATION" "$TMP/post.lua" "$BARE_PID"
    run_wrk "cpu${i}_gw" "$GW_ADDR" 2 32 "$DURATION" "$TMP/post.lua" "$GW_PID"
    run_wrk "cpu${i}_tr" "$GW_ADDR" 2 32 "$DURATION" "$TMP/tr.lua" "$GW_PID"
    CPU_RATIO_GB+=("$(awk -v a="${R[cpu${i}_gw.cpu_us_per_req]}" -v b="${R[cpu${i}_bare.cpu_us_per_req]}" 'BEGIN{printf "%.2f", (b > 0 ? a / b : 0)}')")
    CPU_RATIO_TR+=("$(awk -v a="${R[cpu${i}_tr.cpu_us_per_req]}" -v b="${R[cpu${i}_gw.cpu_us_per_req]}" 'BEGIN{printf "%.2f", (b > 0 ? a / b : 0)}')")
    PAIR_RUNS+=("cpu${i}_bare" "cpu${i}_gw" "cpu${i}_tr")
done
if [[ "$STREAM_RUNS" == 1 ]]; then
    run_wrk sse_direct_c32 "$MOCK_ADDR" 2 32 "$DURATION" "$TMP/stream.lua"
    run_wrk sse_gw_c32 "$GW_ADDR" 2 32 "$DURATION" "$TMP/stream.lua" "$GW_PID"
    run_wrk sse_tr_c32 "$GW_ADDR" 2 32 "$DURATION" "$TMP/tr_stream.lua" "$GW_PID"
fi
sleep 1
RSS_AFTER_LOAD=$(rss_kib "$GW_PID")

# ---------------------------------------------------------------- time to first token
# ttft NAME ADDR PATH BODY_FILE: TTFT_N sequential streams on one connection.
declare -A T # T[name.key] = value
ttft_timeout=$((30 + TTFT_N * (25 * TTFT_HOLD_MS + 20) / 1000))
ttft() {
    local name=$1 out="$TMP/ttft.$1.out" line kv
    timeout $((ttft_timeout + 10)) "$TTFT_BIN" "$2" "$3" "$4" "$TTFT_N" 20 "$ttft_timeout" \
        >"$out" 2>"$out.err" || true
    line=$(grep -m1 '^TTFT_RESULT' "$out") || { cat "$out.err" >&2; die "ttft $name produced no result"; }
    for kv in ${line#TTFT_RESULT }; do T[$name.${kv%%=*}]=${kv#*=}; done
    [[ -s "$out.err" ]] && sed 's/^/    /' "$out.err" >&2
    ((T[$name.errors] == 0)) || die "ttft $name: ${T[$name.errors]} failed streams"
    log "$(printf 'ttft %-10s p50 %8s us  p99 %8s us  (to the end of the stream: p50 %s us)' "$name" \
        "${T[$name.p50]}" "${T[$name.p99]}" "${T[$name.total_p50]}")"
}
if ((TTFT_HOLD_MS > 0)); then
    log "time to first token, $TTFT_N sequential streams per run, mock holding ${TTFT_HOLD_MS} ms between events"
    http "$MOCK_ADDR" POST "/mock/hold?ms=$TTFT_HOLD_MS" >/dev/null || die "could not set the mock hold"
else
    log "time to first token, $TTFT_N sequential streams per run"
fi
ttft oa_direct "$MOCK_ADDR" /v1/chat/completions "$TMP/stream.json"
ttft oa_gw "$GW_ADDR" /v1/chat/completions "$TMP/stream.json"
ttft oa_bare "$BARE_ADDR" /v1/chat/completions "$TMP/stream.json"
ttft an_direct "$MOCK_ADDR" /v1/messages "$TMP/anth_stream.json"
ttft tr_gw "$GW_ADDR" /v1/chat/completions "$TMP/tr_stream.json"
if [[ "$RESILIENCE_RUNS" == 1 ]]; then
    ttft res_gw "$GW2_ADDR" /v1/chat/completions "$TMP/stream.json"
fi
if ((TTFT_HOLD_MS > 0)); then
    http "$MOCK_ADDR" POST /mock/release >/dev/null || true
fi

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
sgn() { awk -v x="$1" 'BEGIN{printf "%+.1f", x}'; } # a difference, with its sign
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0 ? a / b : 0)}'; }
# Gateway vs. the bare Pingora floor; translated vs. same-dialect.
GW_BARE_C32=$(ratio "$CPU" "${R[bare_c32.cpu_us_per_req]}")
GW_BARE_C1=$(ratio "${R[gw_c1.cpu_us_per_req]}" "${R[bare_c1.cpu_us_per_req]}")
TR_CPU=${R[tr_c32.cpu_us_per_req]}
TR_RATIO_C32=$(ratio "$TR_CPU" "$CPU")
TR_RATIO_C1=$(ratio "${R[tr_c1.cpu_us_per_req]}" "${R[gw_c1.cpu_us_per_req]}")
TR_ADD_CPU=$(f "$TR_CPU - $CPU")
TTFT_ADD_OA=$(f "${T[oa_gw.p50]} - ${T[oa_direct.p50]}")
TTFT_ADD_OA_P99=$(f "${T[oa_gw.p99]} - ${T[oa_direct.p99]}")
TTFT_ADD_BARE=$(f "${T[oa_bare.p50]} - ${T[oa_direct.p50]}")
TTFT_ADD_BARE_P99=$(f "${T[oa_bare.p99]} - ${T[oa_direct.p99]}")
TTFT_ADD_TR=$(f "${T[tr_gw.p50]} - ${T[an_direct.p50]}")
TTFT_ADD_TR_P99=$(f "${T[tr_gw.p99]} - ${T[an_direct.p99]}")

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
# The pipeline issue's targets: the gateway within 1.3x of bare Pingora,
# and a translated request within 1.3x of a same-dialect one (CPU, c=32).
if ((CPU_PAIRS > 0)); then
    GW_BARE_JUDGED=$(median "${CPU_RATIO_GB[@]}")
    TR_JUDGED=$(median "${CPU_RATIO_TR[@]}")
    JUDGED_BY="median of $CPU_PAIRS triples"
else
    GW_BARE_JUDGED=$GW_BARE_C32
    TR_JUDGED=$TR_RATIO_C32
    JUDGED_BY="one run"
fi
T_GW_BARE=$(pass "$GW_BARE_JUDGED <= 1.3")
T_TR_CPU=$(pass "$TR_JUDGED <= 1.3")
T_TTFT=$(pass "$TTFT_ADD_TR <= 1000")
if [[ "$RESILIENCE_RUNS" == 1 ]]; then
    RES_CPU_C32=$(awk -v a="${R[res_c32.cpu_us_per_req]}" -v b="$CPU" 'BEGIN{printf "%.3f", b ? a / b : 0}')
    RES_CPU_C1=$(awk -v a="${R[res_c1.cpu_us_per_req]}" -v b="${R[gw_c1.cpu_us_per_req]}" 'BEGIN{printf "%.3f", b ? a / b : 0}')
    RES_TTFT_ADD=$(f "${T[res_gw.p50]} - ${T[oa_gw.p50]}")
    FO_ADD_P50=$(f "${R[down_c1.p50]} - ${R[gw_c1.p50]}")
    T_RES_CPU=$(pass "$RES_CPU_C32 <= 1.02")
    T_FO=$(pass "$FO_ADD_P50 <= 1000")
    T_FLAKY=$(pass "${R[flaky_c32.errors]} == 0")
fi
if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
    GOV_ADD_C32=$(f "${R[gov_c32.cpu_us_per_req]} - $CPU")
    GOV_ADD_C1=$(f "${R[gov_c1.cpu_us_per_req]} - ${R[gw_c1.cpu_us_per_req]}")
    if ((${#PAIR_ADD[@]} > 0)); then
        GOV_ADD_C32=$(median "${PAIR_ADD[@]}")
    fi
    T_GOV=$(pass "$GOV_ADD_C32 <= 3")
    T_GOV_429=$(pass "${R[gov_c32.err_status]} + ${R[gov_c1.err_status]} == 0")
fi
if [[ "$REDIS_RUNS" == 1 ]]; then
    REDIS_ADD_P50=$(f "${R[redis_c1.p50]} - ${R[gov_c1.p50]}")
    # Three decimals, and the verdict from the raw rates: 0.7997 is not 0.80.
    REDIS_RPS_RATIO=$(awk -v a="${R[redis_c32.rps]}" -v b="${R[gov_c32.rps]}" 'BEGIN{printf "%.3f", (b > 0 ? a / b : 0)}')
    REDIS_CPU_ADD=$(f "${R[redis_c32.cpu_us_per_req]} - ${R[gov_c32.cpu_us_per_req]}")
    REDIS_GW_BOUND=$(ratio "${R[gov_c32.cpu_us_per_req]}" "${R[redis_c32.cpu_us_per_req]}")
    T_REDIS_P50=$(pass "$REDIS_ADD_P50 <= 150")
    if ((${#PAIR_RATIO[@]} > 0)); then
        REDIS_RPS_RATIO=$(median "${PAIR_RATIO[@]}")
        T_REDIS_RPS=$(pass "$REDIS_RPS_RATIO >= 0.8")
    else
        T_REDIS_RPS=$(pass "${R[redis_c32.rps]} >= 0.8 * ${R[gov_c32.rps]}")
    fi
    T_REDIS_ERR=$(pass "$REDIS_BACKEND_ERRORS + ${R[redis_c32.err_status]} + ${R[redis_c1.err_status]} == 0")
fi
MEASURED=(direct_c1 gw_c1 bare_c1 tr_c1 direct_c32 gw_c32 bare_c32 tr_c32 res_c1 res_c32 flaky_c32 down_c1 gov_c1 gov_c32 redis_c1 redis_c32
    sse_direct_c32 sse_gw_c32 sse_tr_c32 "${PAIR_RUNS[@]}")
ERRS=0
for run in "${MEASURED[@]}"; do ERRS=$((ERRS + ${R[$run.errors]:-0})); done

{
    echo
    echo "Switchyard load test — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, ${DURATION}s per run"
    echo "gateway threads: ${GATEWAY_THREADS:-default}; idle CPUs $CPU_MODE; wrk, mock and gateway share this machine:"
    echo "absolute numbers are lower bounds, compare against the direct baseline."
    echo
    printf '%-28s %14s %14s %14s\n' "" "direct (mock)" "via gateway" "added / ratio"
    printf '%-28s %14s %14s %14s\n' "c=1   p50 latency (us)" "${R[direct_c1.p50]}" "${R[gw_c1.p50]}" "$(sgn "$ADD_P50_C1")"
    printf '%-28s %14s %14s %14s\n' "c=1   p99 latency (us)" "${R[direct_c1.p99]}" "${R[gw_c1.p99]}" "$(sgn "$ADD_P99_C1")"
    printf '%-28s %14s %14s %14s\n' "c=1   throughput (req/s)" "${R[direct_c1.rps]}" "${R[gw_c1.rps]}" "x$RATIO_C1"
    printf '%-28s %14s %14s %14s\n' "c=32  p50 latency (us)" "${R[direct_c32.p50]}" "${R[gw_c32.p50]}" "$(sgn "$ADD_P50_C32")"
    printf '%-28s %14s %14s %14s\n' "c=32  p99 latency (us)" "${R[direct_c32.p99]}" "${R[gw_c32.p99]}" "$(sgn "$ADD_P99_C32")"
    printf '%-28s %14s %14s %14s\n' "c=32  throughput (req/s)" "${R[direct_c32.rps]}" "${R[gw_c32.rps]}" "x$RATIO_C32"
    printf '%-28s %14s %14s\n' "mock CPU/req c=32 (us)" "${R[direct_c32.mock_cpu_us_per_req]}" "${R[gw_c32.mock_cpu_us_per_req]}"
    if [[ "$STREAM_RUNS" == 1 ]]; then
        printf '%-28s %14s %14s %14s\n' "SSE c=32 p50 latency (us)" "${R[sse_direct_c32.p50]}" "${R[sse_gw_c32.p50]}" \
            "$(sgn "$(f "${R[sse_gw_c32.p50]} - ${R[sse_direct_c32.p50]}")")"
        printf '%-28s %14s %14s %14s\n' "SSE c=32 throughput (req/s)" "${R[sse_direct_c32.rps]}" "${R[sse_gw_c32.rps]}" \
            "x$(awk -v a="${R[sse_gw_c32.rps]}" -v b="${R[sse_direct_c32.rps]}" 'BEGIN{printf "%.3f", b ? a / b : 0}')"
        printf '%-28s %14s %14s\n' "SSE gateway CPU/req (us)" "" "${R[sse_gw_c32.cpu_us_per_req]}"
    fi
    echo
    printf '%-28s %14s %14s %14s\n' "" "bare Pingora" "gateway" "gw vs bare"
    printf '%-28s %14s %14s %14s\n' "c=1   p50 latency (us)" "${R[bare_c1.p50]}" "${R[gw_c1.p50]}" \
        "$(sgn "$(f "${R[gw_c1.p50]} - ${R[bare_c1.p50]}")")"
    printf '%-28s %14s %14s %14s\n' "c=32  throughput (req/s)" "${R[bare_c32.rps]}" "${R[gw_c32.rps]}" \
        "x$(ratio "${R[gw_c32.rps]}" "${R[bare_c32.rps]}")"
    printf '%-28s %14s %14s %14s\n' "CPU/req c=1 (us)" "${R[bare_c1.cpu_us_per_req]}" "${R[gw_c1.cpu_us_per_req]}" "x$GW_BARE_C1"
    printf '%-28s %14s %14s %14s\n' "CPU/req c=32 (us)" "${R[bare_c32.cpu_us_per_req]}" "$CPU" "x$GW_BARE_C32"
    echo
    printf '%-28s %14s %14s %14s\n' "gateway, OpenAI caller" "same dialect" "to Anthropic" "translated vs"
    printf '%-28s %14s %14s %14s\n' "c=1   p50 latency (us)" "${R[gw_c1.p50]}" "${R[tr_c1.p50]}" \
        "$(sgn "$(f "${R[tr_c1.p50]} - ${R[gw_c1.p50]}")")"
    printf '%-28s %14s %14s %14s\n' "c=1   p99 latency (us)" "${R[gw_c1.p99]}" "${R[tr_c1.p99]}" \
        "$(sgn "$(f "${R[tr_c1.p99]} - ${R[gw_c1.p99]}")")"
    printf '%-28s %14s %14s %14s\n' "c=32  p50 latency (us)" "${R[gw_c32.p50]}" "${R[tr_c32.p50]}" \
        "$(sgn "$(f "${R[tr_c32.p50]} - ${R[gw_c32.p50]}")")"
    printf '%-28s %14s %14s %14s\n' "c=32  throughput (req/s)" "${R[gw_c32.rps]}" "${R[tr_c32.rps]}" \
        "x$(ratio "${R[tr_c32.rps]}" "${R[gw_c32.rps]}")"
    printf '%-28s %14s %14s %14s\n' "gateway CPU/req c=1 (us)" "${R[gw_c1.cpu_us_per_req]}" "${R[tr_c1.cpu_us_per_req]}" "x$TR_RATIO_C1"
    printf '%-28s %14s %14s %14s\n' "gateway CPU/req c=32 (us)" "$CPU" "$TR_CPU" "x$TR_RATIO_C32"
    printf '%-28s %14s %14s\n' "mock CPU/req c=32 (us)" "${R[gw_c32.mock_cpu_us_per_req]}" "${R[tr_c32.mock_cpu_us_per_req]}"
    if [[ "$STREAM_RUNS" == 1 ]]; then
        printf '%-28s %14s %14s %14s\n' "SSE c=32 gateway CPU/req (us)" "${R[sse_gw_c32.cpu_us_per_req]}" \
            "${R[sse_tr_c32.cpu_us_per_req]}" "x$(ratio "${R[sse_tr_c32.cpu_us_per_req]}" "${R[sse_gw_c32.cpu_us_per_req]}")"
    fi
    echo
    if [[ "$RESILIENCE_RUNS" == 1 ]]; then
        printf '%-28s %14s %14s %14s\n' "gateway, healthy targets" "plain config" "fallbacks+cb" "ratio / added"
        printf '%-28s %14s %14s %14s\n' "CPU/req c=1 (us)" "${R[gw_c1.cpu_us_per_req]}" "${R[res_c1.cpu_us_per_req]}" "x$RES_CPU_C1"
        printf '%-28s %14s %14s %14s\n' "CPU/req c=32 (us)" "$CPU" "${R[res_c32.cpu_us_per_req]}" "x$RES_CPU_C32"
        printf '%-28s %14s %14s %14s\n' "c=32  throughput (req/s)" "${R[gw_c32.rps]}" "${R[res_c32.rps]}" \
            "x$(ratio "${R[res_c32.rps]}" "${R[gw_c32.rps]}")"
        printf '%-28s %14s %14s %14s\n' "TTFT p50 (us)" "${T[oa_gw.p50]}" "${T[res_gw.p50]}" "$(sgn "$RES_TTFT_ADD")"
        printf '%-28s %14s %14s %14s\n' "failover after a 5xx, c=1" "healthy p50" "failover p50" "added"
        printf '%-28s %14s %14s %14s\n' "  latency (us)" "${R[gw_c1.p50]}" "${R[down_c1.p50]}" "$(sgn "$FO_ADD_P50")"
        printf '%-28s %14s %14s\n' "  gateway CPU/req (us)" "${R[gw_c1.cpu_us_per_req]}" "${R[down_c1.cpu_us_per_req]}"
        printf '%-28s %14s %14s %14s\n' "half the primary failing" "c=32 req/s" "errors" "p99 (us)"
        printf '%-28s %14s %14s %14s\n' "  (flaky, $((DURATION * 2)) s)" "${R[flaky_c32.rps]}" "${R[flaky_c32.errors]}" "${R[flaky_c32.p99]}"
        echo
    fi
    if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
        printf '%-28s %14s %14s %14s\n' "one managed key + limits" "no key" "in-process" "added"
        echo "  (limits: $GOV_LIMITS + a monthly budget)"
        printf '%-28s %14s %14s %14s\n' "CPU/req c=1 (us)" "${R[gw_c1.cpu_us_per_req]}" "${R[gov_c1.cpu_us_per_req]}" "$(sgn "$GOV_ADD_C1")"
        printf '%-28s %14s %14s %14s\n' "CPU/req c=32 (us)" "$CPU" "${R[gov_c32.cpu_us_per_req]}" "$(sgn "$GOV_ADD_C32")"
        printf '%-28s %14s %14s\n' "c=32  throughput (req/s)" "${R[gw_c32.rps]}" "${R[gov_c32.rps]}"
        printf '%-28s %14s %14s\n' "non-2xx answers (429s)" "" "$((${R[gov_c1.err_status]} + ${R[gov_c32.err_status]}))"
        if [[ "$REDIS_RUNS" == 1 ]]; then
            printf '%-28s %14s %14s %14s\n' "limiter backend" "in-process" "Redis" "Redis vs"
            printf '%-28s %14s %14s %14s\n' "c=1   p50 latency (us)" "${R[gov_c1.p50]}" "${R[redis_c1.p50]}" "$(sgn "$REDIS_ADD_P50")"
            printf '%-28s %14s %14s %14s\n' "c=1   p99 latency (us)" "${R[gov_c1.p99]}" "${R[redis_c1.p99]}" \
                "$(sgn "$(f "${R[redis_c1.p99]} - ${R[gov_c1.p99]}")")"
            printf '%-28s %14s %14s %14s\n' "c=32  throughput (req/s)" "${R[gov_c32.rps]}" "${R[redis_c32.rps]}" "x$REDIS_RPS_RATIO"
            printf '%-28s %14s %14s %14s\n' "gateway CPU/req c=32 (us)" "${R[gov_c32.cpu_us_per_req]}" "${R[redis_c32.cpu_us_per_req]}" "$(sgn "$REDIS_CPU_ADD")"
            printf '%-28s %14s %14s\n' "redis-server CPU/req (us)" "" "${R[redis_c32.redis_cpu_us_per_req]} (c=1: ${R[redis_c1.redis_cpu_us_per_req]})"
            printf '%-28s %14s %14s\n' "  gateway-bound req/s ratio" "" "x$REDIS_GW_BOUND"
            echo "  (derived: in-process ÷ Redis gateway CPU per request — the throughput ratio when"
            echo "   redis-server runs on a host of its own; here it shares these $(nproc) cores with wrk and the gateway)"
            printf '%-28s %14s %14s\n' "backend errors, non-2xx" "" "$REDIS_BACKEND_ERRORS, $((${R[redis_c1.err_status]} + ${R[redis_c32.err_status]}))"
        fi
        echo
    fi
    printf '%-28s %14s %14s %14s\n' "time to first token (us)" "direct (mock)" "proxied" "added"
    printf '%-28s %14s %14s %14s\n' "OpenAI via gateway p50" "${T[oa_direct.p50]}" "${T[oa_gw.p50]}" "$(sgn "$TTFT_ADD_OA")"
    printf '%-28s %14s %14s %14s\n' "OpenAI via gateway p99" "${T[oa_direct.p99]}" "${T[oa_gw.p99]}" "$(sgn "$TTFT_ADD_OA_P99")"
    printf '%-28s %14s %14s %14s\n' "OpenAI via bare Pingora p50" "${T[oa_direct.p50]}" "${T[oa_bare.p50]}" "$(sgn "$TTFT_ADD_BARE")"
    printf '%-28s %14s %14s %14s\n' "OpenAI via bare Pingora p99" "${T[oa_direct.p99]}" "${T[oa_bare.p99]}" "$(sgn "$TTFT_ADD_BARE_P99")"
    printf '%-28s %14s %14s %14s\n' "translated p50" "${T[an_direct.p50]}" "${T[tr_gw.p50]}" "$(sgn "$TTFT_ADD_TR")"
    printf '%-28s %14s %14s %14s\n' "translated p99" "${T[an_direct.p99]}" "${T[tr_gw.p99]}" "$(sgn "$TTFT_ADD_TR_P99")"
    echo "  ($TTFT_N sequential streams each on one keep-alive connection; translated = the OpenAI"
    echo "   stream request to $CLAUDE vs. its Anthropic equivalent sent to the mock's /v1/messages;"
    if ((TTFT_HOLD_MS > 0)); then
        echo "   the mock sent the first token alone, then one event every ${TTFT_HOLD_MS} ms)"
    else
        echo "   the mock sent each whole stream in one write)"
    fi
    echo
    printf '%-44s %12s\n' "gateway CPU per request, c=32 (us)" "$CPU"
    printf '%-44s %12s\n' "gateway CPU per request, c=1 (us)" "${R[gw_c1.cpu_us_per_req]}"
    printf '%-44s %12s\n' "bare Pingora CPU per request, c=32 (us)" "${R[bare_c32.cpu_us_per_req]}"
    printf '%-44s %12s\n' "gateway CPU / bare Pingora CPU, c=32" "$GW_BARE_C32"
    printf '%-44s %12s\n' "translated CPU per request, c=32 (us)" "$TR_CPU"
    printf '%-44s %12s\n' "  added by translation (us)" "$TR_ADD_CPU"
    printf '%-44s %12s\n' "worker threads (gateway = bare Pingora)" "$BARE_THREADS"
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
    printf '  %-4s  CPU per request @c=32 %8s us   (<= 50 us; bare Pingora floor %s us, gateway = x%s of it)\n' \
        "$T_CPU" "$CPU" "${R[bare_c32.cpu_us_per_req]}" "$GW_BARE_C32"
    printf '  %-4s  gateway vs bare       %8s x    (<= 1.3x bare Pingora CPU per request @c=32, %s: %s)\n' \
        "$T_GW_BARE" "$GW_BARE_JUDGED" "$JUDGED_BY" "${CPU_RATIO_GB[*]:-$GW_BARE_C32}"
    printf '  %-4s  translation CPU       %8s x    (<= 1.3x same-dialect @c=32, %s: %s; single run %s vs %s us)\n' \
        "$T_TR_CPU" "$TR_JUDGED" "$JUDGED_BY" "${CPU_RATIO_TR[*]:-$TR_RATIO_C32}" "$TR_CPU" "$CPU"
    printf '  %-4s  translated TTFT p50   %8s us   (<= 1000 us added vs direct)\n' "$T_TTFT" "$(sgn "$TTFT_ADD_TR")"
    printf '  %-4s  added p50 @c=1        %8s us   (<= 100 us)\n' "$T_P50" "$ADD_P50_C1"
    printf '  %-4s  idle RSS              %8s MiB  (<= 20 MiB)\n' "$T_IDLE" "$(mib "$IDLE_RSS")"
    printf '  %-4s  RSS, %s streams     %8s MiB  (<= 150 MiB)\n' "$T_STREAMS" "$STREAMS" "$(mib "$HOLD_RSS")"
    printf '  %-4s  binary size           %8s MB   (<= 20 MB)\n' "$T_BIN" "$(awk -v b="$BIN_BYTES" 'BEGIN{printf "%.1f", b / 1e6}')"
    if [[ "$RESILIENCE_RUNS" == 1 ]]; then
        printf '  %-4s  fallbacks + breakers  %8s x    (<= 1.02x CPU/req @c=32 on healthy targets)\n' "$T_RES_CPU" "$RES_CPU_C32"
        printf '  %-4s  failover after a 5xx  %8s us   (<= 1000 us added p50 @c=1)\n' "$T_FO" "$(sgn "$FO_ADD_P50")"
        printf '  %-4s  half the primary down %8s     (errors reaching clients: 0)\n' "$T_FLAKY" "${R[flaky_c32.errors]}"
    fi
    if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
        printf '  %-4s  managed key + limits  %8s us   (<= +3 us CPU/req @c=32, median of %s pairs: %s; c=1: %s us)\n' \
            "$T_GOV" "$(sgn "$GOV_ADD_C32")" "${#PAIR_ADD[@]}" "${PAIR_ADD[*]:-none}" "$(sgn "$GOV_ADD_C1")"
        printf '  %-4s  generous key, 429s    %8s      (zero spurious refusals, wrk c=1 and c=32)\n' \
            "$T_GOV_429" "$((${R[gov_c1.err_status]} + ${R[gov_c32.err_status]}))"
    fi
    if [[ "$REDIS_RUNS" == 1 ]]; then
        printf '  %-4s  Redis limiter p50     %8s us   (<= +150 us @c=1 over in-process)\n' "$T_REDIS_P50" "$(sgn "$REDIS_ADD_P50")"
        printf '  %-4s  Redis limiter req/s   %8s x    (>= 0.8x in-process @c=32, median of %s pairs: %s)\n' \
            "$T_REDIS_RPS" "$REDIS_RPS_RATIO" "${#PAIR_RATIO[@]}" "${PAIR_RATIO[*]:-none}"
        printf '  %-4s  Redis errors, 429s    %8s      (backend errors + non-2xx: 0)\n' "$T_REDIS_ERR" \
            "$((REDIS_BACKEND_ERRORS + ${R[redis_c1.err_status]} + ${R[redis_c32.err_status]}))"
    fi
    ((ERRS == 0)) || echo "  WARNING: wrk reported $ERRS errors; the latency numbers include failed requests"
}

mkdir -p "$(dirname "$LOAD_JSON")"
{
    printf '{\n'
    printf '  "timestamp": "%s", "cores": %d, "duration_s": %d, "gateway_threads": "%s", "worker_threads": %s,\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$DURATION" "${GATEWAY_THREADS:-default}" "${BARE_THREADS:-0}"
    printf '  "runs": {\n'
    first=1
    for run in "${MEASURED[@]}"; do
        [[ -n "${R[$run.requests]:-}" ]] || continue
        ((first)) || printf ',\n'
        first=0
        printf '    "%s": {"requests": %s, "rps": %s, "p50_us": %s, "p90_us": %s, "p99_us": %s, "p999_us": %s, "max_us": %s, "errors": %s, "mock_cpu_us_per_req": %s' \
            "$run" "${R[$run.requests]}" "${R[$run.rps]}" "${R[$run.p50]}" "${R[$run.p90]}" "${R[$run.p99]}" \
            "${R[$run.p999]}" "${R[$run.max]}" "${R[$run.errors]}" "${R[$run.mock_cpu_us_per_req]}"
        proc=gateway
        [[ "$run" == bare_* ]] && proc=bare
        [[ -n "${R[$run.cpu_us_per_req]:-}" ]] &&
            printf ', "%s_cpu_us_per_req": %s, "%s_max_rss_kib": %s' "$proc" "${R[$run.cpu_us_per_req]}" \
                "$proc" "${R[$run.max_rss_kib]}"
        printf '}'
    done
    printf '\n  },\n'
    printf '  "added_p50_us_c1": %s, "added_p99_us_c1": %s, "added_p50_us_c32": %s, "added_p99_us_c32": %s,\n' \
        "$ADD_P50_C1" "$ADD_P99_C1" "$ADD_P50_C32" "$ADD_P99_C32"
    printf '  "throughput_ratio_c1": %s, "throughput_ratio_c32": %s,\n' "$RATIO_C1" "$RATIO_C32"
    printf '  "gateway_cpu_us_per_req_c32": %s, "gateway_cpu_us_per_req_c1": %s,\n' "$CPU" "${R[gw_c1.cpu_us_per_req]}"
    printf '  "bare_cpu_us_per_req_c32": %s, "bare_cpu_us_per_req_c1": %s, "gateway_over_bare_cpu_c32": %s, "gateway_over_bare_cpu_c1": %s,\n' \
        "${R[bare_c32.cpu_us_per_req]}" "${R[bare_c1.cpu_us_per_req]}" "$GW_BARE_C32" "$GW_BARE_C1"
    printf '  "translated_cpu_us_per_req_c32": %s, "translated_cpu_us_per_req_c1": %s, "translated_over_same_dialect_cpu_c32": %s, "translated_over_same_dialect_cpu_c1": %s,\n' \
        "$TR_CPU" "${R[tr_c1.cpu_us_per_req]}" "$TR_RATIO_C32" "$TR_RATIO_C1"
    printf '  "cpu_triples": %s, "gateway_over_bare_cpu_c32_judged": %s, "translated_over_same_dialect_cpu_c32_judged": %s,\n' \
        "$CPU_PAIRS" "$GW_BARE_JUDGED" "$TR_JUDGED"
    printf '  "ttft": {"streams_per_run": %s, "mock_hold_ms": %s' "$TTFT_N" "$TTFT_HOLD_MS"
    for run in oa_direct oa_gw oa_bare an_direct tr_gw res_gw; do
        [[ -n "${T[$run.n]:-}" ]] || continue
        printf ', "%s": {"n": %s, "p50_us": %s, "p90_us": %s, "p99_us": %s, "max_us": %s, "mean_us": %s, "to_end_p50_us": %s, "to_end_p99_us": %s}' \
            "$run" "${T[$run.n]}" "${T[$run.p50]}" "${T[$run.p90]}" "${T[$run.p99]}" "${T[$run.max]}" "${T[$run.mean]}" \
            "${T[$run.total_p50]}" "${T[$run.total_p99]}"
    done
    printf '},\n'
    printf '  "ttft_added_p50_us_same_dialect": %s, "ttft_added_p50_us_bare": %s, "ttft_added_p50_us_translated": %s, "ttft_added_p99_us_translated": %s,\n' \
        "$TTFT_ADD_OA" "$TTFT_ADD_BARE" "$TTFT_ADD_TR" "$TTFT_ADD_TR_P99"
    printf '  "rss_idle_kib": %s, "rss_load_c32_max_kib": %s, "rss_after_load_kib": %s,\n' \
        "$IDLE_RSS" "${R[gw_c32.max_rss_kib]}" "$RSS_AFTER_LOAD"
    printf '  "streams_wanted": %s, "streams_open": %s, "streams_failed": %s, "streams_open_ms": %s, "rss_streams_kib": %s, "rss_added_by_streams_kib": %s, "rss_after_streams_kib": %s,\n' \
        "$STREAMS" "$HOLD_OK" "$HOLD_FAILED" "$HOLD_MS_TAKEN" "$HOLD_RSS" "$((HOLD_RSS - RSS_AFTER_LOAD))" "$RSS_AFTER_STREAMS"
    if [[ "$RESILIENCE_RUNS" == 1 ]]; then
        printf '  "resilience_over_plain_cpu_c32": %s, "resilience_over_plain_cpu_c1": %s, "resilience_ttft_added_p50_us": %s, "failover_added_p50_us_c1": %s, "flaky_errors": %s,\n' \
            "$RES_CPU_C32" "$RES_CPU_C1" "$RES_TTFT_ADD" "$FO_ADD_P50" "${R[flaky_c32.errors]}"
    fi
    if [[ "$GOVERNANCE_RUNS" == 1 ]]; then
        printf '  "governance_added_cpu_us_c32": %s, "governance_added_cpu_us_c1": %s, "governance_non_2xx": %s, "governance_pairs_added_cpu_us": [%s],\n' \
            "$GOV_ADD_C32" "$GOV_ADD_C1" "$((${R[gov_c1.err_status]} + ${R[gov_c32.err_status]}))" "$(IFS=,; echo "${PAIR_ADD[*]}")"
    fi
    if [[ "$REDIS_RUNS" == 1 ]]; then
        printf '  "redis_added_p50_us_c1": %s, "redis_over_in_process_rps_c32": %s, "redis_added_cpu_us_c32": %s, "redis_gateway_bound_ratio": %s, "redis_server_cpu_us_per_req_c32": %s, "redis_backend_errors": %s, "redis_pairs_rps_ratio": [%s],\n' \
            "$REDIS_ADD_P50" "$REDIS_RPS_RATIO" "$REDIS_CPU_ADD" "$REDIS_GW_BOUND" "${R[redis_c32.redis_cpu_us_per_req]}" "$REDIS_BACKEND_ERRORS" "$(IFS=,; echo "${PAIR_RATIO[*]}")"
    fi
    printf '  "cpu_idle_mode": "%s", "binary_bytes": %s, "wrk_errors": %s,\n' "$CPU_MODE" "$BIN_BYTES" "$ERRS"
    printf '  "targets": {"cpu_per_request_le_50us": "%s", "added_p50_c1_le_100us": "%s", "idle_rss_le_20mib": "%s", "rss_streams_le_150mib": "%s", "binary_le_20mb": "%s", "gateway_over_bare_cpu_le_1_3x": "%s", "translation_cpu_le_1_3x": "%s", "ttft_translated_added_p50_le_1ms": "%s"}\n' \
        "$T_CPU" "$T_P50" "$T_IDLE" "$T_STREAMS" "$T_BIN" "$T_GW_BARE" "$T_TR_CPU" "$T_TTFT"
    printf '}\n'
} >"$LOAD_JSON"
echo
echo "JSON summary: $LOAD_JSON"
