"""The NumPy backend's speed paths give the same numbers as the plain ones.

conv_forward / local_forward can keep their im2col columns in a `saved` dict for the weight gradient of
the same pass (replay/backends/numpy_ref/conv.py), and the same dict keeps the large scratch arrays (the
columns, the padded image, the data gradient's padded sums) for the next call; the network passes one dict
per conv/local input for its whole life. Here: the reuse gives bit-identical results, the columns are
handed over once, columns of another input are never used, a reused buffer gives what a fresh one gives,
no returned array is ever a scratch array (so the next minibatch cannot overwrite it), and a whole net's
results do not change when the network stops keeping them."""
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
    assert "patches" not in saved  # handed over once; only the scratch buffers stay
    assert np.array_equal(dw, conv.conv_backward_weights(x, dy, **kw))
    # Nothing left to reuse: computed afresh, the same again.
    assert np.array_equal(conv.conv_backward_weights(x, dy, saved=saved, **kw), dw)


@pytest.mark.parametrize("name", CASES)
def test_local_weight_gradient_reuses_the_forward_columns_once(name):
    kw, x, w, dy = case(name, local=True)
    saved = {}
    conv.local_forward(x, w, saved=saved, **kw)
    dw = conv.local_backward_weights(x, dy, saved=saved, **kw)
    assert "patches" not in saved
    assert np.array_equal(dw, conv.local_backward_weights(x, dy, **kw))


def test_columns_of_another_input_are_not_used():
    kw, x, w, dy = case("pad2-groups2")
    other = x[::-1].copy()
    saved = {}
    conv.conv_forward(other, w, saved=saved, **kw)
    assert np.array_equal(conv.conv_backward_weights(x, dy, saved=saved, **kw),
                          conv.conv_backward_weights(x, dy, **kw))
    assert "patches" not in saved


def _scratch_arrays(saved):
    return [value for key, value in saved.items() if key != "patches"]


def _shares_memory(array, scratch):
    return any(np.shares_memory(array, buffer) for buffer in scratch)


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_reused_scratch_gives_what_fresh_arrays_give_and_is_never_returned(name, local):
    """Two minibatches through one dict, as the network runs them: the second reuses the first's buffers
    (the same objects) and its results equal a fresh computation; nothing returned is scratch, so the
    first minibatch's results are intact after the second."""
    kw, x, w, dy = case(name, local)
    forward = conv.local_forward if local else conv.conv_forward
    backward_data = conv.local_backward_data if local else conv.conv_backward_data
    backward_weights = conv.local_backward_weights if local else conv.conv_backward_weights
    side = CASES[name][1]
    rng = np.random.default_rng(5)
    saved, results, buffers = {}, [], None
    for step in range(2):
        if step:  # a new minibatch of the same shape
            x = rng.standard_normal(x.shape).astype(np.float32)
            dy = rng.standard_normal(dy.shape).astype(np.float32)
        y = forward(x, w, saved=saved, **kw)
        dx = backward_data(dy, w, image_size=side, saved=saved, **kw)
        dw = backward_weights(x, dy, saved=saved, **kw)
        scratch = _scratch_arrays(saved)
        assert scratch and not any(_shares_memory(r, scratch) for r in (y, dx, dw))
        if buffers is None:
            buffers = {key: id(value) for key, value in saved.items() if key != "patches"}
        else:
            assert {key: id(value) for key, value in saved.items() if key != "patches"} == buffers  # reused
        assert np.array_equal(y, forward(x, w, **kw))
        assert np.array_equal(dx, backward_data(dy, w, image_size=side, **kw))
        assert np.array_equal(dw, backward_weights(x, dy, **kw))
        results.append((x, dy, y.copy(), dx.copy(), dw.copy(), (y, dx, dw)))
    x0, dy0, y0, dx0, dw0, returned = results[0]
    for kept, value in zip(returned, (y0, dx0, dw0)):
        assert np.array_equal(kept, value)  # not overwritten by the second minibatch


