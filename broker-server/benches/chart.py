#!/usr/bin/env python3
"""Draws a comparison table as an SVG bar chart: one row per case and metric, one bar
per broker, each bar's length relative to the largest value in its row.

Usage: python3 broker-server/benches/chart.py [--all] TABLE.md OUT.svg

TABLE.md holds a markdown table in the format of run A's full comparison table in
BENCHMARKS.md (`case | metric | <broker> median [min–max] | ...`; other lines are
ignored), e.g. BENCHMARKS.md itself. scripts/bench-compare.sh prints another format
(one row per scenario and broker), which this script does not read. Without --all only
the headline metrics are drawn (throughput, broker CPU per message, latency p50/p99,
connects, memory per connection), not the CPU-share, loss and noise rows. Standard
library only.
"""

import re
import sys
from html import escape

SUFFIX = {"k": 1e3, "M": 1e6, "G": 1e9}
COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]


def parse_value(cell):
    """'1.54M [1.51M–1.69M] (n=3)' -> (1540000.0, '1.54M'); '–' -> None."""
    match = re.match(r"\s*([0-9.]+)([kMG]?)", cell)
    if not match:
        return None
    return float(match.group(1)) * SUFFIX.get(match.group(2), 1), match.group(1) + match.group(2)


def read_table(path):
    brokers, names, rows = None, [], []
    with open(path, encoding="utf-8") as table:
        for line in table:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3 or not line.lstrip().startswith("|"):
                continue
            if cells[0] == "case":
                # Broker columns are the "<name> median [min–max]" ones.
                brokers = [(i, c.split()[0]) for i, c in enumerate(cells) if "median" in c]
                brokers = brokers or None  # another table (no broker columns)
                continue
            if brokers is None or set(cells[0]) <= set("-: "):
                continue
            names = brokers
            values = [(name, parse_value(cells[i])) for i, name in brokers]
            rows.append((cells[0], cells[1], values))
    if not rows:
        sys.exit(f"{path}: no comparison table (run A's format) found")
    return [name for _, name in names], rows


SKIPPED = ("CPU %", "loss", "lost", "noise", "held", "max", "p90", "KiB")


def headline(metric):
    return not any(word in metric for word in SKIPPED)


def lower_is_better(metric):
    return any(word in metric for word in ("µs", "us ", "bytes", "latency", "CPU"))


def draw(brokers, rows, out):
    bar_h, gap, label_w, bar_w = 14, 10, 330, 420
    row_h = bar_h * len(brokers) + gap
    legend_h = 30
    height = legend_h + row_h * len(rows) + 20
    width = label_w + bar_w + 90
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for i, name in enumerate(brokers):
        x = 10 + i * 140
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{COLOURS[i % 5]}"/>')
        parts.append(f'<text x="{x + 16}" y="18">{escape(name)}</text>')
    parts.append(
        f'<text x="{label_w + bar_w + 80}" y="18" text-anchor="end" fill="#555">'
        "bar length: share of the row's largest value</text>"
    )
    for r, (case, metric, values) in enumerate(rows):
        top = legend_h + r * row_h
        better = "lower is better" if lower_is_better(metric) else "higher is better"
        parts.append(f'<text x="10" y="{top + bar_h}" font-weight="bold">{escape(case)}</text>')
        parts.append(f'<text x="10" y="{top + 2 * bar_h}">{escape(metric)}</text>')
        parts.append(f'<text x="10" y="{top + 3 * bar_h - 2}" fill="#777">{better}</text>')
        largest = max((v[0] for _, v in values if v), default=0) or 1
        for b, (_name, value) in enumerate(values):
            y = top + b * bar_h
            colour = COLOURS[b % 5]
            if value is None:
                parts.append(f'<text x="{label_w}" y="{y + bar_h - 3}" fill="#999">n/a</text>')
                continue
            length = max(1.0, bar_w * value[0] / largest)
            parts.append(
                f'<rect x="{label_w}" y="{y + 1}" width="{length:.1f}" height="{bar_h - 2}" '
                f'fill="{colour}"/>'
            )
            parts.append(f'<text x="{label_w + length + 4:.1f}" y="{y + bar_h - 3}">{value[1]}</text>')
        parts.append(
            f'<line x1="10" x2="{width - 10}" y1="{top + row_h - gap / 2}" '
            f'y2="{top + row_h - gap / 2}" stroke="#eee"/>'
        )
    parts.append("</svg>")
    with open(out, "w", encoding="utf-8") as svg:
        svg.write("\n".join(parts) + "\n")


def main():
    args = sys.argv[1:]
    everything = "--all" in args
    args = [a for a in args if a != "--all"]
    if len(args) != 2:
        sys.exit(__doc__)
    brokers, rows = read_table(args[0])
    if not everything:
        rows = [row for row in rows if headline(row[1])]
    draw(brokers, rows, args[1])


if __name__ == "__main__":
    main()
