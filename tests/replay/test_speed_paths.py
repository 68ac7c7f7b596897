"""The NumPy backend's speed paths give the same numbers as the plain ones.

conv_forward / local_forward can keep their im2col columns in a `saved` dict for the weight gradient of
the same pass (replay/backends/numpy_ref/conv.py); the network does that on training passes and frees
them as the backward uses them. Here: the reuse gives bit-identical gradients, the columns are handed
over once and then gone, columns of another input are never used, and a whole net's gradients do not
change when the network stops keeping them."""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends.numpy_ref import conv
from replay.network import Network
from replay.plan import build_plan

# (channels, image_size, filter_size, padding, stride, groups, filters, cases, randSparse filter_channels)
CASES = {
    "stride4-inexact": (3, 24, 11, 0, 4, 1, 8, 3, None),
    "pad2-groups2": (4, 8, 5, 2, 1, 2, 8, 3, None),
    "pad1-stride2-inexact-groups2": (8, 8, 3, 1, 2, 2, 6, 3, None),
    "randsparse-oversample2": (8, 7, 3, 1, 2, 4, 8, 3, 4),
}


def case(name, local=False):
    c, s, fs, p, st, groups, filters, n, sparse_cf = CASES[name]
    rng = np.random.default_rng(3)
    mx = conv.modules_x_for(s, fs, p, st)
    cf = c // groups if sparse_cf is None else sparse_cf
    conns = None if sparse_cf is None else np.concatenate([rng.permutation(c) for _ in range(groups * cf // c)])
    kw = dict(channels=c, filter_size=fs, padding=p, stride=st, groups=groups, modules_x=mx, conns=conns,
              filter_channels=None if sparse_cf is None else cf)
    x = rng.standard_normal((c * s * s, n)).astype(np.float32)
    w = rng.standard_normal(((mx * mx if local else 1) * cf * fs * fs, filters)).astype(np.float32)
    dy = rng.standard_normal((filters * mx * mx, n)).astype(np.float32)
    return kw, x, w, dy


@pytest.mark.parametrize("name", CASES)
def test_conv_weight_gradient_reuses_the_forward_columns_once(name):
    kw, x, w, dy = case(name)
    saved = {}
    y = conv.conv_forward(x, w, saved=saved, **kw)
    assert np.array_equal(y, conv.conv_forward(x, w, **kw))
    assert saved["patches"][0] is x
    dw = conv.conv_backward_weights(x, dy, saved=saved, **kw)
    assert saved == {}  # handed over and dropped: the columns are freed once used
    assert np.array_equal(dw, conv.conv_backward_weights(x, dy, **kw))
    # Nothing left to reuse: computed afresh, the same again.
    assert np.array_equal(conv.conv_backward_weights(x, dy, saved=saved, **kw), dw)


@pytest.mark.parametrize("name", CASES)
def test_local_weight_gradient_reuses_the_forward_columns_once(name):
    kw, x, w, dy = case(name, local=True)
    saved = {}
    conv.local_forward(x, w, saved=saved, **kw)
    dw = conv.local_backward_weights(x, dy, saved=saved, **kw)
    assert saved == {}
    assert np.array_equal(dw, conv.local_backward_weights(x, dy, **kw))


def test_columns_of_another_input_are_not_used():
    kw, x, w, dy = case("pad2-groups2")
    other = x[::-1].copy()
    saved = {}
    conv.conv_forward(other, w, saved=saved, **kw)
    assert np.array_equal(conv.conv_backward_weights(x, dy, saved=saved, **kw),
                          conv.conv_backward_weights(x, dy, **kw))
    assert saved == {}


def test_network_frees_the_columns_and_its_gradients_do_not_depend_on_them(release):
    experiment = release.experiment("cifar-18pct-noisylr")
    plan = build_plan(experiment)
    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 20.0, size=(3 * 32 * 32, 4)).astype(np.float32)
    labels = rng.integers(0, 10, size=(1, 4)).astype(np.float32)
    grads = {}
    for keep in (True, False):
        net = Network(plan, experiment, rng=np.random.default_rng(0), dtype=np.float32)
        net.keep_im2col = keep
        net.forward(data, labels, train=True, rng=np.random.default_rng(2))
        kept = [key for key, value in net._cache.items() if key[0:1] == ("im2col",) and value]
        assert len(kept) == (3 if keep else 0)  # conv1, conv2, conv3: one input each
        net.backward(labels)
        assert not any(value for key, value in net._cache.items() if key[0:1] == ("im2col",))
        grads[keep] = net.grads
        # A test pass keeps nothing.
        net.forward(data, labels, train=False, rng=np.random.default_rng(2))
        assert not any(key[0:1] == ("im2col",) for key in net._cache)
    assert grads[True].keys() == grads[False].keys()
    for key in grads[True]:
        assert np.array_equal(grads[True][key], grads[False][key]), key
