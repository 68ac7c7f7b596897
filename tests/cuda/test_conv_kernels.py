"""kernels/conv.cu through the CPU emulator (NumPy arrays) against the NumPy reference, on small shapes.

Every shape is compared with replay/backends/numpy_ref/conv.py evaluated in float64 on the same float32
inputs; the error is max |got − want| / max |want| per array, which must stay below 1e-4 (float32 sums of
a few hundred terms). The shapes cover padding, stride with a past-the-border last module, an 11×11
stride-4 filter, groups, randSparse with overSample 2, filter/channel counts over one 64-wide tile, N = 1,
and partialSum runs.
"""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends.cuda import conv as cuda_conv
from replay.backends.numpy_ref import conv as ref

RTOL = 1e-4


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float32
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def assert_close(got, want, rtol=RTOL):
    error = relative_error(got, want)
    assert error <= rtol, f"relative error {error:.3g} > {rtol}"


# (channels, image_size, filter_size, padding, stride, filters, groups, cases, conns overSample or 0)
SHAPES = {
    "3x3-pad1": (3, 9, 3, 1, 1, 8, 1, 5, 0),
    "5x5-stride2-groups2": (8, 12, 5, 2, 2, 16, 2, 6, 0),  # Mx = 1 + ceil(11/2) = 7 reaches past the border
    "11x11-stride4": (3, 27, 11, 0, 4, 8, 1, 5, 0),
    "randsparse": (4, 10, 3, 1, 1, 8, 4, 5, 2),  # 4 groups of Cf = 2 channels, conns = 2 permutations
    "wide-tiles-n1": (66, 7, 3, 1, 1, 70, 1, 1, 0),  # filters and channels over one 64 tile
}


def make_case(name: str, seed: int = 0, local: bool = False):
    channels, size, fs, padding, stride, filters, groups, cases, over = SHAPES[name]
    rng = np.random.default_rng(seed)
    mx = ref.modules_x_for(size, fs, padding, stride)
    conns = None
    cf = channels // groups
    if over:
        cf = over * channels // groups
        conns = np.concatenate([rng.permutation(channels) for _ in range(over)]).astype(np.int32)
    kw = dict(channels=channels, filter_size=fs, padding=padding, stride=stride, groups=groups,
              filter_channels=cf, modules_x=mx, conns=conns)
    taps = cf * fs * fs
    rows = mx * mx * taps if local else taps
    x = rng.standard_normal((channels * size * size, cases)).astype(np.float32)
    w = rng.standard_normal((rows, filters)).astype(np.float32)
    dy = rng.standard_normal((filters * mx * mx, cases)).astype(np.float32)
    return x, w, dy, kw, size


def f64(a):
    return a.astype(np.float64)


@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_forward_and_gradients(name):
    x, w, dy, kw, size = make_case(name)
    assert_close(cuda_conv.conv_forward(x, w, **kw), ref.conv_forward(f64(x), f64(w), **kw))
    assert_close(cuda_conv.conv_backward_data(dy, w, image_size=size, **kw),
                 ref.conv_backward_data(f64(dy), f64(w), image_size=size, **kw))
    assert_close(cuda_conv.conv_backward_weights(x, dy, **kw), ref.conv_backward_weights(f64(x), f64(dy), **kw))


@pytest.mark.parametrize("partial_sum", [1, 7, 49])
def test_conv_weight_partial_sums(partial_sum):
    # 5x5-stride2-groups2 has M = 49 modules: 49 runs of 1, 7 runs of 7, one run of 49.
    x, _, dy, kw, _ = make_case("5x5-stride2-groups2", seed=1)
    got = cuda_conv.conv_backward_weights(x, dy, partial_sum=partial_sum, **kw)
    assert_close(got, ref.conv_backward_weights(f64(x), f64(dy), partial_sum=partial_sum, **kw))


def test_conv_weight_partial_sum_must_divide_modules():
    x, _, dy, kw, _ = make_case("3x3-pad1")  # M = 81
    with pytest.raises(ValueError, match="partial_sum"):
        cuda_conv.conv_backward_weights(x, dy, partial_sum=10, **kw)


@pytest.mark.parametrize("name", ["3x3-pad1", "5x5-stride2-groups2", "randsparse"])
def test_local_forward_and_gradients(name):
    x, w, dy, kw, size = make_case(name, seed=2, local=True)
    assert_close(cuda_conv.local_forward(x, w, **kw), ref.local_forward(f64(x), f64(w), **kw))
    assert_close(cuda_conv.local_backward_data(dy, w, image_size=size, **kw),
                 ref.local_backward_data(f64(dy), f64(w), image_size=size, **kw))
    assert_close(cuda_conv.local_backward_weights(x, dy, **kw),
                 ref.local_backward_weights(f64(x), f64(dy), **kw))


@pytest.mark.parametrize("shared", [True, False])
def test_bias_add_and_grad(shared):
    rng = np.random.default_rng(3)
    filters, modules, cases = 6, 25, 7
    y = rng.standard_normal((filters * modules, cases)).astype(np.float32)
    b = rng.standard_normal((filters if shared else filters * modules, 1)).astype(np.float32)
    got = cuda_conv.add_conv_bias(y, b, shared=shared, filters=filters)
    assert_close(got, ref.add_conv_bias(f64(y), f64(b), shared=shared, filters=filters), rtol=1e-7)
    inplace = y.copy()
    assert cuda_conv.add_conv_bias(inplace, b, shared=shared, filters=filters, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, got)
    assert_close(cuda_conv.conv_bias_grad(y, shared=shared, filters=filters),
                 ref.conv_bias_grad(f64(y), shared=shared, filters=filters))


def test_refuses_float64_and_bad_geometry():
    x, w, _, kw, _ = make_case("3x3-pad1")
    with pytest.raises(TypeError, match="float32"):
        cuda_conv.conv_forward(f64(x), f64(w), **kw)
    with pytest.raises(ValueError, match="modules_x"):
        cuda_conv.conv_forward(x, w, **{**kw, "modules_x": kw["modules_x"] + 1})


@pytest.mark.parametrize("name", ["wide-tiles-n1", "randsparse"])
def test_results_do_not_depend_on_block_order(name, monkeypatch):
    # Every output element is written by one thread of one block, so a shuffled block order (the emulator's
    # ALEXNET_EMU_SHUFFLE, read at each launch) must give bit-identical results.
    x, w, dy, kw, size = make_case(name, seed=4)

    def run():
        return (cuda_conv.conv_forward(x, w, **kw), cuda_conv.conv_backward_data(dy, w, image_size=size, **kw),
                cuda_conv.conv_backward_weights(x, dy, **kw))

    in_order = run()
    monkeypatch.setenv("ALEXNET_EMU_SHUFFLE", "12345")
    for a, b in zip(in_order, run(), strict=True):
        np.testing.assert_array_equal(a, b)
