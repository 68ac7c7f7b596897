"""Server-rendered SVG line charts, generic: nothing here knows about the archive.

A `Chart` holds named `Series` of `Point`s; `render_svg` draws it (axes with
"nice" ticks, gridlines, legend, one hover-titled marker per point),
`chart_csv` and `chart_json` give the same data for download. Learning-rate
schedules, error rates and (later) replayed train/test curves all go through
here, so no rule in this module is specific to one of them.

Drawing rules:

- Linear axes: ticks at 1, 2 or 5 × 10^k, about five per axis; the domain is
  the ticks' span, so the data never touches the frame. All-equal values or a
  single point get a unit-sized domain around them.
- Log axes (y only): a major tick and label per decade, minor ticks at 2..9 ×
  the decade. Values <= 0 have no logarithm; they are drawn on a dashed row
  labelled "0" below the lowest decade, and the legend says so (a learning rate
  of exactly 0 -- "set epsw to 0 on conv1" -- is common in the log).
- Series styles: "line" (a polyline), "step" (the value holds until the next
  point: horizontal, then vertical -- a learning rate changed at an epoch),
  "points" (markers only). Colours cycle through the 8 Okabe-Ito colours; dash
  pattern and marker shape change too, so the 9th series differs from the 1st.
- Every point has a marker with a `<title>` ("series — x: 26, y: 0.001" and its
  label); a point with an href is wrapped in `<a href>` (the link is passed
  through `href`, a caller's map from canonical site paths to page URLs).
- Every piece of text is escaped; output is deterministic (same chart, same bytes).
"""
from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Point", "Series", "Chart", "render_svg", "chart_csv", "chart_json", "format_number",
           "linear_ticks", "log_decades", "sanitize_id", "PALETTE"]

# Okabe-Ito: colour-blind safe, reads on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond", "cross")
STYLES = ("line", "step", "points")


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str | None = None
    href: str | None = None  # a canonical site path ("/files/layers/x.cfg#L12")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: tuple[Point, ...]
    style: str = "line"  # "line" | "step" | "points"
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    y_scale: str = "linear"  # "linear" | "log"
    x_scale: str = "linear"
    notes: tuple[str, ...] = ()
    # x values the axis must reach even without a point there (epoch 0 and the last logged epoch,
    # so an experiment's charts share one x range).
    x_extent: tuple[float, ...] = ()


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize_id(text: str) -> str:
    """An id for URLs and element ids: only [A-Za-z0-9_.-], others become '_'."""
    return _UNSAFE_ID.sub("_", text) or "_"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def format_number(value: float) -> str:
    """A short readable number: 26, 0.001, 1e-5, 1.634692, 2.5e+6 -> "2.5e6"."""
    if value == 0:
        return "0"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    text = f"{value:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def _decade_label(exponent: int) -> str:
    # One form for every decade label: plain decimals from 0.001 to 1000, "1e-5" beyond.
    if -3 <= exponent <= 3:
        return format_number(10.0 ** exponent) if exponent >= 0 else f"{10.0 ** exponent:.{-exponent}f}"
    return f"1e{exponent}"


def _nice_step(raw: float) -> float:
    exponent = math.floor(math.log10(raw))
    fraction = raw / 10 ** exponent
    # Heckbert's rounding ("Nice numbers for graph labels", Graphics Gems 1990).
    nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    return nice * 10.0 ** exponent


