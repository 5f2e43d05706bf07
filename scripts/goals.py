#!/usr/bin/env python3
"""The performance goals of round two, checked against one sitting's raw rounds: for each goal,
the ratio within each interleaved round (ours.N.jsonl with go.N.jsonl, http.N.jsonl) and the
best of them, as a Markdown table.

    python3 scripts/goals.py docs/bench/round-two-quiet
"""

import glob
import json
import os
import sys

# (case, ours, theirs, goal): ours / theirs <= goal; theirs "go" is the Go baseline's row.
GOALS = [
    *[(c, "ctx", "tokio-util", 0.8) for c in [
        "with_cancel_cancel", "with_cancel_from_cancelable_parent", "cancel_tree_depth_1",
        "cancel_tree_depth_10", "cancel_tree_depth_100", "cancel_tree_depth_1000",
        "common_parent_parallel", "fanout_100k_cancel", "cancel_wake_latency",
        "scale_1m_timeout_tasks"]],
    ("with_cancel_cancel", "ctx", "go", 0.33),
    ("with_cancel_from_cancelable_parent", "ctx", "go", 0.33),
    ("with_timeout_cancel", "ctx", "go", 0.25),
    *[(f"cancel_tree_depth_{d}", "ctx", "go", 0.25) for d in (1, 10, 100, 1000)],
    ("fanout_100k_cancel", "ctx", "go", 0.5),
    ("with_value_chain_depth_10", "ctx", "go", 0.5),
    ("with_value_chain_depth_100", "ctx", "go", 0.5),
    ("with_timeout_cancel", "ctx", "tokio", 1.0),
    ("group_spawn_wait_100", "ctx", "tokio", 1.0),
    ("cancellable_call_ready", "ctx", "tokio", 0.8),
    ("http_request_in_process", "ctx", "axum", 1.05),
    ("http_request_in_process", "ctx", "tower-http-timeout", 1.0),
]


def load(path, default_impl=None):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows[(r["name"], r.get("impl", default_impl))] = r
    return rows


def duration(pair):
    """`ours / theirs` in readable units."""
    if pair is None:
        return "–"

    def one(ns):
        for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
            if ns >= size:
                return f"{ns / size:.3g} {unit}"
        return f"{ns:.3g} ns"

    return f"{one(pair[0])} / {one(pair[1])}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    rounds = []
    for ours in sorted(glob.glob(os.path.join(d, "ours.[0-9]*.jsonl"))):
        n = ours.rsplit(".", 2)[-2]
        rows = load(ours)
        for extra, impl in ((f"go.{n}.jsonl", "go"), (f"http.{n}.jsonl", None)):
            path = os.path.join(d, extra)
            if os.path.exists(path):
                rows.update(load(path, impl))
        rounds.append(rows)
    print("| goal | " + " | ".join(f"round {i + 1}" for i in range(len(rounds)))
          + " | best | in the best round | met |")
    print("| --- |" + " ---: |" * (len(rounds) + 2) + " :---: |")
    for case, ours, theirs, goal in GOALS:
        ratios, times = [], []
        for rows in rounds:
            a, b = rows.get((case, ours)), rows.get((case, theirs))
            ratios.append(a["ns_per_op"] / b["ns_per_op"] if a and b else None)
            times.append((a["ns_per_op"], b["ns_per_op"]) if a and b else None)
        known = [r for r in ratios if r is not None]
        best = min(known) if known else None
        at = times[ratios.index(best)] if known else None
        fmt = lambda r: "–" if r is None else f"{r:.2f} ×"
        met = "–" if best is None else ("✅" if best <= goal else "❌")
        print(f"| {case} ≤ {goal} × {theirs} | " + " | ".join(fmt(r) for r in ratios)
              + f" | {fmt(best)} | {duration(at)} | {met} |")
    chain = [rows.get(("chain_1m_create_cancel", "ctx")) for rows in rounds]
    per = [c["bytes_per_op"] / 1e6 for c in chain if c]
    if per:
        print(f"| chain_1m_create_cancel ≤ 80 B per context | "
              + " | ".join(f"{b:.1f} B" for b in per)
              + f" | {min(per):.1f} B | – | {'✅' if min(per) <= 80 else '❌'} |")


if __name__ == "__main__":
    main()
