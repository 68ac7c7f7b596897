"""kernels/conv.cu and pool_norm.cu on a GPU (CuPy) at full 2012 shapes, against the NumPy reference.

Shapes from the release's layers-120.cfg (224-pixel crops, 128 cases): conv1 3→32 11×11 stride 4 (55×55
modules, partialSum 5), pool 3/2 (55→27), cmrnorm 5, conv2 32→128 5×5 padding 2 (partialSum 3), a 3×3
groups-2 conv on 13 pixels, a randSparse conv, and a CIFAR-size local layer. The reference runs in float32
on the CPU; errors are max |got − want| / max |want|, at most 1e-4. The conv GEMMs run once per variant
(replay/backends/cuda/conv.py VARIANTS, forced with ALEXNET_CONV_VARIANT) and once through the autotuner.
Skipped without CuPy and a GPU (marker `gpu`).
"""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends.numpy_ref import conv as ref
from replay.backends.numpy_ref import norm as ref_norm
from replay.backends.numpy_ref import pool as ref_pool

pytestmark = pytest.mark.gpu

RTOL = 1e-4
CASES = 128


@pytest.fixture(scope="module")
def cp():
    cupy = pytest.importorskip("cupy")
    if not cupy.is_available():
        pytest.skip("no CUDA GPU")
    return cupy


def assert_close(got, want, rtol=RTOL):
    got = got.get() if hasattr(got, "get") else got
    assert got.shape == want.shape and got.dtype == np.float32
    scale = float(np.max(np.abs(want))) or 1.0
    error = float(np.max(np.abs(got.astype(np.float64) - want))) / scale
    assert error <= rtol, f"relative error {error:.3g} > {rtol}"


# name: (channels, image_size, filter_size, padding, stride, filters, groups, partial_sum, overSample or 0)
CONVS = {
    "conv1": (3, 224, 11, 0, 4, 32, 1, 5, 0),
    "conv2": (32, 27, 5, 2, 1, 128, 1, 3, 0),
    "conv3-groups2": (192, 13, 3, 1, 1, 192, 2, 13, 0),
    "randsparse": (64, 13, 3, 1, 1, 128, 4, 0, 2),
}


def conv_case(name: str, *, local: bool = False, seed: int = 0):
    channels, size, fs, padding, stride, filters, groups, partial_sum, over = CONVS[name]
    rng = np.random.default_rng(seed)
    mx = ref.modules_x_for(size, fs, padding, stride)
    cf, conns = channels // groups, None
    if over:
        cf = over * channels // groups
        conns = np.concatenate([rng.permutation(channels) for _ in range(over)]).astype(np.int32)
    kw = {"channels": channels, "filter_size": fs, "padding": padding, "stride": stride, "groups": groups,
              "filter_channels": cf, "modules_x": mx, "conns": conns}
    rows = cf * fs * fs * (mx * mx if local else 1)
    x = rng.standard_normal((channels * size * size, CASES), dtype=np.float32)
    w = (rng.standard_normal((rows, filters), dtype=np.float32) * 0.01).astype(np.float32)
    dy = rng.standard_normal((filters * mx * mx, CASES), dtype=np.float32)
    return x, w, dy, kw, size, partial_sum


@pytest.mark.parametrize("variant", ["autotuned", "tile64", "tile128"])
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_full_shapes(cp, name, variant, monkeypatch):
    from replay.backends.cuda import conv as cuda_conv

    if variant == "autotuned":
        monkeypatch.delenv(cuda_conv.VARIANT_ENV, raising=False)
    else:
        monkeypatch.setenv(cuda_conv.VARIANT_ENV, variant)
    x, w, dy, kw, size, partial_sum = conv_case(name)
    gx, gw, gdy = cp.asarray(x), cp.asarray(w), cp.asarray(dy)
    assert_close(cuda_conv.conv_forward(gx, gw, **kw), ref.conv_forward(x, w, **kw))
    assert_close(cuda_conv.conv_backward_data(gdy, gw, image_size=size, **kw),
                 ref.conv_backward_data(dy, w, image_size=size, **kw))
    assert_close(cuda_conv.conv_backward_weights(gx, gdy, partial_sum=partial_sum, **kw),
                 ref.conv_backward_weights(x, dy, partial_sum=partial_sum, **kw))
    filters = w.shape[1]
    b = np.random.default_rng(1).standard_normal((filters, 1), dtype=np.float32)
    assert_close(cuda_conv.add_conv_bias(gdy, cp.asarray(b), shared=True, filters=filters),
                 ref.add_conv_bias(dy, b, shared=True, filters=filters))
    assert_close(cuda_conv.conv_bias_grad(gdy, shared=True, filters=filters),
                 ref.conv_bias_grad(dy, shared=True, filters=filters))


