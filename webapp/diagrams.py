"""SVG diagrams of the museum site: the network of one layer file, the family
tree of the experiments, and the summer-2012 timeline of the training runs.

Each generator is a plain function returning SVG text (no Jinja, no FastAPI).
Every piece of text from the archive is escaped; element ids carry the caller's
prefix; output is deterministic (same input, same bytes). Links never get built
here: the caller's `href` maps a canonical site path ("/experiments/120") to
what goes into the page. Elements carry CSS classes *and* inline presentation
attributes, so a downloaded .svg reads on its own.
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from archive.layers import LayerDef, LayerGraph

Href = Callable[[str], str]

# Okabe-Ito: reads on white and for colour-blind visitors.
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
GREY, INK, FAINT = "#999999", "#222222", "#f4f4f4"
# Attribute snippets (f-string expressions may not hold backslashes before Python 3.12).
OPACITY_75, OPACITY_25, OPACITY_20 = ' opacity="0.75"', ' opacity="0.25"', ' opacity="0.2"'
DASH_5_3 = ' stroke-dasharray="5 3"'
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12"'


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    """Coordinates with at most one decimal, no trailing zeros (stable, compact output)."""
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def _text_width(text: str, font_size: float, bold: bool = False) -> float:
    """A generous estimate of a sans-serif string's width (no font metrics in stdlib)."""
    return len(text) * font_size * (0.64 if bold else 0.58)


def _fit(text: str, width: float, font_size: float, bold: bool = False) -> str:
    """`text`, cut with an ellipsis to fit `width` (the full text stays in the hover title)."""
    if _text_width(text, font_size, bold) <= width:
        return text
    keep = max(1, int(width / (font_size * (0.64 if bold else 0.58))) - 1)
    return text[:keep] + "…"


def _svg_open(width: float, height: float, id_prefix: str, title: str, desc: str, css_class: str) -> list[str]:
    tid, did = f"{id_prefix}-title", f"{id_prefix}-desc"
    return [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram {_esc(css_class)}" id="{_esc(id_prefix)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" width="100%" style="max-width:{_num(width)}px;height:auto" '
        f'role="img" aria-labelledby="{_esc(tid)} {_esc(did)}" {FONT}>'),
        f'<title id="{_esc(tid)}">{_esc(title)}</title>',
        f'<desc id="{_esc(did)}">{_esc(desc)}</desc>',
    ]


def _legend(items: Sequence[tuple[str, str, str, str]], x: float, y: float, id_prefix: str) -> tuple[list[str], float]:
    """A one-line legend: items are (css class, stroke, fill, label). Returns (elements, width)."""
    out = [f'<g class="legend" id="{_esc(id_prefix)}-legend">']
    cursor = x
    for css_class, stroke, fill, label in items:
        dash = ' stroke-dasharray="4 2"' if "dashed" in css_class.split() else ""
        out.append(f'<rect class="swatch {_esc(css_class)}" x="{_num(cursor)}" y="{_num(y - 10)}" width="14" '
                   f'height="12" rx="2" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>')
        out.append(f'<text x="{_num(cursor + 19)}" y="{_num(y)}" fill="{INK}">{_esc(label)}</text>')
        cursor += 19 + _text_width(label, 12) + 16
    out.append("</g>")
    return out, cursor - x


