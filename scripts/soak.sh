#!/usr/bin/env bash
# Soak test of the album demo server on 127.0.0.1: wrk on /albums and /albums/{id} for a set
# time while slow clients (scripts/soak_slow_clients.py) ask for /albums/slow and hang up at
# random moments. Then it checks, and fails (exit 1, with a message) unless:
#
# - the server's resident memory (VmRSS) at the end is at most 10 % above its value after the
#   warm-up;
# - wrk saw no socket error (connect, read, write, timeout) and no non-2xx answer;
# - the server logged exactly one `request ended early ... cause="client disconnected"` event
#   on /albums/slow for each request a slow client abandoned, and no warning or error;
# - nothing is left running in the database: the audit trail (/audit) has one row per slow
#   request, with the outcome the client saw (`client disconnected` for each abandoned one,
#   `answered` for the others; a row is written only once its request's query has let go of
#   its connection, within 1 s: SQLite, embedded, is invisible from outside); on PostgreSQL,
#   pg_stat_activity shows no busy backend of the database (and showed some during the run,
#   so the check can see the demo's queries);
# - /albums and /albums/1..5 answer the seed.
#
# Usage: scripts/soak.sh [SECONDS]              (or SOAK_SECONDS; default 60)
#   SOAK_WARMUP       warm-up before the measured part, s (default SECONDS/6, 10 to 60)
#   SOAK_CONNECTIONS  wrk's connections (default 8, one thread)
#   SOAK_SLOW_CLIENTS concurrent slow clients (default 3: fewer than the demo's 8 connections)
#   DATABASE_URL      postgres://...: the demo runs over PostgreSQL (psql needed); unset or
#                     empty: SQLite
#   PORT              the demo's port (default: the first free one from 18180)
#   SOAK_BIN          run this album_server binary instead of building the demo (release)
# Needs wrk (installed with apt-get if missing and run as root) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${SOAK_SECONDS:-60}}
warmup=${SOAK_WARMUP:-$((seconds / 6 < 10 ? 10 : (seconds / 6 > 60 ? 60 : seconds / 6)))}
conns=${SOAK_CONNECTIONS:-8}
slow_clients=${SOAK_SLOW_CLIENTS:-3}
db_url=${DATABASE_URL:-}

fail() {
    echo "soak: FAILED: $*" >&2
    exit 1
}

if ! command -v wrk >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "wrk is not installed and only root can install it: apt-get install wrk"
    apt-cache show wrk >/dev/null 2>&1 || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
command -v python3 >/dev/null || fail "python3 is needed for the slow clients"
if [ -n "$db_url" ]; then
    psql_bin=$(command -v psql || echo "${CTX_PG_BIN:-/nonexistent}/psql")
    [ -x "$psql_bin" ] || fail "DATABASE_URL is set but psql is not found"
fi

if [ -n "${SOAK_BIN:-}" ]; then
    bin=$SOAK_BIN
else
    cargo build -q --release -p ctx-examples --example album_server
    bin="${CARGO_TARGET_DIR:-target}/release/examples/album_server"
fi
[ -x "$bin" ] || fail "no album_server binary at $bin"