def test_autotuner_times_once_per_shape_and_device(cp, monkeypatch):
    from replay.backends.cuda import conv as cuda_conv

    monkeypatch.delenv(cuda_conv.VARIANT_ENV, raising=False)
    cuda_conv.forget_autotuning()
    x, w, dy, kw, size, partial_sum = conv_case("conv2")
    gx, gw, gdy = cp.asarray(x), cp.asarray(w), cp.asarray(dy)
    first = cuda_conv.conv_forward(gx, gw, **kw)
    cuda_conv.conv_backward_data(gdy, gw, image_size=size, **kw)
    cuda_conv.conv_backward_weights(gx, gdy, partial_sum=partial_sum, **kw)
    choices = cuda_conv.autotune_choices()
    assert sorted(op for _, op, _ in choices) == ["data", "forward", "weights"]
    assert set(choices.values()) <= set(cuda_conv.VARIANT_TILE)
    timed = []
    monkeypatch.setattr(cuda_conv, "_time_launch", lambda run: timed.append(run) or 0.0)
    again = cuda_conv.conv_forward(gx, gw, **kw)  # cached: no timing
    assert timed == [] and cuda_conv.autotune_choices() == choices
    cp.testing.assert_array_equal(first, again)


def test_local_cifar_shape(cp):
    from replay.backends.cuda import conv as cuda_conv

    # A CIFAR local layer (layers-conv-local style): 64 channels of 8×8, 3×3 filters, padding 1, 32 filters.
    rng = np.random.default_rng(2)
    kw = {"channels": 64, "filter_size": 3, "padding": 1, "stride": 1, "groups": 1, "modules_x": 8}
    x = rng.standard_normal((64 * 64, CASES), dtype=np.float32)
    w = rng.standard_normal((64 * 64 * 9, 32), dtype=np.float32) * np.float32(0.01)
    dy = rng.standard_normal((32 * 64, CASES), dtype=np.float32)
    gx, gw, gdy = cp.asarray(x), cp.asarray(w), cp.asarray(dy)
    assert_close(cuda_conv.local_forward(gx, gw, **kw), ref.local_forward(x, w, **kw))
    assert_close(cuda_conv.local_backward_data(gdy, gw, image_size=8, **kw),
                 ref.local_backward_data(dy, w, image_size=8, **kw))
    assert_close(cuda_conv.local_backward_weights(gx, gdy, **kw), ref.local_backward_weights(x, dy, **kw))
    assert_close(cuda_conv.conv_bias_grad(gdy, shared=False, filters=32),
                 ref.conv_bias_grad(dy, shared=False, filters=32))


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_full_shape(cp, pool):
    from replay.backends.cuda import pool_norm as cuda

    rng = np.random.default_rng(3)
    x = rng.standard_normal((32 * 55 * 55, CASES), dtype=np.float32)
    kw = {"channels": 32, "size_x": 3, "stride": 2, "pool": pool}
    y = ref_pool.pool_forward(x, **kw)
    assert_close(cuda.pool_forward(cp.asarray(x), **kw), y)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    assert_close(cuda.pool_backward(cp.asarray(x), cp.asarray(y), cp.asarray(dy), **kw),
                 ref_pool.pool_backward(x, y, dy, **kw))


def test_cmrnorm_full_shape(cp):
    from replay.backends.cuda import pool_norm as cuda

    rng = np.random.default_rng(4)
    x = rng.standard_normal((32 * 27 * 27, CASES), dtype=np.float32) * np.float32(10)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    kw = {"channels": 32, "size": 5, "scale": 0.0001, "pow": 0.75}
    y, denoms = ref_norm.cmrnorm_forward(x, **kw)
    gy, gdenoms = cuda.cmrnorm_forward(cp.asarray(x), **kw)
    assert_close(gy, y)
    assert_close(gdenoms, denoms)
    assert_close(cuda.cmrnorm_backward(cp.asarray(x), gy, gdenoms, cp.asarray(dy), **kw),
                 ref_norm.cmrnorm_backward(x, y, denoms, dy, **kw))
