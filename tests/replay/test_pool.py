"""replay/backends/numpy_ref/pool.py against a slow loop oracle, PyTorch and finite differences.

The 2012 border rule (clipped windows, ceil output count, avg over the in-image count) is not a torch
option as such; the torch oracle pads explicitly: −inf (max) or 0 (sum) on the top/left by −start and on
the bottom/right by whatever the last window hangs over, and divides a sum-pool by a count-pool of ones.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gradcheck import assert_close, numeric_grad

from replay.backends.numpy_ref.pool import pool_backward, pool_forward, pool_outputs_x
from replay.layout import from_nchw, to_nchw

# (channels, S, size_x, stride, start, N): even/odd sizes, negative and positive start, stride 1 with a big
# window (cc1's kLocalPool2 path), windows clipped at the bottom/right, N = 1, channel counts not 16k.
GEOMETRIES = [
    (16, 6, 3, 2, 0, 2),
    (4, 7, 3, 2, -1, 2),
    (3, 6, 2, 2, 0, 1),
    (5, 5, 4, 3, -2, 2),
    (2, 9, 6, 1, -3, 2),
    (3, 6, 3, 3, 1, 2),
    (2, 4, 4, 1, 0, 3),
]


def _loop_pool(x, channels, size_x, stride, start, outputs_x, pool):
    """The obviously-correct version: visit every output, clip its window, scan it row by row."""
    side = round((x.shape[0] // channels) ** 0.5)
    img = x.reshape(channels, side, side, -1)
    out = np.zeros((channels, outputs_x, outputs_x, x.shape[1]), dtype=np.float64)
    for c in range(channels):
        for oy in range(outputs_x):
            for ox in range(outputs_x):
                for n in range(x.shape[1]):
                    ys = range(max(0, start + oy * stride), min(side, start + oy * stride + size_x))
                    xs = range(max(0, start + ox * stride), min(side, start + ox * stride + size_x))
                    vals = [float(img[c, yy, xx, n]) for yy in ys for xx in xs]
                    if pool == "max":
                        out[c, oy, ox, n] = max(vals)
                    elif pool == "avg":
                        out[c, oy, ox, n] = sum(vals) / len(vals)
                    else:  # maxabs: later element wins ties
                        best = 0.0
                        for v in vals:
                            best = best if abs(best) > abs(v) else v
                        out[c, oy, ox, n] = best
    return out.reshape(-1, x.shape[1])


def _loop_max_undo(x, y, dy, channels, size_x, stride, start, outputs_x):
    side = round((x.shape[0] // channels) ** 0.5)
    img = x.reshape(channels, side, side, -1)
    pooled = y.reshape(channels, outputs_x, outputs_x, -1)
    grads = dy.reshape(pooled.shape)
    dx = np.zeros(img.shape)
    for c, oy, ox, n in np.ndindex(pooled.shape):
        for yy in range(max(0, start + oy * stride), min(side, start + oy * stride + size_x)):
            for xx in range(max(0, start + ox * stride), min(side, start + ox * stride + size_x)):
                if img[c, yy, xx, n] == pooled[c, oy, ox, n]:
                    dx[c, yy, xx, n] += grads[c, oy, ox, n]
    return dx.reshape(x.shape)


def _torch_pool(xt, side, size_x, stride, start, outputs_x, pool):
    """NCHW torch tensor -> NCHW pooled tensor with the 2012 border rule, via explicit padding."""
    before = -start
    after = (outputs_x - 1) * stride + size_x - side - before
    assert before >= 0 and after >= 0, "oracle only for windows that start at or before the image"
    pads = (before, after, before, after)
    if pool == "max":
        padded = F.pad(xt, pads, value=float("-inf"))
        return F.max_pool2d(padded, size_x, stride)
    total = F.avg_pool2d(F.pad(xt, pads), size_x, stride, divisor_override=1)
    count = F.avg_pool2d(F.pad(torch.ones_like(xt), pads), size_x, stride, divisor_override=1)
    return total / count


def _distinct(rng, shape, dtype):
    """Values with no ties and gaps of at least 1e-2, so max pooling is differentiable everywhere."""
    values = rng.permutation(int(np.prod(shape))).astype(np.float64) * 0.01 - 0.3 * np.prod(shape) * 0.01
    return values.reshape(shape).astype(dtype)


def test_outputs_x_uses_ceil():
    # SEMANTICS §9 trap 2: 24 -> 12 and 32 -> 16 for sizeX=3, stride=2 (torch's floor gives 11 and 15).
    assert pool_outputs_x(24, 3, 0, 2) == 12
    assert pool_outputs_x(32, 3, 0, 2) == 16
    assert pool_outputs_x(55, 3, 0, 2) == 27  # AlexNet conv1 -> pool1
    assert pool_outputs_x(7, 3, -1, 2) == 4
    assert pool_outputs_x(6, 3, 1, 3) == 2


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("pool", ["max", "avg", "maxabs"])
def test_forward_matches_loop_oracle(geometry, pool):
    channels, side, size_x, stride, start, cases = geometry
    rng = np.random.default_rng(1)
    x = rng.standard_normal((channels * side * side, cases)).astype(np.float32)
    outputs_x = pool_outputs_x(side, size_x, start, stride)
    y = pool_forward(x, channels=channels, size_x=size_x, stride=stride, start=start, pool=pool)
    assert y.dtype == np.float32 and y.shape == (channels * outputs_x ** 2, cases)
    assert_close(y, _loop_pool(x, channels, size_x, stride, start, outputs_x, pool), rtol=1e-5, atol=1e-6,
                 what=f"{pool} {geometry}")


@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if g[4] <= 0])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_forward_and_backward_match_torch(geometry, pool):
    channels, side, size_x, stride, start, cases = geometry
    rng = np.random.default_rng(2)
    x = _distinct(rng, (channels * side * side, cases), np.float32)
    outputs_x = pool_outputs_x(side, size_x, start, stride)
    kw = dict(channels=channels, size_x=size_x, stride=stride, start=start, pool=pool)
    y = pool_forward(x, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool_backward(x, y, dy, **kw)

    xt = torch.tensor(to_nchw(x, channels), requires_grad=True)
    yt = _torch_pool(xt, side, size_x, stride, start, outputs_x, pool)
    yt.backward(torch.tensor(to_nchw(dy, channels)))
    assert_close(y, from_nchw(yt.detach().numpy()), rtol=1e-5, atol=1e-6, what="forward")
    assert_close(dx, from_nchw(xt.grad.numpy()), rtol=1e-5, atol=1e-6, what="backward")


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("pool", ["max", "avg", "maxabs"])
def test_backward_matches_finite_differences(geometry, pool):
    channels, side, size_x, stride, start, cases = geometry
    rng = np.random.default_rng(3)
    x = _distinct(rng, (channels * side * side, cases), np.float64)
    if pool == "maxabs":  # distinct magnitudes, random signs: no |x| ties
        x = (rng.permutation(x.size).reshape(x.shape) + 1) * 0.01 * rng.choice([-1.0, 1.0], size=x.shape)
    kw = dict(channels=channels, size_x=size_x, stride=stride, start=start, pool=pool)
    y = pool_forward(x, **kw)
    dy = rng.standard_normal(y.shape)
    dx = pool_backward(x, y, dy, **kw)
    numeric = numeric_grad(lambda z: float(np.sum(pool_forward(z, **kw) * dy)), x, eps=1e-4)
    assert_close(dx, numeric, rtol=1e-6, atol=1e-8, what=f"{pool} {geometry}")


def test_max_ties_all_get_the_gradient():
    # kLocalMaxUndo: every pixel equal to the window's max receives the full gradient (SEMANTICS §9 trap 14).
    channels, side, size_x, stride, start = 2, 4, 2, 2, 0
    x = np.zeros((channels * side * side, 1), dtype=np.float32)
    img = x.reshape(channels, side, side, 1)
    img[0, 0:2, 0:2] = 5.0            # a window of four equal maxima
    img[1, 2, 2], img[1, 3, 3] = 3.0, 3.0  # two tied maxima in one window
    kw = dict(channels=channels, size_x=size_x, stride=stride, start=start, pool="max")
    y = pool_forward(x, **kw)
    dy = np.ones_like(y)
    dx = pool_backward(x, y, dy, **kw).reshape(channels, side, side)
    assert (dx[0, 0:2, 0:2] == 1.0).all()
    assert dx[1, 2, 2] == 1.0 and dx[1, 3, 3] == 1.0 and dx[1, 2, 3] == 0.0
    # zeros tie too: every pixel of an all-zero window gets its gradient
    assert (dx[0, 2:4, 2:4] == 1.0).all()
    assert_close(dx.reshape(x.shape), _loop_max_undo(x, y, dy, channels, size_x, stride, start, 2), what="ties")
    # torch gives one argmax per window instead: the totals agree, the placement does not
    xt = torch.tensor(to_nchw(x, channels), requires_grad=True)
    F.max_pool2d(xt, 2, 2).sum().backward()
    assert xt.grad.numpy()[0, 0, 0:2, 0:2].sum() == 1.0


def test_overlapping_windows_accumulate_ties():
    # stride < size: a shared maximum collects the gradient of every window that holds it.
    channels, side = 1, 5
    x = np.zeros((side * side, 1))
    x[2 * side + 2] = 1.0
    kw = dict(channels=channels, size_x=3, stride=1, start=-1, pool="max")
    y = pool_forward(x, **kw)
    dy = np.arange(1.0, y.size + 1).reshape(y.shape)
    dx = pool_backward(x, y, dy, **kw)
    assert y.shape == (16, 1)  # outputsX = ⌈(5 + 1 − 3)/1⌉ + 1 = 4
    assert_close(dx, _loop_max_undo(x, y, dy, channels, 3, 1, -1, 4), what="overlap")
    assert dx[2 * side + 2, 0] == dy.reshape(4, 4)[1:4, 1:4].sum()


def test_maxabs_keeps_the_sign_and_prefers_the_later_tie():
    x = np.array([[1.0], [-3.0], [3.0], [2.0],   # a 4x4 image, row by row
                  [-4.0], [0.5], [0.0], [-1.0],
                  [0.0], [0.0], [0.0], [0.0],
                  [0.0], [-2.0], [0.0], [0.0]], dtype=np.float32)
    kw = dict(channels=1, size_x=2, stride=2, start=0, pool="maxabs")
    y = pool_forward(x, **kw).ravel()
    # window (0,0): 1, −3, −4, 0.5 -> −4; window (0,1): 3, 2, 0, −1 -> 3; window (1,1) all 0; (1,0): −2
    assert list(y) == [-4.0, 3.0, -2.0, 0.0]
    dx = pool_backward(x, pool_forward(x, **kw), np.ones((4, 1), np.float32), **kw).ravel()
    assert dx[4] == 1.0 and dx[2] == 1.0 and dx[1] == 0.0 and dx[13] == 1.0
    ties = np.array([[-3.0], [3.0], [0.0], [0.0]], dtype=np.float32)  # row-major scan: −3 then +3
    assert pool_forward(ties, channels=1, size_x=2, stride=2, pool="maxabs")[0, 0] == 3.0


def test_avg_divides_by_the_in_image_count():
    # 3x3 ones, size 2, stride 2: the bottom/right windows are clipped to 2 and 1 pixels, still average 1.
    x = np.ones((9, 1), dtype=np.float32)
    y = pool_forward(x, channels=1, size_x=2, stride=2, pool="avg")
    assert y.shape == (4, 1) and (y == 1.0).all()
    dx = pool_backward(x, y, np.ones_like(y), channels=1, size_x=2, stride=2, pool="avg").reshape(3, 3)
    assert_close(dx, [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]], what="avg undo")


def test_windows_outside_the_image_follow_the_kernel():
    # start = −size_x puts the first window wholly above/left of the image (the parser allows it):
    # MaxPooler's base value −2e38 and AvgPooler's 0/0 come out as the GPU computes them.
    x = np.arange(1.0, 17.0, dtype=np.float32).reshape(16, 1)
    kw = dict(channels=1, size_x=2, stride=2, start=-2)
    assert pool_outputs_x(4, 2, -2, 2) == 3
    ymax = pool_forward(x, pool="max", **kw).reshape(3, 3)
    assert ymax[0, 0] == np.float32(-2e38) and ymax[0, 1] == np.float32(-2e38) and ymax[1, 1] == 6.0
    yavg = pool_forward(x, pool="avg", **kw).reshape(3, 3)
    assert np.isnan(yavg[0, 0]) and np.isnan(yavg[2, 0]) and yavg[1, 1] == 3.5
    dx = pool_backward(x, yavg.reshape(9, 1), np.ones((9, 1), np.float32), pool="avg", **kw)
    assert np.isfinite(dx).all() and (dx == 0.25).all()
    # an explicit outputsX past the image: kLocalPool multiplies two negative extents (a positive divisor),
    # kLocalPool2 (stride 1, sizeX >= 6) counts visited pixels (0): 0/4 = 0 there, 0/0 = NaN here
    with np.errstate(invalid="ignore"):
        beyond = pool_forward(x, pool="avg", outputs_x=5, **kw).reshape(5, 5)
        assert beyond[4, 4] == 0.0 and np.isnan(beyond[0, 4])
        big = pool_forward(np.ones((36, 1)), channels=1, size_x=6, stride=1, outputs_x=8, pool="avg")
        assert big[0, 0] == 1.0 and np.isnan(big.reshape(8, 8)[7, 7])


def test_explicit_outputs_x_and_rand():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16 * 36, 2)).astype(np.float32)
    kw = dict(channels=16, size_x=3, stride=2, start=0)
    y_auto = pool_forward(x, pool="max", **kw)
    y_two = pool_forward(x, pool="max", outputs_x=2, **kw)
    assert_close(y_two.reshape(16, 2, 2, 2), y_auto.reshape(16, 3, 3, 2)[:, :2, :2], what="outputsX=2")
    # rand with doMax=true is MaxPooler (layer.cu: RandomPoolLayer); without it there is no kernel to follow
    assert_close(pool_forward(x, pool="rand", do_max=True, **kw), y_auto, what="rand doMax")
    dy = np.ones_like(y_auto)
    assert_close(pool_backward(x, y_auto, dy, pool="rand", do_max=True, **kw),
                 pool_backward(x, y_auto, dy, pool="max", **kw), what="rand undo")
    with pytest.raises(NotImplementedError, match="convLocalRandomPool"):
        pool_forward(x, pool="rand", rng=np.random.default_rng(0), **kw)


def test_rejects_what_the_parser_rejects_and_leaves_inputs_alone():
    x = np.ones((16 * 25, 2), dtype=np.float32)
    with pytest.raises(ValueError):
        pool_forward(x, channels=16, size_x=3, stride=4, pool="max")  # stride > sizeX
    with pytest.raises(ValueError):
        pool_forward(x, channels=16, size_x=6, stride=1, pool="max")  # sizeX > S
    with pytest.raises(ValueError):
        pool_forward(x, channels=16, size_x=3, stride=2, pool="median")
    with pytest.raises(ValueError):
        pool_forward(x, channels=7, size_x=3, stride=2, pool="max")  # not 7 square channels
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16 * 25, 2)).astype(np.float32)
    keep = x.copy()
    y = pool_forward(x, channels=16, size_x=3, stride=2, pool="max")
    dy = np.ones_like(y)
    pool_backward(x, y, dy, channels=16, size_x=3, stride=2, pool="max")
    assert (x == keep).all() and (dy == 1).all()
