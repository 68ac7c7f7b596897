"""Pooling and response/contrast normalisation on the CUDA kernels of kernels/pool_norm.cu: the functions of
replay/backends/numpy_ref/pool.py and norm.py, same signatures and semantics (read their docstrings: the
2012 window and border rules, the max-backward tie rule, the divided `scale`, minDiv, the size >= 6 bug).

Arrays are float32: NumPy arrays run through the CPU emulator, CuPy arrays on the GPU
(replay/backends/cuda/kernels.py: launch). Every kernel is one thread per output element, grid-stride; the
backward passes gather over the windows that hold a pixel, so no atomics.
"""
from __future__ import annotations

import math

import numpy as np

from replay.backends.cuda.kernels import grid_for, launch, xp_of

# The reference's argument checks and the size >= 6 buffer rule: one definition for both backends.
from replay.backends.numpy_ref.norm import _gradient_buffer
from replay.backends.numpy_ref.pool import _check, _rand_is_max, pool_outputs_x

__all__ = [
    "cmrnorm_backward",
    "cmrnorm_forward",
    "cnorm_backward",
    "cnorm_forward",
    "pool_backward",
    "pool_forward",
    "pool_outputs_x",
    "rnorm_backward",
    "rnorm_forward",
]

BLOCK = 256
_POOL_KINDS = {"max": 0, "maxabs": 1, "avg": 2, "rand": 0}  # pool_norm.cu: POOL_*; rand runs as max


def _i32(value) -> np.int32:
    return np.int32(value)


def _float32(*arrays):
    """The arrays as C-contiguous float32; anything else is refused (the kernels are float32 only)."""
    out = []
    for a in arrays:
        if a.dtype != np.float32:
            raise TypeError(f"the CUDA kernels take float32 arrays, got {a.dtype}")
        out.append(xp_of(a).ascontiguousarray(a))
    return out


