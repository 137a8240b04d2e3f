#!/usr/bin/env bash
# Builds the Debian package with `cargo deb` and checks it:
#   - contents: binary, systemd unit, config, key file, supervisor, docs at
#     the right paths with the right modes; conffiles; control fields;
#     maintainer scripts (shell syntax);
#   - the unit (alone and with the zero-downtime drop-in) passes
#     `systemd-analyze verify`, and `systemd-analyze security` rates it
#     (skipped with a notice when systemd-analyze is missing);
#   - the packaged binary runs `switchyard version` and `switchyard
#     check-config` on the packaged /etc/switchyard/switchyard.yaml;
#   - the packaged supervisor hands the listening socket from one packaged
#     gateway to a new one under continuous requests with zero failures,
#     forwards SIGHUP, aborts an upgrade whose new process cannot start (the
#     old one keeps serving), and stops with status 0 on SIGTERM.
# Installs cargo-deb (crates.io) when missing. Exits non-zero on any failure.
#
#   scripts/test_packaging.sh            build + check
#   KEEP=1 scripts/test_packaging.sh     keep the work dir for inspection
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$SECONDS

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "  ok: $*"; }
step() { echo "== $*"; }

scripts/deps.sh
need_apt=()
command -v dpkg-deb >/dev/null 2>&1 || need_apt+=(dpkg)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need_apt+=(dpkg-dev)   # Depends: $auto
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
  step "installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked
fi