def _tint(colour: str, amount: float = 0.18) -> str:
    """`colour` mixed with white (a light fill that keeps dark text readable)."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(255 - (255 - c) * amount) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


# =============================================================================================
# 1. The network, lane per GPU (the AlexNet paper's Figure 2)

LAYER_W, LAYER_H = 132, 50
LAYER_GAP_X, LAYER_GAP_Y = 14, 30   # between boxes side by side / between depth bands
LANE_PAD = 12                       # inside a lane, left and right of its boxes
MAX_SIDE_BY_SIDE = 3                # more boxes of one lane at one depth wrap into sub-rows
NET_MARGIN, NET_HEADER = 16, 64

# status (compare page) -> (stroke, fill, dashed)
STATUS_STYLE = {
    "added": (GREEN, _tint(GREEN), False),
    "removed": (VERMILLION, "#eeeeee", True),
    "changed": (ORANGE, _tint(ORANGE), False),
    "moved": (PURPLE, _tint(PURPLE), False),
    "same": ("#555555", "#ffffff", False),
}
LANE_FILLS = ("#eef5fb", "#fdf6e8", "#edf7f3", "#f8eff5")


def layer_shape_text(layer: LayerDef) -> str:
    """"55×55×48" for an image output, else the number of outputs, "?" when unknown."""
    if layer.img_size is not None and layer.channels is not None:
        return f"{layer.img_size}×{layer.img_size}×{layer.channels}"
    if layer.is_cost:
        return "cost"  # layer.py gives cost layers outputs=0: there is no activation to show
    return str(layer.outputs) if layer.outputs is not None else "?"


def _layer_type_text(layer: LayerDef) -> str:
    return f"{layer.type} · {layer.neuron}" if layer.neuron else layer.type


def _lane_key(layer: LayerDef) -> str:
    """The lane a layer is drawn in: "data" (the shared band, gpu -1), "gpu N", or "unknown"."""
    if layer.gpu is None:
        return "unknown"
    if layer.gpu < 0:
        return "data"
    return f"gpu {layer.gpu}"


def _longest_paths(order: Sequence[str], sources: Callable[[str], Iterable[str]]) -> dict[str, int]:
    """Each node's longest path from a node without sources (layer depth, family generation).
    A cycle (the release has none; a broken file may) is cut where the walk meets a node
    already on its path."""
    depth: dict[str, int] = {}
    on_path: set[str] = set()

    def visit(name: str) -> int:
        if name in depth:
            return depth[name]
        on_path.add(name)
        best = 0
        for source in sources(name):
            if source not in on_path and source != name:
                best = max(best, visit(source) + 1)
        on_path.discard(name)
        depth[name] = best
        return best

    for name in order:
        visit(name)
    return depth


def _depths(layers: Sequence[LayerDef]) -> dict[str, int]:
    by_name = {layer.name: layer for layer in layers}
    return _longest_paths([layer.name for layer in layers],
                          lambda name: [source for source in by_name[name].inputs if source in by_name])


@dataclass(frozen=True, slots=True)
class Box:
    """A drawn rectangle (exposed so tests and callers can check the layout)."""

    key: str
    x: float
    y: float
    width: float
    height: float


def network_svg(graph: LayerGraph, *, href: Href, id_prefix: str, status: Mapping[str, str] | None = None,
                extra_layers: Sequence[LayerDef] = (), title: str = "") -> str:
    """The layer graph as the AlexNet paper drew it: a vertical lane per GPU, a shared
    "data" band on top (data layers have gpu -1), an "unknown" lane for layers whose gpu
    cannot be known; layers flow down by depth (longest path from the data layers).
    Each data box sits above the lane that uses it most (labels above the cost layer's
    lane), inside one lane. An edge between neighbouring rows is an S-curve; one that would
    pass other boxes (labels → logprob, nails0 → conv2*) is routed around them, class
    "edge routed": along the gap below its source, down a free gutter, into its target.

    Each box shows name, type (· neuron) and output shape, links to the layer's line in
    its file (``href("/files/<path>#L<line>")``) and hovers name, type, shape, parameters,
    gpu and inputs. Edges whose ends sit on different GPUs (the model-parallel traffic)
    are dashed, class "edge cross-gpu".

    Visual diff (compare page): `status` maps layer name -> "added" | "removed" |
    "changed" | "moved" | "same" (missing names: "same"); boxes get that class and
    colour and a legend is drawn. `extra_layers` are layers of the *other* graph
    (the removed ones) drawn greyed and dashed among these; an extra layer whose
    name this graph also has is ignored.
    """
    own_names = {layer.name for layer in graph.layers}
    extras = [layer for layer in extra_layers if layer.name not in own_names]
    extra_names = {layer.name for layer in extras}
    # A name defined twice would make two boxes with one id; the parser merges repeated
    # sections (Python 2 ConfigParser), so this only guards hand-made graphs.
    layers: list[LayerDef] = []
    seen: set[str] = set()
    for layer in list(graph.layers) + extras:
        if layer.name not in seen:
            seen.add(layer.name)
            layers.append(layer)
    by_name = {layer.name: layer for layer in layers}
    depth = _depths(layers)

    def layer_status(name: str) -> str | None:
        if name in extra_names:
            return "removed"
        if status is None:
            return None
        value = status.get(name, "same")
        return value if value in STATUS_STYLE else "same"

    # Lanes: gpu 0, gpu 1, ... then unknown. The data band spans them all.
    gpus = sorted({layer.gpu for layer in layers if layer.gpu is not None and layer.gpu >= 0})
    lanes = [f"gpu {gpu}" for gpu in gpus] + (["unknown"] if any(l.gpu is None for l in layers) else [])

    # Bands top to bottom: per depth, the shared (data) band first, then the lanes' band.
    cells: dict[tuple[int, str], list[LayerDef]] = {}
    for layer in layers:
        cells.setdefault((depth[layer.name], _lane_key(layer)), []).append(layer)
    max_depth = max(depth.values(), default=-1)
    bands: list[tuple[int, bool]] = []  # (depth, shared?)
    for d in range(max_depth + 1):
        if (d, "data") in cells:
            bands.append((d, True))
        if any((d, lane) in cells for lane in lanes):
            bands.append((d, False))

    def span(count: int) -> float:
        return count * LAYER_W + max(0, count - 1) * LAYER_GAP_X

    capacity = {lane: min(MAX_SIDE_BY_SIDE, max((len(cells.get((d, lane), ())) for d in range(max_depth + 1)),
                                                   default=1)) for lane in lanes}
    lane_width = {lane: span(max(1, capacity[lane])) + 2 * LANE_PAD for lane in lanes}
    shared_capacity = max((len(cells.get((d, "data"), ())) for d in range(max_depth + 1)), default=0)
    shared_width = span(shared_capacity) + 2 * LANE_PAD if shared_capacity else 0
    lanes_total = sum(lane_width.values())
    if lanes and shared_width > lanes_total:  # a wide data band: widen every lane alike
        extra = (shared_width - lanes_total) / len(lanes)
        lane_width = {lane: width + extra for lane, width in lane_width.items()}
        lanes_total = shared_width
    # The note on top ("layers/....cfg · 13 layers · ...") must fit too: widen the lanes alike.
    cross_gpu = cross_gpu_edges(graph)
    note = (f"{graph.path} · {len(graph.layers)} layers · "
            f"{cross_gpu} cross-GPU connection{'s' if cross_gpu != 1 else ''} (dashed)")
    note_width = _text_width(note, 10.5)
    if lanes and note_width > max(lanes_total, shared_width):
        extra = (note_width - lanes_total) / len(lanes)
        lane_width = {lane: width + extra for lane, width in lane_width.items()}
        lanes_total = note_width
    content_width = max(lanes_total, shared_width, 2 * LANE_PAD + LAYER_W, note_width)
    lane_x: dict[str, float] = {}
    cursor = NET_MARGIN
    for lane in lanes:
        lane_x[lane] = cursor
        cursor += lane_width[lane]

    # Place band by band; inside a cell, order boxes by where their inputs sit (fewer crossings).
    boxes: dict[str, Box] = {}
    y = NET_MARGIN + NET_HEADER
    band_spans: list[tuple[bool, float, float]] = []

    def centre_of_inputs(layer: LayerDef, fallback: float) -> float:
        xs = [boxes[s].x + LAYER_W / 2 for s in layer.inputs if s in boxes]
        return sum(xs) / len(xs) if xs else fallback

    file_order = {layer.name: i for i, layer in enumerate(layers)}

    def per_row_in(width: float) -> int:
        return max(1, int((width - 2 * LANE_PAD + LAYER_GAP_X) // (LAYER_W + LAYER_GAP_X)))

    consumer_lanes: dict[str, list[str]] = {}
    for layer in layers:
        for source in dict.fromkeys(layer.inputs):
            if source in by_name and _lane_key(layer) in lanes:
                consumer_lanes.setdefault(source, []).append(_lane_key(layer))

    def shared_band_groups(members: list[LayerDef]) -> list[tuple[str, float, float, list[LayerDef]]]:
        """The data band: each box above the lane that uses it most (labels over the lane of the
        cost layer), so no box straddles a lane boundary; one centred row when that cannot fit."""
        room = {lane: per_row_in(lane_width[lane]) for lane in lanes}
        placed_in: dict[str, list[LayerDef]] = {lane: [] for lane in lanes}
        for layer in sorted(members, key=lambda l: file_order[l.name]):
            users = consumer_lanes.get(layer.name, [])
            preferred = min(lanes, key=lambda lane: (-users.count(lane), lanes.index(lane))) if lanes else None
            free = [lane for lane in lanes if len(placed_in[lane]) < room[lane]]
            if preferred is None or not free:
                return [("data", NET_MARGIN, content_width, members)]
            home = preferred if preferred in free else \
                min(free, key=lambda lane: (abs(lanes.index(lane) - lanes.index(preferred)), lanes.index(lane)))
            placed_in[home].append(layer)
        return [(lane, lane_x[lane], lane_width[lane], placed_in[lane]) for lane in lanes]

    for d, shared in bands:
        groups = shared_band_groups(cells.get((d, "data"), [])) if shared else \
            [(lane, lane_x[lane], lane_width[lane], cells.get((d, lane), [])) for lane in lanes]
        rows_in_band = 1
        for lane, left, width, members in groups:
            if not members:
                continue
            per_row = per_row_in(width)
            ordered = sorted(members, key=lambda l: (centre_of_inputs(l, left), file_order[l.name]))
            rows = math.ceil(len(ordered) / per_row)
            rows_in_band = max(rows_in_band, rows)
            for row in range(rows):
                chunk = ordered[row * per_row:(row + 1) * per_row]
                start = left + (width - span(len(chunk))) / 2
                for i, layer in enumerate(chunk):
                    boxes[layer.name] = Box(layer.name, start + i * (LAYER_W + LAYER_GAP_X),
                                            y + row * (LAYER_H + LAYER_GAP_Y / 2), LAYER_W, LAYER_H)
        height = rows_in_band * LAYER_H + (rows_in_band - 1) * LAYER_GAP_Y / 2
        band_spans.append((shared, y, height))
        y += height + LAYER_GAP_Y
    legend_y = y + 4
    total_height = legend_y + (24 if status is not None or extras else 0) + NET_MARGIN
    total_width = content_width + 2 * NET_MARGIN

    out = _svg_open(total_width, total_height, id_prefix, title or f"Layers of {graph.path}",
                    f"{len(graph.layers)} layers of {graph.path} in {len(lanes)} lane(s); "
                    f"arrows run from each layer's inputs to it; dashed arrows cross GPUs.", "network")
    out.append(f'<rect class="background" x="0" y="0" width="{_num(total_width)}" height="{_num(total_height)}" '
               f'fill="#ffffff"/>')
    # Lanes and the data band.
    lane_top, lane_bottom = NET_MARGIN + 24, (legend_y - 10)
    for i, lane in enumerate(lanes):
        css = "lane " + (lane.replace(" ", "") if lane != "unknown" else "unknown")
        fill = LANE_FILLS[i % len(LANE_FILLS)] if lane != "unknown" else FAINT
        out.append(f'<g class="{css}" id="{_esc(id_prefix)}-lane-{_esc(lane.replace(" ", ""))}">')
        out.append(f'<rect x="{_num(lane_x[lane])}" y="{_num(lane_top)}" width="{_num(lane_width[lane])}" '
                   f'height="{_num(lane_bottom - lane_top)}" fill="{fill}" stroke="#ffffff" stroke-width="2"/>')
        label = lane.upper() if lane != "unknown" else "gpu unknown"
        out.append(f'<text x="{_num(lane_x[lane] + lane_width[lane] / 2)}" y="{_num(lane_top + 18)}" '
                   f'text-anchor="middle" font-weight="bold" fill="{INK}">{_esc(label)}</text>')
        out.append("</g>")
    for shared, top, height in band_spans:
        if shared:
            out.append(f'<rect class="band data" x="{_num(NET_MARGIN)}" y="{_num(top - 8)}" '
                       f'width="{_num(content_width)}" height="{_num(height + 16)}" fill="#f2f2f2" '
                       f'stroke="#cccccc" stroke-dasharray="3 3"/>')
            out.append(f'<text class="band-label" x="{_num(NET_MARGIN + 4)}" y="{_num(top + 4)}" '
                       f'font-size="10" fill="#666666">data</text>')

    # Edges (under the boxes): from the bottom of each input to a port on the top of the layer.
    # An edge between neighbouring rows is one S-curve; one that would pass other boxes on its
    # way down (a skipped depth: labels → logprob, nails0 → conv2*) runs along the gap below its
    # source, down a free vertical gutter and along the gap above its target.
    router = _EdgeRouter(list(boxes.values()), total_width)
    out.append('<g class="edges" fill="none">')
    for layer in layers:
        target = boxes[layer.name]
        known = [s for s in layer.inputs if s in boxes]
        for port, source_name in enumerate(known):
            source, source_layer = boxes[source_name], by_name[source_name]
            x1, y1 = source.x + source.width / 2, source.y + source.height
            x2 = target.x + target.width * (port + 1) / (len(known) + 1)
            y2 = target.y
            if y2 <= y1:  # an input drawn beside or below (only in a cyclic, broken file)
                y1 = source.y
            classes = ["edge"]
            stroke, dash, width = "#555555", "", "1.2"
            crosses = (layer.gpu is not None and source_layer.gpu is not None and layer.gpu >= 0
                       and source_layer.gpu >= 0 and layer.gpu != source_layer.gpu)
            if crosses:
                classes.append("cross-gpu")
                stroke, dash, width = VERMILLION, ' stroke-dasharray="5 3"', "1.6"
            if layer.name in extra_names or source_name in extra_names:
                classes.append("removed")
                stroke, dash = GREY, ' stroke-dasharray="2 3"'
            if y2 > y1 and router.blocked(source, target):
                classes.append("routed")
                d = router.route(source_name, source, target, x1, x2)
            else:
                bend = max(18.0, abs(y2 - y1) / 2)
                d = (f"M{_num(x1)},{_num(y1)} C{_num(x1)},{_num(y1 + bend)} "
                     f"{_num(x2)},{_num(y2 - bend)} {_num(x2)},{_num(y2)}")
            out.append(f'<path class="{" ".join(classes)}" d="{d}" stroke="{stroke}" '
                       f'stroke-width="{width}"{dash}><title>{_esc(source_name)} → {_esc(layer.name)}'
                       f'{" (crosses GPUs)" if crosses else ""}</title></path>')
    out.append("</g>")

    # Boxes.
    for layer in layers:
        box = boxes[layer.name]
        state = layer_status(layer.name)
        stroke, fill, dashed = STATUS_STYLE[state] if state else ("#444444", "#ffffff", False)
        classes = ["layer", _lane_key(layer).replace(" ", "")] + ([state] if state else [])
        if layer.is_cost:
            classes.append("cost")
        shape = layer_shape_text(layer)
        hover = [f"{layer.name} ({_layer_type_text(layer)})", f"output: {shape}",
                 f"parameters: {layer.params:,}" if layer.params is not None else "parameters: ?",
                 f"gpu: {layer.gpu if layer.gpu is not None else '?'}",
                 "inputs: " + (", ".join(layer.inputs) if layer.inputs else "none"),
                 f"{layer.span.path}:{layer.span.line}"]
        if state and state != "same":
            hover.insert(0, state.upper())
        link = href(f"/files/{layer.span.path}#L{layer.span.line}")
        out.append(f'<a href="{_esc(link)}"><g class="{" ".join(classes)}" id="{_esc(id_prefix)}-{_esc(layer.name)}"'
                   f'{OPACITY_75 if state == "removed" else ""}>')
        out.append(f'<title>{_esc(chr(10).join(hover))}</title>')
        out.append(f'<rect class="box" x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.width)}" '
                   f'height="{_num(box.height)}" rx="4" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{2 if state not in (None, "same") else 1.2}"'
                   f'{DASH_5_3 if dashed else ""}/>')
        cx = box.x + box.width / 2
        out.append(f'<text x="{_num(cx)}" y="{_num(box.y + 16)}" text-anchor="middle" font-weight="bold" '
                   f'fill="{INK}">{_esc(_fit(layer.name, box.width - 8, 12, True))}</text>')
        out.append(f'<text x="{_num(cx)}" y="{_num(box.y + 30)}" text-anchor="middle" font-size="10.5" '
                   f'fill="#444444">{_esc(_fit(_layer_type_text(layer), box.width - 8, 10.5))}</text>')
        out.append(f'<text class="shape" x="{_num(cx)}" y="{_num(box.y + 44)}" text-anchor="middle" '
                   f'font-size="10.5" fill="{INK}">{_esc(_fit(shape, box.width - 8, 10.5))}</text>')
        out.append("</g></a>")

    if status is not None or extras:
        items = [(f"swatch {name}" + (" dashed" if STATUS_STYLE[name][2] else ""), STATUS_STYLE[name][0],
                  STATUS_STYLE[name][1], name) for name in ("added", "removed", "changed", "moved", "same")]
        legend, _ = _legend(items, NET_MARGIN, legend_y + 12, id_prefix)
        out += legend
    out.append(f'<text class="note" x="{_num(NET_MARGIN)}" y="{_num(NET_MARGIN + 10)}" font-size="10.5" '
               f'fill="#555555">{_esc(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


GUTTER_CLEARANCE = 4.0   # a routed edge keeps this far from every box it passes
GUTTER_COMFORT = 8.0     # ... and, where the gutter is wide enough, this much more
TRACK_STEP = 5.0         # edges of different sources sharing a gutter run side by side
CORNER_RADIUS = 6.0


class _EdgeRouter:
    """Orthogonal routes (with rounded corners) around the boxes for edges that skip rows.

    Boxes stand in rows (one y per row, one height), so the gap between two rows is free
    from side to side; a route goes down from its source into the gap below it, sideways to
    a gutter (an x that no box covers between the two gaps), down the gutter, sideways in
    the gap above its target and down into the target's port."""

    def __init__(self, boxes: list[Box], total_width: float) -> None:
        self.boxes = boxes
        self.row_tops = sorted({box.y for box in boxes})
        self.row_height = max((box.height for box in boxes), default=LAYER_H)
        self.left, self.right = GUTTER_CLEARANCE, total_width - GUTTER_CLEARANCE
        self.tracks: list[tuple[float, float, float, str]] = []  # (x, top, bottom, source) in use

    def blocked(self, source: Box, target: Box) -> bool:
        """Whether another box stands between the source's bottom and the target's top."""
        top, bottom = source.y + source.height, target.y
        return any(box.y < bottom and box.y + box.height > top
                   for box in self.boxes if box is not source and box is not target)

    def _gap_below(self, y: float) -> float:
        below = [t for t in self.row_tops if t >= y]
        return (y + below[0]) / 2 if below else y + LAYER_GAP_Y / 2

    def _gap_above(self, y: float) -> float:
        above = [t + self.row_height for t in self.row_tops if t + self.row_height <= y]
        return (y + above[-1]) / 2 if above else y - LAYER_GAP_Y / 2

    def _free_intervals(self, top: float, bottom: float) -> list[tuple[float, float]]:
        spans = sorted((box.x - GUTTER_CLEARANCE, box.x + box.width + GUTTER_CLEARANCE)
                       for box in self.boxes if box.y < bottom and box.y + box.height > top)
        free, cursor = [], self.left
        for start, end in spans:
            if start > cursor:
                free.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < self.right:
            free.append((cursor, self.right))
        return free

    def route(self, source_name: str, source: Box, target: Box, x1: float, x2: float) -> str:
        y1, y2 = source.y + source.height, target.y
        top, bottom = self._gap_below(y1), self._gap_above(y2)
        low, high = min(x1, x2), max(x1, x2)

        def placement(interval: tuple[float, float]) -> tuple[float, float]:
            """(sideways travel, x) of the best x in `interval`: between x1 and x2 if it can,
            else as near as it can; among equals, the middle of the gutter."""
            a, b = interval
            if a <= x1 <= b or a <= x2 <= b:  # straight down from the source or into the target
                x = x1 if a <= x1 <= b else x2
                return abs(x1 - x) + abs(x - x2), x
            comfort = min(GUTTER_COMFORT, (b - a) / 2)
            a, b = a + comfort, b - comfort
            centre = (a + b) / 2
            if a <= high and b >= low:
                x = min(max(centre, max(a, low)), min(b, high))
            else:
                x = b if b < low else a
            return abs(x1 - x) + abs(x - x2), x

        interval = min(self._free_intervals(top, bottom), key=lambda iv: (placement(iv), iv))
        x = placement(interval)[1]
        # Another source's route already down this gutter: step aside (same source: share it).
        for step in (0, 1, -1, 2, -2, 3, -3, 4, -4):
            candidate = x + step * TRACK_STEP
            if not interval[0] <= candidate <= interval[1]:
                continue
            clash = any(abs(candidate - tx) < TRACK_STEP - 0.5 and t_top < bottom and t_bottom > top
                        and name != source_name for tx, t_top, t_bottom, name in self.tracks)
            if not clash:
                x = candidate
                break
        self.tracks.append((x, top, bottom, source_name))
        return _rounded_path([(x1, y1), (x1, top), (x, top), (x, bottom), (x2, bottom), (x2, y2)],
                             CORNER_RADIUS)


