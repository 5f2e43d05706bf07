#!/usr/bin/env bash
# Instructions per op of the micro cases, counted by callgrind (deterministic, unlike the timed
# benchmark on a shared machine). Usage: scripts/instructions.sh [CASE ...]
# Each case runs 10,000 and 20,000 times; the difference of the two totals / 10,000 is one op.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(cancellable_call_ready cancellable_call_ready_cancelable_parent \
    tokio_timeout_ready run_ready err_check_live value_lookup_depth_10_miss with_cancel_cancel \
    with_timeout_cancel with_cancel_from_cancelable_parent cancel_tree_depth_10 \
    with_value_chain_depth_10 tokio_util_cancel tokio_util_child_cancel tokio_util_tree_depth_10)
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install -y valgrind)"; exit 1; }
bin=$(cargo bench -q -p ctx-core --bench instructions --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "instructions":
        print(msg["executable"])
')
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for case in "${cases[@]}"; do
    a=$(total "$case" 10000)
    b=$(total "$case" 20000)
    python3 -c "print(f'{\"$case\":<42} {($b - $a) / 10000:8.1f} instructions/op')"
done
