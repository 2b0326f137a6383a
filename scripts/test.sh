#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine, installing the real peers the
# tests drive (SIPp from Debian's sip-tester package, baresip, linphonec (a SIP video
# phone that takes video added to an audio call), Kamailio as a
# record-routing proxy, espeak-ng for the IVR's (and sox, with it, for
# scripts/make-prompts.sh)
# `say`, PostgreSQL for the store's second database, Chromium + Node.js + playwright-core
# for the agent desktop in a real browser, Dovecot as the IMAP server and LMTP
# delivery, aiosmtpd as the SMTP server replies go through) when they are missing. The tests
# start their own PostgreSQL server (as `nobody` when run as root); nothing is left
# running.
# A peer that cannot be installed makes this script fail loudly; tests never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v baresip >/dev/null 2>&1 || missing+=(baresip-core)
# baresip's H.264 (avcodec) for the video tests.
[ -f /usr/lib/baresip/modules/avcodec.so ] || missing+=(baresip-ffmpeg)
command -v linphonec >/dev/null 2>&1 || missing+=(linphone-cli)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
[ -x /usr/sbin/kamailio ] || missing+=(kamailio)
have_postgres() {
    command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
have_postgres || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing test peers: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v sipp >/dev/null 2>&1 || { echo "SIPp is still missing after install" >&2; exit 1; }
command -v baresip >/dev/null 2>&1 || { echo "baresip is still missing after install" >&2; exit 1; }
[ -f /usr/lib/baresip/modules/avcodec.so ] || { echo "baresip's avcodec module (baresip-ffmpeg) is still missing after install" >&2; exit 1; }
command -v linphonec >/dev/null 2>&1 || { echo "linphonec (linphone-cli) is still missing after install" >&2; exit 1; }
command -v espeak-ng >/dev/null 2>&1 || { echo "espeak-ng is still missing after install" >&2; exit 1; }
command -v sox >/dev/null 2>&1 || { echo "sox is still missing after install" >&2; exit 1; }
[ -x /usr/sbin/kamailio ] || { echo "Kamailio is still missing after install" >&2; exit 1; }
have_postgres || { echo "PostgreSQL (initdb) is still missing after install" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "Chromium is still missing after install" >&2; exit 1; }
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/lmtp ] || { echo "Dovecot (imapd, lmtpd) is still missing after install" >&2; exit 1; }
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || { echo "aiosmtpd (python3-aiosmtpd) is still missing after install" >&2; exit 1; }
# playwright-core drives the system Chromium (it never downloads a browser); JsSIP is
# the WebRTC SIP client the SIP-over-WebSocket test runs in it, bundled for the page by
# esbuild. All pinned in tests/browser/package-lock.json.
browser_deps=(playwright-core jssip esbuild)
need_npm=0
for d in "${browser_deps[@]}"; do [ -d "tests/browser/node_modules/$d" ] || need_npm=1; done
if [ "$need_npm" = 1 ]; then
    echo "==> installing ${browser_deps[*]} (tests/browser)"
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
for d in "${browser_deps[@]}"; do
    [ -d "tests/browser/node_modules/$d" ] || { echo "$d is still missing (tests/browser)" >&2; exit 1; }
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "==> doc tests"
cargo test --doc --locked 2>&1 | tee -a "$log"
echo "==> cargo test (unit, property, integration with real SIPp, bench smoke runs)"
cargo test --all-targets --locked 2>&1 | tee -a "$log"
# One closing line for the whole suite (pipefail has already stopped us on a failure).
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "omnigate: $passed passed, $failed failed"
[ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]