def _rounded_path(points: Sequence[tuple[float, float]], radius: float) -> str:
    """An orthogonal polyline as path data, each corner rounded by a quadratic curve."""
    kept: list[tuple[float, float]] = []
    for point in points:  # drop repeated points and the middle of straight runs
        if kept and abs(point[0] - kept[-1][0]) < 0.05 and abs(point[1] - kept[-1][1]) < 0.05:
            continue
        if len(kept) >= 2 and _collinear(kept[-2], kept[-1], point):
            kept[-1] = point
            continue
        kept.append(point)
    d = f"M{_num(kept[0][0])},{_num(kept[0][1])}"
    for before, corner, after in zip(kept, kept[1:], kept[2:]):
        r = min(radius, math.dist(before, corner) / 2, math.dist(corner, after) / 2)
        ax = corner[0] + (before[0] - corner[0]) * r / math.dist(before, corner)
        ay = corner[1] + (before[1] - corner[1]) * r / math.dist(before, corner)
        bx = corner[0] + (after[0] - corner[0]) * r / math.dist(corner, after)
        by = corner[1] + (after[1] - corner[1]) * r / math.dist(corner, after)
        d += f" L{_num(ax)},{_num(ay)} Q{_num(corner[0])},{_num(corner[1])} {_num(bx)},{_num(by)}"
    d += f" L{_num(kept[-1][0])},{_num(kept[-1][1])}"
    return d


