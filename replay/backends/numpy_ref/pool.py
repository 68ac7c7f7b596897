"""Spatial pooling (layer type `pool`): max, maxabs, avg and rand, forward and backward.

Layout as cuda-convnet (SEMANTICS.md §2): x is (C·S·S, N), viewed as (C, S, S, N); y is (C·Ox·Ox, N).

The 2012 window rule (SEMANTICS.md §3.6, cc1 `conv_util.cuh: kLocalPool`, `conv_util.cu: kLocalMaxUndo`,
`kLocalAvgUndo`): output (oy, ox) looks at rows [start + oy·stride, start + oy·stride + size_x) and the same
columns, *clipped* to the image (start may be negative). Nothing is padded: avg divides by the number of
in-image pixels of its window, max ignores the pixels outside.

The backward functions return d(cost)/dx (PyTorch's sign; the original stores the negative, but these maps
are linear in dy, so the formulas are the same).
"""
from __future__ import annotations

import numpy as np

from replay.layout import as_images

POOL_TYPES = ("max", "maxabs", "avg", "rand")  # layer.py: PoolLayerParser.parse, verify_str_in

# conv_util.cuh: MaxPooler.getBaseValue. A window that lies wholly outside the image yields this.
MAX_POOL_BASE = -2e38


def pool_outputs_x(img_size: int, size_x: int, start: int, stride: int) -> int:
    """outputsX when the cfg leaves it 0 (layer.py: PoolLayerParser.parse): ⌈(S − start − size_x)/stride⌉ + 1.

    Ceil, not floor: 24 → 12 and 32 → 16 for size_x=3, stride=2, where torch's floor gives 11 and 15."""
    return -((start + size_x - img_size) // stride) + 1


def _tap_span(img_size: int, start: int, stride: int, outputs_x: int, offset: int):
    """For one window offset (0 <= offset < size_x): which outputs have this tap inside the image.

    Output o reads pixel i = start + o·stride + offset; returns (outputs slice, pixels slice) covering every
    o with 0 <= i < img_size, or None. For one offset, distinct outputs read distinct pixels, so a
    `dx[pixels] += ...` through these slices never collides."""
    lo = max(0, -((start + offset) // stride))  # ⌈(−start − offset)/stride⌉, clamped at 0
    hi = min(outputs_x, (img_size - 1 - start - offset) // stride + 1)
    if hi <= lo:
        return None
    first = start + lo * stride + offset
    return slice(lo, hi), slice(first, first + (hi - lo - 1) * stride + 1, stride)


def _window_extent(img_size: int, start: int, stride: int, outputs_x: int, size_x: int) -> np.ndarray:
    """Per output row (or column): min(S, end) − max(0, begin) of its window, as the kernel computes it.

    Can be <= 0 for a window wholly outside the image (only an explicit outputsX or start <= −size_x gives
    such windows). kLocalPool multiplies the two extents anyway, so two negative ones make a positive
    divisor; kLocalPool2 (convLocalPool's choice for stride 1 and size_x >= 6) counts the pixels it visits,
    i.e. clamps each extent at 0. Either way an empty window averages to 0/0 or ±0."""
    begin = start + stride * np.arange(outputs_x)
    extent = np.minimum(img_size, begin + size_x) - np.maximum(0, begin)
    return np.maximum(extent, 0) if stride == 1 and size_x >= 6 else extent


def _check(pool: str, size_x: int, stride: int, outputs_x: int, img_size: int, start: int):
    if pool not in POOL_TYPES:
        raise ValueError(f"pool must be one of {POOL_TYPES}, got {pool!r}")
    # layer.py: PoolLayerParser.parse checks 1 <= sizeX <= S and 1 <= stride <= sizeX.
    if not 1 <= size_x <= img_size:
        raise ValueError(f"size_x={size_x} must be in 1..{img_size}")
    if not 1 <= stride <= size_x:
        raise ValueError(f"stride={stride} must be in 1..size_x={size_x}")
    if outputs_x <= 0:
        outputs_x = pool_outputs_x(img_size, size_x, start, stride)
    return outputs_x


def _rand_is_max(pool: str, do_max: bool) -> None:
    # layer.cu: RandomPoolLayer::fpropActs runs MaxPooler when doMax, else convLocalRandomPool, whose kernel
    # is in neither the release, cc1 (dnouri/cuda-convnet) nor cc2; bprop is convLocalMaxUndo either way.
    if pool == "rand" and not do_max:
        raise NotImplementedError(
            "pool=rand with doMax=false calls convLocalRandomPool, whose kernel is not in the release, "
            "cuda-convnet 1 or cuda-convnet 2; only doMax=true (plain max pooling) can be replayed")


def pool_forward(x: np.ndarray, *, channels: int, size_x: int, stride: int, start: int = 0,
                 outputs_x: int = 0, pool: str, do_max: bool = False,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """y = pool(x): (C·S·S, N) -> (C·Ox·Ox, N), Ox = outputs_x (0: the parser's ceil formula).

    Follows cc1 conv_util.cuh: kLocalPool / kLocalPool2 (both give the same numbers) with
    - max:    fmaxf over the clipped window, starting from -2e38 (so NaNs are skipped, as fmaxf does);
    - maxabs: scan the window row by row, keep the element with the larger |x|; a tie goes to the later
              element (MaxAbsPooler: `|a| > |b| ? a : b`), starting from 0;
    - avg:    sum / (rows in image · columns in image) of the window (AvgPooler.output, regionSize);
    - rand:   only with do_max=True (the params-file key doMax), which is max pooling. `rng` is accepted for
              the stochastic kernel the archive does not have; see _rand_is_max.
    """
    del rng  # no kernel to feed; see _rand_is_max
    images = as_images(x, channels)
    side = images.shape[1]
    outputs_x = _check(pool, size_x, stride, outputs_x, side, start)
    _rand_is_max(pool, do_max)
    cases = x.shape[1]
    kind = "max" if pool == "rand" else pool
    base = {"max": MAX_POOL_BASE, "maxabs": 0.0, "avg": 0.0}[kind]
    acc = np.full((channels, outputs_x, outputs_x, cases), base, dtype=x.dtype)
    for u in range(size_x):  # taps in row-major order, the kernels' scan order (matters for maxabs ties)
        rows = _tap_span(side, start, stride, outputs_x, u)
        if rows is None:
            continue
        for v in range(size_x):
            cols = _tap_span(side, start, stride, outputs_x, v)
            if cols is None:
                continue
            seen = acc[:, rows[0], cols[0]]  # a view: updated in place, no temporaries
            pixel = images[:, rows[1], cols[1]]
            if kind == "max":
                np.fmax(seen, pixel, out=seen)
            elif kind == "maxabs":
                np.copyto(seen, pixel, where=~(np.abs(seen) > np.abs(pixel)))
            else:
                np.add(seen, pixel, out=seen)
    if kind == "avg":
        extent = _window_extent(side, start, stride, outputs_x, size_x)
        region = (extent[:, None] * extent[None, :]).astype(x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):  # only windows wholly outside the image
            acc /= region[None, :, :, None]
    return acc.reshape(channels * outputs_x * outputs_x, cases)


def pool_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, *, channels: int, size_x: int,
                  stride: int, start: int = 0, outputs_x: int = 0, pool: str, do_max: bool = False,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """dx (C·S·S, N) from x (C·S·S, N), y = pool_forward(x) and dy (C·Ox·Ox, N).

    - max, maxabs, rand: dx[q] = Σ over windows w containing q of dy[w]·[x[q] == y[w]] (cc1
      conv_util.cu: kLocalMaxUndo, `prod += (img == ma) * mg`). Every tied pixel gets the full dy[w]; torch
      gives it to one argmax only. For maxabs, a window holding both +a and −a passes dy only to the one that
      equals y[w].
    - avg: dx[q] = Σ over windows w containing q of dy[w] · (1 / in-image size of w) (kLocalAvgUndo).
    x and y are not read for avg (only x's shape); keyword arguments are the forward's.
    """
    del rng
    images = as_images(x, channels)
    side = images.shape[1]
    outputs_x = _check(pool, size_x, stride, outputs_x, side, start)
    _rand_is_max(pool, do_max)
    cases = x.shape[1]
    shape_out = (channels, outputs_x, outputs_x, cases)
    grads = dy.reshape(shape_out)
    if pool == "avg":
        extent = _window_extent(side, start, stride, outputs_x, size_x)
        with np.errstate(divide="ignore"):  # an empty window has no pixel to pass its gradient to
            inverse = (1.0 / (extent[:, None] * extent[None, :])).astype(x.dtype)  # regionSizeInv
        grads = grads * inverse[None, :, :, None]
    else:
        pooled = y.reshape(shape_out)
    dx = np.zeros_like(images)
    hits = np.empty(shape_out, dtype=bool)  # scratch for max: which pixels equal their window's max
    sent = np.empty(shape_out, dtype=dx.dtype)  # scratch: what one tap passes back
    for u in range(size_x):
        rows = _tap_span(side, start, stride, outputs_x, u)
        if rows is None:
            continue
        for v in range(size_x):
            cols = _tap_span(side, start, stride, outputs_x, v)
            if cols is None:
                continue
            g = grads[:, rows[0], cols[0]]
            if pool != "avg":  # `(img == ma) * mg`, literally: a NaN/inf dy elsewhere still multiplies 0
                hit = np.equal(images[:, rows[1], cols[1]], pooled[:, rows[0], cols[0]],
                               out=hits[:, rows[0], cols[0]])
                g = np.multiply(hit, g, out=sent[:, rows[0], cols[0]])
            target = dx[:, rows[1], cols[1]]
            np.add(target, g, out=target)
    return dx.reshape(x.shape)
