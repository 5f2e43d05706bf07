#!/usr/bin/env bash
# Runs the core's test suites under valgrind's memcheck and fails on any error or leak.
# Usage: scripts/valgrind.sh [test-target ...]   (default: the core's runtime suites)
# The scale, memory and stress suites are left out by default: their million-context and
# timing-bounded workloads take too long under valgrind's ~50x slowdown.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(context values after_func group faults model cancellable)
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install -y valgrind)"; exit 1; }

args=()
for t in "${targets[@]}"; do args+=(--test "$t"); done
mapfile -t binaries < <(cargo test -q -p tests "${args[@]}" --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])
')
status=0
for bin in "${binaries[@]}"; do
    name=$(basename "$bin")
    echo "=== valgrind memcheck: $name"
    # PROPTEST_CASES keeps the property test's run short under valgrind.
    if PROPTEST_CASES=64 valgrind --quiet --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        "$bin" --test-threads=1 -q >"/tmp/valgrind-$name.log" 2>&1; then
        echo "clean: $(grep -E '^test result' "/tmp/valgrind-$name.log" | tail -1)"
    else
        status=1
        echo "FAILED (log: /tmp/valgrind-$name.log)"
        tail -30 "/tmp/valgrind-$name.log"
    fi
done
exit $status