work=$(mktemp -d /tmp/switchyard-pkg.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step "cargo deb (release build + package)"
t0=$SECONDS
cargo deb --output "$work/" -- --locked >"$work/cargo-deb.out" 2>"$work/cargo-deb.err" || {
  cat "$work/cargo-deb.err" >&2
  fail "cargo deb failed"
}
deb=$(find "$work" -maxdepth 1 -name "switchyard_*.deb" | head -n1)
[ -n "$deb" ] || fail "cargo deb produced no switchyard_*.deb in $work"
echo "  built $(basename "$deb") ($(du -h "$deb" | cut -f1)) in $((SECONDS - t0))s"

step "package contents (dpkg-deb -c)"
dpkg-deb -c "$deb" >"$work/contents.txt" || fail "dpkg-deb -c failed"
sed 's/^/    /' "$work/contents.txt"
# has MODE PATH: a regular file at PATH with MODE, owned by root
has() {
  local mode=$1 path=$2
  grep -Eq "^${mode} (root/root|0/0) +[0-9]+ [0-9-]+ [0-9:]+ \./${path}\$" "$work/contents.txt" ||
    fail "package lacks ${path} with mode ${mode} owned by root (see listing above)"
  ok "$mode $path"
}
has '-rwxr-xr-x' 'usr/bin/switchyard'
has '-rw-r--r--' 'lib/systemd/system/switchyard\.service'
has '-rw-r--r--' 'etc/switchyard/switchyard\.yaml'
has '-rw-r-----' 'etc/switchyard/switchyard\.env'
has '-rwxr-xr-x' 'usr/lib/switchyard/switchyard-supervise'
has '-rw-r--r--' 'usr/share/switchyard/zero-downtime\.conf'
has '-rw-r--r--' 'usr/share/doc/switchyard/README\.md'
has '-rw-r--r--' 'usr/share/doc/switchyard/env\.template'
has '-rw-r--r--' 'usr/share/doc/switchyard/copyright'

step "control data (dpkg-deb -I)"
dpkg-deb -I "$deb" >"$work/info.txt" || fail "dpkg-deb -I failed"
sed 's/^/    /' "$work/info.txt"
field() { # field NAME REGEX
  grep -Eq "^ $1: $2" "$work/info.txt" || fail "control field $1 does not match '$2'"
  ok "$1: $(grep -E "^ $1:" "$work/info.txt" | head -n1 | cut -d: -f2- | sed 's/^ //')"
}
field Package 'switchyard$'
field Section 'net$'
field Priority 'optional$'
field Maintainer '.+'
field Depends '.*libc6'
for s in postinst prerm postrm conffiles; do
  grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *${s}( |$)" "$work/info.txt" || fail "control archive lacks $s"
done
ok "maintainer scripts postinst, prerm, postrm and conffiles present"
dpkg-deb -I "$deb" conffiles >"$work/conffiles" || fail "cannot read conffiles"
for c in /etc/switchyard/switchyard.yaml /etc/switchyard/switchyard.env; do
  grep -qx "$c" "$work/conffiles" || fail "$c is not a conffile"
done
[ "$(sort "$work/conffiles" | uniq -d | wc -l)" -eq 0 ] || fail "duplicate conffiles entries"
ok "conffiles: $(tr '\n' ' ' <"$work/conffiles")"

step "extract"
x=$work/root
dpkg-deb -x "$deb" "$x"
dpkg-deb -e "$deb" "$x/DEBIAN"
for s in postinst prerm postrm; do
  [ -x "$x/DEBIAN/$s" ] || fail "$s is not executable"
  sh -n "$x/DEBIAN/$s" || fail "$s: shell syntax error"
done
bash -n "$x/usr/lib/switchyard/switchyard-supervise" || fail "switchyard-supervise: bash syntax error"
cmp -s "$x/etc/switchyard/switchyard.yaml" conf/switchyard.yaml || fail "packaged config differs from conf/switchyard.yaml"
ok "maintainer scripts parse; packaged config is conf/switchyard.yaml"
bin=$x/usr/bin/switchyard

step "packaged binary"
out=$("$bin" version) || fail "switchyard version failed"
want="switchyard $(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="switchyard"))')"
[ "$out" = "$want" ] || fail "switchyard version printed '$out', expected '$want'"
ok "$out"
# The environment a fresh install gives the service: the unit's data dir, one key.
if ! out=$(env -i PATH=/usr/bin:/bin OPENAI_API_KEY=sk-test-packaging SWITCHYARD_DATA_DIR=/var/lib/switchyard \
  "$bin" check-config --config "$x/etc/switchyard/switchyard.yaml" 2>&1); then
  echo "$out" >&2
  fail "switchyard check-config rejected the packaged /etc/switchyard/switchyard.yaml"
fi
while IFS= read -r line; do echo "    $line"; done <<<"$out"
echo "$out" | grep -q 'data dir /var/lib/switchyard' || fail "check-config did not use SWITCHYARD_DATA_DIR"
ok "check-config accepts the packaged config"

step "systemd unit"
u=$work/unit
mkdir -p "$u/switchyard.service.d"
# Point the unit at the extracted files so verify checks real executables.
sed "s#/usr/bin/switchyard#$bin#g" "$x/lib/systemd/system/switchyard.service" >"$u/switchyard.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$u/switchyard.service" || fail "systemd-analyze verify rejected switchyard.service"
  ok "systemd-analyze verify: switchyard.service"
  sed -e "s#/usr/bin/switchyard#$bin#g" \
    -e "s#/usr/lib/switchyard/switchyard-supervise#$x/usr/lib/switchyard/switchyard-supervise#g" \
    "$x/usr/share/switchyard/zero-downtime.conf" >"$u/switchyard.service.d/zero-downtime.conf"
  systemd-analyze verify "$u/switchyard.service" || fail "systemd-analyze verify rejected the unit with zero-downtime.conf"
  ok "systemd-analyze verify: switchyard.service + zero-downtime.conf"
  rm -r "$u/switchyard.service.d"
  if systemd-analyze security --offline=yes "$u/switchyard.service" >"$work/security.txt" 2>&1; then
    score=$(grep -Eo 'Overall exposure level for switchyard.service: [0-9.]+' "$work/security.txt" | grep -Eo '[0-9.]+$')
    [ -n "$score" ] || fail "no exposure score in systemd-analyze security output"
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "systemd-analyze security exposure $score > 2.0"
    ok "systemd-analyze security: exposure $score (0 best, 10 worst)"
  else
    echo "  skipped: systemd-analyze security --offline is not supported by $(systemd-analyze --version | head -n1)"
  fi
else
  echo "  SKIPPED: systemd-analyze not installed (apt-get install systemd); unit not verified"
fi
# shellcheck disable=SC2016  # $MAINPID is literal unit syntax
for k in 'DynamicUser=yes' 'StateDirectory=switchyard' 'Environment=SWITCHYARD_DATA_DIR=/var/lib/switchyard' \
  'EnvironmentFile=-/etc/switchyard/switchyard.env' \
  'ExecStart=/usr/bin/switchyard serve --config /etc/switchyard/switchyard.yaml' \
  'ExecReload=/bin/kill -HUP $MAINPID' 'KillSignal=SIGTERM' 'Restart=on-failure' 'LimitNOFILE=65536' \
  'CapabilityBoundingSet=' 'MemoryDenyWriteExecute=yes' 'ProtectSystem=strict'; do
  grep -qxF "$k" "$x/lib/systemd/system/switchyard.service" || fail "unit lacks '$k'"
done
stop_timeout=$(sed -n 's/^TimeoutStopSec=//p' "$x/lib/systemd/system/switchyard.service")
# Pingora's stop: grace_period_seconds + graceful_shutdown_timeout_seconds (30 + 5 by default).
[ "${stop_timeout:-0}" -gt 35 ] || fail "TimeoutStopSec=${stop_timeout} does not exceed the 35 s default grace"
ok "unit keys present; TimeoutStopSec=$stop_timeout > 35 s grace"

step "zero-downtime upgrade through the packaged supervisor"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/sup.yaml" <<EOF
listen: "127.0.0.1:$port"
server:
  threads: 1
  grace_period_seconds: 1
  graceful_shutdown_timeout_seconds: 1
EOF
cp "$work/sup.yaml" "$work/sup.yaml.good"
# As under systemd: one data dir (store, upgrade socket) for every process,
# the supervisor finds the upgrade socket through SWITCHYARD_DATA_DIR.
export SWITCHYARD_DATA_DIR=$work/data
unset SWITCHYARD_UPGRADE_SOCK SWITCHYARD_CONFIG
sup_bin=$x/usr/lib/switchyard/switchyard-supervise
url=http://127.0.0.1:$port/health
wait_up() {
  local _
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.05
  done
  return 1
}
gateway_pids() { pgrep -P "$1" | sort | tr '\n' ' '; }
load() { # load SECONDS OUTFILE: sequential requests, one connection each
  local end=$((SECONDS + $1)) okc=0 bad=0 code
  while [ $SECONDS -lt "$end" ]; do
    # One retry of a dropped connection, as the official SDKs do (Pingora
    # drops an accepted-but-unread connection at the instant of a handover).
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --retry 1 --retry-all-errors --retry-delay 0 "$url" || true)
    if [ "$code" = 200 ]; then okc=$((okc + 1)); else bad=$((bad + 1)); fi
  done
  echo "$okc $bad" >"$2"
}

