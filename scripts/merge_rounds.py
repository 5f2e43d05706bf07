#!/usr/bin/env python3
"""Merge several runs of the same benchmark (JSON lines) into one: for every case (name and
impl), the line of the run whose ns_per_op is the median, with the spread across runs added to
its `extra` (rounds, ns_per_op_rounds_min, ns_per_op_rounds_max). Used by run_benchmarks.sh,
which interleaves Go's runs with ours so both see the same load on a shared machine.

    python3 scripts/merge_rounds.py merged.jsonl run1.jsonl run2.jsonl run3.jsonl
"""

import json
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, inputs = sys.argv[1], sys.argv[2:]
    order, runs = [], {}
    for path in inputs:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                key = (r["name"], r.get("impl", "go"))
                if key not in runs:
                    order.append(key)
                runs.setdefault(key, []).append(r)
    with open(out, "w") as f:
        for key in order:
            rs = sorted(runs[key], key=lambda r: r["ns_per_op"])
            chosen = dict(rs[(len(rs) - 1) // 2])
            extra = dict(chosen.get("extra") or {})
            extra["rounds"] = len(rs)
            extra["ns_per_op_rounds_min"] = rs[0]["ns_per_op"]
            extra["ns_per_op_rounds_max"] = rs[-1]["ns_per_op"]
            chosen["extra"] = extra
            f.write(json.dumps(chosen, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
