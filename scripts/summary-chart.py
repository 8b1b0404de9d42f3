#!/usr/bin/env python3
"""Draws the README's one summary chart from a `nanum compare` report.

Reads the "Results" table of a report.md that `nanum compare` wrote (by default the newest
folder under docs/results/ that has one) and writes summary.svg beside it: requests/s of
every strategy in each shape, with the sold-out shortcut on (the default), next to the two
limits the same run measured (the hot-row SQL loop as a dashed line, the HTTP ceiling in
the panel title). Every number drawn comes from the table; nothing is typed in here.

    scripts/summary-chart.py [docs/results/<run>/report.md]

Plain SVG written by hand (no plotting dependency): four panels sharing one strategy axis.
"""

import html
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHAPES = ["team", "winners", "rejections", "events"]
SHAPE_TITLES = {
    "team": "team: 100 at once for 10",
    "winners": "winners: 2,000 for 2,000",
    "rejections": "rejections: 10,000 for 100",
    "events": "events: 10 × 200 for 200",
}
CEILING = "HTTP ceiling"
HOT_ROW = "hot-row SQL"
# colour by what serialises the race: the database, Redis, Kafka, or nothing
FAMILY = [
    ("none", "#9e9e9e", "no control (unsafe)"),
    ("kafka", "#2e7d32", "Kafka"),
    ("redis", "#c62828", "Redis"),
    ("", "#1565c0", "database / process"),
]


def latest_report():
    """The report whose run started last (its title carries the start time, UTC)."""
    reports = [p / "report.md" for p in (ROOT / "docs" / "results").iterdir() if (p / "report.md").is_file()]
    if not reports:
        sys.exit("no docs/results/*/report.md to draw from")
    return max(reports, key=lambda r: r.read_text(encoding="utf-8").splitlines()[0])


def number(cell):
    return float(cell.replace(",", ""))


def parse(report):
    """(title line, machine line, {shape: [(name, req/s)]}, {shape: {limit: req/s}})."""
    text = report.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip()
    machine = next((l for l in text.splitlines() if "logical cores" in l), "").strip()
    rows = {s: [] for s in SHAPES}
    limits = {s: {} for s in SHAPES}
    section = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[1] not in rows:
            continue
        name, shape, rate = cells[0], cells[1], number(cells[2])
        if name.startswith("*"):
            kind = CEILING if CEILING in name else HOT_ROW
            limits[shape][kind] = rate
            continue
        name = re.sub(r"`([^`]*)`.*", r"\1", name)
        if "shortcut off" in name:
            continue
        rows[shape].append((name, rate))
    return title, machine, rows, limits


def colour(name):
    return next((c for key, c, _ in FAMILY if key in name), FAMILY[-1][1])


def panel(x0, y0, width, shape, rows, limits, order, bar_h, gap):
    """One shape: bars in `order`, scaled to the panel's own largest value."""
    values = dict(rows)
    hot = limits.get(HOT_ROW)
    top = max(list(values.values()) + ([hot] if hot else [])) * 1.18
    scale = width / top
    out = [
        f'<text x="{x0}" y="{y0 - 24}" class="h">{html.escape(SHAPE_TITLES.get(shape, shape))}</text>',
    ]
    if CEILING in limits:
        out.append(f'<text x="{x0}" y="{y0 - 9}" class="s">HTTP ceiling {limits[CEILING]:,.0f} req/s</text>')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + len(order) * (bar_h + gap)}" class="axis"/>')
    if hot:  # beneath the bars and their labels
        x = x0 + hot * scale
        bottom = y0 + len(order) * (bar_h + gap)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{bottom}" class="hot"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 13}" class="s" text-anchor="middle">hot-row SQL {hot:,.0f}</text>')
    for i, name in enumerate(order):
        if name not in values:
            continue
        y = y0 + i * (bar_h + gap) + gap / 2
        w = values[name] * scale
        out.append(f'<rect x="{x0}" y="{y:.1f}" width="{w:.1f}" height="{bar_h}" fill="{colour(name)}"/>')
        out.append(f'<text x="{x0 + w + 3:.1f}" y="{y + bar_h - 4:.1f}" class="v">{values[name]:,.0f}</text>')
    return out


def draw(report):
    title, machine, rows, limits = parse(report)
    order = [name for name, _ in rows["team"]]
    for shape in SHAPES[1:]:
        order += [n for n, _ in rows[shape] if n not in order]
    label_w, panel_w, panel_gap, bar_h, gap = 150, 190, 38, 14, 6
    top, width = 92, 150 + 4 * 190 + 3 * 38 + 20
    height = top + len(order) * (bar_h + gap) + 62
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">',
        "<style>.t{font-size:15px;font-weight:bold}.h{font-size:12px;font-weight:bold}"
        ".s{font-size:10px;fill:#555}.v{font-size:9.5px;fill:#222;paint-order:stroke;stroke:white;stroke-width:3px}.n{font-size:11px}"
        ".axis{stroke:#999;stroke-width:1}.hot{stroke:#000;stroke-width:1.2;stroke-dasharray:4 3}</style>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" class="t">Requests/s per strategy — {html.escape(title)}</text>',
        f'<text x="10" y="36" class="s">{html.escape(machine)}</text>',
        '<text x="10" y="50" class="s">Sold-out shortcut on (the default); every panel has its own scale; '
        "the dashed line is the hot-row SQL loop measured in the same run.</text>",
    ]
    for i, name in enumerate(order):
        y = top + i * (bar_h + gap) + gap / 2 + bar_h - 3
        out.append(f'<text x="{label_w - 6}" y="{y:.1f}" class="n" text-anchor="end">{html.escape(name)}</text>')
    for k, shape in enumerate(SHAPES):
        x0 = label_w + k * (panel_w + panel_gap)
        out += panel(x0, top, panel_w, shape, rows[shape], limits[shape], order, bar_h, gap)
    ly = height - 14
    x = 10
    for _, c, label in FAMILY:
        out.append(f'<rect x="{x}" y="{ly - 9}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{x + 14}" y="{ly}" class="s">{label}</text>')
        x += 24 + 6.2 * len(label)
    source = report.relative_to(ROOT) if report.is_relative_to(ROOT) else report
    out.append(f'<text x="{width - 10}" y="{ly}" class="s" text-anchor="end">data: {html.escape(str(source))}</text>')
    out.append("</svg>")
    target = report.parent / "summary.svg"
    target.write_text("\n".join(out) + "\n", encoding="utf-8")
    return target


if __name__ == "__main__":
    path = pathlib.Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else latest_report()
    print(draw(path))
