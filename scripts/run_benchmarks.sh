#!/usr/bin/env bash
# Runs the whole comparison of issue 5 in one sitting on this machine and writes its raw results
# to docs/bench/ (JSON lines), then redraws docs/scaling.svg and prints the tables that go into
# BENCHMARKS.md:
#
#   scripts/run_benchmarks.sh            # waits (up to 20 min) for a 1-minute load below 1.5
#   MAX_LOAD=9 scripts/run_benchmarks.sh # runs whatever the load
#
# The Go baseline needs `go` (Debian: apt-get install -y golang-go); GO_BENCH overrides where its
# run.sh is (by default shared/ beside the repository, as on the project's machines).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/docs/bench"
GO_BENCH="${GO_BENCH:-$ROOT/../shared/anchors/go-bench/run.sh}"
MAX_LOAD="${MAX_LOAD:-1.5}"
mkdir -p "$OUT"

load() { cut -d' ' -f1 /proc/loadavg; }
wait_for_quiet() {
  local tries=0
  while awk -v l="$(load)" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; do
    if [ "$tries" -ge 40 ]; then
      echo "run_benchmarks: load still $(load) after 20 min; running anyway" >&2
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

step() {
  wait_for_quiet
  echo "$1: load before $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
}

step "go"
bash "$GO_BENCH" > "$OUT/go.jsonl"
step "ours"
cargo bench -p ctx-core --bench compare -- --json > "$OUT/ours.jsonl"
step "scaling"
cargo bench -p ctx-core --bench compare -- --scaling --json > "$OUT/scaling.jsonl"
echo "end: load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

python3 scripts/plot_scaling.py "$OUT/scaling.jsonl" --go "$OUT/go.jsonl" -o docs/scaling.svg \
  --subtitle "$(sed -n 's/^cpu: //p' "$OUT/machine.txt"), $(nproc) cores; $(sed -n 's/^date: //p' "$OUT/machine.txt")"
cat "$OUT/machine.txt"
python3 scripts/bench_table.py "$OUT/ours.jsonl" "$OUT/go.jsonl"
