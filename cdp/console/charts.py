"""Charts as server-side SVG: nothing to download, nothing run in the browser.

Each function returns markup for an inline ``<svg role="img">`` with a
``<title>`` (what screen readers say) and the values as ``<title>`` of each
mark (shown on hover); pages put the same numbers in a table beside the chart
(the chart is never the only way to read them). Colours come from classes
styled in ``static/console.css`` (the CSP allows no inline style).

- :func:`line`: one or more series over ordered labels (events per day...);
- :func:`bars`: one value per label, vertical (revenue per month...);
- :func:`hbars`: one value per label, horizontal (funnel steps, ladders);
- :func:`heatmap`: a grid of shares 0..1 (cohort retention).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from markupsafe import Markup

WIDTH: Final = 720
HEIGHT: Final = 240
PAD: Final = 36


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.2f}"


def _svg(title: str, width: int, height: int, body: list[str]) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{label}</title>{"".join(body)}</svg>'
    )


def _axis_labels(labels: Sequence[str], x_of: list[float], height: int) -> list[str]:
    step = max(1, len(labels) // 8)  # at most ~8 labels under the axis
    return [
        f'<text class="axis" x="{x_of[i]:.1f}" y="{height - 8}" text-anchor="middle">'
        f"{escape(str(labels[i]))}</text>"
        for i in range(0, len(labels), step)
    ]


def line(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float]], unit: str = ""
) -> Markup:
    """Lines of ``series`` (name → values, one per label)."""
    if not labels:
        return _svg(title, WIDTH, 60, ['<text class="axis" x="8" y="30">–</text>'])
    top = max((max(v) for v in series.values() if v), default=0) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    x_of = [PAD + (inner_w * i / max(1, len(labels) - 1)) for i in range(len(labels))]
    body = [
        f'<line class="grid" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>',
        f'<text class="axis" x="4" y="{PAD}">{escape(_fmt(top))}{escape(unit)}</text>',
    ]
    for n, (name, values) in enumerate(series.items()):
        points = " ".join(
            f"{x_of[i]:.1f},{HEIGHT - PAD - inner_h * v / top:.1f}" for i, v in enumerate(values)
        )
        body.append(f'<polyline class="series s{n % 4}" points="{points}" fill="none"/>')
        body.extend(
            f'<circle class="dot s{n % 4}" cx="{x_of[i]:.1f}" cy="{HEIGHT - PAD - inner_h * v / top:.1f}"'
            f' r="3"><title>{escape(str(name))} {escape(str(labels[i]))}: {escape(_fmt(v))}{escape(unit)}'
            "</title></circle>"
            for i, v in enumerate(values)
        )
    body.extend(_axis_labels(labels, x_of, HEIGHT))
    return _svg(title, WIDTH, HEIGHT, body)


def bars(title: str, labels: Sequence[str], values: Sequence[float], unit: str = "") -> Markup:
    """Vertical bars, one per label."""
    if not labels:
        return _svg(title, WIDTH, 60, ['<text class="axis" x="8" y="30">–</text>'])
    top = max(values) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    slot = inner_w / len(labels)
    x_of = [PAD + slot * (i + 0.5) for i in range(len(labels))]
    body = [f'<text class="axis" x="4" y="{PAD}">{escape(_fmt(top))}{escape(unit)}</text>']
    for i, value in enumerate(values):
        h = inner_h * max(0.0, value) / top
        body.append(
            f'<rect class="bar" x="{x_of[i] - slot * 0.35:.1f}" y="{HEIGHT - PAD - h:.1f}"'
            f' width="{slot * 0.7:.1f}" height="{h:.1f}"><title>{escape(str(labels[i]))}: '
            f"{escape(_fmt(value))}{escape(unit)}</title></rect>"
        )
    body.extend(_axis_labels(labels, x_of, HEIGHT))
    return _svg(title, WIDTH, HEIGHT, body)


def hbars(title: str, labels: Sequence[str], values: Sequence[float]) -> Markup:
    """Horizontal bars with their values written beside them (funnels, ladders)."""
    row = 30
    height = row * len(labels) + 10
    top = max(values, default=0) or 1
    label_w, inner_w = 200, WIDTH - 200 - 90
    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        w = inner_w * max(0.0, value) / top
        body.append(
            f'<text class="label" x="{label_w - 8}" y="{y + 19}" text-anchor="end">'
            f"{escape(str(label))}</text>"
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 8}">'
            f"<title>{escape(str(label))}: {escape(_fmt(value))}</title></rect>"
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 19}">{escape(_fmt(value))}</text>'
        )
    return _svg(title, WIDTH, height, body)


def heatmap(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    shares: Sequence[Sequence[float | None]],
) -> Markup:
    """A grid of shares in 0..1 (``None``: not yet observable), darker = higher,
    each cell labelled with its percentage."""
    cell_w, cell_h, left, top = 48, 24, 90, 24
    width = left + cell_w * max(1, len(columns)) + 4
    height = top + cell_h * len(rows) + 4
    body = [
        f'<text class="axis" x="{left + cell_w * j + cell_w / 2}" y="16" text-anchor="middle">'
        f"{escape(str(c))}</text>"
        for j, c in enumerate(columns)
    ]
    for i, name in enumerate(rows):
        y = top + cell_h * i
        body.append(
            f'<text class="axis" x="{left - 6}" y="{y + 16}" text-anchor="end">{escape(str(name))}</text>'
        )
        for j, share in enumerate(shares[i]):
            if share is None:
                continue
            level = min(9, int(share * 10))
            pct = f"{share * 100:.0f}%"
            body.append(
                f'<rect class="heat h{level}" x="{left + cell_w * j}" y="{y}" width="{cell_w - 2}"'
                f' height="{cell_h - 2}"><title>{escape(str(name))} {escape(str(columns[j]))}: {pct}'
                f'</title></rect><text class="heat-text{" dark" if level >= 5 else ""}"'
                f' x="{left + cell_w * j + cell_w / 2 - 1}" y="{y + 16}" text-anchor="middle">{pct}</text>'
            )
    return _svg(title, width, height, body)
