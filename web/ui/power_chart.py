"""The Энергия page's chart: a feed's measured and estimated kW and its budget over the recent
past, as inline SVG (no chart library). A cycle without a fresh meter reading breaks the
measured line (the controller held then) rather than drawing a false value."""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from webbo.web.ui.chart import _path, nice_ticks

__all__ = ["power_svg"]

W, H = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 46

Row = Sequence[float | None]
"""[unix time, measured kW, estimated kW, budget kW] (the feed's history)."""


def power_svg(history: Sequence[Row], labels: dict[str, str], title: str) -> Markup:
    now = time.time()
    times = [float(r[0]) for r in history if r[0] is not None]
    t1 = max([now, *times])
    t0 = min([*times, t1 - 600])
    t0 = min(t0, t1 - 60)
    drawn = [v for r in history for v in r[1:3] if v is not None]
    budgets = [r[3] for r in history if r[3] is not None]
    top_drawn = max([*drawn, 1.0])
    # a budget far above what the feed draws would flatten the lines: it is cut at the top
    values = drawn + [b for b in budgets if b <= 1.5 * top_drawn] + [
        min(b, 1.5 * top_drawn) for b in budgets if b > 1.5 * top_drawn][:1]
    hi = max([*values, 1.0]) * 1.08
    lo = min([*values, hi])
    lo = max(0.0, lo - (hi - lo) * 0.25)
    ticks = nice_ticks(lo, hi)
    bottom, top = ticks[0], ticks[-1]
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v - bottom) / (top - bottom) * plot_h

    out = [f'<svg class="chart power" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for v in ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" '
                   f'y2="{y(v):.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{v:g}</text>')
    span = t1 - t0
    step = next((s for s in (60, 300, 600, 900, 1800, 3600) if span / s <= 6), 7200)
    tick = (t0 // step + 1) * step
    while tick <= t1:
        label = time.strftime("%H:%M", time.localtime(tick))
        out.append(f'<text class="axis" x="{x(tick):.1f}" y="{TOP + plot_h + 16}" '
                   f'text-anchor="middle">{label}</text>')
        tick += step
    for cls, index in (("budget", 3), ("estimated", 2), ("measured", 1)):
        points = [(float(r[0]), None if r[index] is None else min(float(r[index]), top))
                  for r in history if r[0] is not None]
        d = _path(points, x, y)
        if d:
            out.append(f'<path class="line {cls}" d="{d}"/>')
        last = next(((t, v) for t, v in reversed(points) if v is not None), None)
        if last is not None and cls == "measured":
            out.append(f'<circle class="dot {cls}" cx="{x(last[0]):.1f}" '
                       f'cy="{y(last[1]):.1f}" r="3"/>')
    out.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    legend_x = LEFT + 8
    for cls in ("measured", "estimated", "budget"):
        text = labels.get(cls, cls)
        out.append(f'<line class="key {cls}" x1="{legend_x}" x2="{legend_x + 16}" '
                   f'y1="{H - 10}" y2="{H - 10}"/>')
        out.append(f'<text class="legend" x="{legend_x + 20}" y="{H - 6}">{escape(text)}'
                   "</text>")
        legend_x += 40 + 7 * len(text)
    out.append("</svg>")
    return Markup("".join(out))
