"""Charts as inline SVG: the HTML report needs no script, no network and no plotting library."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04")
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 30, 50


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    value = 0.0 if abs(value) < 1e-12 else value  # no "-0" on an axis
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1 or value == 0:
        return f"{value:g}"
    return f"{value:.3g}"


class _Frame:
    """Maps data to pixels and draws the axes of one chart."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x_ticks = _nice_ticks(*x_range)
        self.y_ticks = _nice_ticks(*y_range)
        self.x0, self.x1 = self.x_ticks[0], self.x_ticks[-1]
        self.y0, self.y1 = self.y_ticks[0], self.y_ticks[-1]

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (value - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, x_label: str, y_label: str, x_text: Mapping[float, str] | None = None) -> list[str]:
        parts = []
        for tick in self.y_ticks:
            y = self.y(tick)
            parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>')
            parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(tick))}</text>')
        labels = x_text if x_text is not None else {tick: _fmt(tick) for tick in self.x_ticks}
        for value, text in labels.items():
            x = self.x(value)
            parts.append(f'<line x1="{x:.1f}" y1="{HEIGHT - BOTTOM}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM + 5}" class="axis"/>')
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{escape(text)}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" class="axis"/>')
        parts.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle" class="label">{escape(x_label)}</text>'
        )
        parts.append(
            f'<text x="16" y="{(TOP + HEIGHT - BOTTOM) / 2:.0f}" text-anchor="middle" class="label" '
            f'transform="rotate(-90 16 {(TOP + HEIGHT - BOTTOM) / 2:.0f})">{escape(y_label)}</text>'
        )
        return parts


def _svg(title: str, parts: list[str], height: int = HEIGHT) -> str:
    body = "\n  ".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">\n  <title>{escape(title)}</title>\n  {body}\n</svg>'
    )


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for index, name in enumerate(names):
        y = TOP + 16 * index
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{WIDTH - RIGHT + 14}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 30}" y="{y + 9}">{escape(name)}</text>')
    return parts


def line_chart(series: Mapping[str, Sequence[tuple[date, float]]], *, title: str, y_label: str) -> str:
    """One line per series over days (spend by model over time)."""
    days = sorted({day for points in series.values() for day, _ in points})
    if not days:
        return _svg(title, [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>'])
    index = {day: i for i, day in enumerate(days)}
    top = max((value for points in series.values() for _, value in points), default=1.0)
    frame = _Frame((0, max(len(days) - 1, 1)), (0, top))
    frame.x_ticks = list(range(len(days))) if len(days) > 1 else [0, 1]
    frame.x0, frame.x1 = 0, max(len(days) - 1, 1)
    step = max(1, len(days) // 8)
    parts = frame.axes("day", y_label, {i: f"{day:%m-%d}" for day, i in index.items() if i % step == 0})
    names = sorted(series)
    for n, name in enumerate(names):
        colour = PALETTE[n % len(PALETTE)]
        points = sorted(series[name])
        coords = " ".join(f"{frame.x(index[day]):.1f},{frame.y(value):.1f}" for day, value in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2" class="series"/>')
        parts += [
            f'<circle cx="{frame.x(index[day]):.1f}" cy="{frame.y(value):.1f}" r="2.5" fill="{colour}"/>'
            for day, value in points
        ]
    return _svg(title, parts + _legend(names))


def frontier_chart(
    points: Sequence[tuple[float, float, float, float]],
    *,
    chosen: tuple[float, float] | None,
    margin: float,
    title: str,
) -> str:
    """Cost reduction (x, %) against quality change (y) with its interval, per threshold.

    `points` are (cost_reduction_pct, quality_change, ci_low, ci_high); the margin is drawn
    as a dashed line and the chosen configuration as a ringed point.
    """
    if not points:
        return _svg(title, [])
    xs = [p[0] for p in points]
    lows = [p[2] for p in points] + [-margin]
    highs = [p[3] for p in points] + [0.0]
    frame = _Frame((min(xs), max(xs)), (min(lows), max(highs)))
    parts = frame.axes("cost reduction vs. always using the current model (%)", "quality change")
    band_top = " ".join(f"{frame.x(x):.1f},{frame.y(high):.1f}" for x, _, _, high in sorted(points))
    band_bottom = " ".join(f"{frame.x(x):.1f},{frame.y(low):.1f}" for x, _, low, _ in sorted(points, reverse=True))
    parts.append(f'<polygon points="{band_top} {band_bottom}" fill="{PALETTE[0]}" fill-opacity="0.15" class="band"/>')
    line = " ".join(f"{frame.x(x):.1f},{frame.y(q):.1f}" for x, q, _, _ in sorted(points))
    parts.append(f'<polyline points="{line}" fill="none" stroke="{PALETTE[0]}" stroke-width="2" class="series"/>')
    y_margin = frame.y(-margin)
    parts.append(
        f'<line x1="{LEFT}" y1="{y_margin:.1f}" x2="{WIDTH - RIGHT}" y2="{y_margin:.1f}" stroke="{PALETTE[1]}" '
        f'stroke-dasharray="6 4" class="margin"/>'
    )
    parts.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y_margin + 4:.1f}" fill="{PALETTE[1]}">margin -{margin:g}</text>')
    if chosen is not None:
        cx, cy = frame.x(chosen[0]), frame.y(chosen[1])
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="7" fill="none" stroke="{PALETTE[2]}" stroke-width="3" class="chosen"/>')
        parts.append(f'<text x="{cx + 10:.1f}" y="{cy - 10:.1f}" fill="{PALETTE[2]}">chosen</text>')
    return _svg(title, parts)


def forest_plot(rows: Sequence[tuple[str, float, float, float]], *, title: str, x_label: str) -> str:
    """Effects with intervals, one row each, around a zero line (experiment effects)."""
    if not rows:
        return _svg(title, [])
    height = TOP + BOTTOM + 26 * len(rows) + 10
    frame = _Frame((min(min(r[2] for r in rows), 0.0), max(max(r[3] for r in rows), 0.0)), (0, len(rows)))
    left, right = 260, 40
    span = WIDTH - left - right

    def x(value: float) -> float:
        return left + (value - frame.x0) / (frame.x1 - frame.x0) * span

    parts = []
    for tick in frame.x_ticks:
        parts.append(f'<line x1="{x(tick):.1f}" y1="{TOP}" x2="{x(tick):.1f}" y2="{height - BOTTOM}" class="grid"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{height - BOTTOM + 18}" text-anchor="middle">{escape(_fmt(tick))}</text>')
    parts.append(f'<line x1="{x(0):.1f}" y1="{TOP}" x2="{x(0):.1f}" y2="{height - BOTTOM}" class="axis"/>')
    for index, (label, estimate, low, high) in enumerate(rows):
        y = TOP + 13 + 26 * index
        colour = PALETTE[0] if high < 0 or low > 0 else PALETTE[6]
        parts.append(f'<text x="{left - 10}" y="{y + 4}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<line x1="{x(low):.1f}" y1="{y}" x2="{x(high):.1f}" y2="{y}" stroke="{colour}" stroke-width="2" class="interval"/>')
        parts.append(f'<circle cx="{x(estimate):.1f}" cy="{y}" r="4" fill="{colour}"/>')
    parts.append(
        f'<text x="{left + span / 2:.0f}" y="{height - 8}" text-anchor="middle" class="label">{escape(x_label)}</text>'
    )
    return _svg(title, parts, height)