def _collinear(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    return abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) < 0.01


def cross_gpu_edges(graph: LayerGraph) -> int:
    """How many input connections join layers on two different GPUs (model-parallel traffic)."""
    gpu = {layer.name: layer.gpu for layer in graph.layers}
    return sum(1 for layer in graph.layers for source in layer.inputs
               if source in gpu and layer.gpu is not None and gpu[source] is not None
               and layer.gpu >= 0 and gpu[source] >= 0 and layer.gpu != gpu[source])


# =============================================================================================
# 2. The family tree ("this is like #N")

NODE_W, NODE_H = 112, 52           # NODE_W: the narrowest box; a long id widens its box
NODE_PAD = 8                       # left and right of the id inside a box
NODE_MAX_CHARS = 32                # a longer id (none in the release; the longest has 30) is cut with "…"
NODE_GAP_X, GENERATION_GAP = 18, 46
DUMMY_W = 14                       # a long edge's waypoint takes a narrow slot in the layers it crosses
FAMILY_COLOURS = {"ImageNet": BLUE, "CIFAR-10": ORANGE, "Flickr": PURPLE}
UNKNOWN_FAMILY = GREY


def _id_sort_key(eid: str):
    digits = ""
    for char in eid:
        if not char.isdigit():
            break
        digits += char
    prefix = next((p for p in ("cifar-", "example-") if eid.startswith(p)), "")
    return (prefix != "", prefix, int(digits) if digits else 10**9, eid)


