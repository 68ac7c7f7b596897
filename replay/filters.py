"""A picture of a replayed net's learned first-layer filters: the paper's Figure 3 look
("96 convolutional kernels of size 11×11×3 learned by the first convolutional layer ...
The top 48 kernels were learned on GPU 1 while the bottom 48 kernels were learned on GPU 2").

The layout follows shownet.py's `--show-filters` (`ShowConvNet.plot_filters` and
`make_filter_fig`): a grid of FILTERS_PER_ROW = 16 filters per row, each filter's C·fs·fs
weights reshaped to (C, fs, fs); 3-channel filters drawn as one RGB tile, any other channel
count drawn as C grey tiles side by side (shownet's `combine_chans` is false then, and it puts
ceil(16 / C) filters on a row); a 1-pixel black line between and around the tiles (its
`bigpic` starts as zeros with one spare row/column per tile plus one). We add what its
matplotlib window did for it: tiles scaled up by an integer factor (nearest neighbour, as its
`imshow(..., interpolation='nearest')`), and one panel per first conv layer — one per logical
GPU in every plan of the release — stacked top to bottom in GPU order, with a thin white gap.

Normalisation (how filter values become 0..255): see `NORMALISATIONS`. The default, "filter",
stretches each filter by its own min/max. That is NOT what shownet.py does by default: its
plot_filters maps the whole layer through one min/max (`filters - filters.min()`, then
`/ filters.max()`), and its `--norm-filters` option ("Individually normalize filters") first
standardises each filter (subtract its mean, divide by its standard deviation over all C·fs·fs
values) and then applies that same single layer-wide min/max. Both are available here as
"layer" and "standardize".
"""
from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["FILTERS_PER_ROW", "NORMALISATIONS", "filters_png", "first_conv_layers"]

FILTERS_PER_ROW = 16  # shownet.py: plot_filters, FILTERS_PER_ROW = 16
TARGET_TILE_PX = 44  # an 11×11 filter is drawn 4× (44 px); other sizes get the nearest integer factor
PANEL_GAP_PX = 8
SEPARATOR_RGB = (0, 0, 0)  # shownet.py: make_filter_fig's bigpic starts as zeros
GAP_RGB = (255, 255, 255)

NORMALISATIONS = {
    "filter": "each filter by its own min/max over its C·fs·fs values (a constant filter is mid grey)",
    "layer": "one min/max over the whole layer, as shownet.py's plot_filters does by default",
    "standardize": "each filter standardised (mean 0, std 1 over its C·fs·fs values), then one "
                   "min/max over the layer: shownet.py's --norm-filters",
}


def first_conv_layers(plan) -> list:
    """The conv layers that read a data layer directly, in logical-GPU order (plan order
    within a GPU). Each comes with the index of its data input: [(PlanLayer, input_index)]."""
    data_layers = {layer.name for layer in plan.layers if layer.type == "data"} | {"data"}
    found = []
    for order, layer in enumerate(plan.layers):
        if layer.type != "conv":
            continue
        for index, name in enumerate(layer.inputs):
            if name in data_layers:
                found.append((layer.gpu if layer.gpu is not None else 0, order, layer, index))
                break
    found.sort(key=lambda item: (item[0], item[1]))
    return [(layer, index) for _, _, layer, index in found]


def _normalise(w: np.ndarray, how: str) -> np.ndarray:
    """(rows, F) float64 -> the same shape in 0..1."""
    if how == "filter":
        low, high = w.min(axis=0, keepdims=True), w.max(axis=0, keepdims=True)
        span = high - low
        flat = span == 0
        out = (w - low) / np.where(flat, 1.0, span)
        return np.where(flat, 0.5, out)
    if how == "standardize":
        std = w.std(axis=0, keepdims=True)
        w = (w - w.mean(axis=0, keepdims=True)) / np.where(std == 0, 1.0, std)
    elif how != "layer":
        raise ValueError(f"normalise must be one of {sorted(NORMALISATIONS)}, not {how!r}")
    low, high = w.min(), w.max()
    if high == low:
        return np.full_like(w, 0.5)
    return (w - low) / (high - low)


