#!/usr/bin/env python3
"""Plot how cancel time and memory grow with chain depth and fan-out (docs/scaling.svg).

Reads the JSON lines of `cargo bench -p ctx-core --bench compare -- --scaling --json` (the
`cancel_tree_depth_N` and `fanout_N_cancel` series, N = 10 .. 1,000,000, for ctx and
tokio-util) and, optionally, the Go baseline's JSON lines (bench/go/run.sh), whose two large
cases are drawn as single points. Writes an SVG by hand: Python 3 standard library only.

    python3 scripts/plot_scaling.py scaling.jsonl --go go.jsonl -o docs/scaling.svg
"""

import argparse
import json
import math
import re
import sys
from xml.sax.saxutils import escape

COLORS = {"ctx": "#1f77b4", "tokio-util": "#d62728", "go": "#2ca02c"}
W, H = 1160, 590
PANEL_W, PANEL_H = 430, 320
MARGIN_L, MARGIN_T = 90, 80
LEGEND_T = MARGIN_T + PANEL_H + 64


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def series(rows):
    """{(kind, impl): [(n, cancel_ns, bytes_per_ctx)]} for kind in chain, fanout."""
    out = {}
    for r in rows:
        m = re.fullmatch(r"cancel_tree_depth_(\d+)", r["name"])
        extra = r.get("extra", {})
        if m and "cancel_ns_median" in extra:
            n = int(m.group(1))
            point = (n, extra["cancel_ns_median"], extra.get("live_heap_bytes_per_ctx"))
            out.setdefault(("chain", r["impl"]), []).append(point)
        m = re.fullmatch(r"fanout_(\d+)_cancel", r["name"])
        if m:
            n = int(m.group(1))
            point = (n, r["ns_per_op"], extra.get("live_heap_bytes_per_waiting_child"))
            out.setdefault(("fanout", r["impl"]), []).append(point)
    for v in out.values():
        v.sort()
    return out


def go_points(rows):
    """Go's cases that match a point of ours: the 1e6 chain's cancel and the 1e5 fan-out."""
    pts = {}
    for r in rows:
        extra = r.get("extra", {})
        if r["name"] == "chain_1m_create_cancel":
            n = int(extra.get("contexts", 1_000_000))
            pts["chain"] = (n, extra["cancel_ns_median"], extra.get("peak_heap_bytes_per_ctx"))
        if r["name"] == "fanout_100k_cancel":
            n = int(extra.get("children", 100_000))
            pts["fanout"] = (n, r["ns_per_op"], None)
    return pts


class Axes:
    def __init__(self, x0, y0, xs, ys, ylog):
        self.x0, self.y0 = x0, y0
        self.xmin, self.xmax = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(
            math.log10(max(xs))
        )
        self.ylog = ylog
        if ylog:
            self.ymin = 10 ** math.floor(math.log10(min(ys)))
            self.ymax = 10 ** math.ceil(math.log10(max(ys)))
        else:
            self.ymin = 0.0
            step = nice_step(max(ys) / 5)
            self.ymax = step * math.ceil(max(ys) * 1.1 / step)
            self.ystep = step

    def x(self, v):
        f = (math.log10(v) - math.log10(self.xmin)) / (math.log10(self.xmax) - math.log10(self.xmin))
        return self.x0 + f * PANEL_W

    def y(self, v):
        if self.ylog:
            f = (math.log10(v) - math.log10(self.ymin)) / (
                math.log10(self.ymax) - math.log10(self.ymin)
            )
        else:
            f = (v - self.ymin) / (self.ymax - self.ymin)
        return self.y0 + PANEL_H - f * PANEL_H


def nice_step(raw):
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_n(v):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def fmt_ns(v):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if v >= div:
            return f"{v / div:g} {unit}"
    return f"{v:g} ns"


def panel(svg, ax, title, ylabel, yfmt):
    x0, y0 = ax.x0, ax.y0
    svg.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 - 12}" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>'
    )
    svg.append(
        f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>'
    )
    n = ax.xmin
    while n <= ax.xmax * 1.0001:
        x = ax.x(n)
        svg.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + PANEL_H}" stroke="#ddd"/>')
        svg.append(
            f'<text x="{x:.1f}" y="{y0 + PANEL_H + 18}" text-anchor="middle" font-size="12">'
            f"{fmt_n(n)}</text>"
        )
        n *= 10
    svg.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 + PANEL_H + 40}" text-anchor="middle" '
        f'font-size="13">N (chain depth, or fan-out children with one task each)</text>'
    )
    ticks = []
    if ax.ylog:
        v = ax.ymin
        while v <= ax.ymax * 1.0001:
            ticks.append(v)
            v *= 10
    else:
        v = 0.0
        while v <= ax.ymax + 1e-9:
            ticks.append(v)
            v += ax.ystep
    for v in ticks:
        y = ax.y(v)
        svg.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(
            f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{yfmt(v)}</text>'
        )
    svg.append(
        f'<text x="{x0 - 70}" y="{y0 + PANEL_H / 2}" text-anchor="middle" font-size="13" '
        f'transform="rotate(-90 {x0 - 70} {y0 + PANEL_H / 2})">{escape(ylabel)}</text>'
    )