def lineage_svg(archive, *, href: Href, id_prefix: str = "lineage", focus: str | None = None,
                only: Iterable[str] | None = None) -> str:
    """The family tree built from "this is like #N" (Experiment.parents/children),
    top to bottom by generation (a child sits below all its parents: longest path
    from a root), each generation ordered by the barycenter heuristic (four sweeps)
    to cut crossings; long edges bend through waypoints between the boxes.

    Boxes: "#id", start date, final top-5; coloured by data set family (legend);
    linked to ``href("/experiments/<id>")``. Parents that are no experiment of the
    archive are dashed "missing" boxes. `focus` highlights one experiment with its
    ancestors and descendants (the rest fade); `only` draws just those ids (the
    experiment page passes its family)."""
    experiments = archive.experiments
    wanted = set(only) if only is not None else None
    nodes: dict[str, None] = {}
    for experiment in archive.sorted_experiments():
        if wanted is None or experiment.id in wanted:
            nodes.setdefault(experiment.id, None)
    for eid in list(nodes):
        for parent in experiments[eid].parents:
            # A "missing" parent: named by a log, but the release has no file for it.
            if parent not in experiments and (wanted is None or parent in wanted):
                nodes.setdefault(parent, None)
    missing = {eid for eid in nodes if eid not in experiments}
    order = sorted(nodes, key=_id_sort_key)
    parents_of = {child: [p for p in dict.fromkeys(experiments[child].parents) if p in nodes and p != child]
                  for child in order if child in experiments}
    children_of: dict[str, list[str]] = {eid: [] for eid in order}
    for child in order:
        for parent in parents_of.get(child, []):
            children_of[parent].append(child)

    # Generations: longest path from a root.
    generation = _longest_paths(order, lambda eid: parents_of.get(eid, []))
    edges = [(p, c) for c in order for p in parents_of.get(c, []) if generation[p] < generation[c]]

    # Waypoints ("dummy" nodes) for edges that skip generations.
    layers: list[list[str]] = [[] for _ in range(max(generation.values(), default=-1) + 1)]
    for eid in order:
        layers[generation[eid]].append(eid)
    ups: dict[str, list[str]] = {eid: [] for eid in order}
    downs: dict[str, list[str]] = {eid: [] for eid in order}
    routes: list[list[str]] = []
    for parent, child in edges:
        route = [parent]
        for g in range(generation[parent] + 1, generation[child]):
            dummy = f"\0{parent}\0{child}\0{g}"
            layers[g].append(dummy)
            ups[dummy], downs[dummy] = [], []
            route.append(dummy)
        route.append(child)
        for a, b in pairwise(route):
            downs[a].append(b)
            ups[b].append(a)
        routes.append(route)

    def sweep(neighbours: dict[str, list[str]], layer_range: range) -> None:
        for g in layer_range:
            index = {n: i for i, n in enumerate(layers[g - (1 if neighbours is ups else -1)])}
            current = {n: i for i, n in enumerate(layers[g])}

            def barycenter(n: str, index: dict[str, int] = index, current: dict[str, int] = current) -> float:
                near = [index[m] for m in neighbours[n] if m in index]
                return sum(near) / len(near) if near else current[n]

            layers[g].sort(key=lambda n: (barycenter(n), current[n]))

    for _ in range(4):
        sweep(ups, range(1, len(layers)))
        sweep(downs, range(len(layers) - 2, -1, -1))
    sweep(ups, range(1, len(layers)))

    def node_width(eid: str) -> float:
        """Wide enough for "#id" in bold (up to NODE_MAX_CHARS characters)."""
        name = "#" + eid
        return max(NODE_W, math.ceil(_text_width(name[:NODE_MAX_CHARS + 1], 12, True)) + 2 * NODE_PAD)

    width_of = {eid: node_width(eid) for eid in order}

    def slot_width(n: str) -> float:
        return DUMMY_W if n.startswith("\0") else width_of[n]

    widths = [sum(slot_width(n) for n in layer) + NODE_GAP_X * max(0, len(layer) - 1) for layer in layers]
    content_width = max(widths, default=NODE_W)
    margin, top = 16, 56
    x_of: dict[str, float] = {}
    y_of: dict[str, float] = {}
    for g, layer in enumerate(layers):
        cursor = margin + (content_width - widths[g]) / 2
        for n in layer:
            x_of[n] = cursor
            y_of[n] = top + g * (NODE_H + GENERATION_GAP)
            cursor += slot_width(n) + NODE_GAP_X
    height = top + len(layers) * (NODE_H + GENERATION_GAP) + 8
    width = content_width + 2 * margin

    family: set[str] = set()
    if focus is not None and focus in nodes:
        family.add(focus)
        for graph in (parents_of, children_of):
            stack = [focus]
            while stack:
                for nxt in graph.get(stack.pop(), []):
                    if nxt not in family:
                        family.add(nxt)
                        stack.append(nxt)

    def faded(eid: str) -> bool:
        return bool(family) and eid not in family

    count = len(nodes) - len(missing)
    out = _svg_open(width, height, id_prefix, "Family tree of the experiments" + (f" around #{focus}" if focus else ""),
                    f"{count} experiments and {len(missing)} missing parent(s); an arrow runs from the experiment "
                    f"a log says it is like to the experiment.", "lineage")
    out.append(f'<rect class="background" x="0" y="0" width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>')
    families = sorted({experiments[e].dataset.family or "unknown" for e in nodes if e in experiments},
                      key=lambda f: (f == "unknown", f))
    items = [(f"family {f}", FAMILY_COLOURS.get(f, UNKNOWN_FAMILY), _tint(FAMILY_COLOURS.get(f, UNKNOWN_FAMILY)),
              f) for f in families]
    if missing:
        items.append(("missing dashed", GREY, "#ffffff", "no file in the release"))
    legend, _ = _legend(items, margin, 24, id_prefix)
    out += legend

    out.append('<g class="edges" fill="none">')
    for route in routes:
        parent, child = route[0], route[-1]
        points = [(x_of[parent] + width_of[parent] / 2, y_of[parent] + NODE_H)]
        for dummy in route[1:-1]:
            cx = x_of[dummy] + DUMMY_W / 2
            points += [(cx, y_of[dummy]), (cx, y_of[dummy] + NODE_H)]
        points.append((x_of[child] + width_of[child] / 2, y_of[child]))
        d = f"M{_num(points[0][0])},{_num(points[0][1])}"
        for (xa, ya), (xb, yb) in pairwise(points):
            if xa == xb:
                d += f" L{_num(xb)},{_num(yb)}"
            else:
                mid = (ya + yb) / 2
                d += f" C{_num(xa)},{_num(mid)} {_num(xb)},{_num(mid)} {_num(xb)},{_num(yb)}"
        dim = faded(parent) or faded(child)
        css = "edge" + (" faded" if dim else "") + (" missing" if parent in missing else "")
        out.append(f'<path class="{css}" d="{d}" stroke="#555555" stroke-width="1.2"'
                   f'{OPACITY_20 if dim else ""}><title>#{_esc(child)} is like #{_esc(parent)}</title>'
                   f'</path>')
    out.append("</g>")

    for eid in order:
        x, y, node_w = x_of[eid], y_of[eid], width_of[eid]
        classes = ["node"]
        if eid in missing:
            classes.append("missing")
            stroke, fill, dash = GREY, "#ffffff", ' stroke-dasharray="4 3"'
            lines = ["no file"]
            hover = [f"#{eid}: named as a parent, but the release has no layer-params file for it",
                     "children: " + ", ".join("#" + c for c in children_of[eid])]
        else:
            experiment = experiments[eid]
            fam = experiment.dataset.family or "unknown"
            classes.append("family-" + fam.replace(" ", "-"))
            stroke = FAMILY_COLOURS.get(fam, UNKNOWN_FAMILY)
            fill, dash = _tint(stroke), ""
            final = experiment.final_result
            start = experiment.start
            lines = [start.strftime("%Y-%m-%d") if start else "no date",
                     f"top-5 {_percent(final.top5)}" if final and final.top5 is not None else ""]
            hover = [f"#{eid} ({experiment.dataset.label()})",
                     f"started {start:%Y-%m-%d %H:%M}" if start else "start not logged",
                     f"final top-5 error {_percent(final.top5)}" if final and final.top5 is not None
                     else "no top-5 result logged",
                     "like: " + (", ".join("#" + p for p in experiment.parents) or "—"),
                     "children: " + (", ".join("#" + c for c in experiment.children) or "—")]
        if eid == focus:
            classes.append("focus")
        if faded(eid):
            classes.append("faded")
        body = [(f'<g class="{" ".join(classes)}" id="{_esc(id_prefix)}-{_esc(eid)}"'
                f'{OPACITY_25 if faded(eid) else ""}>'),
                f'<title>{_esc(chr(10).join(hover))}</title>',
                (f'<rect class="box" x="{_num(x)}" y="{_num(y)}" width="{_num(node_w)}" height="{NODE_H}" rx="6" '
                f'fill="{fill}" stroke="{stroke}" stroke-width="{3 if eid == focus else 1.5}"{dash}/>'),
                (f'<text x="{_num(x + node_w / 2)}" y="{_num(y + 17)}" text-anchor="middle" font-weight="bold" '
                f'fill="{INK}">{_esc(_fit("#" + eid, node_w - 2 * NODE_PAD, 12, True))}</text>')]
        for i, line in enumerate(lines):
            if line:
                body.append(f'<text x="{_num(x + node_w / 2)}" y="{_num(y + 32 + i * 13)}" text-anchor="middle" '
                            f'font-size="10.5" fill="#444444">{_esc(_fit(line, node_w - 8, 10.5))}</text>')
        body.append("</g>")
        if eid in missing:
            out += body
        else:
            out.append(f'<a href="{_esc(href(f"/experiments/{eid}"))}">')
            out += body
            out.append("</a>")
    out.append("</svg>")
    return "\n".join(out)


