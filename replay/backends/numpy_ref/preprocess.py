"""Parameter-free image layers that sit on the data: blur, nailbed (bed of nails), href (mirror).

Layout as cuda-convnet (SEMANTICS.md §2): (C·S·S, N) viewed as (C, S, S, N). In the archive all three
read the data layer directly (blur -> nailbed -> conv1, 44 files; href on data and nails, layers-126), so
their backward never runs in a real replay; it is here for completeness and for the gradient checks.
The backward functions return d(cost)/dx (PyTorch's sign; all three maps are linear).
"""
from __future__ import annotations

import math

import numpy as np

from replay.layout import as_images

BLUR_FILTER_SIZES = (3, 5, 7, 9)  # layer.py: GaussianBlurLayerParser.parse


# ------------------------------------------------------------------------------------------------- blur

def blur_filter(filter_size: int, stdev: float) -> np.ndarray:
    """The 1-D Gaussian, float32, shape (filter_size,) (layer.py: GaussianBlurLayerParser.parse).

    g_i = exp(−(⌊filter_size/2⌋ − i)² / (2·stdev²)) computed in double, stored as float32, then divided by
    its float32 sum. Symmetric, which the kernel relies on (it reads only the first filter_size − 1 taps)."""
    if filter_size not in BLUR_FILTER_SIZES:
        raise ValueError(f"filter_size must be one of {BLUR_FILTER_SIZES}, got {filter_size}")
    radius = filter_size // 2
    g = np.array([math.exp(-((radius - i) ** 2) / float(2 * stdev ** 2)) for i in range(filter_size)],
                 dtype=np.float32)
    return g / g.sum()


def _correlate_same(a: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """out[i] = Σ_k g[k]·a[i + k − r] along `axis`, zero outside: same size, no renormalisation at the
    border (cc1/cc2 conv_util.cu: kGaussianBlur)."""
    r = len(g) // 2
    n = a.shape[axis]
    out = np.zeros_like(a)
    scratch = np.empty_like(a)
    for k in range(len(g)):  # one shifted slice per filter tap, in tap order, products then sums in place
        shift = k - r  # out[i] += g[k]·a[i + shift] where 0 <= i + shift < n (the zero border adds nothing)
        lo, hi = max(0, -shift), min(n, n - shift)
        if lo >= hi:
            continue
        target = out[(slice(None),) * axis + (slice(lo, hi),)]
        product = scratch[(slice(None),) * axis + (slice(lo, hi),)]
        np.multiply(a[(slice(None),) * axis + (slice(lo + shift, hi + shift),)], a.dtype.type(g[k]), out=product)
        np.add(target, product, out=target)
    return out


def _blur(x: np.ndarray, channels: int, filter_size: int, stdev: float) -> np.ndarray:
    images = as_images(x, channels)
    side = images.shape[1]
    if filter_size > side:  # layer.py: "filter size must be smaller than image size"
        raise ValueError(f"filter_size={filter_size} exceeds the image size {side}")
    g = blur_filter(filter_size, stdev)
    horizontal = _correlate_same(images, g, axis=2)  # convGaussianBlur(..., horiz=true, ...) first
    return _correlate_same(horizontal, g, axis=1).reshape(x.shape)


def blur_forward(x: np.ndarray, *, channels: int, filter_size: int, stdev: float) -> np.ndarray:
    """Separable Gaussian blur of every map, same size, zero padded: (C·S·S, N) -> (C·S·S, N)
    (layer.cu: GaussianBlurLayer::fpropActs: a horizontal pass, then a vertical one)."""
    return _blur(x, channels, filter_size, stdev)


def blur_backward(dy: np.ndarray, *, channels: int, filter_size: int, stdev: float) -> np.ndarray:
    """dx = the same two passes on dy (layer.cu: GaussianBlurLayer::bpropActs). This is the exact adjoint
    because the filter is symmetric. The original accumulates correctly into the input's gradient."""
    return _blur(dy, channels, filter_size, stdev)


# ---------------------------------------------------------------------------------------------- nailbed

def nailbed_geometry(img_size: int, stride: int) -> tuple[int, int]:
    """(outputs_x, start) = (⌈S/stride⌉, ⌊(S − stride·(outputs_x − 1))/2⌋) (layer.py: NailbedLayerParser).
    S=224, stride=4: 56 samples per side at 2, 6, ..., 222."""
    if stride <= 1:  # cc1 conv_util.cu: _convBedOfNails asserts strideX > 1 (the parser does not check)
        raise ValueError(f"nailbed stride must be > 1, got {stride}")
    outputs_x = -(-img_size // stride)
    return outputs_x, (img_size - stride * (outputs_x - 1)) // 2


def nailbed_forward(x: np.ndarray, *, channels: int, stride: int) -> np.ndarray:
    """y[c, oy, ox] = x[c, start + oy·stride, start + ox·stride]: (C·S·S, N) -> (C·Ox·Ox, N)
    (cc1 conv_util.cu: kBedOfNails)."""
    images = as_images(x, channels)
    side = images.shape[1]
    outputs_x, start = nailbed_geometry(side, stride)
    picked = images[:, start::stride, start::stride][:, :outputs_x, :outputs_x]
    return np.ascontiguousarray(picked).reshape(channels * outputs_x * outputs_x, x.shape[1])


def nailbed_backward(dy: np.ndarray, *, channels: int, stride: int, img_size: int) -> np.ndarray:
    """dx: dy scattered back to the sampled pixels, 0 elsewhere, (C·S·S, N) with S = img_size
    (kBedOfNails with reverse=true, after zeroing the target)."""
    outputs_x, start = nailbed_geometry(img_size, stride)
    cases = dy.shape[1]
    if dy.shape[0] != channels * outputs_x * outputs_x:
        raise ValueError(f"dy has {dy.shape[0]} rows, expected {channels}·{outputs_x}²")
    dx = np.zeros((channels, img_size, img_size, cases), dtype=dy.dtype)
    end = start + stride * (outputs_x - 1) + 1
    dx[:, start:end:stride, start:end:stride] = dy.reshape(channels, outputs_x, outputs_x, cases)
    return dx.reshape(channels * img_size * img_size, cases)


# ------------------------------------------------------------------------------------------------- href

def href_forward(x: np.ndarray, *, channels: int) -> np.ndarray:
    """y[c, y, x] = x[c, y, S − 1 − x] for every case (cc2 conv_util.cu: kReflectH). Deterministic."""
    if not 1 <= channels <= 3:  # layer.py: HorizontalReflectionLayerParser; convReflectHorizontal asserts
        raise ValueError(f"href takes 1 to 3 channels, got {channels}")
    images = as_images(x, channels)
    return np.ascontiguousarray(images[:, :, ::-1]).reshape(x.shape)


def href_backward(dy: np.ndarray, *, channels: int, prev_grad: np.ndarray | None = None,
                  fix_overwrite: bool = False) -> np.ndarray:
    """The input's gradient buffer after this layer's backward: the mirrored dy.

    layer.cu: HorizontalReflectionLayer::bpropActs calls convReflectHorizontal without scaleTargets, so it
    overwrites whatever other consumers already wrote (prev_grad). fix_overwrite=True adds instead."""
    dx = href_forward(dy, channels=channels)
    if prev_grad is not None and fix_overwrite:
        return prev_grad + dx
    return dx
