"""conv and local layers on the CUDA kernels of kernels/conv.cu: the functions of
replay/backends/numpy_ref/conv.py, same signatures, layouts, signs and 1/N normalisation (read its docstring).

Arrays are float32, C-contiguous: NumPy arrays run through the CPU emulator, CuPy arrays on the GPU
(replay/backends/cuda/kernels.py: launch). The geometry (the 2012 module rule, groups, randSparse `conns`)
is checked by the reference's own _geometry, so both backends accept and refuse the same layers.

Kernels (kernels/conv.cu), each GEMM in two variants (VARIANTS):
- conv_filter_acts_kernel: forward as an implicit GEMM, filters^T (F × Cf·fs²) × patches (Cf·fs² × M·N)
  per group; local layers tile one module's cases at a time with its own filters;
- conv_img_acts_kernel: conv data gradient, the transposed implicit GEMM in gather form (each image pixel
  sums over the filters and modules that read it; no atomics); local_img_acts_kernel: local data gradient,
  one thread per pixel;
- conv_weight_acts_kernel: weight gradient, one GEMM over (module, case) per partialSum run of modules,
  scaled by 1/N; a block adds `runs_per_block` consecutive runs' partials in module order and
  sum_partials_kernel adds the blocks' totals in order (cc1 weight_acts.cu + addSum, as numpy_ref); local
  layers are runs of one module, one per block;
- add_row_bias_kernel, row_sums_kernel: biases and their gradient.

Variants (VARIANTS[op][name] is the kernel; op "forward", "data", "weights"):
- "tile64": 64×64 output tiles, 4×4 per thread, chunks of 16, index arithmetic per staged element. Few
  blocks' worth of waste on small shapes (few filters, few channels, few columns).
- "tile128": 128×128 output tiles, 8×8 per thread as 2×2 sub-tiles of 4×4 read as float4 (16 FMAs per
  shared load instead of 2), chunks of 8 double-buffered (next chunk's global loads in flight during the
  current chunk's FMAs, one __syncthreads per chunk), the gather's index arithmetic in a per-block table
  (forward: taps·8 bytes, data: fs²·Fg·8 bytes of dynamic shared memory; eligible while that fits in
  TABLE_LIMIT bytes) — no integer division in the inner loop.
Weight gradients: runs_per_block is chosen so that the grid keeps about WEIGHT_BLOCKS_PER_SM blocks per
multiprocessor (_runs_per_block); the partials buffer shrinks by that factor.

Variant selection (_choose): `ALEXNET_CONV_VARIANT=tile64|tile128` forces one for every op (a shape the
forced variant cannot run — tile128's table too large — runs tile64). Otherwise:
- on a GPU, the autotuner: the first call for an (op, shape) on a device times every eligible variant on the
  call's own arguments (one warm-up launch, then AUTOTUNE_LAUNCHES launches between CUDA events on the
  current stream; a synchronising step, so not inside a CUDA-graph capture), keeps the fastest in a
  per-process cache keyed by (device id, op, shape), and every later call launches it directly.
  `autotune_choices()` returns the cache, `forget_autotuning()` empties it;
- in the emulator, a fixed rule (reproducible and fast CI): tile128 when the GEMM's row dimension (filters
  per group for forward, filter channels for data, taps Cf·fs² for weights) exceeds 64 and the variant is
  eligible, else tile64.

randSparse data gradient: a channel that several (group, filter channel) pairs read (overSample > 1) gets
one slot per repeat; the kernel writes each pair's sum into its own slot and the slots are added after, so
no two threads write the same element. `saved=` is accepted and ignored (the kernels need no scratch to
carry between calls).
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from replay.backends.cuda.kernels import grid_for, is_cupy, launch, xp_of

# The reference's geometry check (the 2012 module rule, groups, conns): one definition for both backends.
from replay.backends.numpy_ref.conv import _geometry, modules_x_for

__all__ = [
    "VARIANTS",
    "add_conv_bias",
    "autotune_choices",
    "conv_backward_data",
    "conv_backward_weights",
    "conv_bias_grad",
    "conv_forward",
    "forget_autotuning",
    "local_backward_data",
    "local_backward_weights",
    "local_forward",
    "modules_x_for",
]

GEMM_BLOCK = (16, 16)  # conv.cu: THREADS_X, THREADS_Y (both variants)
ROW_SUM_BLOCK = 128  # row_sums_kernel: a power of two <= 256

# {op: {variant: kernel}}; the tile edge of each variant in VARIANT_TILE.
VARIANTS: dict[str, dict[str, str]] = {
    "forward": {"tile64": "conv_filter_acts_kernel", "tile128": "conv_filter_acts_128_kernel"},
    "data": {"tile64": "conv_img_acts_kernel", "tile128": "conv_img_acts_128_kernel"},
    "weights": {"tile64": "conv_weight_acts_kernel", "tile128": "conv_weight_acts_128_kernel"},
}
VARIANT_TILE = {"tile64": 64, "tile128": 128}
VARIANT_ENV = "ALEXNET_CONV_VARIANT"
# conv.cu: the 128 kernels' static shared memory (2 operands x 2 buffers x BIG_CHUNK x BIG_PITCH floats),
# and the 1 KiB a block of sm_80 and later keeps for the system (cudaDevAttrReservedSharedMemoryPerBlock),
# which NVRTC's sm_90 cubin counts in each kernel's shared section; the tap table gets the rest of the
# 48 KiB a block has without an opt-in. tests/cuda/test_kernel_resources.py checks this against the cubins.
_BIG_STATIC_SHARED = 2 * 2 * 8 * 132 * 4
_RESERVED_SHARED = 1024
TABLE_LIMIT = 48 * 1024 - _BIG_STATIC_SHARED - _RESERVED_SHARED
AUTOTUNE_LAUNCHES = 3
# Weight gradients: blocks per multiprocessor the runs-per-block choice aims to keep (a few, to hide
# latency and the tail); the emulator assumes an H100's 132 multiprocessors.
WEIGHT_BLOCKS_PER_SM = 4
EMULATED_SMS = 132


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


def _tiles(count: int, tile: int = 64) -> int:
    return -(-count // tile)


# ---------------------------------------------------------------------------------------- variant choice

_tuned: dict[tuple, str] = {}
_tuned_lock = threading.Lock()


def autotune_choices() -> dict[tuple, str]:
    """A copy of the autotuner's cache: {(device id, op, shape key): variant}."""
    with _tuned_lock:
        return dict(_tuned)


