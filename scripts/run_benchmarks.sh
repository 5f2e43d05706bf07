#!/usr/bin/env bash
# Runs the whole comparison with Go in one sitting on this machine and writes its raw results
# to docs/bench/ (JSON lines), then redraws docs/scaling.svg and prints the tables that go into
# BENCHMARKS.md. The Go baseline and ours run in turns, ROUNDS times each (Go, ours, Go, ours,
# ...), and each case's median round is kept: on a shared machine whose load comes and goes, both
# sides then see the same conditions, which one run of each cannot promise.
#
#   scripts/run_benchmarks.sh              # 3 rounds, each step once the 1-minute load is < 1.5
#                                          # (or after MAX_WAIT_MIN=10 minutes of waiting)
#   ROUNDS=1 MAX_LOAD=9 scripts/run_benchmarks.sh   # one quick round, whatever the load
#   OUT=docs/bench/x SCALING=0 scripts/run_benchmarks.sh   # elsewhere, without the scaling run
#
# The Go baseline (bench/go) needs `go` >= 1.19 (Debian: apt-get install -y golang-go); GO_BENCH
# overrides the script that runs it (by default bench/go/run.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/docs/bench}"
SCALING="${SCALING:-1}"
GO_BENCH="${GO_BENCH:-$ROOT/bench/go/run.sh}"
MAX_LOAD="${MAX_LOAD:-1.5}"
ROUNDS="${ROUNDS:-3}"
MAX_WAIT_MIN="${MAX_WAIT_MIN:-10}"
mkdir -p "$OUT"

load() { cut -d' ' -f1 /proc/loadavg; }
wait_for_quiet() {
  local tries=0
  while awk -v l="$(load)" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; do
    if [ "$tries" -ge "$((MAX_WAIT_MIN * 2))" ]; then
      echo "run_benchmarks: load still $(load) after $MAX_WAIT_MIN min; running anyway" >&2
      return
    fi
    echo "run_benchmarks: load $(load) > $MAX_LOAD, waiting 30 s" >&2
    sleep 30
    tries=$((tries + 1))
  done
}

# Build first, so that compiling does not load the machine during a measurement.
cargo bench -p ctx-core --bench compare --no-run

{
  echo "date: $(date -u +%FT%TZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "rustc: $(rustc --version)"
  echo "go: $(go version)"
  echo "tokio-util: $(awk '/name = "tokio-util"/ {getline; print $3}' Cargo.lock | tr -d '"')"
} > "$OUT/machine.txt"

# step NAME OUTPUT COMMAND...: runs COMMAND once the machine is quiet, into OUTPUT, and records
# the load averages (1, 5, 15 min) before and after.
step() {
  local name=$1 output=$2
  shift 2
  wait_for_quiet
  local before
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  "$@" > "$output"
  echo "$name: load before $before, after $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  step "go, round $round" "$OUT/go.$round.jsonl" bash "$GO_BENCH"
  step "ours, round $round" "$OUT/ours.$round.jsonl" \
    cargo bench -p ctx-core --bench compare -- --json
done
python3 scripts/merge_rounds.py "$OUT/go.jsonl" "$OUT"/go.[0-9]*.jsonl
python3 scripts/merge_rounds.py "$OUT/ours.jsonl" "$OUT"/ours.[0-9]*.jsonl
if [ "$SCALING" = 1 ]; then
  step "scaling" "$OUT/scaling.jsonl" cargo bench -p ctx-core --bench compare -- --scaling --json
  python3 scripts/plot_scaling.py "$OUT/scaling.jsonl" --go "$OUT/go.jsonl" -o docs/scaling.svg \
    --subtitle "$(sed -n 's/^cpu: //p' "$OUT/machine.txt"), $(nproc) cores; $(sed -n 's/^date: //p' "$OUT/machine.txt")"
fi
cat "$OUT/machine.txt"
python3 scripts/bench_table.py "$OUT/ours.jsonl" "$OUT/go.jsonl"
