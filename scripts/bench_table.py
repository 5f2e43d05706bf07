#!/usr/bin/env python3
"""Join the comparison benchmark's JSON lines with the Go baseline's, by case name, and print
the Markdown tables of BENCHMARKS.md: every case side by side, and every goal of the comparison
with its ratio and whether it is met. Python 3 standard library only.

    cargo bench -p ctx-core --bench compare -- --json > ours.jsonl
    bench/go/run.sh > go.jsonl
    python3 scripts/bench_table.py ours.jsonl go.jsonl
"""

import json
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt_ns(v):
    if v is None:
        return "–"
    if v >= 1e9:
        return f"{v / 1e9:.2f} s"
    if v >= 1e6:
        return f"{v / 1e6:.1f} ms"
    if v >= 1e4:
        return f"{v / 1e3:.1f} µs"
    if v >= 100:
        return f"{v:.0f} ns"
    return f"{v:.2f} ns"


def fmt_num(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.1f} M"
    if v >= 1e4:
        return f"{v / 1e3:.1f} k"
    return f"{v:.0f}" if v == int(v) else f"{v:.2f}"


# (case, what is compared, limit): ratio = ctx / peer unless the peer is "ns" (an absolute bound).
GOALS = [
    ("with_cancel_cancel", "go", 0.5),
    ("with_cancel_cancel", "tokio-util", 0.8),
    ("with_cancel_from_cancelable_parent", "go", 0.5),
    ("with_cancel_from_cancelable_parent", "tokio-util", 0.8),
    ("with_timeout_cancel", "go", 0.25),
    ("err_check_live", "ns", 2.0),
    ("done_select_nonblocking", "ns", 2.0),
    ("cancel_tree_depth_1", "go", 0.33),
    ("cancel_tree_depth_10", "go", 0.33),
    ("cancel_tree_depth_100", "go", 0.33),
    ("cancel_tree_depth_1000", "go", 0.33),
    ("chain_1m_create_cancel", "go", 0.33),
    ("chain_1m_create_cancel", "bytes_per_live_ctx", 96.0),
    ("fanout_100k_cancel", "go", 0.5),
    ("cancel_wake_latency", "go", 1.0),
    ("common_parent_parallel", "go", 0.5),
    ("value_lookup_depth_10_miss", "go", 0.5),
    ("value_lookup_depth_100_miss", "go", 0.5),
    ("cancellable_call_ready", "tokio", 1.2),
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ours = read(sys.argv[1])
    go = {r["name"]: r for r in read(sys.argv[2])}
    by = {}
    order = []
    for r in ours:
        if r["name"] not in by:
            order.append(r["name"])
        by.setdefault(r["name"], {})[r["impl"]] = r

    def ns(name, imp):
        r = go.get(name) if imp == "go" else by.get(name, {}).get(imp)
        return r["ns_per_op"] if r else None

    print("| case | ctx | ctx B/op | ctx allocs/op | tokio-util | tokio | Go | Go B/op | Go allocs/op |"
          " ctx/tokio-util | ctx/tokio | ctx/Go |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in order:
        c = by[name].get("ctx")
        g = go.get(name)
        ratio = lambda imp: (f"{c['ns_per_op'] / ns(name, imp):.2f}"
                             if c and ns(name, imp) else "–")
        print(f"| {name} | {fmt_ns(c and c['ns_per_op'])} | {fmt_num(c and c['bytes_per_op'])} | "
              f"{fmt_num(c and c['allocs_per_op'])} | {fmt_ns(ns(name, 'tokio-util'))} | "
              f"{fmt_ns(ns(name, 'tokio'))} | {fmt_ns(ns(name, 'go'))} | "
              f"{fmt_num(g and g['bytes_per_op'])} | {fmt_num(g and g['allocs_per_op'])} | "
              f"{ratio('tokio-util')} | {ratio('tokio')} | {ratio('go')} |")

    print()
    print("| goal | measured | met |")
    print("| --- | ---: | :---: |")
    met_all = True
    for name, peer, limit in GOALS:
        c = by.get(name, {}).get("ctx")
        if c is None:
            print(f"| {name}: not measured | – | ❌ |")
            met_all = False
            continue
        if peer == "ns":
            value, goal = c["ns_per_op"], f"{name} ≤ {limit:g} ns"
            shown = fmt_ns(value)
        elif peer == "bytes_per_live_ctx":
            value = c["extra"]["live_heap_bytes_per_ctx"]
            goal = f"{name}: bytes per live context ≤ {limit:g} B"
            shown = (f"{value:.0f} B asked for "
                     f"({c['extra'].get('malloc_bytes_per_ctx', float('nan')):.0f} B in malloc)")
        else:
            theirs = ns(name, peer)
            if not theirs:
                print(f"| {name} ≤ {limit:g} × {peer}: no {peer} figure | – | ❌ |")
                met_all = False
                continue
            value = c["ns_per_op"] / theirs
            goal = f"{name} ≤ {limit:g} × {'Go' if peer == 'go' else peer}"
            shown = f"{value:.2f} ×"
        ok = value <= limit
        met_all &= ok
        print(f"| {goal} | {shown} | {'✅' if ok else '❌'} |")
    print()
    print("all goals met" if met_all else "some goals missed", file=sys.stderr)


if __name__ == "__main__":
    main()
