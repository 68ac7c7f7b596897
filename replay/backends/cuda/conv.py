"""conv and local layers on the CUDA kernels of kernels/conv.cu: the functions of
replay/backends/numpy_ref/conv.py, same signatures, layouts, signs and 1/N normalisation (read its docstring).

Arrays are float32, C-contiguous: NumPy arrays run through the CPU emulator, CuPy arrays on the GPU
(replay/backends/cuda/kernels.py: launch). The geometry (the 2012 module rule, groups, randSparse `conns`)
is checked by the reference's own _geometry, so both backends accept and refuse the same layers.

Kernels (kernels/conv.cu):
- conv_filter_acts_kernel: forward as an implicit GEMM, filters^T (F × Cf·fs²) × patches (Cf·fs² × M·N)
  per group, 64×64 output tiles; local layers tile one module's cases at a time with its own filters;
- conv_img_acts_kernel: conv data gradient, the transposed implicit GEMM in gather form (each image pixel
  sums over the filters and modules that read it; no atomics); local_img_acts_kernel: local data gradient,
  one thread per pixel;
- conv_weight_acts_kernel: weight gradient, one GEMM over (module, case) per partialSum run of modules,
  scaled by 1/N, then sum_partials_kernel adds the runs in module order (cc1 weight_acts.cu + addSum, as
  numpy_ref); local layers are runs of one module;
- add_row_bias_kernel, row_sums_kernel: biases and their gradient.

randSparse data gradient: a channel that several (group, filter channel) pairs read (overSample > 1) gets
one slot per repeat; the kernel writes each pair's sum into its own slot and the slots are added after, so
no two threads write the same element. `saved=` is accepted and ignored (the kernels need no scratch to
carry between calls).
"""
from __future__ import annotations

import numpy as np

from replay.backends.cuda.kernels import grid_for, launch, xp_of

# The reference's geometry check (the 2012 module rule, groups, conns): one definition for both backends.
from replay.backends.numpy_ref.conv import _geometry, modules_x_for

__all__ = [
    "add_conv_bias",
    "conv_backward_data",
    "conv_backward_weights",
    "conv_bias_grad",
    "conv_forward",
    "local_backward_data",
    "local_backward_weights",
    "local_forward",
    "modules_x_for",
]

TILE = 64            # conv.cu: TILE, the output tile of the GEMM kernels
GEMM_BLOCK = (16, 16)  # conv.cu: THREADS_X, THREADS_Y
ROW_SUM_BLOCK = 128  # row_sums_kernel: a power of two <= 256


def _i32(value) -> np.int32:
    return np.int32(value)


def _float32(*arrays):
    """The arrays as C-contiguous float32 in their own array module; anything but float32 is refused
    (the kernels are float32 only; a silent downcast would hide a float64 gradient check)."""
    out = []
    for a in arrays:
        if a.dtype != np.float32:
            raise TypeError(f"the CUDA kernels take float32 arrays, got {a.dtype}")
        out.append(xp_of(a).ascontiguousarray(a))
    return out


