"""kernels/pool_norm.cu through the CPU emulator (NumPy arrays) against the NumPy reference, small shapes.

The reference (replay/backends/numpy_ref/pool.py, norm.py) runs in float64 on the same float32 inputs;
errors are max |got − want| / max |want| per array, at most 1e-4. Max-pooling inputs are small integers so
that windows hold ties (the 2012 backward gives dy to every tied pixel).
"""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends.cuda import pool_norm as cuda
from replay.backends.numpy_ref import norm as ref_norm
from replay.backends.numpy_ref import pool as ref_pool

RTOL = 1e-4


def relative_error(got, want) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float32
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def assert_close(got, want, rtol=RTOL):
    error = relative_error(got, want)
    assert error <= rtol, f"relative error {error:.3g} > {rtol}"


def f64(a):
    return a.astype(np.float64)


# (channels, image_size, size_x, stride, start, outputs_x)
POOLS = [
    (3, 13, 3, 2, 0, 0),    # the ceil rule: 6 outputs, the last window clipped
    (4, 12, 3, 2, -1, 0),   # negative start
    (3, 10, 4, 3, 0, 4),    # explicit outputs_x: one more window than the ceil rule, half outside
    (2, 11, 6, 1, -2, 0),   # stride 1, size >= 6 (kLocalPool2's extent rule for avg)
]


def pool_inputs(channels, size, outputs_x, cases=5, seed=0, integers=False):
    rng = np.random.default_rng(seed)
    shape = (channels * size * size, cases)
    x = (rng.integers(-3, 4, shape) if integers else rng.standard_normal(shape)).astype(np.float32)
    return x, rng


@pytest.mark.parametrize("pool", ["max", "maxabs", "avg"])
@pytest.mark.parametrize("geometry", POOLS, ids=lambda g: "C{}-S{}-size{}-stride{}-start{}-out{}".format(*g))
def test_pool_forward_and_backward(pool, geometry):
    channels, size, size_x, stride, start, outputs_x = geometry
    x, rng = pool_inputs(channels, size, outputs_x, integers=pool != "avg")
    kw = dict(channels=channels, size_x=size_x, stride=stride, start=start, outputs_x=outputs_x, pool=pool)
    y = cuda.pool_forward(x, **kw)
    want = ref_pool.pool_forward(f64(x), **kw)
    assert_close(y, want)
    if pool != "avg":
        np.testing.assert_array_equal(y, want)  # a selection: exact
    dy = rng.standard_normal(y.shape).astype(np.float32)
    # y from the reference in float32 so that the tie test x == y sees the same numbers
    y32 = ref_pool.pool_forward(x, **kw)
    assert_close(cuda.pool_backward(x, y32, dy, **kw), ref_pool.pool_backward(f64(x), f64(y32), f64(dy), **kw))


def test_pool_rand_is_max_and_avg_backward_without_y():
    x, rng = pool_inputs(3, 13, 0, integers=True)
    kw = dict(channels=3, size_x=3, stride=2)
    np.testing.assert_array_equal(cuda.pool_forward(x, pool="rand", do_max=True, **kw),
                                  cuda.pool_forward(x, pool="max", **kw))
    with pytest.raises(NotImplementedError):
        cuda.pool_forward(x, pool="rand", **kw)
    dy = rng.standard_normal((3 * 36, 5)).astype(np.float32)
    assert_close(cuda.pool_backward(x, None, dy, pool="avg", **kw),
                 ref_pool.pool_backward(f64(x), None, f64(dy), pool="avg", **kw))


def norm_inputs(channels=8, size=9, cases=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels * size * size, cases)).astype(np.float32) * 3
    dy = rng.standard_normal(x.shape).astype(np.float32)
    return x, dy


@pytest.mark.parametrize("size,blocked,min_div", [(5, False, 1.0), (4, False, 2.0), (3, True, 1.0)])
def test_cmrnorm(size, blocked, min_div):
    x, dy = norm_inputs()
    kw = dict(channels=8, size=size, scale=0.5, pow=0.75, min_div=min_div, blocked=blocked)
    y, denoms = cuda.cmrnorm_forward(x, **kw)
    want_y, want_d = ref_norm.cmrnorm_forward(f64(x), **kw)
    assert_close(y, want_y)
    assert_close(denoms, want_d)
    assert_close(cuda.cmrnorm_backward(x, y, denoms, dy, **kw),
                 ref_norm.cmrnorm_backward(f64(x), want_y, want_d, f64(dy), **kw))


@pytest.mark.parametrize("size", [3, 5, 6])
def test_rnorm(size):
    x, dy = norm_inputs(seed=size)
    kw = dict(channels=8, size=size, scale=2.0, pow=0.75)
    y, denoms = cuda.rnorm_forward(x, **kw)
    want_y, want_d = ref_norm.rnorm_forward(f64(x), **kw)
    assert_close(y, want_y)
    assert_close(denoms, want_d)
    want_dx = ref_norm.rnorm_backward(f64(x), want_y, want_d, f64(dy), **kw)
    assert_close(cuda.rnorm_backward(x, y, denoms, dy, **kw), want_dx)
    # The size >= 6 bug: with an earlier gradient in the buffer, 2012 overwrites it (C % 4 == 0 here).
    prev = np.ones_like(x)
    for fix in (False, True):
        got = cuda.rnorm_backward(x, y, denoms, dy, prev_grad=prev, fix_size_bug=fix, **kw)
        want = ref_norm.rnorm_backward(f64(x), want_y, want_d, f64(dy), prev_grad=f64(prev),
                                       fix_size_bug=fix, **kw)
        assert_close(got, want)
        overwritten = size >= 6 and not fix
        assert_close(got, want_dx if overwritten else want_dx + 1.0)


@pytest.mark.parametrize("include_mean_grad", [False, True])
def test_cnorm(include_mean_grad):
    x, dy = norm_inputs(channels=4, size=10, seed=7)
    kw = dict(channels=4, size=5, scale=1.5, pow=0.75)
    y, denoms, diffs = cuda.cnorm_forward(x, **kw)
    want_y, want_d, want_m = ref_norm.cnorm_forward(f64(x), **kw)
    assert_close(y, want_y)
    assert_close(denoms, want_d)
    assert_close(diffs, want_m)
    assert_close(cuda.cnorm_backward(diffs, y, denoms, dy, include_mean_grad=include_mean_grad, **kw),
                 ref_norm.cnorm_backward(want_m, want_y, want_d, f64(dy), include_mean_grad=include_mean_grad,
                                         **kw))
