"""replay/backends/numpy_ref/norm.py against PyTorch, slow loops and finite differences.

Oracles, all in NCHW torch with autograd for the backward:
- cmrnorm: torch.nn.functional.local_response_norm(x, size, alpha=scale, beta=pow, k=min_div), unchanged.
  torch already divides alpha by size (it averages x² over the window) and pads the channel window with
  size//2 in front and (size−1)//2 behind, which is the 2012 window; so no adjustment is needed beyond
  passing the params-file scale as alpha and minDiv as k. blocked has no torch op: the oracle sums x² over
  channel blocks with view/sum/repeat_interleave.
- rnorm / cnorm: a box sum from avg_pool2d(divisor_override=1) over an explicitly padded x² (padding size//2
  before, size−1−size//2 after), d = 1 + scale/size²·box; cnorm's mean is box(x)/box(1), detached for the
  2012 gradient and kept for include_mean_grad=True.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gradcheck import assert_close, numeric_grad

from replay.backends.numpy_ref.norm import (
    cmrnorm_backward,
    cmrnorm_forward,
    cnorm_backward,
    cnorm_forward,
    rnorm_backward,
    rnorm_forward,
)
from replay.layout import from_nchw, to_nchw

SCALE, POW = 0.6, 0.75  # large enough that the normalisation changes the numbers visibly


def _torch(a, channels, grad=False):
    return torch.tensor(to_nchw(a, channels), requires_grad=grad)


def _torch_cmrnorm(xt, size, scale, pow, min_div, blocked):
    if not blocked:
        return F.local_response_norm(xt, size, alpha=scale, beta=pow, k=min_div)
    n, c, h, w = xt.shape
    blocks = -(-c // size)
    squares = F.pad(xt * xt, (0, 0, 0, 0, 0, blocks * size - c))
    per_block = squares.view(n, blocks, size, h, w).sum(2)
    per_map = per_block.repeat_interleave(size, dim=1)[:, :c]
    return xt * (min_div + scale / size * per_map) ** -pow


def _torch_box(a, size):
    before, after = size // 2, size - 1 - size // 2
    return F.avg_pool2d(F.pad(a, (before, after, before, after)), size, stride=1, divisor_override=1)


def _torch_rnorm(xt, size, scale, pow):
    return xt * (1 + scale / size ** 2 * _torch_box(xt * xt, size)) ** -pow


def _torch_cnorm(xt, size, scale, pow, detach_mean):
    mean = _torch_box(xt, size) / _torch_box(torch.ones_like(xt), size)
    if detach_mean:
        mean = mean.detach()
    diffs = xt - mean
    return xt * (1 + scale / size ** 2 * _torch_box(diffs * diffs, size)) ** -pow


# ---------------------------------------------------------------------------------------------- cmrnorm

# (channels, S, N, size, blocked, min_div): odd and even sizes, size = C, blocks that do not divide C.
CROSS_MAP = [
    (16, 3, 2, 5, False, 2.0),
    (16, 2, 3, 4, False, 1.0),
    (32, 2, 1, 9, False, 0.25),
    (16, 2, 2, 2, False, 1.0),
    (16, 2, 2, 16, False, 2.0),
    (16, 2, 2, 5, True, 2.0),
    (16, 2, 2, 3, True, 1.0),
    (32, 1, 2, 16, True, 1.0),
]


@pytest.mark.parametrize("case", CROSS_MAP)
def test_cmrnorm_matches_torch(case):
    channels, side, cases, size, blocked, min_div = case
    rng = np.random.default_rng(10)
    x = (2 * rng.standard_normal((channels * side * side, cases))).astype(np.float32)
    kw = dict(channels=channels, size=size, scale=SCALE, pow=POW, min_div=min_div, blocked=blocked)
    y, denoms = cmrnorm_forward(x, **kw)
    assert y.dtype == np.float32 and denoms.dtype == np.float32 and y.shape == x.shape
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = cmrnorm_backward(x, y, denoms, dy, **kw)
    xt = _torch(x, channels, grad=True)
    yt = _torch_cmrnorm(xt, size, SCALE, POW, min_div, blocked)
    yt.backward(_torch(dy, channels))
    assert_close(y, from_nchw(yt.detach().numpy()), rtol=1e-5, atol=1e-6, what="forward")
    assert_close(dx, from_nchw(xt.grad.numpy()), rtol=1e-4, atol=1e-5, what="backward")


@pytest.mark.parametrize("case", [CROSS_MAP[0], CROSS_MAP[1], CROSS_MAP[5], CROSS_MAP[6]])
def test_cmrnorm_backward_matches_finite_differences(case):
    channels, side, cases, size, blocked, min_div = case
    rng = np.random.default_rng(11)
    x = 2 * rng.standard_normal((channels * side * side, cases))
    kw = dict(channels=channels, size=size, scale=SCALE, pow=POW, min_div=min_div, blocked=blocked)
    y, denoms = cmrnorm_forward(x, **kw)
    dy = rng.standard_normal(y.shape)
    numeric = numeric_grad(lambda z: float(np.sum(cmrnorm_forward(z, **kw)[0] * dy)), x)
    assert_close(cmrnorm_backward(x, y, denoms, dy, **kw), numeric, rtol=1e-6, atol=1e-8, what="fd")


def test_cmrnorm_scale_is_divided_by_size_and_min_div_is_added():
    # layer.py: NormLayerParser.add_params divides scale by size; d = minDiv + α·Σx² (cc2 kFCNorm).
    x = np.zeros((16, 1))
    x[0] = 2.0
    y, denoms = cmrnorm_forward(x, channels=16, size=5, scale=0.5, pow=0.75, min_div=2.0)
    expected = np.full(16, 2.0)
    expected[[0, 1, 2]] = 2.0 + 0.5 / 5 * 4.0  # maps whose window [f−2, f+2] holds map 0
    assert_close(denoms.ravel(), expected, what="denoms")
    assert_close(y[0, 0], 2.0 * (2.0 + 0.4) ** -0.75, what="y0")


def test_cmrnorm_even_window_and_blocks_sit_where_the_kernel_puts_them():
    def touched(size, blocked, hot):
        x = np.zeros((32, 1))
        x[hot] = 1.0
        _, denoms = cmrnorm_forward(x, channels=32, size=size, scale=1.0, pow=1.0, blocked=blocked)
        return list(np.flatnonzero(denoms.ravel() != 1.0))

    assert touched(4, False, 10) == [9, 10, 11, 12]  # W(f) = [f−2, f+1]: one more map below than above
    assert touched(5, False, 10) == [8, 9, 10, 11, 12]
    assert touched(4, False, 0) == [0, 1, 2]          # clipped at the first map
    assert touched(5, True, 7) == [5, 6, 7, 8, 9]     # blocks [0,5), [5,10), ...
    assert touched(5, True, 31) == [30, 31]           # the last, short block [30, 32)
    # the backward's window is the transpose: a map's gradient reads the maps whose window holds it
    x = np.random.default_rng(12).standard_normal((32, 1))
    kw = dict(channels=32, size=4, scale=1.0, pow=1.0)
    y, denoms = cmrnorm_forward(x, **kw)
    dy = np.zeros_like(y)
    dy[10] = 1.0
    dx = cmrnorm_backward(x, y, denoms, dy, **kw).ravel()
    assert list(np.flatnonzero(dx)) == [8, 9, 10, 11]  # only dy_10 ≠ 0: dx_f ≠ 0 for f in W(10) = [8, 11]


# ---------------------------------------------------------------------------------------- rnorm, cnorm

# (channels, S, N, size): odd and even sizes, size = S, size >= 6 (cc1's kCNorm2 / kRNormUndo2 path).
SPATIAL = [
    (4, 5, 2, 3),
    (3, 6, 1, 5),
    (16, 7, 2, 6),
    (8, 6, 2, 4),
    (1, 5, 3, 5),
    (2, 4, 2, 1),
]


@pytest.mark.parametrize("case", SPATIAL)
def test_rnorm_matches_torch(case):
    channels, side, cases, size = case
    rng = np.random.default_rng(20)
    x = (2 * rng.standard_normal((channels * side * side, cases))).astype(np.float32)
    kw = dict(channels=channels, size=size, scale=SCALE, pow=POW)
    y, denoms = rnorm_forward(x, **kw)
    assert y.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = rnorm_backward(x, y, denoms, dy, **kw)
    xt = _torch(x, channels, grad=True)
    yt = _torch_rnorm(xt, size, SCALE, POW)
    yt.backward(_torch(dy, channels))
    assert_close(y, from_nchw(yt.detach().numpy()), rtol=1e-5, atol=1e-6, what="forward")
    assert_close(dx, from_nchw(xt.grad.numpy()), rtol=1e-4, atol=1e-5, what="backward")


def test_rnorm_matches_a_pixel_loop():
    channels, side, size = 2, 5, 4
    rng = np.random.default_rng(21)
    x = rng.standard_normal((channels * side * side, 2))
    y, denoms = rnorm_forward(x, channels=channels, size=size, scale=SCALE, pow=POW)
    img = x.reshape(channels, side, side, 2)
    expect = np.empty_like(img)
    for c, yy, xx, n in np.ndindex(img.shape):
        total = 0.0
        for wy in range(yy - size // 2, yy - size // 2 + size):
            for wx in range(xx - size // 2, xx - size // 2 + size):
                if 0 <= wy < side and 0 <= wx < side:
                    total += img[c, wy, wx, n] ** 2
        expect[c, yy, xx, n] = 1 + SCALE / size ** 2 * total  # scale/size², k = 1
    assert_close(denoms, expect.reshape(x.shape), what="denoms")
    assert_close(y, x * expect.reshape(x.shape) ** -POW, what="y")


@pytest.mark.parametrize("case", [SPATIAL[0], SPATIAL[2], SPATIAL[3]])
def test_rnorm_backward_matches_finite_differences(case):
    channels, side, cases, size = case
    rng = np.random.default_rng(22)
    x = 2 * rng.standard_normal((channels * side * side, cases))
    kw = dict(channels=channels, size=size, scale=SCALE, pow=POW)
    y, denoms = rnorm_forward(x, **kw)
    dy = rng.standard_normal(y.shape)
    numeric = numeric_grad(lambda z: float(np.sum(rnorm_forward(z, **kw)[0] * dy)), x)
    assert_close(rnorm_backward(x, y, denoms, dy, **kw), numeric, rtol=1e-6, atol=1e-8, what="fd")


@pytest.mark.parametrize("case", SPATIAL)
def test_cnorm_matches_torch(case):
    channels, side, cases, size = case
    rng = np.random.default_rng(30)
    x = (2 * rng.standard_normal((channels * side * side, cases))).astype(np.float32)
    kw = dict(channels=channels, size=size, scale=SCALE, pow=POW)
    y, denoms, mean_diffs = cnorm_forward(x, **kw)
    assert y.dtype == np.float32 and mean_diffs.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for exact in (False, True):
        dx = cnorm_backward(mean_diffs, y, denoms, dy, include_mean_grad=exact, **kw)
        xt = _torch(x, channels, grad=True)
        yt = _torch_cnorm(xt, size, SCALE, POW, detach_mean=not exact)
        yt.backward(_torch(dy, channels))
        assert_close(y, from_nchw(yt.detach().numpy()), rtol=1e-5, atol=1e-6, what="forward")
        assert_close(dx, from_nchw(xt.grad.numpy()), rtol=1e-4, atol=2e-5, what=f"backward exact={exact}")


def test_cnorm_numerator_is_raw_x_and_its_gradient_ignores_the_mean():
    channels, side, size = 4, 5, 3
    rng = np.random.default_rng(31)
    x = 2 * rng.standard_normal((channels * side * side, 2)) + 3.0  # a mean far from 0
    kw = dict(channels=channels, size=size, scale=SCALE, pow=POW)
    y, denoms, mean_diffs = cnorm_forward(x, **kw)
    assert_close(y, x * denoms ** -POW, what="y = x·d^-β")
    means = x - mean_diffs
    img = x.reshape(channels, side, side, 2)
    assert_close(means.reshape(img.shape)[1, 0, 0], img[1, 0:2, 0:2].mean(axis=(0, 1)), what="corner mean")
    assert_close(means.reshape(img.shape)[1, 2, 2], img[1, 1:4, 1:4].mean(axis=(0, 1)), what="inner mean")
    dy = rng.standard_normal(y.shape)
    exact = cnorm_backward(mean_diffs, y, denoms, dy, include_mean_grad=True, **kw)
    numeric = numeric_grad(lambda z: float(np.sum(cnorm_forward(z, **kw)[0] * dy)), x)
    assert_close(exact, numeric, rtol=1e-6, atol=1e-8, what="exact gradient vs fd")
    faithful = cnorm_backward(mean_diffs, y, denoms, dy, **kw)
    assert np.abs(faithful - numeric).max() > 1e-3  # the 2012 gradient really is an approximation


# ---------------------------------------------------------------------------------- the size >= 6 bug

@pytest.mark.parametrize("layer", ["rnorm", "cnorm"])
def test_size_six_and_up_overwrites_earlier_gradients(layer):
    rng = np.random.default_rng(40)
    channels, side = 4, 7
    x = rng.standard_normal((channels * side * side, 2))
    earlier = rng.standard_normal(x.shape)
    for size in (5, 6, 7):
        kw = dict(channels=channels, size=size, scale=SCALE, pow=POW)
        if layer == "rnorm":
            y, denoms = rnorm_forward(x, **kw)
            inputs, backward = x, rnorm_backward
        else:
            y, denoms, inputs = cnorm_forward(x, **kw)
            backward = cnorm_backward
        dy = rng.standard_normal(y.shape)
        alone = backward(inputs, y, denoms, dy, **kw)
        replayed = backward(inputs, y, denoms, dy, prev_grad=earlier, **kw)
        fixed = backward(inputs, y, denoms, dy, prev_grad=earlier, fix_size_bug=True, **kw)
        assert_close(fixed, earlier + alone, what="fixed adds")
        if size >= 6:  # convResponseNormUndo's inverted "add" flag: the earlier gradient is lost
            assert_close(replayed, alone, what=f"size {size} overwrites")
        else:
            assert_close(replayed, earlier + alone, what=f"size {size} adds")


def test_inputs_are_not_modified():
    rng = np.random.default_rng(50)
    x = rng.standard_normal((16 * 9, 2)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    keep_x, keep_dy = x.copy(), dy.copy()
    y, denoms = cmrnorm_forward(x, channels=16, size=5, scale=SCALE, pow=POW)
    keep_y = y.copy()
    cmrnorm_backward(x, y, denoms, dy, channels=16, size=5, scale=SCALE, pow=POW)
    y2, d2 = rnorm_forward(x, channels=16, size=3, scale=SCALE, pow=POW)
    rnorm_backward(x, y2, d2, dy, channels=16, size=3, scale=SCALE, pow=POW)
    y3, d3, m3 = cnorm_forward(x, channels=16, size=3, scale=SCALE, pow=POW)
    cnorm_backward(m3, y3, d3, dy, channels=16, size=3, scale=SCALE, pow=POW, include_mean_grad=True)
    assert (x == keep_x).all() and (dy == keep_dy).all() and (y == keep_y).all()
    with pytest.raises(ValueError):
        cmrnorm_forward(x, channels=7, size=5, scale=SCALE, pow=POW)
