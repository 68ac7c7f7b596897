"""replay/backends/numpy_ref/preprocess.py (blur, nailbed, href) against PyTorch, loops and differences.

blur's oracle is torch.conv2d with the 2-D filter g·gᵀ per channel (groups=C) and zero padding ⌊fs/2⌋:
a cross-correlation, not renormalised at the border, which is what the two 1-D passes compute. A line-by-line
re-enactment of kGaussianBlur's running sums checks that the kernel really is that correlation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gradcheck import assert_close, numeric_grad

from replay.backends.numpy_ref.preprocess import (
    blur_backward,
    blur_filter,
    blur_forward,
    href_backward,
    href_forward,
    nailbed_backward,
    nailbed_forward,
    nailbed_geometry,
)
from replay.layout import from_nchw, to_nchw


def test_blur_filter_is_the_parsers_gaussian():
    g = blur_filter(9, 4.0)  # the archive's only setting (44 files: filterSize=9, stdev=4)
    assert g.dtype == np.float32 and g.shape == (9,)
    raw = np.array([math.exp(-((4 - i) ** 2) / 32.0) for i in range(9)])
    assert_close(g, raw / raw.sum(), rtol=1e-6, what="g")
    assert (g == g[::-1]).all()  # exactly symmetric, which kGaussianBlur relies on
    with pytest.raises(ValueError):
        blur_filter(4, 1.0)


def _kernel_line(line, g):
    """kGaussianBlur for one row or column: a window of 2r running partial sums, filter taps 0..2r−1."""
    r = len(g) // 2
    partial = [0.0] * (2 * r)
    out = []
    for col in range(r):  # prime the sums of the first r outputs
        for k in range(r + 1 + col):
            partial[k] += line[col] * g[r + col - k]
    for col in range(r, len(line)):
        px = line[col]
        out.append(partial[0] + px * g[0])
        for k in range(1, 2 * r):
            partial[k - 1] = partial[k] + px * g[k]
        partial[2 * r - 1] = px * g[0]
    out.extend(partial[:r])
    return np.array(out)


@pytest.mark.parametrize("filter_size", [3, 5, 7, 9])
def test_blur_kernel_is_a_zero_padded_correlation(filter_size):
    side = 9
    g = blur_filter(filter_size, 1.5).astype(np.float64)
    rng = np.random.default_rng(60)
    x = rng.standard_normal((side * side, 1))
    img = x.reshape(side, side)
    horizontal = np.array([_kernel_line(row, g) for row in img])
    both = np.array([_kernel_line(col, g) for col in horizontal.T]).T
    y = blur_forward(x, channels=1, filter_size=filter_size, stdev=1.5)
    assert_close(y.reshape(side, side), both, rtol=1e-6, atol=1e-7, what="kernel re-enactment")


@pytest.mark.parametrize("channels, side, cases, filter_size, stdev",
                         [(3, 9, 2, 9, 4.0), (2, 6, 1, 5, 1.0), (1, 3, 3, 3, 0.7)])
def test_blur_matches_torch(channels, side, cases, filter_size, stdev):
    rng = np.random.default_rng(61)
    x = rng.standard_normal((channels * side * side, cases)).astype(np.float32)
    kw = dict(channels=channels, filter_size=filter_size, stdev=stdev)
    y = blur_forward(x, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = blur_backward(dy, **kw)
    g = torch.tensor(blur_filter(filter_size, stdev))
    weight = torch.outer(g, g).expand(channels, 1, filter_size, filter_size)
    xt = torch.tensor(to_nchw(x, channels), requires_grad=True)
    yt = F.conv2d(xt, weight, padding=filter_size // 2, groups=channels)
    yt.backward(torch.tensor(to_nchw(dy, channels)))
    assert y.dtype == np.float32
    assert_close(y, from_nchw(yt.detach().numpy()), rtol=1e-5, atol=1e-6, what="forward")
    assert_close(dx, from_nchw(xt.grad.numpy()), rtol=1e-5, atol=1e-6, what="backward")
    # the border is not renormalised: a constant image darkens at the edges
    ones = blur_forward(np.ones((channels * side * side, 1), np.float32), **kw).reshape(channels, side, side)
    assert ones[0, 0, 0] < 0.99
    assert abs(ones[0, side // 2, side // 2] - 1) < 1e-5  # the centre window lies inside the image


def test_blur_backward_matches_finite_differences():
    rng = np.random.default_rng(62)
    kw = dict(channels=2, filter_size=5, stdev=1.2)
    x = rng.standard_normal((2 * 6 * 6, 2))
    dy = rng.standard_normal(x.shape)
    numeric = numeric_grad(lambda z: float(np.sum(blur_forward(z, **kw) * dy)), x)
    assert_close(blur_backward(dy, **kw), numeric, rtol=1e-6, atol=1e-8, what="fd")


def test_nailbed_geometry_follows_the_parser():
    assert nailbed_geometry(224, 4) == (56, 2)  # samples at 2, 6, ..., 222
    assert nailbed_geometry(10, 3) == (4, 0)
    assert nailbed_geometry(11, 3) == (4, 1)
    assert nailbed_geometry(8, 3) == (3, 1)
    with pytest.raises(ValueError):
        nailbed_geometry(8, 1)  # _convBedOfNails asserts strideX > 1


@pytest.mark.parametrize("channels, side, stride, cases", [(3, 11, 3, 2), (2, 8, 2, 1), (1, 9, 4, 3)])
def test_nailbed_matches_torch_indexing(channels, side, stride, cases):
    rng = np.random.default_rng(63)
    x = rng.standard_normal((channels * side * side, cases)).astype(np.float32)
    outputs_x, start = nailbed_geometry(side, stride)
    y = nailbed_forward(x, channels=channels, stride=stride)
    assert y.shape == (channels * outputs_x ** 2, cases)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = nailbed_backward(dy, channels=channels, stride=stride, img_size=side)
    xt = torch.tensor(to_nchw(x, channels), requires_grad=True)
    picks = torch.arange(outputs_x) * stride + start
    yt = xt[:, :, picks][:, :, :, picks]
    yt.backward(torch.tensor(to_nchw(dy, channels)))
    assert_close(y, from_nchw(yt.detach().numpy()), what="forward")
    assert_close(dx, from_nchw(xt.grad.numpy()), what="backward")
    assert np.count_nonzero(dx) == dy.size  # everything off the nails stays 0


def test_href_mirrors_and_its_backward_overwrites():
    rng = np.random.default_rng(64)
    channels, side = 3, 5
    x = rng.standard_normal((channels * side * side, 2)).astype(np.float32)
    y = href_forward(x, channels=channels)
    assert_close(y, from_nchw(torch.flip(torch.tensor(to_nchw(x, channels)), dims=[3]).numpy()), what="fwd")
    assert_close(href_forward(y, channels=channels), x, what="involution")
    dy = rng.standard_normal(x.shape).astype(np.float32)
    earlier = rng.standard_normal(x.shape).astype(np.float32)
    mirrored = href_forward(dy, channels=channels)
    assert_close(href_backward(dy, channels=channels), mirrored, what="bwd")
    # layer.cu: HorizontalReflectionLayer::bpropActs ignores scaleTargets: earlier gradients are lost
    assert_close(href_backward(dy, channels=channels, prev_grad=earlier), mirrored, what="overwrite")
    assert_close(href_backward(dy, channels=channels, prev_grad=earlier, fix_overwrite=True),
                 earlier + mirrored, what="fixed")
    with pytest.raises(ValueError):
        href_forward(np.zeros((4 * 9, 1)), channels=4)


@pytest.mark.parametrize("channels, side, cases", [(3, 5, 2), (1, 4, 3), (2, 7, 1)])
def test_href_matches_torch_flip_forward_and_backward(channels, side, cases):
    """torch.flip on the width axis; its autograd is the flip of the incoming gradient. Bit for bit: a
    reflection only moves values."""
    rng = np.random.default_rng(65)
    x = rng.standard_normal((channels * side * side, cases)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(to_nchw(x, channels), requires_grad=True)
    yt = torch.flip(xt, dims=[3])
    yt.backward(torch.tensor(to_nchw(dy, channels)))
    np.testing.assert_array_equal(href_forward(x, channels=channels), from_nchw(yt.detach().numpy()))
    np.testing.assert_array_equal(href_backward(dy, channels=channels), from_nchw(xt.grad.numpy()))
    images = x.reshape(channels, side, side, cases)
    mirrored = href_forward(x, channels=channels).reshape(images.shape)
    np.testing.assert_array_equal(mirrored[:, :, side - 1], images[:, :, 0])  # column x <- column S−1−x
    if side % 2:
        np.testing.assert_array_equal(mirrored[:, :, side // 2], images[:, :, side // 2])  # the middle stays


def test_href_backward_matches_finite_differences():
    rng = np.random.default_rng(66)
    channels, side = 2, 3
    x = rng.standard_normal((channels * side * side, 2))
    dy = rng.standard_normal(x.shape)
    numeric = numeric_grad(lambda v: float(np.sum(href_forward(v, channels=channels) * dy)), x)
    assert_close(href_backward(dy, channels=channels), numeric, rtol=1e-6, atol=1e-8, what="fd")
