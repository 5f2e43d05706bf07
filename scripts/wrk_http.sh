#!/usr/bin/env bash
# Server CPU time per request on a real socket: wrk against a current-thread axum server,
# plain (`axum`) vs tower-http's TimeoutLayer vs ctx's ContextLayer (the routers of ctx-http's
# `compare` bench), interleaved round by round. The server's user + system time comes from
# /proc/PID/stat around each wrk run, so the client's own CPU does not count.
#
# Usage: scripts/wrk_http.sh [ROUNDS] [SECONDS] [CONNECTIONS]   (defaults: 3 5 32)
# Needs wrk (apt-get install -y wrk). With taskset, the server runs on CPU 0 and wrk on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-5}
conns=${3:-32}
port=${PORT:-18090}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)"; exit 1; }
cargo build -q --profile bench -p ctx-http --features axum --example wrk_server
server="${CARGO_TARGET_DIR:-target}/release/examples/wrk_server"
on_server=() on_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    on_server=(taskset -c 0) on_client=(taskset -c 1)
fi
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '%-6s %-20s %12s %14s %16s\n' round impl requests "req/s" "server µs/req"
for round in $(seq "$rounds"); do
    for imp in axum tower-http-timeout ctx; do
        fifo=$(mktemp -u)
        mkfifo "$fifo"
        "${on_server[@]}" "$server" "$imp" "$port" >"$fifo" &
        pid=$!
        read -r _ <"$fifo"  # "listening"
        rm -f "$fifo"
        # Warm up (connections, allocator), then measure.
        "${on_client[@]}" wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/" >/dev/null
        before=$(cpu_ticks "$pid")
        out=$("${on_client[@]}" wrk -t1 -c"$conns" -d"${seconds}s" "http://127.0.0.1:$port/")
        after=$(cpu_ticks "$pid")
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
        python3 -c "print(f'{$round:<6} {\"$imp\":<20} {$requests:>12} {$rps:>14.0f} {($after - $before) / $tck * 1e6 / $requests:>16.2f}')"
    done
done