def linear_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Ticks at 1-2-5 steps covering [low, high]; a degenerate range widens to a unit one."""
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.5 if low else 1.0
        low, high = low - pad, high + pad
    step = _nice_step((high - low) / target)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    # round() keeps 0.1*3 from printing as 0.30000000000000004.
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(i * step, digits) for i in range(first, last + 1)]


def log_decades(low: float, high: float) -> tuple[int, int]:
    """(first, last) decade exponents covering [low, high] (both > 0), at least one decade apart."""
    first = math.floor(math.log10(low) + 1e-9)
    last = math.ceil(math.log10(high) - 1e-9)
    if last <= first:
        first, last = first, first + 1
    return first, last


def _tick_label(value: float, step: float) -> str:
    if float(value).is_integer():
        return format_number(value)
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


class _Scale:
    """Data -> pixel along one axis."""

    def __init__(self, kind: str, values: list[float], lo_px: float, hi_px: float):
        self.kind = kind
        self.lo_px, self.hi_px = lo_px, hi_px
        self.has_zero_row = False
        self.zero_px = lo_px
        if kind == "log":
            positive = [v for v in values if v > 0]
            self.has_zero_row = len(positive) < len(values)
            if positive:
                self.first, self.last = log_decades(min(positive), max(positive))
            else:
                self.first, self.last = -1, 0
            if self.has_zero_row:
                # The "0" row sits below the lowest decade (towards lo_px), 18 px apart.
                self.zero_px = lo_px
                self.lo_px = lo_px + (18 if hi_px > lo_px else -18)
            self.ticks = [float(10.0 ** e) for e in range(self.first, self.last + 1)]
            self.low, self.high = 10.0 ** self.first, 10.0 ** self.last
        else:
            ticks = linear_ticks(min(values), max(values)) if values else [0.0, 1.0]
            self.ticks = ticks
            self.low, self.high = ticks[0], ticks[-1]
            self.step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0

    def __call__(self, value: float) -> float:
        if self.kind == "log":
            if value <= 0:
                return self.zero_px
            t = (math.log10(value) - self.first) / (self.last - self.first)
        else:
            t = (value - self.low) / (self.high - self.low)
        return self.lo_px + t * (self.hi_px - self.lo_px)

    def label(self, tick: float) -> str:
        if self.kind == "log":
            return _decade_label(round(math.log10(tick)))
        return _tick_label(tick, self.step)

    def minor_ticks(self) -> list[float]:
        if self.kind != "log":
            return []
        return [m * 10.0 ** e for e in range(self.first, self.last) for m in range(2, 10)]


def _fmt_px(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _marker(shape: str, x: float, y: float, colour: str, cls: str, size: float = 3.5) -> str:
    common = f'class="{cls}" fill="{colour}" stroke="{colour}"'
    if shape == "circle":
        return f'<circle {common} cx="{_fmt_px(x)}" cy="{_fmt_px(y)}" r="{_fmt_px(size)}"/>'
    if shape == "square":
        return (f'<rect {common} x="{_fmt_px(x - size)}" y="{_fmt_px(y - size)}" '
                f'width="{_fmt_px(2 * size)}" height="{_fmt_px(2 * size)}"/>')
    if shape == "triangle":
        d = f"M{_fmt_px(x)},{_fmt_px(y - size * 1.2)} L{_fmt_px(x + size * 1.1)},{_fmt_px(y + size)} " \
            f"L{_fmt_px(x - size * 1.1)},{_fmt_px(y + size)} Z"
    elif shape == "diamond":
        d = f"M{_fmt_px(x)},{_fmt_px(y - size * 1.3)} L{_fmt_px(x + size * 1.3)},{_fmt_px(y)} " \
            f"L{_fmt_px(x)},{_fmt_px(y + size * 1.3)} L{_fmt_px(x - size * 1.3)},{_fmt_px(y)} Z"
    else:  # cross: drawn with a thick stroke, a transparent-looking fill would hide it
        d = f"M{_fmt_px(x - size)},{_fmt_px(y - size)} L{_fmt_px(x + size)},{_fmt_px(y + size)} " \
            f"M{_fmt_px(x - size)},{_fmt_px(y + size)} L{_fmt_px(x + size)},{_fmt_px(y - size)}"
        return f'<path class="{cls}" fill="none" stroke="{colour}" stroke-width="2" d="{d}"/>'
    return f'<path {common} d="{d}"/>'


def _series_look(index: int) -> tuple[str, str, str]:
    """(colour, dash, marker) of the index-th series: after 8 colours the dash changes, and
    the marker shape shifts each round, so no two of the first 32 series look alike."""
    colour = PALETTE[index % len(PALETTE)]
    dash = DASHES[(index // len(PALETTE)) % len(DASHES)]
    marker = MARKERS[(index + index // len(PALETTE)) % len(MARKERS)]
    return colour, dash, marker


def _step_path(pixels: list[tuple[float, float]]) -> str:
    parts = [f"{_fmt_px(pixels[0][0])},{_fmt_px(pixels[0][1])}"]
    for (_, y0), (x1, y1) in zip(pixels, pixels[1:]):
        parts.append(f"{_fmt_px(x1)},{_fmt_px(y0)}")
        parts.append(f"{_fmt_px(x1)},{_fmt_px(y1)}")
    return " ".join(parts)


def _hover(series: Series, point: Point) -> str:
    text = f"{series.name} — x: {format_number(point.x)}, y: {format_number(point.y)}"
    if point.label:
        text += "\n" + point.label
    return text


def render_svg(chart: Chart, *, width: int = 720, height: int = 320, y_scale: str | None = None,
               href: Callable[[str], str] | None = None, id_prefix: str | None = None) -> str:
    """The chart as one standalone `<svg>` element (a str).

    width/height: the plot figure (title, axes, axis labels); the legend rows are
    added below it, so the SVG is taller by them. y_scale overrides the chart's.
    href maps a point's canonical path to the page's URL (identity by default).
    id_prefix: prefix of every element id (default: the chart's id)."""
    to_url = href or (lambda path: path)
    prefix = sanitize_id(id_prefix if id_prefix is not None else chart.id)
    scale_kind = y_scale or chart.y_scale
    points = [p for s in chart.series for p in s.points]
    finite = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    title_id, desc_id = f"{prefix}-title", f"{prefix}-desc"
    desc = chart.title
    if chart.notes:
        desc += ". " + " ".join(chart.notes)

    margin_left, margin_right, margin_top, margin_bottom = 68, 16, 30, 44
    plot_left, plot_right = margin_left, width - margin_right
    plot_top, plot_bottom = margin_top, height - margin_bottom

    legend_entries: list[tuple[str, int | None]] = [(s.name, i) for i, s in enumerate(chart.series)]
    zero_values = scale_kind == "log" and any(p.y <= 0 for p in finite)
    if zero_values:
        legend_entries.append(("values ≤ 0 cannot be drawn on a log scale: shown on the dashed “0” row", None))
    legend_columns = 2 if width >= 560 else 1
    legend_rows = math.ceil(len(legend_entries) / legend_columns) if finite else 0
    total_height = height + (legend_rows * 18 + 8 if legend_rows else 0)

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {total_height}" '
        f'width="100%" style="max-width:{width}px;height:auto" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{title_id}">{_esc(chart.title)}</title>',
        f'<desc id="{desc_id}">{_esc(desc)}</desc>',
        f'<rect class="chart-bg" x="0" y="0" width="{width}" height="{total_height}" fill="#ffffff"/>',
        f'<text class="chart-title" x="{plot_left}" y="18" font-size="14" font-weight="bold" '
        f'fill="#000000">{_esc(chart.title)}</text>',
    ]

    if not finite:
        out.append(f'<rect class="frame" x="{plot_left}" y="{plot_top}" width="{plot_right - plot_left}" '
                   f'height="{plot_bottom - plot_top}" fill="none" stroke="#999999"/>')
        out.append(f'<text class="no-data" x="{_fmt_px((plot_left + plot_right) / 2)}" '
                   f'y="{_fmt_px((plot_top + plot_bottom) / 2)}" text-anchor="middle" fill="#555555">no data</text>')
        out.append("</svg>")
        return "\n".join(out)

    xs = _Scale("linear", [p.x for p in finite] + [x for x in chart.x_extent if math.isfinite(x)],
                plot_left, plot_right)
    ys = _Scale(scale_kind, [p.y for p in finite], plot_bottom, plot_top)

    # Gridlines and ticks.
    out.append('<g class="grid" stroke="#e5e5e5" stroke-width="1">')
    for tick in xs.ticks:
        px = _fmt_px(xs(tick))
        out.append(f'<line class="grid-x" x1="{px}" y1="{plot_top}" x2="{px}" y2="{plot_bottom}"/>')
    for tick in ys.ticks:
        py = _fmt_px(ys(tick))
        out.append(f'<line class="grid-y" x1="{plot_left}" y1="{py}" x2="{plot_right}" y2="{py}"/>')
    for tick in ys.minor_ticks():
        py = _fmt_px(ys(tick))
        out.append(f'<line class="grid-y minor" x1="{plot_left}" y1="{py}" x2="{plot_right}" y2="{py}" '
                   f'stroke="#f3f3f3"/>')
    out.append("</g>")

    out.append('<g class="axes" stroke="#333333" fill="#333333">')
    out.append(f'<line class="axis-x" x1="{plot_left}" y1="{plot_bottom}" x2="{plot_right}" y2="{plot_bottom}"/>')
    out.append(f'<line class="axis-y" x1="{plot_left}" y1="{plot_top}" x2="{plot_left}" y2="{plot_bottom}"/>')
    for tick in xs.ticks:
        px = _fmt_px(xs(tick))
        out.append(f'<line class="tick" x1="{px}" y1="{plot_bottom}" x2="{px}" y2="{plot_bottom + 4}"/>')
        out.append(f'<text class="tick-label" x="{px}" y="{plot_bottom + 16}" text-anchor="middle" '
                   f'stroke="none">{_esc(xs.label(tick))}</text>')
    for tick in ys.ticks:
        py = _fmt_px(ys(tick))
        out.append(f'<line class="tick" x1="{plot_left - 4}" y1="{py}" x2="{plot_left}" y2="{py}"/>')
        out.append(f'<text class="tick-label" x="{plot_left - 6}" y="{py}" dy="0.32em" text-anchor="end" '
                   f'stroke="none">{_esc(ys.label(tick))}</text>')
    for tick in ys.minor_ticks():
        py = _fmt_px(ys(tick))
        out.append(f'<line class="tick minor" x1="{plot_left - 2}" y1="{py}" x2="{plot_left}" y2="{py}"/>')
    if ys.has_zero_row:
        py = _fmt_px(ys.zero_px)
        out.append(f'<line class="zero-row" x1="{plot_left}" y1="{py}" x2="{plot_right}" y2="{py}" '
                   f'stroke="#999999" stroke-dasharray="4 3"/>')
        out.append(f'<text class="tick-label zero-label" x="{plot_left - 6}" y="{py}" dy="0.32em" '
                   f'text-anchor="end" stroke="none">0</text>')
    out.append(f'<text class="axis-label" x="{_fmt_px((plot_left + plot_right) / 2)}" y="{height - 8}" '
               f'text-anchor="middle" stroke="none">{_esc(chart.x_label)}</text>')
    mid_y = _fmt_px((plot_top + plot_bottom) / 2)
    out.append(f'<text class="axis-label" x="14" y="{mid_y}" text-anchor="middle" stroke="none" '
               f'transform="rotate(-90 14 {mid_y})">{_esc(chart.y_label)}</text>')
    out.append("</g>")

    # Series.
    for index, series in enumerate(chart.series):
        colour, dash, shape = _series_look(index)
        drawn = [p for p in series.points if math.isfinite(p.x) and math.isfinite(p.y)]
        cls = f"series s{index} {series.style if series.style in STYLES else 'line'}"
        out.append(f'<g class="{cls}" data-series="{_esc(series.name)}">')
        pixels = [(xs(p.x), ys(p.y)) for p in drawn]
        if len(pixels) > 1 and series.style != "points":
            coords = _step_path(pixels) if series.style == "step" else \
                " ".join(f"{_fmt_px(x)},{_fmt_px(y)}" for x, y in pixels)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<polyline class="series-line" points="{coords}" fill="none" stroke="{colour}" '
                       f'stroke-width="1.8"{dash_attr}/>')
        for point, (px, py) in zip(drawn, pixels):
            marker = (f'<g class="point"><title>{_esc(_hover(series, point))}</title>'
                      f'{_marker(shape, px, py, colour, "marker")}</g>')
            if point.href:
                marker = f'<a href="{_esc(to_url(point.href))}">{marker}</a>'
            out.append(marker)
        out.append("</g>")

    # Legend, below the figure.
    column_width = (width - plot_left) / legend_columns
    out.append('<g class="legend">')
    for position, (name, index) in enumerate(legend_entries):
        column, row = position % legend_columns, position // legend_columns
        lx = plot_left + column * column_width
        ly = height + 10 + row * 18
        if index is None:
            out.append(f'<line class="legend-zero" x1="{_fmt_px(lx)}" y1="{ly}" x2="{_fmt_px(lx + 24)}" y2="{ly}" '
                       f'stroke="#999999" stroke-dasharray="4 3"/>')
        else:
            colour, dash, shape = _series_look(index)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            if chart.series[index].style != "points":
                out.append(f'<line class="legend-line" x1="{_fmt_px(lx)}" y1="{ly}" x2="{_fmt_px(lx + 24)}" '
                           f'y2="{ly}" stroke="{colour}" stroke-width="1.8"{dash_attr}/>')
            out.append(_marker(shape, lx + 12, ly, colour, "legend-marker"))
        out.append(f'<text class="legend-label" x="{_fmt_px(lx + 30)}" y="{ly}" dy="0.32em" '
                   f'fill="#000000">{_esc(name)}</text>')
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def chart_csv(chart: Chart) -> str:
    """Every point as a row: series,x,y,label (RFC 4180 quoting, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # the csv module's default dialect quotes as RFC 4180 asks
    writer.writerow(["series", "x", "y", "label"])
    for series in chart.series:
        for point in series.points:
            writer.writerow([series.name, repr(float(point.x)), repr(float(point.y)), point.label or ""])
    return buffer.getvalue()


def chart_json(chart: Chart) -> dict:
    """The chart's data as plain JSON (a public interface: keys are stable)."""
    return {
        "id": chart.id,
        "title": chart.title,
        "x_label": chart.x_label,
        "y_label": chart.y_label,
        "y_scale": chart.y_scale,
        "series": [{"name": s.name, "style": s.style, "group": s.group,
                    "points": [{"x": p.x, "y": p.y, "label": p.label, "href": p.href} for p in s.points]}
                   for s in chart.series],
        "notes": list(chart.notes),
    }
