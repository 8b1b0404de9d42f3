#!/usr/bin/env python3
"""Winners/s against the round trip per hop, one line per strategy, from `nanum compare`
reports: `scripts/network-chart.py OUT.svg REPORT_DIR...` (each a folder with
results.json; a report without a network is loopback, drawn at its measured 0.03 ms).
Plain SVG, no plotting library: log-scaled winners/s over the hop's measured mean RTT."""
import json, math, sys

out, folders = sys.argv[1], sys.argv[2:]
points = {}  # strategy -> {rtt: winners/s}
for folder in folders:
    r = json.load(open(f"{folder}/results.json"))
    m = (r.get("network") or {}).get("measured")
    rtt = m["mean_ms"] if m and m.get("mean_ms") else 0.03
    for row in r["rows"]:
        if row["shape"] == "winners" and row["variant"] == "" and row["safe"]:
            points.setdefault(row["strategy"], {})[rtt] = row["median"]["rps"]
points = {s: p for s, p in points.items() if len(p) > 1}
if not points:
    sys.exit("no strategy appears in two of the reports")
W, H, L, R, T, B = 760, 440, 70, 190, 30, 50
xs = sorted({x for p in points.values() for x in p})
lx = lambda v: math.log10(v)
x0, x1 = lx(min(xs)), lx(max(xs))
ys = [y for p in points.values() for y in p.values()]
y0, y1 = math.floor(lx(min(ys))), math.ceil(lx(max(ys)))
px = lambda v: L + (lx(v) - x0) / (x1 - x0) * (W - L - R)
py = lambda v: T + (y1 - lx(v)) / (y1 - y0) * (H - T - B)
colors = ["#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#66a182", "#8d6a9f", "#00798c", "#333333",
          "#b5651d", "#6b8e23", "#c71585", "#4682b4"]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="18" font-size="14">winners/s (winners shape, median of 3) against the round trip per hop</text>']
for e in range(y0, y1 + 1):
    y = py(10 ** e)
    svg.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{L - 8}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:,}</text>')
for x in xs:
    svg.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
    svg.append(f'<text x="{px(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x:.2f} ms</text>')
svg.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">measured mean RTT of a hop (log)</text>')
for i, (s, p) in enumerate(sorted(points.items(), key=lambda kv: -max(kv[1].values()))):
    c = colors[i % len(colors)]
    pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(p.items()))
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
    for x, y in p.items():
        svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
    svg.append(f'<rect x="{W - R + 12}" y="{T + 18 * i}" width="12" height="12" fill="{c}"/>')
    svg.append(f'<text x="{W - R + 30}" y="{T + 18 * i + 10}">{s}</text>')
svg.append("</svg>")
open(out, "w").write("\n".join(svg))
print(f"{out}: {len(points)} strategies over {len(xs)} round trips")