def forget_autotuning() -> None:
    """Empty the autotuner's cache (the next call per shape times the variants again)."""
    with _tuned_lock:
        _tuned.clear()


def _forced_variant() -> str | None:
    name = os.environ.get(VARIANT_ENV, "").strip()
    if not name:
        return None
    if name not in VARIANT_TILE:
        raise ValueError(f"{VARIANT_ENV}={name!r}: expected one of {sorted(VARIANT_TILE)}")
    return name


def _time_launch(run) -> float:
    """Milliseconds per call of `run` on the current CUDA stream (after one warm-up call)."""
    import cupy

    run()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(AUTOTUNE_LAUNCHES):
        run()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / AUTOTUNE_LAUNCHES


def _choose(op: str, like, key: tuple, rows: int, runners: dict) -> str:
    """The variant to launch for `op` on this shape. `runners` {variant: zero-argument launch} holds the
    eligible variants (tile64 always); `rows` is the GEMM's row dimension (the emulator's rule)."""
    forced = _forced_variant()
    if forced is not None:
        return forced if forced in runners else "tile64"
    if not is_cupy(like):
        return "tile128" if "tile128" in runners and rows > 64 else "tile64"
    if len(runners) == 1:
        return next(iter(runners))
    import cupy

    cache_key = (cupy.cuda.Device().id, op, key)
    with _tuned_lock:
        chosen = _tuned.get(cache_key)
    if chosen is None:
        times = {name: _time_launch(run) for name, run in runners.items()}
        chosen = min(times, key=times.get)
        with _tuned_lock:
            _tuned[cache_key] = chosen
    return chosen


def _multiprocessors(like) -> int:
    if not is_cupy(like):
        return EMULATED_SMS
    import cupy

    return _device_multiprocessors(cupy.cuda.runtime.getDevice())


@lru_cache(maxsize=None)
def _device_multiprocessors(device: int) -> int:
    # One attribute, asked once per device: Device().attributes queries all ~100 of them at every call
    # (cupy/cuda/device.pyx _get_attributes), and this runs at every weight-gradient launch.
    import cupy

    runtime = cupy.cuda.runtime
    return int(runtime.deviceGetAttribute(runtime.cudaDevAttrMultiProcessorCount, device))


