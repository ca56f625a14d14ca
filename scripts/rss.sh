#!/usr/bin/env bash
# Measures the daemon's resident memory (VmRSS) with the real WhatsApp backend: idle
# with 0 sessions, then after creating N sessions (offline they fail to connect; their
# actors and records stay), then N more. Prints the per-session cost. The first batch
# also pays for the allocator arenas of the threads the burst of store opens spawned
# (try MALLOC_ARENA_MAX=2 to see that part shrink).
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
threads() { ls "/proc/$pid/task" | wc -l; }
# Ready when the port answers (bounded: 10 s).
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
sleep 1
idle=$(rss_kib)
idle_threads=$(threads)
"$target/release/examples/create_sessions" "http://127.0.0.1:$port" "$count" first
sleep 1
burst=$(rss_kib)
burst_threads=$(threads)
# tokio's blocking pool (SQLite opens) grew during the burst; its idle threads exit
# after 10 s. Wait for that (bounded: 30 s).
for _ in $(seq 60); do
  [ "$(threads)" -le $((idle_threads + 4)) ] && break
  sleep 0.5
done
settled=$(rss_kib)
settled_threads=$(threads)
# A second batch on the warmed-up process: the marginal cost of a session.
"$target/release/examples/create_sessions" "http://127.0.0.1:$port" "$count" second
sleep 1
second=$(rss_kib)
echo "VmRSS idle, 0 sessions:                 ${idle} KiB (${idle_threads} threads)"
echo "VmRSS right after ${count} sessions:        ${burst} KiB (${burst_threads} threads)"
echo "VmRSS ${count} sessions, settled:           ${settled} KiB (${settled_threads} threads)"
echo "VmRSS after $((2 * count)) sessions:             ${second} KiB"
echo "per session, first ${count} (settled):      $(( (settled - idle) / count )) KiB"
echo "per session, next ${count} (marginal):      $(( (second - settled) / count )) KiB"
