#!/usr/bin/env bash
# Load test: SIPp's uac scenario against a release build of the gateway.
#   scripts/load.sh RATE DURATION_S [HOLD_MS]
# Prints successful and failed calls, SIPp retransmissions, the gateway's CPU seconds
# and peak memory, and the kernel's UDP receive-buffer drops during the run.
# Traffic stays on 127.0.0.1; the run is bounded by RATE * DURATION calls.
#
#   scripts/load.sh media CALLS HOLD_S [RATE] [WINDOW_S]
# Media mode: CALLS concurrent calls (started at RATE a second, default 100), each held
# HOLD_S seconds with speech in both directions (SIPp streams PCMU speech in; the
# gateway plays a prompt longer than the call out) and stereo recording on. Once all
# are up, the gateway's CPU and memory are sampled over WINDOW_S seconds (default 10):
# it prints CPU per call-second, cores used, RSS per call, RSS once the calls ended,
# the kernel's UDP drops and the recordings' durations (a lost or late packet shortens
# nothing: the jitter buffer conceals it, so the drops are the loss figure).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = media ]; then
    exec scripts/load-media.sh "${@:2}"
fi
RATE=${1:?usage: scripts/load.sh RATE DURATION_S [HOLD_MS]}
DURATION=${2:?usage: scripts/load.sh RATE DURATION_S [HOLD_MS]}
HOLD=${3:-1000}
CALLS=$((RATE * DURATION))
PORT=${LOAD_PORT:-25060}
HTTP=$((PORT + 3))

command -v sipp >/dev/null || { echo "SIPp missing: apt-get install sip-tester" >&2; exit 1; }
# OMNIGATE_BIN: another build to measure (a before/after comparison), else this tree's.
if [ -n "${OMNIGATE_BIN:-}" ]; then BIN=$OMNIGATE_BIN; else cargo build --release --quiet; BIN=target/release/omnigate; fi
WORK=$(mktemp -d)
trap 'kill $GW 2>/dev/null && wait $GW 2>/dev/null; rm -rf "$WORK"' EXIT
cat > "$WORK/omnigate.toml" <<CFG
demo = true
[sip]
udp = "127.0.0.1:$PORT"
tcp = "off"
tls = "off"
ws = "off"
keepalive_interval = 0
CFG
# "off" is not an address: drop those lines (the flags below disable them).
sed -i '/= "off"/d' "$WORK/omnigate.toml"
cat >> "$WORK/omnigate.toml" <<CFG
tls_cert = "$WORK/cert.pem"
tls_key = "$WORK/cert.key"
[http]
listen = "127.0.0.1:$HTTP"
[rtp]
ports = "30000-60000"
[data]
dir = "$WORK/data"
[log]
level = "warn"
[calls]
answer_after_ms = 0
hangup_after_secs = 0
record = ${RECORD:-false}
[dialplan]
# IVR=true: calls run the demo flow (prompts, the SQLite interaction record per call);
# otherwise the built-in handler (answer, prompt, wait for BYE).
dir = "$PWD/dialplans"
default_flow = "$( [ "${IVR:-false}" = true ] && echo demo )"
CFG
RUST_LOG=warn $BIN serve --config "$WORK/omnigate.toml" --sip-tcp off --sip-tls off --sip-ws off > "$WORK/gw.log" 2>&1 &
GW=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null || { cat "$WORK/gw.log"; exit 1; }

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$GW/stat"; }
rcvbuf() { awk '/^Udp:/ { if (n++) print $6 }' /proc/net/snmp; } # RcvbufErrors (the 6th field)
cpu0=$(cpu); rb0=$(rcvbuf); t0=$(date +%s.%N)
set +e
sipp -sn uac -i 127.0.0.1 -mi 127.0.0.1 -p $((PORT + 10)) -r "$RATE" -rp 1000 -m "$CALLS" -d "$HOLD" \
    -buff_size 4194304 -nostdin -timeout $((DURATION + 60))s -timeout_error \
    -trace_stat -stf "$WORK/stat.csv" -fd 1 "127.0.0.1:$PORT" > "$WORK/sipp.out" 2>&1
rc=$?
set -e
t1=$(date +%s.%N); cpu1=$(cpu); rb1=$(rcvbuf)
peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")
last=$(tail -n 1 "$WORK/stat.csv"); head=$(head -n 1 "$WORK/stat.csv")
col() { echo "$head" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
val() { echo "$last" | cut -d';' -f"$(col "$1")"; }
ok=$(val 'SuccessfulCall(C)'); failed=$(val 'FailedCall(C)'); retrans=$(val 'Retransmissions(C)')
cpu_s=$(echo "($cpu1 - $cpu0) / $tck" | bc -l)
wall=$(echo "$t1 - $t0" | bc -l)
printf '\n| rate (calls/s) | calls | hold | successful | failed | SIPp retransmissions | gateway CPU s | CPU per call | peak RSS | UDP RcvbufErrors (machine-wide: SIPp never reads the RTP it is sent) | wall s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
printf '| %s | %s | %s ms | %s | %s | %s | %.2f | %.0f us | %.1f MB | %s | %.1f |\n' \
    "$RATE" "$CALLS" "$HOLD" "$ok" "$failed" "$retrans" "$cpu_s" "$(echo "$cpu_s * 1000000 / ($ok + $failed + 0.000001)" | bc -l)" \
    "$(echo "$peak_kb / 1024" | bc -l)" "$((rb1 - rb0))" "$wall"
[ "$rc" = 0 ] || { echo "SIPp exit $rc (some calls failed)"; tail -5 "$WORK/sipp.out"; }
exit "$rc"