# =============================================================================================
# 3. The timeline of the runs (June 2012 – March 2013)

# The paper (Krizhevsky, Sutskever, Hinton 2012, §1): "between five and six days" for ~90
# epochs on two GTX 580s, i.e. about 1.5 hours per epoch.
HOURS_PER_EPOCH = 1.5
UNDATED_EPOCHS_BAR = timedelta(hours=12)

OUTCOMES = {  # outcome -> (colour, legend label)
    "result": (BLUE, "reported a result"),
    "killed": (VERMILLION, "killed / stopped"),
    "on_hold": (ORANGE, "on hold"),
    "unknown": (GREY, "unknown"),
}


@dataclass(frozen=True, slots=True)
class TimelineRun:
    """One training run as the timeline draws it. `end` is usually an estimate
    (start + epochs × hours per epoch); `outcome` is a key of OUTCOMES; `label` is
    the run's own words from the log ("restart with proper learning rate"), or "".
    `last_epoch`, `status`, `moved_to` (hosts it moved on to) and `also_logged_in`
    (experiments whose log copies this same run) feed the hover text."""

    experiment_id: str
    run_index: int
    host: str
    start: datetime
    end: datetime
    end_is_estimate: bool
    outcome: str
    top5: float | None
    label: str
    last_epoch: float | None = None
    status: str | None = None
    moved_to: tuple[str, ...] = ()
    also_logged_in: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineCount:
    """How many runs the archive has, how many the timeline shows, and why the rest are left out."""

    runs: int
    shown: int
    no_start: int
    no_host: int
    not_started: int
    copies: int


