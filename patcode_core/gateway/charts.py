"""Charts as inline SVG, drawn on the server: no script, no library, no network in the browser.

Each data point is a ``.mark`` element with a ``data-value`` and a
``<title>`` (the browser shows it on hover).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 180, 56, 22, 10


@dataclass(frozen=True, slots=True)
class Point:
    """One bar or dot: its label on the x axis, its value (``None``: no data there)."""

    label: str
    value: float | None


def _scale(points: Sequence[Point]) -> float:
    top = max((point.value for point in points if point.value is not None), default=0.0)
    return top if top > 0 else 1.0


def _frame(chart_id: str, title: str, body: str, top: float, unit: Callable[[float], str], points: Sequence[Point]) -> str:
    first, last = (points[0].label, points[-1].label) if points else ("", "")
    return (
        f'<svg id="{escape(chart_id)}" class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}"/>'
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{escape(unit(top))}</text>'
        f'<text class="tick" x="{LEFT - 4}" y="{HEIGHT - BOTTOM}" text-anchor="end">0</text>'
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(first)}</text>'
        f'<text class="tick" x="{WIDTH}" y="{HEIGHT - 6}" text-anchor="end">{escape(last)}</text>'
        f"{body}</svg>"
    )


def bars(chart_id: str, title: str, points: Sequence[Point], unit: Callable[[float], str]) -> str:
    """A bar per point (a point with no value draws nothing)."""
    top = _scale(points)
    slot = (WIDTH - LEFT) / max(len(points), 1)
    plot = HEIGHT - BOTTOM - TOP
    marks = []
    for index, point in enumerate(points):
        if point.value is None:
            continue
        height = plot * point.value / top
        x = LEFT + index * slot + slot * 0.1
        marks.append(
            f'<rect class="mark" data-value="{point.value:g}" x="{x:.1f}" y="{HEIGHT - BOTTOM - height:.1f}" '
            f'width="{slot * 0.8:.1f}" height="{height:.1f}"><title>{escape(point.label)}: {escape(unit(point.value))}</title></rect>'
        )
    return _frame(chart_id, title, "".join(marks), top, unit, points)


def line(chart_id: str, title: str, points: Sequence[Point], unit: Callable[[float], str]) -> str:
    """A line through the points that have a value, a dot on each."""
    top = _scale(points)
    slot = (WIDTH - LEFT) / max(len(points), 1)
    plot = HEIGHT - BOTTOM - TOP
    coordinates, marks = [], []
    for index, point in enumerate(points):
        if point.value is None:
            continue
        x, y = LEFT + (index + 0.5) * slot, HEIGHT - BOTTOM - plot * point.value / top
        coordinates.append(f"{x:.1f},{y:.1f}")
        marks.append(
            f'<circle class="mark" data-value="{point.value:g}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>{escape(point.label)}: {escape(unit(point.value))}</title></circle>"
        )
    path = f'<polyline class="line" points="{" ".join(coordinates)}"/>' if len(coordinates) > 1 else ""
    return _frame(chart_id, title, path + "".join(marks), top, unit, points)
