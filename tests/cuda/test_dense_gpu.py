"""replay/backends/cuda/dense.py on a GPU (CuPy arrays, cupy.RawModule) at the full 2012 shapes, against the
NumPy reference on the same data. Skipped where CuPy or a GPU is missing (CI): written, not yet run on a GPU.

Tolerances as the emulated tests (1e-5 relative) except where cuBLAS sums in another order (fc: 1e-4
relative on 9216-long dot products) and the GPU's expf/logf differ by a few ulps.
"""
from __future__ import annotations

import numpy as np
import pytest

from replay import update as ref_update
from replay.backends.cuda import dense, philox
from replay.backends.numpy_ref import costs as ref_costs
from replay.backends.numpy_ref import dense as ref
from replay.backends.numpy_ref import preprocess as ref_pre

pytestmark = pytest.mark.gpu

cupy = pytest.importorskip("cupy")
if not cupy.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)

N = 128  # the 2012 minibatch


def rand(*shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def close(got, want, rtol=1e-5, atol=1e-6):
    got = cupy.asnumpy(got)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("kind,params", [("relu", ()), ("logistic", ()), ("tanh", (1.7159, 0.6666)), ("softrelu", ())])
def test_neuron_conv1_shape(kind, params):
    x = rand(96 * 55 * 55, N, scale=2.0, seed=1)
    dy = rand(96 * 55 * 55, N, seed=2)
    y_ref = ref.neuron_forward(x, kind, params)
    y = dense.neuron_forward(cupy.asarray(x), kind, params)
    close(y, y_ref)
    close(dense.neuron_backward(cupy.asarray(x), cupy.asarray(y_ref), cupy.asarray(dy), kind, params),
          ref.neuron_backward(x, y_ref, dy, kind, params))


def test_softmax_logreg_1000_classes():
    x = rand(1000, N, scale=3.0, seed=3)
    labels = np.random.default_rng(4).integers(0, 1000, size=(1, N)).astype(np.float32)
    y_ref = ref.softmax_forward(x)
    y = dense.softmax_forward(cupy.asarray(x))
    close(y, y_ref)
    got = dense.logreg_cost(cupy.asarray(labels), cupy.asarray(y_ref), topk=5)
    want = ref_costs.logreg_cost(labels, y_ref, topk=5)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1:], want[1:], atol=1e-4)
    close(dense.softmax_logreg_backward(cupy.asarray(labels), cupy.asarray(y_ref), 1.0),
          ref_costs.softmax_logreg_backward(labels, y_ref, 1.0))
    dy = rand(1000, N, seed=5)
    close(dense.softmax_backward(cupy.asarray(y_ref), cupy.asarray(dy)), ref.softmax_backward(y_ref, dy), atol=1e-6)


def test_dropout_fc6_shape_mask_is_the_philox_mirror():
    x = rand(4096, N, seed=6)
    y, mask = dense.dropout_forward(cupy.asarray(x), keep=0.5, enable=True, train=True, rng=np.random.default_rng(7))
    want = philox.dropout_mask(x.shape, 0.5, philox.draw_key(np.random.default_rng(7)))
    assert np.array_equal(cupy.asnumpy(mask), want)
    assert np.array_equal(cupy.asnumpy(y), x * want)


def test_fc6_shape():
    x, w, b = rand(9216, N, seed=8), rand(9216, 4096, scale=0.01, seed=9), rand(1, 4096, seed=10)
    dy = rand(4096, N, seed=11)
    close(dense.fc_forward([cupy.asarray(x)], [cupy.asarray(w)], cupy.asarray(b)), ref.fc_forward([x], [w], b),
          rtol=1e-4, atol=1e-4)
    close(dense.fc_backward_data(cupy.asarray(dy), cupy.asarray(w)), ref.fc_backward_data(dy, w), rtol=1e-4, atol=1e-4)
    close(dense.fc_backward_weights(cupy.asarray(x), cupy.asarray(dy)), ref.fc_backward_weights(x, dy),
          rtol=1e-4, atol=1e-5)
    close(dense.fc_bias_grad(cupy.asarray(dy)), ref.fc_bias_grad(dy), atol=1e-6)


def test_blur_nailbed_224():
    x = rand(3 * 224 * 224, N, seed=12)
    close(dense.blur_forward(cupy.asarray(x), channels=3, filter_size=9, stdev=2.0),
          ref_pre.blur_forward(x, channels=3, filter_size=9, stdev=2.0))
    y = dense.nailbed_forward(cupy.asarray(x), channels=3, stride=4)
    close(y, ref_pre.nailbed_forward(x, channels=3, stride=4), rtol=0, atol=0)
    close(dense.nailbed_backward(y, channels=3, stride=4, img_size=224),
          ref_pre.nailbed_backward(cupy.asnumpy(y), channels=3, stride=4, img_size=224), rtol=0, atol=0)



@pytest.mark.parametrize("size", [224, 56])  # layers-126: href-data, href-nails
def test_href_126_shapes(size):
    x, prev = rand(3 * size * size, N, seed=16), rand(3 * size * size, N, seed=17)
    close(dense.href_forward(cupy.asarray(x), channels=3), ref_pre.href_forward(x, channels=3), rtol=0, atol=0)
    close(dense.href_backward(cupy.asarray(x), channels=3, prev_grad=cupy.asarray(prev), fix_overwrite=True),
          ref_pre.href_backward(x, channels=3, prev_grad=prev, fix_overwrite=True), rtol=0, atol=0)


def test_sgd_update_fc6_bit_identical():
    w, v, g = rand(9216, 4096, scale=0.01, seed=13), rand(9216, 4096, scale=1e-3, seed=14), rand(9216, 4096, seed=15)
    w_ref, v_ref = ref_update.sgd_update(w, v, g, eps=0.01, mom=0.9, wc=0.0005)
    wd, vd = cupy.asarray(w), cupy.asarray(v)
    dense.sgd_update(wd, vd, cupy.asarray(g), eps=0.01, mom=0.9, wc=0.0005)
    assert np.array_equal(cupy.asnumpy(wd), w_ref) and np.array_equal(cupy.asnumpy(vd), v_ref)