def _outcome(status: str | None, has_result: bool) -> str:
    if has_result:
        return "result"
    if status in ("killed", "restarted"):  # "restarted": this process was stopped and a new one begun
        return "killed"
    if status in ("on_hold", "paused"):
        return "on_hold"
    return "unknown"


def timeline_runs(archive, hours_per_epoch: float = HOURS_PER_EPOCH) -> list[TimelineRun]:
    """Every run of the archive that can stand on the timeline: a run of an
    experiment's own_runs with a start time and a host. Its end is estimated as
    start + last_epoch × `hours_per_epoch` — the paper says 90 epochs took five to
    six days on two GTX 580s, about 1.5 h per epoch — and a run without a logged
    epoch gets a short fixed bar (12 h); both are marked as estimates.

    Logs copy each other: "#135-2009" repeats #135's run, "120-4gpu-auto2..6" and
    "147.save" repeat their originals. The catalogue gives such a run to the original
    (`Experiment.copied_runs`), so each training process is one bar; the experiments that
    logged it again are listed in `also_logged_in`. See `timeline_count` for the tally."""
    return _timeline(archive, hours_per_epoch)[0]


def timeline_count(archive) -> TimelineCount:
    """How many runs exist and how many `timeline_runs` shows (and why not the others)."""
    return _timeline(archive, HOURS_PER_EPOCH)[1]


def _timeline(archive, hours_per_epoch: float) -> tuple[list[TimelineRun], TimelineCount]:
    # Copies of a run (archive.catalog: the same run directory logged again by a variant or a
    # backup, `Experiment.copied_runs`) are not in own_runs; they are named on the original's bar.
    logged_again: dict[tuple[str, str], list[str]] = {}
    copies = 0
    for experiment in archive.sorted_experiments():
        for index, owner in experiment.copied_runs:
            copies += 1
            dirs = experiment.logbook.runs[index].run_dirs
            if dirs:
                logged_again.setdefault((owner, _dir_name(dirs[0])), []).append(experiment.id)
    total, no_start, no_host, not_started = copies, 0, 0, 0
    shown: list[TimelineRun] = []
    for experiment in archive.sorted_experiments():
        results = experiment.results
        for run in experiment.own_runs:
            total += 1
            if run.status == "not_started":
                not_started += 1
                continue
            if run.start is None:
                no_start += 1
                continue
            if not run.host:
                no_host += 1
                continue
            own = [r for r in results if r.run == run.index]
            top5 = next((r.top5 for r in reversed(own) if r.top5 is not None), None)
            if run.last_epoch:
                end = run.start + timedelta(hours=run.last_epoch * hours_per_epoch)
            else:
                end = run.start + UNDATED_EPOCHS_BAR
            also = tuple(logged_again.get((experiment.id, _dir_name(run.run_dirs[0])), ())) if run.run_dirs else ()
            shown.append(TimelineRun(experiment.id, run.index, run.host, run.start, end, True,
                                     _outcome(run.status, bool(own)), top5, run.label or "",
                                     run.last_epoch, run.status, tuple(run.hosts[1:]), also))
    shown.sort(key=lambda r: (r.start, _id_sort_key(r.experiment_id), r.run_index))
    return shown, TimelineCount(total, len(shown), no_start, no_host, not_started, copies)


def _dir_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# The entrance page shows the timeline at 1100 px or wider (site.css: min-width 1100px), scaled
# to fit: ten months at 3.4 px a day keep the drawing about 1130 units wide, so text of
# TIMELINE_FONT units stays ≥ 11 px on screen.
PX_PER_DAY = 3.4
TIMELINE_FONT = 12
ROW_H, BAR_H = 19, 13
LANE_LABEL_W, TIMELINE_TOP = 76, 62
LABEL_GAP = 3        # between a bar and its text
RUN_GAP = 7          # between a text (or bar) and the next bar in its sub-row
LABEL_CHAR_EM = 0.64  # width of a label character in ems: DejaVu Sans, the widest common
                      # fallback for system-ui, sets "#", digits and "%" at 0.64–0.95 em


def _label_width(text: str) -> float:
    return len(text) * TIMELINE_FONT * LABEL_CHAR_EM
MIN_BAR_W = 4.0
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1)


def _next_month(moment: datetime) -> datetime:
    return datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1)


def _bar_text(run: TimelineRun) -> str:
    return f"#{run.experiment_id}" + (f" {_percent(run.top5)}" if run.top5 is not None else "")


def _run_title(run: TimelineRun) -> str:
    text = f"#{run.experiment_id}" + (f" run {run.run_index + 1}" if run.run_index else "") + f" on {run.host}"
    if run.moved_to:
        text += f" (then {', '.join(run.moved_to)})"
    text += f", {run.start:%Y-%m-%d %H:%M} → "
    text += f"epoch {run.last_epoch:g}" if run.last_epoch else "no epoch logged"
    text += f" ({'est. ' if run.end_is_estimate else ''}{run.end:%Y-%m-%d})"
    if run.top5 is not None:
        text += f", top-5 {_percent(run.top5)}"
    text += f", {(run.status or OUTCOMES[run.outcome][1]).replace('_', ' ')}"
    if run.label:
        text += f" — {run.label}"
    if run.also_logged_in:
        text += "; also logged in " + ", ".join("#" + e for e in run.also_logged_in)
    return text


