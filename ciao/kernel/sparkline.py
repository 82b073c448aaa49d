"""Small charts of a metric's history: an inline SVG for HTML, a row of blocks for text.

A sparkline, not a plot: no axes, a few dozen points at most (the chart is a few
hundred pixels wide, so more points draw nothing more but cost bytes in every update
of the live view). Pure.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

#: Points drawn per line, whatever the series holds.
MAX_DRAWN = 80
_BLOCKS = "▁▂▃▄▅▆▇█"

#: A line's points: (step, value).
Line = Sequence[tuple[int, float]]


def thin(points: Line, count: int = MAX_DRAWN) -> list[tuple[int, float]]:
    """At most `count` of `points`, evenly spaced, the first and the last kept; the points
    that are not finite (`1e999` reads as inf) are left out."""
    finite = [(step, value) for step, value in points if math.isfinite(value)]
    if len(finite) <= count:
        return finite
    if count < 2:
        return finite[-count:] if count else []
    last = len(finite) - 1
    picks = sorted({round(i * last / (count - 1)) for i in range(count)})
    return [finite[i] for i in picks]


def svg(
    lines: Sequence[tuple[Line, str]],
    width: int = 160,
    height: int = 36,
    label: str = "",
) -> str:
    """One polyline per (points, colour), on a shared scale: x is the step, y the value
    (up is more). The first line is drawn last (on top) with a dot at its latest point:
    it is the one the caller cares most about. "" when nothing can be drawn."""
    drawn = [(thin(points), colour) for points, colour in lines]
    drawn = [(points, colour) for points, colour in drawn if points]
    if not drawn:
        return ""
    steps = [step for points, _ in drawn for step, _ in points]
    values = [value for points, _ in drawn for _, value in points]
    first_step, last_step = min(steps), max(steps)
    low, high = min(values), max(values)
    pad = 3.0

    def x(step: int) -> float:
        if last_step == first_step:
            return width / 2
        return pad + (step - first_step) * (width - 2 * pad) / (last_step - first_step)

    def y(value: float) -> float:
        if high == low:
            return height / 2
        return height - pad - (value - low) * (height - 2 * pad) / (high - low)

    shapes = []
    for points, colour in reversed(drawn):
        coords = " ".join(f"{x(step):.1f},{y(value):.1f}" for step, value in points)
        if len(points) == 1:
            step, value = points[0]
            shapes.append(f"<circle cx='{x(step):.1f}' cy='{y(value):.1f}' r='2' fill='{colour}'/>")
        else:
            shapes.append(
                f"<polyline points='{coords}' fill='none' stroke='{colour}' "
                "stroke-width='1.5' stroke-linejoin='round' stroke-linecap='round'/>"
            )
    points, colour = drawn[0]
    step, value = points[-1]
    shapes.append(f"<circle cx='{x(step):.1f}' cy='{y(value):.1f}' r='2.2' fill='{colour}'/>")
    title = f"<title>{html.escape(label)}</title>" if label else ""
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{html.escape(label)}' "
        f"style='display:block'>{title}{''.join(shapes)}</svg>"
    )


def blocks(values: Sequence[float], width: int = 24) -> str:
    """The values as a row of block characters (`▇▅▄▃▂▁`), at most `width` of them."""
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    kept = [value for _, value in thin(finite, width)]
    if not kept:
        return ""
    low, high = min(kept), max(kept)
    if high == low:
        return _BLOCKS[len(_BLOCKS) // 2] * len(kept)
    top = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round((v - low) * top / (high - low))] for v in kept)