def test_scratch_of_another_shape_or_dtype_is_replaced():
    kw, x, w, dy = case("pad2-groups2")
    saved = {}
    conv.conv_forward(x, w, saved=saved, **kw)
    half = x[:, :2].copy()
    y = conv.conv_forward(half, w, saved=saved, **kw)  # fewer cases: new buffers of the right shape
    assert saved["columns"].shape[-1] == 2 and np.array_equal(y, conv.conv_forward(half, w, **kw))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = conv.conv_forward(x64, w64, saved=saved, **kw)
    assert saved["columns"].dtype == np.float64 and np.array_equal(y, conv.conv_forward(x64, w64, **kw))
    # float32 columns are not used for a float64 weight gradient of the "same" x
    conv.conv_forward(x, w, saved=saved, **kw)
    dy64 = dy.astype(np.float64)
    assert np.array_equal(conv.conv_backward_weights(x64, dy64, saved=saved, **kw),
                          conv.conv_backward_weights(x64, dy64, **kw))


def test_add_conv_bias_in_place_equals_a_new_array():
    rng = np.random.default_rng(4)
    y = rng.standard_normal((6 * 9, 5)).astype(np.float32)
    for shared, b in ((True, rng.standard_normal((6, 1))), (False, rng.standard_normal((54, 1)))):
        b = b.astype(np.float32)
        fresh = conv.add_conv_bias(y, b, shared=shared, filters=6)
        assert fresh is not y
        inplace = y.copy()
        assert conv.add_conv_bias(inplace, b, shared=shared, filters=6, out=inplace) is inplace
        assert np.array_equal(inplace, fresh)


def test_network_results_over_several_minibatches_do_not_depend_on_the_reuse(release):
    """Three training steps and a test pass of a smaller batch in between, with and without the network's
    kept scratch: bit-identical costs, activations and gradients; and what one step handed out (outputs,
    gradients) is not changed by later steps."""
    experiment = release.experiment("cifar-18pct-noisylr")
    plan = build_plan(experiment)
    runs = {}
    for keep in (True, False):
        net = Network(plan, experiment, rng=np.random.default_rng(0), dtype=np.float32)
        net.keep_im2col = keep
        rng, step_rng, seen = np.random.default_rng(1), np.random.default_rng(2), []
        for step in range(3):
            data = rng.normal(0.0, 20.0, size=(3 * 32 * 32, 4)).astype(np.float32)
            labels = rng.integers(0, 10, size=(1, 4)).astype(np.float32)
            costs = net.forward(data, labels, train=True, rng=step_rng)
            outputs = {name: net.output(name) for name in ("conv1", "conv2", "conv3", "fc10")}
            net.backward(labels)
            seen.append((costs.values, outputs, {k: v.copy() for k, v in outputs.items()}, dict(net.grads),
                         {k: v.copy() for k, v in net.grads.items()}))
            if step == 1:
                net.forward(data[:, :3], labels[:, :3], train=False, rng=step_rng)
            net.update(epoch=1.0, progress=0.1)
        if keep:
            assert len(net._workspaces) == 3
        else:
            assert not net._workspaces
        for _, outputs, outputs_copy, grads, grads_copy in seen:  # nothing handed out was overwritten
            assert all(np.array_equal(outputs[k], outputs_copy[k]) for k in outputs)
            assert all(np.array_equal(grads[k], grads_copy[k]) for k in grads)
        runs[keep] = seen
    for (costs_a, _, outputs_a, _, grads_a), (costs_b, _, outputs_b, _, grads_b) in zip(runs[True], runs[False]):
        assert costs_a == costs_b
        assert all(np.array_equal(outputs_a[k], outputs_b[k]) for k in outputs_a)
        assert grads_a.keys() == grads_b.keys() and all(np.array_equal(grads_a[k], grads_b[k]) for k in grads_a)


def test_network_hands_each_input_its_columns_once_and_its_gradients_do_not_depend_on_them(release):
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
        kept = [key for key, saved in net._workspaces.items() if "patches" in saved]
        assert len(kept) == (3 if keep else 0)  # conv1, conv2, conv3: one input each
        net.backward(labels)
        assert not any("patches" in saved for saved in net._workspaces.values())  # each handed over once
        grads[keep] = net.grads
    assert grads[True].keys() == grads[False].keys()
    for key in grads[True]:
        assert np.array_equal(grads[True][key], grads[False][key]), key