def _runs_per_block(parts: int, blocks_per_run: int, like) -> int:
    """How many consecutive partialSum runs one weight-gradient block adds: as many as keep the grid at
    about WEIGHT_BLOCKS_PER_SM blocks per multiprocessor, at least 1."""
    wanted_groups = -(-WEIGHT_BLOCKS_PER_SM * _multiprocessors(like) // blocks_per_run)
    return max(1, parts // max(1, wanted_groups))  # rounded down: the grid stays at or over the aim


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
    args = (x, w, y, _row_channels(xp, geo), _i32(geo.image_size), _i32(geo.filter_size), _i32(geo.padding),
            _i32(geo.stride), _i32(geo.modules_x), _i32(n), _i32(filters), _i32(geo.groups),
            _i32(geo.filter_channels), _i32(1 if local else 0))

    def runner(variant: str):
        tile = VARIANT_TILE[variant]
        columns = geo.modules * _tiles(n, tile) if local else _tiles(geo.modules * n, tile)
        grid = (columns, geo.groups * _tiles(fg, tile))
        shared = geo.taps * 8 if variant == "tile128" else 0  # the tap table (int2 per tap)
        return lambda: launch(x, VARIANTS["forward"][variant], grid, GEMM_BLOCK, args, shared_mem=shared)

    runners = {"tile64": runner("tile64")}
    if geo.taps * 8 <= TABLE_LIMIT and geo.filter_size < 256:
        runners["tile128"] = runner("tile128")
    key = (local, geo.image_size, geo.filter_size, geo.padding, geo.stride, geo.modules_x, geo.groups,
           geo.filter_channels, filters, n)
    runners[_choose("forward", x, key, fg, runners)]()
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
        reduction = geo.filter_size * geo.filter_size * (filters // geo.groups)

        def runner(variant: str):
            tile = VARIANT_TILE[variant]
            grid = (_tiles(pixels * n, tile), geo.groups * _tiles(geo.filter_channels, tile))
            shared = reduction * 8 if variant == "tile128" else 0  # the tap table (int2 per reduction index)
            return lambda: launch(dy, VARIANTS["data"][variant], grid, GEMM_BLOCK, args, shared_mem=shared)

        runners = {"tile64": runner("tile64")}
        # tile128 packs u/stride, v/stride and the residues in 8 bits each.
        if reduction * 8 <= TABLE_LIMIT and geo.filter_size < 256 and geo.stride < 256:
            runners["tile128"] = runner("tile128")
        key = (geo.image_size, geo.filter_size, geo.padding, geo.stride, geo.modules_x, geo.groups,
               geo.filter_channels, filters, n, slots)
        runners[_choose("data", dy, key, geo.filter_channels, runners)]()
    if slots == 1:
        return out
    return out.reshape(slots, geo.channels * pixels, n).sum(axis=0)


def _weight_acts(x, dy, geo, *, partial_sum: int, local: bool = False):
    """(1/N)·Σ over modules and cases as (K, F) dw for conv — each run of partial_sum modules summed on
    its own and the runs added in module order — or (M·K, F) per-module filters for local (runs of one
    module, each its own output)."""
    x, dy = _float32(x, dy)
    xp = xp_of(x)
    n = x.shape[1]
    if dy.shape[0] % geo.modules or dy.shape[1] != n:
        raise ValueError(f"dy {dy.shape} does not match M = {geo.modules} modules and N = {n} cases")
    filters = dy.shape[0] // geo.modules
    fg = _check_filters(filters, geo)
    parts = geo.modules // partial_sum
    row_channels = _row_channels(xp, geo)
    result = {}

    def runner(variant: str):
        tile = VARIANT_TILE[variant]
        blocks_per_run = _tiles(geo.taps, tile) * geo.groups * _tiles(fg, tile)
        per_block = 1 if local else _runs_per_block(parts, blocks_per_run, x)
        totals = -(-parts // per_block)

        def run():
            out = xp.empty((totals * geo.taps, filters), dtype=np.float32)
            launch(x, VARIANTS["weights"][variant], (_tiles(geo.taps, tile), geo.groups * _tiles(fg, tile), totals),
                   GEMM_BLOCK,
                   (x, dy, out, row_channels, _i32(geo.image_size), _i32(geo.filter_size), _i32(geo.padding),
                    _i32(geo.stride), _i32(geo.modules_x), _i32(n), _i32(filters), _i32(geo.groups),
                    _i32(geo.filter_channels), _i32(partial_sum), _i32(per_block), np.float32(1.0 / n)))
            if totals > 1 and not local:
                dw = xp.empty((geo.taps, filters), dtype=np.float32)
                launch(out, "sum_partials_kernel", grid_for(dw.size), 256, (out, dw, _i32(totals), _i32(dw.size)))
                out = dw
            result["out"] = out

        return run

    runners = {"tile64": runner("tile64"), "tile128": runner("tile128")}
    key = (local, geo.image_size, geo.filter_size, geo.padding, geo.stride, geo.modules_x, geo.groups,
           geo.filter_channels, filters, n, partial_sum)
    runners[_choose("weights", x, key, geo.taps, runners)]()
    return result["out"]


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
    return _weight_acts(x, dy, geo, partial_sum=per)


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
    return _weight_acts(x, dy, geo, partial_sum=1, local=True)