def _panel(w: np.ndarray, channels: int, size: int, how: str, per_row: int, scale: int) -> np.ndarray:
    """One layer's (C·fs·fs, F) weights -> an (H, W, 3) uint8 grid of tiles."""
    count = w.shape[1]
    values = np.rint(_normalise(w.astype(np.float64), how) * 255.0).astype(np.uint8)
    # filter f's tile: w[:, f].reshape(C, fs, fs), row (c·fs+u)·fs+v (SEMANTICS §2)
    tiles = values.T.reshape(count, channels, size, size)
    if channels == 3:
        tiles = tiles.transpose(0, 2, 3, 1)  # (F, fs, fs, 3): RGB
    else:
        # shownet: the C channels as grey tiles side by side, no line between them
        grey = tiles.transpose(0, 2, 1, 3).reshape(count, size, channels * size)
        tiles = np.repeat(grey[..., None], 3, axis=3)
        per_row = max(1, math.ceil(per_row / channels))
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    tile_h, tile_w = tiles.shape[1], tiles.shape[2]
    rows = math.ceil(count / per_row)
    cols = min(per_row, count)
    grid = np.empty((rows * (tile_h + 1) + 1, cols * (tile_w + 1) + 1, 3), dtype=np.uint8)
    grid[...] = SEPARATOR_RGB
    for f in range(count):
        y, x = divmod(f, per_row)
        top, left = 1 + y * (tile_h + 1), 1 + x * (tile_w + 1)
        grid[top:top + tile_h, left:left + tile_w] = tiles[f]
    return grid


def filters_png(weights: dict[str, np.ndarray], plan, *, normalise: str = "filter",
                per_row: int = FILTERS_PER_ROW, scale: int | None = None) -> bytes:
    """A PNG of the learned first-layer filters of a replayed net.

    weights: ParamTensor key -> array, e.g. "conv1a.weights[0]" (`plan.param(layer, "weights",
    i).key`), each in cuda-convnet's conv layout (Cf·fs·fs, F), row (c·fs+u)·fs+v; only the
    first conv layers' entries are read. plan: the `replay.plan.ReplayPlan` they belong to.

    One panel per conv layer that reads a data layer directly (#120: conv1a on logical GPU 0
    and conv1b on GPU 1), stacked top to bottom in GPU order with a PANEL_GAP_PX white gap, no
    titles. Each panel: `per_row` filters a row (shownet.py: 16), 1-pixel black lines between
    and around tiles; filter f is the tile w[:, f].reshape(C, fs, fs).transpose(1, 2, 0) in
    RGB when C == 3, else C grey fs×fs tiles side by side (shownet.py: make_filter_fig with
    combine_chans false, ceil(per_row / C) filters a row). Tiles are scaled up by an integer
    factor, nearest neighbour (default: round(44 / fs), so an 11×11 filter is 44 px).

    normalise="filter" (default): each filter is stretched to 0..255 by ITS OWN min and max,
    so every filter shows its full contrast (a constant filter is mid grey, 128). This is not
    shownet.py's default: "layer" maps the whole layer through one min/max as its plot_filters
    does, "standardize" is its --norm-filters (each filter to mean 0 / std 1, then one layer
    min/max). See NORMALISATIONS.

    ValueError: no conv layer reads a data layer (the message names the experiment), a weight
    matrix missing or of the wrong shape, non-finite weights, a bad option.
    Deterministic: the same inputs give the same bytes.
    """
    from PIL import Image  # Pillow only when a picture is asked for

    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {sorted(NORMALISATIONS)}, not {normalise!r}")
    if per_row < 1 or (scale is not None and scale < 1):
        raise ValueError(f"per_row and scale must be positive (got {per_row}, {scale})")
    firsts = first_conv_layers(plan)
    if not firsts:
        raise ValueError(f"experiment {plan.experiment!r} ({plan.layers_file}) has no conv layer reading "
                         "a data layer directly: there are no first-layer filters to draw")
    panels = []
    for layer, index in firsts:
        key = plan.param(layer.name, "weights", index).key
        if key not in weights:
            raise ValueError(f"experiment {plan.experiment!r}: no weights {key!r} for first conv layer "
                             f"{layer.name!r} (have {sorted(weights)[:8]})")
        derived = layer.derived
        size = int(derived["filterSize"][index])
        channel_list = derived.get("filterChannels") or derived["channels"]
        channels = int(channel_list[index])
        count = int(derived["filters"])
        w = np.asarray(weights[key])
        expected = (channels * size * size, count)
        if w.shape != expected:
            raise ValueError(f"{key}: shape {w.shape}, expected {expected} "
                             f"(Cf·fs·fs = {channels}·{size}·{size} rows, one column per filter)")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{key}: weights are not all finite")
        factor = scale if scale is not None else max(1, round(TARGET_TILE_PX / size))
        panels.append(_panel(w, channels, size, normalise, per_row, factor))

    height = sum(p.shape[0] for p in panels) + PANEL_GAP_PX * (len(panels) - 1)
    width = max(p.shape[1] for p in panels)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[...] = GAP_RGB
    top = 0
    for p in panels:
        canvas[top:top + p.shape[0], :p.shape[1]] = p
        top += p.shape[0] + PANEL_GAP_PX
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue()
