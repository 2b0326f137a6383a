#!/usr/bin/env bash
# scripts/load.sh media CALLS HOLD_S [RATE] [WINDOW_S] (see scripts/load.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
USAGE="usage: scripts/load.sh media CALLS HOLD_S [RATE] [WINDOW_S]"
CALLS=${1:?$USAGE}
HOLD=${2:?$USAGE}
RATE=${3:-100}
WINDOW=${4:-10}
RAMP=$(( (CALLS + RATE - 1) / RATE ))
[ "$HOLD" -ge $((RAMP + WINDOW + 5)) ] || { echo "HOLD_S must be at least the ramp ($RAMP s) + WINDOW_S ($WINDOW s) + 5" >&2; exit 1; }
PORT=${LOAD_PORT:-25060}
HTTP=$((PORT + 3))

command -v sipp >/dev/null || { echo "SIPp missing: apt-get install sip-tester" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox missing: apt-get install sox" >&2; exit 1; }
# OMNIGATE_BIN: another build to measure (a before/after comparison), else this tree's.
if [ -n "${OMNIGATE_BIN:-}" ]; then BIN=$OMNIGATE_BIN; else cargo build --release --quiet; BIN=$PWD/target/release/omnigate; fi
WORK=$(mktemp -d)
GW=""; SIPP=""
trap 'kill $GW 2>/dev/null && wait $GW 2>/dev/null; kill $SIPP 2>/dev/null; rm -rf "$WORK"' EXIT
# Speech in (SIPp's rtp_stream takes 8 kHz µ-law WAV) and a prompt out longer than a call.
sox dialplans/prompts/welcome.wav dialplans/prompts/main-menu.wav dialplans/prompts/please-hold.wav \
    -r 8000 -c 1 -e u-law "$WORK/speech-ulaw.wav"
sox dialplans/prompts/welcome.wav -r 8000 -c 1 -b 16 "$WORK/long.wav" repeat $((HOLD / 2 + 10))
cat > "$WORK/omnigate.toml" <<CFG
demo = true
[sip]
udp = "127.0.0.1:$PORT"
keepalive_interval = 0
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
record = true
welcome_prompt = "$WORK/long.wav"
[dialplan]
dir = "$PWD/dialplans"
default_flow = ""
CFG
RUST_LOG=warn $BIN serve --config "$WORK/omnigate.toml" --sip-tcp off --sip-tls off --sip-ws off > "$WORK/gw.log" 2>&1 &
GW=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null || { cat "$WORK/gw.log"; exit 1; }

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$GW/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$GW/status"; }
live() { curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '$1 == "omnigate_calls" {print $2}'; }
# The kernel's drops on the gateway's RTP sockets (the last column of /proc/net/udp,
# for local ports in its range; SIPp never reads the RTP it is sent, so the machine's
# totals count its drops too), read while the calls are up.
gw_drops() {
    python3 -c 'import sys
print(sum(int(l.split()[-1]) for l in open("/proc/net/udp").readlines()[1:] if 30000 <= int(l.split()[1].split(":")[1], 16) <= 60000))'
}
snd() { awk '/^Udp:/ { if (n++) print $7 }' /proc/net/snmp; } # SndbufErrors
sleep 1
rss_base=$(rss); snd0=$(snd)
(cd "$WORK" && exec sipp -sf "$OLDPWD/scripts/load-media.xml" -s 100 -i 127.0.0.1 -mi 127.0.0.1 \
    -p $((PORT + 10)) -mp 20000 -r "$RATE" -m "$CALLS" -l "$CALLS" -d $((HOLD * 1000)) \
    -buff_size 4194304 -nostdin -timeout $((RAMP + HOLD + 60))s -timeout_error \
    -trace_stat -stf "$WORK/stat.csv" -fd 1 "127.0.0.1:$PORT" > "$WORK/sipp.out" 2>&1) &
SIPP=$!
# All calls up (an event: the gateway's live-call gauge), then the window.
up=0
for _ in $(seq $(( (RAMP + 20) * 10 ))); do
    up=$(live || echo 0); [ "${up:-0}" -ge "$CALLS" ] && break; sleep 0.1
done
[ "${up:-0}" -ge "$CALLS" ] || { echo "only ${up:-0} of $CALLS calls came up" >&2; tail -20 "$WORK/sipp.out" >&2; exit 1; }
sleep 1
cpu0=$(cpu); t0=$(date +%s.%N)
sleep "$WINDOW"
cpu1=$(cpu); t1=$(date +%s.%N); rss_up=$(rss); up1=$(live); drops=$(gw_drops)
set +e
wait $SIPP
rc=$?
set -e
for _ in $(seq 100); do [ "$(live)" = 0 ] && break; sleep 0.1; done
sleep 2
rss_after=$(rss); snd1=$(snd)
last=$(tail -n 1 "$WORK/stat.csv"); head=$(head -n 1 "$WORK/stat.csv")
col() { echo "$head" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
val() { echo "$last" | cut -d';' -f"$(col "$1")"; }
ok=$(val 'SuccessfulCall(C)'); failed=$(val 'FailedCall(C)')
wall=$(echo "$t1 - $t0" | bc -l)
cpu_s=$(echo "($cpu1 - $cpu0) / $tck" | bc -l)
# The recordings: how many, and their durations (a WAV's data size over its rate).
read -r nrec min_s mean_s < <(python3 - "$WORK/data/recordings" <<'PY'
import os, struct, sys
d = sys.argv[1]
durs = []
for f in os.listdir(d) if os.path.isdir(d) else []:
    b = open(os.path.join(d, f), "rb").read()
    if b[:4] != b"RIFF":
        continue
    i, rate, ch, bits = 12, 8000, 1, 16
    while i + 8 <= len(b):
        cid, size = b[i:i + 4], struct.unpack("<I", b[i + 4:i + 8])[0]
        if cid == b"fmt ":
            ch, rate = struct.unpack("<HI", b[i + 10:i + 16])
            bits = struct.unpack("<H", b[i + 22:i + 24])[0]
        if cid == b"data":
            durs.append(size / (rate * ch * bits / 8))
            break
        i += 8 + size + (size & 1)
print(len(durs), f"{min(durs):.2f}" if durs else 0, f"{sum(durs) / len(durs):.2f}" if durs else 0)
PY
)
printf '\n| calls | hold | successful | failed | CPU per call-second | cores | RSS per call | RSS after | gateway UDP drops (send errors) | recordings (min / mean s) | window s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
printf '| %s | %s s | %s | %s | %.0f µs | %.2f | %.1f KB | %.1f MB (base %.1f) | %s (%s) | %s (%s / %s) | %.1f |\n' \
    "$up1" "$HOLD" "$ok" "$failed" \
    "$(echo "$cpu_s * 1000000 / ($up1 * $wall)" | bc -l)" "$(echo "$cpu_s / $wall" | bc -l)" \
    "$(echo "($rss_up - $rss_base) / $up1" | bc -l)" "$(echo "$rss_after / 1024" | bc -l)" "$(echo "$rss_base / 1024" | bc -l)" \
    "$drops" "$((snd1 - snd0))" "$nrec" "$min_s" "$mean_s" "$wall"
[ "$rc" = 0 ] || { echo "SIPp exited $rc" >&2; tail -20 "$WORK/sipp.out" >&2; exit "$rc"; }