def line(svg, ax, pts, color, dashed, label_y, label):
    pts = [(x, y) for x, y in pts if y is not None and y > 0]
    if not pts:
        return
    d = " ".join(f"{ax.x(x):.1f},{ax.y(y):.1f}" for x, y in pts)
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    svg.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
    for x, y in pts:
        svg.append(f'<circle cx="{ax.x(x):.1f}" cy="{ax.y(y):.1f}" r="3" fill="{color}"/>')
    lx = ax.x0 + 12
    svg.append(
        f'<line x1="{lx}" y1="{label_y}" x2="{lx + 26}" y2="{label_y}" stroke="{color}" '
        f'stroke-width="2"{dash}/>'
    )
    svg.append(f'<text x="{lx + 32}" y="{label_y + 4}" font-size="12">{escape(label)}</text>')


def point(svg, ax, x, y, color, label_y, label):
    if y is None or y <= 0:
        return
    cx, cy = ax.x(x), ax.y(y)
    svg.append(
        f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="none" '
        f'stroke="{color}" stroke-width="2"/>'
    )
    lx = ax.x0 + 12
    svg.append(
        f'<rect x="{lx + 8}" y="{label_y - 5}" width="10" height="10" fill="none" '
        f'stroke="{color}" stroke-width="2"/>'
    )
    svg.append(f'<text x="{lx + 32}" y="{label_y + 4}" font-size="12">{escape(label)}</text>')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ours", help="JSON lines of compare -- --scaling --json")
    p.add_argument("--go", help="JSON lines of the Go baseline (bench/go/run.sh)")
    p.add_argument("-o", "--out", default="docs/scaling.svg")
    p.add_argument("--subtitle", default="", help="a line under the title (machine, date)")
    a = p.parse_args()

    s = series(read(a.ours))
    if not s:
        sys.exit("plot_scaling: no cancel_tree_depth_N / fanout_N_cancel lines in " + a.ours)
    go = go_points(read(a.go)) if a.go else {}
    impls = ["ctx", "tokio-util"]

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="17" font-weight="bold">'
        "ctx vs tokio-util (and Go): cost of one cancel as the tree grows</text>",
    ]
    if a.subtitle:
        svg.append(
            f'<text x="{W / 2}" y="42" text-anchor="middle" font-size="12" fill="#555">'
            f"{escape(a.subtitle)}</text>"
        )

    # Left: time.
    times = [t for v in s.values() for _, t, _ in v] + [g[1] for g in go.values()]
    ns_all = [n for v in s.values() for n, _, _ in v]
    ax = Axes(MARGIN_L, MARGIN_T, ns_all, times, ylog=True)
    panel(svg, ax, "Time: cancel of the root until the tree has ended", "time (log)", fmt_ns)
    ly = LEGEND_T
    for imp in impls:
        for kind, dashed, what in (
            ("chain", False, "chain: cancel call (ends N nested)"),
            ("fanout", True, "fan-out: cancel until last task woke"),
        ):
            pts = s.get((kind, imp), [])
            if pts:
                line(svg, ax, [(n, t) for n, t, _ in pts], COLORS[imp], dashed, ly, f"{imp} {what}")
                ly += 17
    for kind, what in (("chain", "Go chain_1m cancel"), ("fanout", "Go fanout_100k")):
        if kind in go:
            n, t, _ = go[kind]
            point(svg, ax, n, t, COLORS["go"], ly, what)
            ly += 17

    # Right: memory.
    x1 = MARGIN_L + PANEL_W + 150
    mems = [m for v in s.values() for _, _, m in v if m] + [
        g[2] for g in go.values() if g[2]
    ]
    ax = Axes(x1, MARGIN_T, ns_all, mems, ylog=False)
    panel(
        svg,
        ax,
        "Memory per context while the tree is alive",
        "heap bytes asked for, per context",
        lambda v: f"{v:g} B",
    )
    ly = LEGEND_T
    for imp in impls:
        for kind, dashed, what in (
            ("chain", False, "chain: heap bytes per context"),
            ("fanout", True, "fan-out: per child + its waiting task"),
        ):
            pts = s.get((kind, imp), [])
            if pts:
                line(svg, ax, [(n, m) for n, _, m in pts], COLORS[imp], dashed, ly, f"{imp} {what}")
                ly += 17
    if "chain" in go and go["chain"][2]:
        n, _, m = go["chain"]
        point(svg, ax, n, m, COLORS["go"], ly, "Go chain_1m heap per context")

    svg.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