"$sup_bin" "$bin" serve --config "$work/sup.yaml" >"$work/sup.out" 2>"$work/sup.log" &
sup=$!
pids+=("$sup")
wait_up || { cat "$work/sup.log" >&2; fail "supervised gateway did not come up on $url"; }
before=$(gateway_pids "$sup")
load 8 "$work/load1" &
lp=$!
sleep 1
kill -USR2 "$sup"
sleep 3
kill -HUP "$sup"
wait "$lp"
read -r okc bad <"$work/load1"
after=$(gateway_pids "$sup")
grep -q 'hands its sockets to' "$work/sup.log" || { cat "$work/sup.log" >&2; fail "supervisor did not hand over"; }
[ "$bad" -eq 0 ] || { cat "$work/sup.log" >&2; fail "$bad of $((okc + bad)) requests failed across the handover"; }
[ "$okc" -gt 20 ] || fail "only $okc requests completed during the handover test"
new=""
for p in $after; do
  case " $before " in *" $p "*) ;; *) new="$new$p" ;; esac
done
[ -n "$new" ] || fail "no new gateway process after the upgrade (before: $before, after: $after)"
curl -sf -o /dev/null "$url" || fail "gateway gone after SIGHUP through the supervisor"
# The predecessor drains (5 s handover pause + 1 s grace + 1 s) and exits.
for _ in $(seq 1 150); do
  [ "$(gateway_pids "$sup" | tr -d ' ')" = "$new" ] && break
  sleep 0.1
done
[ "$(gateway_pids "$sup" | tr -d ' ')" = "$new" ] || fail "old gateway $before did not exit after draining"
ok "handover $before-> $new under load: $okc requests, 0 failed; SIGHUP forwarded; old process drained and exited"

# Abort: a new process that cannot start (here: an invalid config) leaves
# the old one serving. The running gateway rejects the file as well.
cur_pid=$(gateway_pids "$sup" | tr -d ' ')
echo "bogus_key_for_packaging_test: 1" >>"$work/sup.yaml"
load 3 "$work/load2" &
lp=$!
kill -USR2 "$sup"
wait "$lp"
read -r okc bad <"$work/load2"
grep -q 'upgrade aborted' "$work/sup.log" || { cat "$work/sup.log" >&2; fail "supervisor did not report the aborted upgrade"; }
cp "$work/sup.yaml.good" "$work/sup.yaml"
[ "$bad" -eq 0 ] || fail "$bad requests failed during the aborted upgrade"
[ "$(gateway_pids "$sup" | tr -d ' ')" = "$cur_pid" ] || fail "serving process changed although the upgrade aborted"
ok "aborted upgrade: $cur_pid kept serving, $okc requests, 0 failed"

t0=$SECONDS
kill -TERM "$sup"
rc=0
wait "$sup" || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/sup.log" >&2; fail "supervisor exited $rc on SIGTERM"; }
pgrep -f "$bin serve" >/dev/null && fail "gateway processes left after the supervisor exited"
ok "SIGTERM: graceful stop in $((SECONDS - t0))s, exit 0, no process left"

echo "packaging: all checks passed in $((SECONDS - t_start))s ($(basename "$deb"))"
