"""The miner page's chart, drawn here as inline SVG (no chart library, nothing to download).

Hashrate (TH/s, left axis) and the hottest board and chip temperatures (°C, right axis) over
the points the agent keeps in memory (:mod:`webbo.agent.fleet.history`). A missing value breaks the
line rather than drawing a false zero; the expected hashrate is a dashed reference line.
Colours come from CSS classes (the page's Content-Security-Policy forbids inline styles).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

from webbo.agent.fleet.history import Point

__all__ = ["chart_svg", "nice_ticks"]

W, H = 760, 250
LEFT, RIGHT, TOP, BOTTOM = 52, 48, 12, 48


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not hi - lo > 1e-9 * max(1.0, abs(lo)):
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    for k in range(21):
        value = first + k * step
        ticks.append(round(value, 10))
        if value >= hi - step * 1e-9:
            break
    return ticks


def _path(points: Sequence[tuple[float, float | None]], x: Callable[[float], float],
          y: Callable[[float], float]) -> str:
    parts: list[str] = []
    pen_down = False
    for t, v in points:
        if v is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x(t):.1f},{y(v):.1f}")
        pen_down = True
    return " ".join(parts)


def _label(value: float) -> str:
    return f"{value:g}"


def chart_svg(series: Sequence[Point], expected_ths: float | None, labels: dict[str, str],
              title: str) -> Markup:
    """The SVG element; ``labels`` names the series (translated by the caller)."""
    now = time.time()
    t0 = min((p.time for p in series), default=now - 600)
    t1 = max(now, max((p.time for p in series), default=now))
    t0 = min(t0, t1 - 60)
    hashes = [p.hashrate_ths for p in series if p.hashrate_ths is not None]
    temps = [v for p in series for v in (p.temp_board_max_c, p.temp_chip_max_c) if v is not None]
    h_hi = max([*hashes, expected_ths or 0.0, 1.0]) * 1.1
    h_ticks = nice_ticks(0.0, h_hi)
    h_top = h_ticks[-1]
    t_lo = min([*temps, 20.0])
    t_hi = max([*temps, 40.0])
    t_ticks = nice_ticks(math.floor(t_lo / 10) * 10, t_hi)
    t_bottom, t_top = t_ticks[0], t_ticks[-1]
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def yh(v: float) -> float:
        return TOP + plot_h - v / h_top * plot_h

    def yt(v: float) -> float:
        return TOP + plot_h - (v - t_bottom) / (t_top - t_bottom) * plot_h

    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for v in h_ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{yh(v):.1f}" '
                   f'y2="{yh(v):.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 6}" y="{yh(v) + 4:.1f}" '
                   f'text-anchor="end">{_label(v)}</text>')
    for v in t_ticks:
        out.append(f'<text class="axis temp" x="{W - RIGHT + 6}" y="{yt(v) + 4:.1f}">'
                   f'{_label(v)}</text>')
    span = t1 - t0
    step = next((s for s in (60, 300, 600, 900, 1800, 3600, 7200) if span / s <= 6), 14400)
    tick = math.ceil(t0 / step) * step
    while tick <= t1:
        label = time.strftime("%H:%M", time.localtime(tick))
        out.append(f'<text class="axis" x="{x(tick):.1f}" y="{TOP + plot_h + 16}" '
                   f'text-anchor="middle">{label}</text>')
        tick += step
    if expected_ths:
        out.append(f'<line class="expected" x1="{LEFT}" x2="{W - RIGHT}" '
                   f'y1="{yh(expected_ths):.1f}" y2="{yh(expected_ths):.1f}"/>')
    for cls, values, y in (
            ("hash", [(p.time, p.hashrate_ths) for p in series], yh),
            ("board", [(p.time, p.temp_board_max_c) for p in series], yt),
            ("chip", [(p.time, p.temp_chip_max_c) for p in series], yt)):
        d = _path(values, x, y)
        if d:
            out.append(f'<path class="line {cls}" d="{d}"/>')
        last = next(((t, v) for t, v in reversed(values) if v is not None), None)
        if last is not None:
            out.append(f'<circle class="dot {cls}" cx="{x(last[0]):.1f}" cy="{y(last[1]):.1f}" '
                       f'r="3"/>')
    out.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    legend_x = LEFT + 8
    for cls, key in (("hash", "hashrate"), ("expected", "expected"), ("board", "board"),
                     ("chip", "chip")):
        if cls == "expected" and not expected_ths:
            continue
        out.append(f'<line class="key {cls}" x1="{legend_x}" x2="{legend_x + 16}" '
                   f'y1="{H - 10}" y2="{H - 10}"/>')
        text = escape(labels.get(key, key))
        out.append(f'<text class="legend" x="{legend_x + 20}" y="{H - 6}">{text}</text>')
        legend_x += 36 + 7 * len(labels.get(key, key))
    out.append("</svg>")
    return Markup("".join(out))