def timeline_svg(runs: Sequence[TimelineRun], *, href: Href, id_prefix: str = "timeline",
                 start: datetime = datetime(2012, 6, 1), end: datetime = datetime(2013, 4, 1)) -> str:
    """The runs on a calendar: x = date (month ticks, at least `start`..`end`, widened
    to the runs), one lane per host ordered by name, a bar per run linked to
    ``href("/experiments/<id>")``. Runs on one host at once (the machines had several
    GPUs) are packed greedily into sub-rows; a bar's text ("#120 17.2%") sits right of
    it and is packed with it, so neither bars nor texts overlap. Colour = outcome."""
    if runs:
        start = min(start, _month_start(min(r.start for r in runs)))
        last = max(max(r.end for r in runs), max(r.start for r in runs))
        end = max(end, _next_month(last))

    def x_at(moment: datetime) -> float:
        return LANE_LABEL_W + (moment - start).total_seconds() / 86400 * PX_PER_DAY

    hosts = sorted({r.host for r in runs})
    ordered = sorted(range(len(runs)), key=lambda i: (runs[i].host, runs[i].start,
                                                      _id_sort_key(runs[i].experiment_id), runs[i].run_index, i))
    placed: dict[int, tuple[float, float, float, int]] = {}  # position in `runs` -> (x0, x1, text_x, row)
    rows_of: dict[str, int] = {}
    for host in hosts:
        row_ends: list[float] = []
        for position in (i for i in ordered if runs[i].host == host):
            run = runs[position]
            x0 = x_at(run.start)
            x1 = max(x_at(run.end), x0 + MIN_BAR_W)
            text_x = x1 + LABEL_GAP
            # The text is packed with its bar: the next bar of this sub-row starts after it.
            reach = text_x + _label_width(_bar_text(run))
            row = next((i for i, e in enumerate(row_ends) if e + RUN_GAP <= x0), len(row_ends))
            if row == len(row_ends):
                row_ends.append(reach)
            else:
                row_ends[row] = reach
            placed[position] = (x0, x1, text_x, row)
        rows_of[host] = max(1, len(row_ends))
    lane_top: dict[str, float] = {}
    y = TIMELINE_TOP
    for host in hosts:
        lane_top[host] = y
        y += rows_of[host] * ROW_H + 10
    height = y + 26
    reach_of = [p[2] + _label_width(_bar_text(runs[i])) for i, p in placed.items()]
    width = max([x_at(end)] + reach_of) + 12

    out = _svg_open(width, height, id_prefix, "Training runs, June 2012 – March 2013",
                    f"{len(runs)} runs on {len(hosts)} machines; bar length estimates run time from the "
                    f"last epoch logged; colour tells how the run ended.", "timeline")
    out.append(f'<rect class="background" x="0" y="0" width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>')
    legend, _ = _legend([(f"outcome {k}", c, c, label) for k, (c, label) in OUTCOMES.items()],
                        LANE_LABEL_W, 20, id_prefix)
    out += legend
    # Month ticks.
    out.append('<g class="axis">')
    month = _month_start(start)
    while month <= end:
        x = x_at(month)
        out.append(f'<line x1="{_num(x)}" y1="{TIMELINE_TOP - 12}" x2="{_num(x)}" y2="{_num(height - 20)}" '
                   f'stroke="#dddddd" stroke-width="1"/>')
        if month < end:
            name = MONTHS[month.month - 1] + (f" {month.year}" if month.month in (1, 6) or month == start else "")
            out.append(f'<text x="{_num(x + 3)}" y="{TIMELINE_TOP - 5}" font-size="{TIMELINE_FONT}" fill="#555555">'
                       f'{_esc(name)}</text>')
        month = _next_month(month)
    out.append("</g>")
    for i, host in enumerate(hosts):
        top = lane_top[host]
        lane_h = rows_of[host] * ROW_H + 4
        out.append(f'<g class="lane host" id="{_esc(id_prefix)}-host-{_esc(host)}">')
        out.append(f'<rect x="{LANE_LABEL_W}" y="{_num(top - 2)}" width="{_num(width - LANE_LABEL_W - 8)}" '
                   f'height="{_num(lane_h)}" fill="{FAINT if i % 2 == 0 else "#ffffff"}" fill-opacity="0.8"/>')
        out.append(f'<text x="{LANE_LABEL_W - 6}" y="{_num(top + 11)}" text-anchor="end" font-weight="bold" '
                   f'font-size="{TIMELINE_FONT}" '
                   f'fill="{INK}">{_esc(host)}</text>')
        out.append("</g>")
    for position, run in enumerate(runs):
        x0, x1, text_x, row = placed[position]
        top = lane_top[run.host] + row * ROW_H
        colour = OUTCOMES.get(run.outcome, OUTCOMES["unknown"])[0]
        out.append(f'<a href="{_esc(href(f"/experiments/{run.experiment_id}"))}">'
                   f'<g class="run {_esc(run.outcome)}{" estimate" if run.end_is_estimate else ""}" '
                   f'id="{_esc(id_prefix)}-{_esc(run.experiment_id)}-run{run.run_index}">')
        out.append(f'<title>{_esc(_run_title(run))}</title>')
        out.append(f'<rect class="bar" x="{_num(x0)}" y="{_num(top)}" width="{_num(x1 - x0)}" height="{BAR_H}" '
                   f'rx="2" fill="{colour}" stroke="{colour}"/>')
        out.append(f'<text class="label" x="{_num(text_x)}" y="{_num(top + 11)}" font-size="{TIMELINE_FONT}" '
                   f'fill="{INK}">'
                   f'{_esc(_bar_text(run))}</text>')
        out.append("</g></a>")
    out.append(f'<text class="note" x="{LANE_LABEL_W}" y="{_num(height - 7)}" font-size="{TIMELINE_FONT}" '
               f'fill="#555555">Bar ends are estimates: start + last logged epoch × {HOURS_PER_EPOCH:g} h (the paper: '
               f'90 epochs in five to six days); no logged epoch: a short bar.</text>')
    out.append("</svg>")
    return "\n".join(out)