def _tiles(count: int) -> int:
    return -(-count // TILE)


def _row_channels(xp, geo) -> object:
    """(groups·Cf,) int32: the image channel filter channel c of group g reads, entry g·Cf + c."""
    return xp.asarray(geo.channel_index.reshape(-1), dtype=np.int32)


def _row_targets(geo) -> tuple[np.ndarray, int]:
    """For the data gradient: the target row (slot·C + channel) of every (group, filter channel) pair, and
    the number of slots. Repeats of a channel (randSparse with overSample > 1) go to later slots."""
    channels = geo.channel_index.reshape(-1)
    seen = np.zeros(geo.channels, dtype=np.int64)
    targets = np.empty(channels.size, dtype=np.int32)
    for e, channel in enumerate(channels):
        targets[e] = seen[channel] * geo.channels + channel
        seen[channel] += 1
    return targets, int(seen.max(initial=1))


def _geometry_of(x_rows: int, channels, filter_size, padding, stride, groups, filter_channels, modules_x,
                 conns):
    return _geometry(rows=x_rows, channels=channels, filter_size=filter_size, padding=padding, stride=stride,
                     groups=groups, filter_channels=filter_channels, modules_x=modules_x,
                     conns=None if conns is None else np.asarray(conns))


def _check_filters(filters: int, geo) -> int:
    if filters % geo.groups:
        raise ValueError(f"{filters} filters do not split into {geo.groups} groups")
    return filters // geo.groups


def _filter_acts(x, w, geo, *, local: bool):
    x, w = _float32(x, w)
    xp = xp_of(x)
    filters = w.shape[1]
    fg = _check_filters(filters, geo)
    n = x.shape[1]
    y = xp.empty((filters * geo.modules, n), dtype=np.float32)
    columns = geo.modules * _tiles(n) if local else _tiles(geo.modules * n)
    launch(x, "conv_filter_acts_kernel", (columns, geo.groups * _tiles(fg)), GEMM_BLOCK,
           (x, w, y, _row_channels(xp, geo), _i32(geo.image_size), _i32(geo.filter_size), _i32(geo.padding),
            _i32(geo.stride), _i32(geo.modules_x), _i32(n), _i32(filters), _i32(geo.groups),
            _i32(geo.filter_channels), _i32(1 if local else 0)))
    return y


def _img_acts(dy, w, geo, *, local: bool):
    dy, w = _float32(dy, w)
    xp = xp_of(dy)
    filters = w.shape[1]
    _check_filters(filters, geo)
    if dy.shape[0] != filters * geo.modules:
        raise ValueError(f"dy has {dy.shape[0]} rows; expected F*M = {filters * geo.modules}")
    n = dy.shape[1]
    pixels = geo.image_size * geo.image_size
    rows, slots = _row_targets(geo)
    covered = np.unique(geo.channel_index).size == geo.channels
    # Every target row is written by the kernel unless a channel is read by no group (randSparse).
    allocate = xp.empty if slots == 1 and covered else xp.zeros
    out = allocate((slots * geo.channels * pixels, n), dtype=np.float32)
    args = (dy, w, out, xp.asarray(rows), _i32(geo.image_size), _i32(geo.filter_size), _i32(geo.padding),
            _i32(geo.stride), _i32(geo.modules_x), _i32(n), _i32(filters), _i32(geo.groups),
            _i32(geo.filter_channels))
    if local:
        total = geo.groups * geo.filter_channels * pixels * n
        launch(dy, "local_img_acts_kernel", grid_for(total), 256, args)
    else:
        launch(dy, "conv_img_acts_kernel", (_tiles(pixels * n), geo.groups * _tiles(geo.filter_channels)),
               GEMM_BLOCK, args)
    if slots == 1:
        return out
    return out.reshape(slots, geo.channels * pixels, n).sum(axis=0)


def _weight_acts(x, dy, geo, *, partial_sum: int):
    """(parts·K, F) partial weight gradients, each (1/N)·Σ over one run of partial_sum modules."""
    x, dy = _float32(x, dy)
    xp = xp_of(x)
    n = x.shape[1]
    if dy.shape[0] % geo.modules or dy.shape[1] != n:
        raise ValueError(f"dy {dy.shape} does not match M = {geo.modules} modules and N = {n} cases")
    filters = dy.shape[0] // geo.modules
    fg = _check_filters(filters, geo)
    parts = geo.modules // partial_sum
    out = xp.empty((parts * geo.taps, filters), dtype=np.float32)
    launch(x, "conv_weight_acts_kernel", (_tiles(geo.taps), geo.groups * _tiles(fg), parts), GEMM_BLOCK,
           (x, dy, out, _row_channels(xp, geo), _i32(geo.image_size), _i32(geo.filter_size),
            _i32(geo.padding), _i32(geo.stride), _i32(geo.modules_x), _i32(n), _i32(filters),
            _i32(geo.groups), _i32(geo.filter_channels), _i32(partial_sum), np.float32(1.0 / n)))
    return out


# ---------------------------------------------------------------------------------------------------- conv


def conv_forward(x, w, *, channels: int, filter_size: int, padding: int, stride: int, groups: int = 1,
                 filter_channels: int | None = None, modules_x: int, conns=None, saved: dict | None = None):
    """numpy_ref.conv.conv_forward: x (C·S·S, N), w (Cf·fs·fs, F) -> y (F·M, N), without bias."""
    del saved
    geo = _geometry_of(x.shape[0], channels, filter_size, padding, stride, groups, filter_channels, modules_x,
                       conns)
    if w.shape[0] != geo.taps:
        raise ValueError(f"conv weights have {w.shape[0]} rows; expected Cf*fs*fs = {geo.taps}")
    return _filter_acts(x, w, geo, local=False)


def conv_backward_data(dy, w, *, channels: int, filter_size: int, padding: int, stride: int, groups: int = 1,
                       filter_channels: int | None = None, modules_x: int, conns=None, image_size: int,
                       saved: dict | None = None):
    """numpy_ref.conv.conv_backward_data: dy (F·M, N), w (Cf·fs·fs, F) -> dx (C·S·S, N), not divided by N."""
    del saved
    geo = _geometry_of(channels * image_size * image_size, channels, filter_size, padding, stride, groups,
                       filter_channels, modules_x, conns)
    if w.shape[0] != geo.taps:
        raise ValueError(f"conv weights have {w.shape[0]} rows; expected Cf*fs*fs = {geo.taps}")
    return _img_acts(dy, w, geo, local=False)


def conv_backward_weights(x, dy, *, channels: int, filter_size: int, padding: int, stride: int,
                          groups: int = 1, filter_channels: int | None = None, modules_x: int, conns=None,
                          partial_sum: int = 0, saved: dict | None = None):
    """numpy_ref.conv.conv_backward_weights: x (C·S·S, N), dy (F·M, N) -> dw (Cf·fs·fs, F), (1/N)-scaled;
    each run of partial_sum modules (0: all) is one partial sum, scaled by 1/N, and the partials are added
    in module order (src/layer.cu: ConvLayer::bpropWeights)."""
    del saved
    geo = _geometry_of(x.shape[0], channels, filter_size, padding, stride, groups, filter_channels, modules_x,
                       conns)
    per = geo.modules if partial_sum == 0 else partial_sum
    if per < 0 or geo.modules % per:
        raise ValueError(f"partial_sum {partial_sum} does not divide the {geo.modules} modules "
                         "(layer.py: ConvLayerParser.parse)")
    partials = _weight_acts(x, dy, geo, partial_sum=per)
    parts = geo.modules // per
    if parts == 1:
        return partials
    xp = xp_of(partials)
    dw = xp.empty((geo.taps, partials.shape[1]), dtype=np.float32)
    launch(partials, "sum_partials_kernel", grid_for(dw.size), 256,
           (partials, dw, _i32(parts), _i32(dw.size)))
    return dw


def add_conv_bias(y, b, *, shared: bool, filters: int, out=None):
    """numpy_ref.conv.add_conv_bias: y (F·M, N) plus b, (F, 1) when shared, else (F·M, 1); into `out`
    (which may be y) or a new array."""
    if y.shape[0] % filters:
        raise ValueError(f"{y.shape[0]} output rows are not {filters} filters of modules")
    expected = (filters, 1) if shared else (y.shape[0], 1)
    if b.shape != expected:
        kind = "shared conv" if shared else "unshared"
        raise ValueError(f"{kind} bias must be {expected}, got {b.shape}")
    y, b = _float32(y, b)
    xp = xp_of(y)
    if out is None:
        out = xp.empty(y.shape, dtype=np.float32)
    elif out.shape != y.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array of y's shape")
    per = y.size // filters if shared else y.shape[1]
    launch(y, "add_row_bias_kernel", grid_for(y.size), 256, (y, b, out, _i32(y.size), _i32(per)))
    return out


def conv_bias_grad(dy, *, shared: bool, filters: int):
    """numpy_ref.conv.conv_bias_grad: (1/N)·Σ of dy (F·M, N) over modules and cases -> (F, 1) when shared,
    over cases -> (F·M, 1) otherwise."""
    if dy.shape[0] % filters:
        raise ValueError(f"{dy.shape[0]} gradient rows are not {filters} filters of modules")
    (dy,) = _float32(dy)
    xp = xp_of(dy)
    rows = filters if shared else dy.shape[0]
    out = xp.empty((rows, 1), dtype=np.float32)
    launch(dy, "row_sums_kernel", min(rows, 4096), ROW_SUM_BLOCK,
           (dy, out, _i32(rows), _i32(dy.size // rows), np.float32(1.0 / dy.shape[1])))
    return out


# --------------------------------------------------------------------------------------------------- local


def _local_geometry_and_check(w, rows, channels, filter_size, padding, stride, groups, filter_channels,
                              modules_x, conns):
    geo = _geometry_of(rows, channels, filter_size, padding, stride, groups, filter_channels, modules_x, conns)
    if w.shape[0] != geo.modules * geo.taps:
        raise ValueError(f"local weights have {w.shape[0]} rows; expected M*Cf*fs*fs = "
                         f"{geo.modules * geo.taps}")
    return geo


def local_forward(x, w, *, channels: int, filter_size: int, padding: int, stride: int, groups: int = 1,
                  filter_channels: int | None = None, modules_x: int, conns=None, saved: dict | None = None):
    """numpy_ref.conv.local_forward: x (C·S·S, N), w (M·Cf·fs·fs, F) -> y (F·M, N), without bias."""
    del saved
    geo = _local_geometry_and_check(w, x.shape[0], channels, filter_size, padding, stride, groups,
                                    filter_channels, modules_x, conns)
    return _filter_acts(x, w, geo, local=True)


def local_backward_data(dy, w, *, channels: int, filter_size: int, padding: int, stride: int, groups: int = 1,
                        filter_channels: int | None = None, modules_x: int, conns=None, image_size: int,
                        saved: dict | None = None):
    """numpy_ref.conv.local_backward_data: dy (F·M, N), w (M·Cf·fs·fs, F) -> dx (C·S·S, N)."""
    del saved
    geo = _local_geometry_and_check(w, channels * image_size * image_size, channels, filter_size, padding,
                                    stride, groups, filter_channels, modules_x, conns)
    return _img_acts(dy, w, geo, local=True)


def local_backward_weights(x, dy, *, channels: int, filter_size: int, padding: int, stride: int,
                           groups: int = 1, filter_channels: int | None = None, modules_x: int, conns=None,
                           saved: dict | None = None):
    """numpy_ref.conv.local_backward_weights: x (C·S·S, N), dy (F·M, N) -> dw (M·Cf·fs·fs, F), (1/N)-scaled:
    the weight-gradient kernel with runs of one module, whose partials are the per-module filters."""
    del saved
    geo = _geometry_of(x.shape[0], channels, filter_size, padding, stride, groups, filter_channels, modules_x,
                       conns)
    return _weight_acts(x, dy, geo, partial_sum=1)