def _side(x, channels: int) -> int:
    features = x.shape[0]
    side = math.isqrt(features // channels)
    if channels * side * side != features:
        raise ValueError(f"{features} features are not {channels} square channels")
    return side


# ---------------------------------------------------------------------------------------------------- pool


def pool_forward(x, *, channels: int, size_x: int, stride: int, start: int = 0, outputs_x: int = 0, pool: str,
                 do_max: bool = False, rng=None):
    """numpy_ref.pool.pool_forward: (C·S·S, N) -> (C·Ox·Ox, N), Ox = outputs_x or the parser's ceil rule."""
    del rng
    side = _side(x, channels)
    outputs_x = _check(pool, size_x, stride, outputs_x, side, start)
    _rand_is_max(pool, do_max)
    (x,) = _float32(x)
    xp = xp_of(x)
    n = x.shape[1]
    y = xp.empty((channels * outputs_x * outputs_x, n), dtype=np.float32)
    launch(x, "pool_forward_kernel", grid_for(y.size), BLOCK,
           (x, y, _i32(channels), _i32(side), _i32(size_x), _i32(start), _i32(stride), _i32(outputs_x),
            _i32(n), _i32(_POOL_KINDS[pool])))
    return y


def pool_backward(x, y, dy, *, channels: int, size_x: int, stride: int, start: int = 0, outputs_x: int = 0,
                  pool: str, do_max: bool = False, rng=None):
    """numpy_ref.pool.pool_backward: dx (C·S·S, N); max/maxabs/rand give dy[w] to every pixel equal to y[w]
    (kLocalMaxUndo, ties included), avg dy[w]/region. y is not read for avg (it may be None there)."""
    del rng
    side = _side(x, channels)
    outputs_x = _check(pool, size_x, stride, outputs_x, side, start)
    _rand_is_max(pool, do_max)
    if y is None:
        if pool != "avg":
            raise ValueError("max pooling's backward needs the forward's output y")
        y = dy
    x, y, dy = _float32(x, y, dy)
    xp = xp_of(x)
    n = x.shape[1]
    if dy.shape != (channels * outputs_x * outputs_x, n) or y.shape != dy.shape:
        raise ValueError(f"y and dy must be ({channels * outputs_x * outputs_x}, {n}), got {y.shape}, {dy.shape}")
    dx = xp.empty(x.shape, dtype=np.float32)
    launch(x, "pool_backward_kernel", grid_for(dx.size), BLOCK,
           (x, y, dy, dx, _i32(channels), _i32(side), _i32(size_x), _i32(start), _i32(stride), _i32(outputs_x),
            _i32(n), _i32(_POOL_KINDS[pool])))
    return dx


# ------------------------------------------------------------------------------------------------- norms


def _undo_prelims(dy, y, denoms, coeff: float):
    """kRNormUndoPrelims: coeff·dy·y/denoms, coeff = −2αβ."""
    scratch = xp_of(dy).empty(dy.shape, dtype=np.float32)
    launch(dy, "norm_undo_prelims_kernel", grid_for(dy.size), BLOCK,
           (dy, y, denoms, scratch, _i32(dy.size), np.float32(coeff)))
    return scratch


def cmrnorm_forward(x, *, channels: int, size: int, scale: float, pow: float, min_div: float = 1.0,
                    blocked: bool = False):
    """numpy_ref.norm.cmrnorm_forward: (y, denoms), d = min_div + (scale/size)·Σ_window x², y = x·d^−pow."""
    side = _side(x, channels)
    (x,) = _float32(x)
    xp = xp_of(x)
    y = xp.empty(x.shape, dtype=np.float32)
    denoms = xp.empty(x.shape, dtype=np.float32)
    launch(x, "cmrnorm_forward_kernel", grid_for(x.size), BLOCK,
           (x, denoms, y, _i32(channels), _i32(side * side), _i32(x.shape[1]), _i32(size),
            np.float32(scale / size), np.float32(pow), np.float32(min_div), _i32(1 if blocked else 0)))
    return y, denoms


def cmrnorm_backward(x, y, denoms, dy, *, channels: int, size: int, scale: float, pow: float,
                     min_div: float = 1.0, blocked: bool = False):
    """numpy_ref.norm.cmrnorm_backward: dx = dy·d^−pow − 2(scale/size)·pow·x·Σ_{j: f ∈ W(j)} dy_j·y_j/d_j."""
    del min_div  # inside denoms
    side = _side(x, channels)
    x, y, denoms, dy = _float32(x, y, denoms, dy)
    xp = xp_of(x)
    scratch = _undo_prelims(dy, y, denoms, -2.0 * (scale / size) * pow)
    dx = xp.empty(x.shape, dtype=np.float32)
    launch(x, "cmrnorm_undo_kernel", grid_for(x.size), BLOCK,
           (x, scratch, denoms, dy, dx, _i32(channels), _i32(side * side), _i32(x.shape[1]), _i32(size),
            np.float32(pow), _i32(1 if blocked else 0)))
    return dx


def _spatial_forward(inputs, x, channels: int, size: int, scale: float, pow: float):
    side = _side(x, channels)
    xp = xp_of(x)
    y = xp.empty(x.shape, dtype=np.float32)
    denoms = xp.empty(x.shape, dtype=np.float32)
    launch(x, "spatial_norm_forward_kernel", grid_for(x.size), BLOCK,
           (inputs, x, denoms, y, _i32(channels), _i32(side), _i32(x.shape[1]), _i32(size),
            np.float32(scale / (size * size)), np.float32(pow)))
    return y, denoms


def _spatial_undo(inputs, y, denoms, dy, channels: int, size: int, scale: float, pow: float):
    """convResponseNormUndo's maths: dy·d^−pow + inputs·Σ_{q ∋ p} (−2αβ·dy·y/d)_q, α = scale/size²."""
    side = _side(inputs, channels)
    inputs, y, denoms, dy = _float32(inputs, y, denoms, dy)
    xp = xp_of(inputs)
    scratch = _undo_prelims(dy, y, denoms, -2.0 * (scale / (size * size)) * pow)
    dx = xp.empty(inputs.shape, dtype=np.float32)
    launch(inputs, "spatial_norm_undo_kernel", grid_for(dx.size), BLOCK,
           (inputs, scratch, denoms, dy, dx, _i32(channels), _i32(side), _i32(inputs.shape[1]), _i32(size),
            np.float32(pow)))
    return dx


def rnorm_forward(x, *, channels: int, size: int, scale: float, pow: float):
    """numpy_ref.norm.rnorm_forward: (y, denoms), d = 1 + (scale/size²)·Σ x² over the clipped window."""
    (x,) = _float32(x)
    return _spatial_forward(x, x, channels, size, scale, pow)


def rnorm_backward(x, y, denoms, dy, *, channels: int, size: int, scale: float, pow: float, prev_grad=None,
                   fix_size_bug: bool = False):
    """numpy_ref.norm.rnorm_backward: the input's gradient buffer after this layer (prev_grad and the
    size >= 6 overwrite as there)."""
    dx = _spatial_undo(x, y, denoms, dy, channels, size, scale, pow)
    return _gradient_buffer(dx, prev_grad, size, channels, fix_size_bug)


def cnorm_forward(x, *, channels: int, size: int, scale: float, pow: float):
    """numpy_ref.norm.cnorm_forward: (y, denoms, mean_diffs); μ = avg pool (size, stride 1, start −⌊size/2⌋,
    outputs S), m = x − μ, d = 1 + (scale/size²)·Σ m², y = x·d^−pow."""
    (x,) = _float32(x)
    side = _side(x, channels)
    means = pool_forward(x, channels=channels, size_x=size, stride=1, start=-(size // 2), outputs_x=side,
                         pool="avg")
    mean_diffs = x - means
    y, denoms = _spatial_forward(mean_diffs, x, channels, size, scale, pow)
    return y, denoms, mean_diffs


def cnorm_backward(mean_diffs, y, denoms, dy, *, channels: int, size: int, scale: float, pow: float,
                   prev_grad=None, fix_size_bug: bool = False, include_mean_grad: bool = False):
    """numpy_ref.norm.cnorm_backward: 2012's gradient with μ held constant (include_mean_grad=False), or
    the exact one; prev_grad / fix_size_bug as in rnorm_backward."""
    dx = _spatial_undo(mean_diffs, y, denoms, dy, channels, size, scale, pow)
    if include_mean_grad:
        xp = xp_of(dx)
        direct = dy * xp.power(denoms, np.float32(-pow))
        through_m = dx - direct
        side = _side(mean_diffs, channels)
        dx = dx - pool_backward(mean_diffs, None, xp.ascontiguousarray(through_m), channels=channels,
                                size_x=size, stride=1, start=-(size // 2), outputs_x=side, pool="avg")
    return _gradient_buffer(dx, prev_grad, size, channels, fix_size_bug)