dir=$(mktemp -d /tmp/ctx-soak.XXXXXX)
log="$dir/server.log"
server=""
clients=""
sampler=""
cleanup() {
    local status=$?
    for pid in $sampler $clients $server; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$status" != 0 ] && [ -f "$log" ]; then
        echo "soak: the server's log ends with:" >&2
        tail -5 "$log" >&2
        echo "soak: the server's log and wrk's and the clients' outputs are kept in $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT

if [ -z "${PORT:-}" ]; then
    PORT=18180
    while (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
        PORT=$((PORT + 1))
    done
fi
base="http://127.0.0.1:$PORT"

: >"$log"
PORT=$PORT DATABASE_URL=$db_url RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$bin" 2>"$log" &
server=$!
for _ in $(seq 300); do
    grep -q "albums on http://" "$log" && break
    kill -0 "$server" 2>/dev/null || fail "the server exited at start-up"
    sleep 0.1
done
grep -q "albums on http://" "$log" || fail "the server did not start within 30 s"
database=$([ -n "$db_url" ] && echo PostgreSQL || echo SQLite)
echo "soak: $database, $warmup s warm-up + $seconds s, wrk -t1 -c$conns, $slow_clients slow clients, $base"

# The answers, checked against the seed before and after.
check_answers() {
    python3 - "$base" <<'EOF'
import json, sys, urllib.request
sys.path.insert(0, "scripts")
from soak_slow_clients import SEED
base = sys.argv[1]
def get(path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)
got = get("/albums")
if got != SEED:
    sys.exit(f"/albums answers {got}, not the seed")
for album in SEED:
    got = get(f"/albums/{album['id']}")
    if got != album:
        sys.exit(f"/albums/{album['id']} answers {got}, not {album}")
EOF
}
check_answers || fail "wrong answers before the load"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }
# Non-idle backends of the database but this one (a query running, or a transaction open).
pg_busy() {
    "$psql_bin" "$db_url" -qAt -c "SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend' AND state <> 'idle'"
}

cat >"$dir/paths.lua" <<'EOF'
local paths = {"/albums", "/albums/1", "/albums/2", "/albums/3", "/albums/4", "/albums/5"}
request = function()
    return wrk.format("GET", paths[math.random(#paths)])
end
EOF
run_wrk() {
    wrk -t1 -c"$conns" -d"$1s" --timeout 5s -s "$dir/paths.lua" "$base" >"$dir/wrk-$2.txt" || fail "wrk failed: $(cat "$dir/wrk-$2.txt")"
}

python3 scripts/soak_slow_clients.py "$PORT" "$((warmup + seconds))" "$slow_clients" "$dir/clients.json" &
clients=$!
run_wrk "$warmup" warmup
rss_start=$(rss_kb)
# Every 2 s: the largest RSS, and (PostgreSQL) the most backends seen busy.
(
    while sleep 2; do
        echo "rss $(rss_kb)"
        [ -n "$db_url" ] && echo "pg $(pg_busy)"
    done
) >"$dir/samples.txt" 2>/dev/null &
sampler=$!
run_wrk "$seconds" main
rss_end=$(rss_kb)
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""
wait "$clients" || fail "the slow clients failed"
clients=""
rss_max=$(awk '$1 == "rss" && $2 > m {m = $2} END {print m + 0}' "$dir/samples.txt")

failures=()
# 1. Memory.
rss_limit=$((rss_start * 110 / 100))
[ "$rss_end" -le "$rss_limit" ] ||
    failures+=("RSS grew from $rss_start kB to $rss_end kB (limit +10 %: $rss_limit kB)")

# 2. wrk's errors, both runs.
requests=0 errors=0
for run in warmup main; do
    out="$dir/wrk-$run.txt"
    n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")
    requests=$((requests + n))
    if grep -q "Socket errors" "$out"; then
        failures+=("wrk ($run): $(grep 'Socket errors' "$out" | sed 's/^ *//')")
        errors=$((errors + $(grep 'Socket errors' "$out" | grep -o '[0-9]\+' | awk '{s += $1} END {print s}')))
    fi
    if grep -q "Non-2xx" "$out"; then
        failures+=("wrk ($run): $(grep 'Non-2xx' "$out" | sed 's/^ *//')")
        errors=$((errors + $(grep 'Non-2xx' "$out" | grep -o '[0-9]\+$')))
    fi
done

# 3. The slow clients' own findings, and the events.
read -r sent abandoned completed client_errors <<<"$(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
print(c["sent"], c["abandoned"], c["completed"], c["error_count"])
' "$dir/clients.json")"
errors=$((errors + client_errors))
[ "$client_errors" = 0 ] || failures+=("slow clients: $client_errors errors, first: $(python3 -c '
import json, sys; print(json.load(open(sys.argv[1]))["errors"][:3])' "$dir/clients.json")")
[ "$abandoned" -gt 0 ] || failures+=("no request was abandoned: the event check proves nothing")
# Events of requests on other paths (wrk's connections open when its runs end) are counted
# apart: at most one per connection and run.
# (Counted in files, not pipes: a `grep -m1` that leaves a pipe early kills its writer with
# SIGPIPE, which `set -o pipefail` turns into the script's exit.)
sed 's/\x1b\[[0-9;]*m//g' "$log" >"$dir/clean.log"
grep 'request ended early' "$dir/clean.log" | grep 'cause="client disconnected"' >"$dir/disconnected.log" || true
events=$(grep -c '' "$dir/disconnected.log" || true)
slow_events=$(grep -c 'path=/albums/slow' "$dir/disconnected.log" || true)
other_events=$((events - slow_events))
[ "$slow_events" = "$abandoned" ] ||
    failures+=("$slow_events \"client disconnected\" events on /albums/slow for $abandoned abandoned requests")
[ "$other_events" -le $((2 * conns)) ] ||
    failures+=("$other_events \"client disconnected\" events on wrk's paths: more than its $((2 * conns)) connections")
warnings=$(grep -cE '^\S+ +(WARN|ERROR)' "$dir/clean.log" || true)
[ "$warnings" = 0 ] ||
    failures+=("$warnings warnings or errors in the log, first: $(grep -m1 -E '^\S+ +(WARN|ERROR)' "$dir/clean.log")")

# 4. Nothing left running in the database.
settle() { # settle N COMMAND...: waits up to N tenths of a second for COMMAND to succeed
    local i n=$1
    shift
    for i in $(seq "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
# First (while a query that the hang-ups did not stop would still run): PostgreSQL's view.
pg_left=""
if [ -n "$db_url" ]; then
    busy_max=$(awk '$1 == "pg" && $2 > m {m = $2} END {print m + 0}' "$dir/samples.txt")
    [ "$busy_max" -gt 0 ] ||
        failures+=("pg_stat_activity never showed a busy backend during the run: the check cannot see the demo's queries")
    pg_idle() { [ "$(pg_busy)" = 0 ]; }
    settle 20 pg_idle || failures+=("$(pg_busy) backends still busy in pg_stat_activity 2 s after the load")
    pg_left="; pg_stat_activity: $(pg_busy) busy (up to $busy_max during the run)"
fi

# The audit trail (both databases): a row is written once its request's handler has ended
# and its query has let go of its connection, under 1 s of its own.
audit_counts() {
    python3 - "$base" <<'EOF'
import collections, json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/audit", timeout=10) as r:
    rows = json.load(r)
c = collections.Counter(row["outcome"] for row in rows if row["what"].startswith("GET /albums/slow"))
others = sum(n for k, n in c.items() if k not in ("answered", "client disconnected"))
print(sum(c.values()), c["client disconnected"], c["answered"], others)
EOF
}
audit_complete() {
    read -r rows disconnected answered others <<<"$(audit_counts)"
    [ "$rows" -ge "$sent" ]
}
settle 150 audit_complete || true
read -r rows disconnected answered others <<<"$(audit_counts)"
if [ "$rows" != "$sent" ] || [ "$disconnected" != "$abandoned" ] ||
    [ "$answered" != "$completed" ] || [ "$others" != 0 ]; then
    failures+=("audit trail: $rows rows ($disconnected client disconnected, $answered answered, $others other) for $sent slow requests ($abandoned abandoned, $completed completed)")
fi
left_running="audit: $rows rows for $sent slow requests$pg_left"

# 5. The answers.
check_answers || failures+=("wrong answers after the load")

# The server stops cleanly on SIGTERM (nothing is in flight).
kill -TERM "$server"
stopped=0
for _ in $(seq 150); do
    kill -0 "$server" 2>/dev/null || { stopped=1; break; }
    sleep 0.1
done
if [ "$stopped" = 1 ]; then
    wait "$server" || failures+=("the server exited with status $? on SIGTERM")
else
    failures+=("the server did not exit within 15 s of SIGTERM")
fi
server=""

echo "soak: requests served: $requests by wrk + $completed slow; abandoned: $abandoned (of $sent slow requests)"
echo "soak: events: $slow_events client disconnected on /albums/slow, $other_events on wrk's paths"
echo "soak: RSS: $rss_start kB after warm-up, $rss_end kB at the end (max sampled $rss_max kB)"
echo "soak: errors: $errors; $left_running"
sed -n 's/^Requests\/sec: */soak: wrk req\/s (main run): /p' "$dir/wrk-main.txt"
if [ "${#failures[@]}" -gt 0 ]; then
    for f in "${failures[@]}"; do
        echo "soak: FAILED: $f" >&2
    done
    exit 1
fi
echo "soak: passed"
