#!/usr/bin/env bash
# Measures the daemon's resident memory (VmRSS) with the real WhatsApp backend: idle
# with 0 sessions, then after creating N sessions (offline they fail to connect; their
# actors and records stay). Prints the per-session cost.
#
#   scripts/rss.sh [N]        (default 100; builds the release binary and example)
set -euo pipefail
count="${1:-100}"
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin wa-sessiond --example create_sessions
target="${CARGO_TARGET_DIR:-target}"
data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
"$target/release/wa-sessiond" --listen "127.0.0.1:$port" --data-dir "$data" --qr-timeout 10s \
  >"$data/daemon.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
# Ready when the port answers (bounded: 10 s).
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
sleep 1
idle=$(rss_kib)
"$target/release/examples/create_sessions" "http://127.0.0.1:$port" "$count"
sleep 2
loaded=$(rss_kib)
echo "VmRSS idle (0 sessions):      ${idle} KiB"
echo "VmRSS after ${count} sessions:     ${loaded} KiB"
echo "per session:                  $(( (loaded - idle) / count )) KiB"
