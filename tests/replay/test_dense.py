"""replay/backends/numpy_ref/dense.py against PyTorch (float32 forward, autograd backward), hand-written
2012 rules where torch differs (abs'(0) = −1, brelu's open interval, softrelu's switch at 4, eltmax ties,
non-inverted dropout), and central finite differences in float64.

Layout: our activations are (features, N); torch's are (N, features), so the oracle works on x.T.
Sign: our backward functions return derivatives, as torch's autograd does; weight/bias gradients are
divided by N, so they are compared with autograd's per-batch sums divided by N.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tf
from gradcheck import assert_close, numeric_grad

from replay.backends.numpy_ref import dense

RNG = np.random.default_rng(20121203)


def rand(*shape, dtype=np.float32, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def t(a, grad=False):
    return torch.tensor(np.asarray(a), requires_grad=grad)


# ------------------------------------------------------------------------------------------------ fc

@pytest.mark.parametrize("in_sizes,out,n", [([7], 5, 4), ([6, 3, 9], 4, 3), ([5], 1, 1), ([2, 8], 11, 1)])
def test_fc_forward_and_backward_match_torch_linear(in_sizes, out, n):
    xs = [rand(d, n) for d in in_sizes]
    ws = [rand(d, out) for d in in_sizes]
    b = rand(1, out)
    dy = rand(out, n)
    y = dense.fc_forward(xs, ws, b)
    assert y.dtype == np.float32 and y.shape == (out, n)

    txs = [t(x.T, True) for x in xs]
    tws = [t(w.T, True) for w in ws]  # torch Linear weight = W.T
    tb = t(b.reshape(-1), True)
    ty = sum(tf.linear(tx, tw) for tx, tw in zip(txs, tws)) + tb  # bias once
    assert_close(y, ty.detach().numpy().T, rtol=1e-5, atol=1e-5, what="fc forward")

    (ty * t(dy.T)).sum().backward()
    for x, w, tx, tw in zip(xs, ws, txs, tws):
        assert_close(dense.fc_backward_data(dy, w), tx.grad.numpy().T, rtol=1e-5, atol=1e-5, what="dx")
        assert_close(dense.fc_backward_weights(x, dy), tw.grad.numpy().T / n, rtol=1e-5, atol=1e-5, what="dW")
    assert_close(dense.fc_bias_grad(dy), tb.grad.numpy().reshape(1, -1) / n, rtol=1e-5, atol=1e-5, what="db")
    assert dense.fc_bias_grad(dy).shape == (1, out)


def test_fc_gradients_match_finite_differences_float64():
    x1, x2 = rand(4, 3, dtype=np.float64), rand(2, 3, dtype=np.float64)
    w1, w2 = rand(4, 5, dtype=np.float64), rand(2, 5, dtype=np.float64)
    b = rand(1, 5, dtype=np.float64)
    dy = rand(5, 3, dtype=np.float64)
    n = 3

    def cost(x1_=x1, w1_=w1, b_=b):
        return float((dense.fc_forward([x1_, x2], [w1_, w2], b_) * dy).sum())

    assert_close(dense.fc_backward_data(dy, w1), numeric_grad(lambda v: cost(x1_=v), x1), rtol=1e-6, atol=1e-8)
    # weight/bias gradients are d(cost/N)
    assert_close(dense.fc_backward_weights(x1, dy), numeric_grad(lambda v: cost(w1_=v), w1) / n, rtol=1e-6, atol=1e-8)
    assert_close(dense.fc_bias_grad(dy), numeric_grad(lambda v: cost(b_=v), b) / n, rtol=1e-6, atol=1e-8)


def test_fc_does_not_modify_inputs():
    x, w, b = rand(3, 2), rand(3, 4), rand(1, 4)
    copies = [a.copy() for a in (x, w, b)]
    dense.fc_forward([x], [w], b)
    for a, c in zip((x, w, b), copies):
        assert np.array_equal(a, c)


# ------------------------------------------------------------------------------------------------ neurons

def torch_neuron(x, kind, p):
    """The 2012 formulas written with torch ops (include/neuron.cuh)."""
    if kind == "ident":
        return x * 1
    if kind == "relu":
        return tf.relu(x)
    if kind == "logistic":
        return torch.sigmoid(x)
    if kind == "tanh":
        return p[0] * torch.tanh(p[1] * x)
    if kind == "brelu":
        return torch.clamp(x, 0, p[0])
    if kind == "softrelu":  # torch's softplus switches at 20; the 2012 code at 4
        return torch.where(x > 4, x, tf.softplus(x, threshold=1e9))
    if kind == "abs":
        return torch.abs(x)
    if kind == "square":
        return x * x
    if kind == "sqrt":
        return torch.sqrt(x)
    if kind == "linear":
        return p[0] * x + p[1]
    if kind == "drelu":
        return x - p[0] * torch.tanh(x / p[0])
    raise AssertionError(kind)


DETERMINISTIC = [("ident", ()), ("relu", ()), ("logistic", ()), ("tanh", (1.7159, 0.6666)), ("tanh", (-0.5, 2.0)),
                 ("brelu", (2.5,)), ("softrelu", ()), ("abs", ()), ("square", ()), ("sqrt", ()),
                 ("linear", (-0.3, 1.25)), ("drelu", (0.7,))]


def neuron_input(kind, shape, dtype=np.float32):
    """Inputs away from kinks and from the softrelu switch (where torch and the 2012 rules differ or FD fails)."""
    x = rand(*shape, dtype=dtype, scale=3.0)
    if kind == "sqrt":
        x = np.abs(x) + 0.1
    x = np.where(np.abs(x) < 0.05, x.dtype.type(0.3), x)          # away from 0 (relu, abs, brelu)
    x = np.where(np.abs(x - 2.5) < 0.05, x.dtype.type(1.3), x)     # away from brelu's a
    x = np.where(np.abs(x - 4.0) < 0.05, x.dtype.type(3.7), x)     # away from softrelu's switch
    if kind == "softrelu":
        x[0, 0], x[1, 0] = 6.0, 4.5                                # make sure the identity branch is used
    return x.astype(dtype)


@pytest.mark.parametrize("kind,params", DETERMINISTIC)
def test_neuron_forward_and_backward_match_torch(kind, params):
    x = neuron_input(kind, (6, 5))
    dy = rand(6, 5)
    y = dense.neuron_forward(x, kind, params)
    assert y.dtype == np.float32 and y.shape == x.shape
    tx = t(x, True)
    ty = torch_neuron(tx, kind, params)
    assert_close(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6, what=f"{kind} forward")
    (ty * t(dy)).sum().backward()
    dx = dense.neuron_backward(x, y, dy, kind, params)
    assert_close(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5, what=f"{kind} backward")


@pytest.mark.parametrize("kind,params", DETERMINISTIC)
def test_neuron_backward_matches_finite_differences_float64(kind, params):
    x = neuron_input(kind, (4, 3), dtype=np.float64)
    dy = rand(4, 3, dtype=np.float64)
    y = dense.neuron_forward(x, kind, params)
    num = numeric_grad(lambda v: float((dense.neuron_forward(v, kind, params) * dy).sum()), x, eps=1e-6)
    assert_close(dense.neuron_backward(x, y, dy, kind, params), num, rtol=1e-6, atol=1e-7, what=kind)


def test_neuron_quirks_at_the_kinks():
    x = np.array([[-1.0, 0.0, 1.0, 2.5, 3.0]], dtype=np.float32)
    dy = np.ones_like(x)
    # abs: sign(0) = −1 (AbsGradientOperator: x > 0 ? 1 : −1); torch would give 0
    assert dense.neuron_backward(x, np.abs(x), dy, "abs", ()).tolist() == [[-1, -1, 1, 1, 1]]
    # relu: [y > 0], so 0 at x = 0
    y = dense.neuron_forward(x, "relu")
    assert dense.neuron_backward(x, y, dy, "relu", ()).tolist() == [[0, 0, 1, 1, 1]]
    # brelu[2.5]: [0 < y < a], open at both ends (torch.clamp passes the gradient at the bounds)
    y = dense.neuron_forward(x, "brelu", (2.5,))
    assert y.tolist() == [[0, 0, 1, 2.5, 2.5]]
    assert dense.neuron_backward(x, y, dy, "brelu", (2.5,)).tolist() == [[0, 0, 1, 0, 0]]


def test_softrelu_switches_to_identity_above_four():
    x = np.array([[3.999, 4.0, 4.001, 30.0, -30.0]], dtype=np.float64)
    y = dense.neuron_forward(x, "softrelu")
    assert y[0, 1] == pytest.approx(np.log1p(np.exp(4.0)))   # 4 itself is still log(1 + e^4) = 4.01815
    assert y[0, 2] == 4.001 and y[0, 3] == 30.0               # a jump of −0.018 just above 4
    assert y[0, 4] == pytest.approx(np.exp(-30.0), rel=1e-6)
    g = dense.neuron_backward(x, y, np.ones_like(x), "softrelu")
    assert g[0, 2] == 1.0 and g[0, 1] == pytest.approx(1 / (1 + np.exp(-4.0)))


def test_tanh_gradient_uses_the_output_form():
    x = rand(3, 4, dtype=np.float64)
    a, b = 1.7159, 0.6666
    y = dense.neuron_forward(x, "tanh", (a, b))
    assert_close(dense.neuron_backward(x, y, np.ones_like(x), "tanh", (a, b)), b * (a - y * y / a))


def test_nrelu_noise_is_scaled_by_the_relu_and_drawn_on_every_call():
    x = rand(50, 40)
    y = dense.neuron_forward(x, "nrelu", (), rng=np.random.default_rng(7))
    z = np.random.default_rng(7).standard_normal(x.shape).astype(np.float32)
    r = np.maximum(x, 0)
    assert_close(y, np.maximum(r + r * z, 0), rtol=1e-6, atol=0)
    assert (y[x <= 0] == 0).all() and (y >= 0).all()
    # a second pass draws new noise (there is no test-time switch in the neuron)
    y2 = dense.neuron_forward(x, "nrelu", (), rng=np.random.default_rng(8))
    assert not np.array_equal(y, y2)
    dy = rand(50, 40)
    assert np.array_equal(dense.neuron_backward(x, y, dy, "nrelu"), dy * (y > 0))
    with pytest.raises(ValueError, match="Generator"):
        dense.neuron_forward(x, "nrelu")


def test_neurons_keep_float64():
    x = rand(3, 2, dtype=np.float64)
    for kind, params in DETERMINISTIC:
        xx = np.abs(x) + 0.1 if kind == "sqrt" else x
        y = dense.neuron_forward(xx, kind, params)
        assert y.dtype == np.float64
        assert dense.neuron_backward(xx, y, x, kind, params).dtype == np.float64


@pytest.mark.parametrize("spec,expected", [
    ("relu", ("relu", ())), ("logistic", ("logistic", ())), ("ident", ("ident", ())),
    ("tanh[1.7159,0.6666]", ("tanh", (1.7159, 0.6666))), ("tanh [ 1 , -2 ] ", ("tanh", (1.0, -2.0))),
    ("brelu[6]", ("brelu", (6.0,))), ("linear[.5,-.25]", ("linear", (0.5, -0.25))),
    ("drelu[0.1]", ("drelu", (0.1,))), ("linear[5.,1]", ("linear", (5.0, 1.0))),
])
def test_parse_neuron_accepts_what_layer_py_accepts(spec, expected):
    assert dense.parse_neuron(spec) == expected


@pytest.mark.parametrize("spec", [
    "ReLU", "relu[]", "relu[1]", " relu", "tanh", "tanh[1]", "tanh[1,2,3]", "tanh[1e-3,1]", "tanh[a,b]",
    "tanh[1,]", "tanh[1.2.3,1]", "abstanh[1,1]", "brelu", "softmax", "tanh[1;2]", "tanh[١,1]",
])
def test_parse_neuron_rejects_what_layer_py_rejects(spec):
    with pytest.raises(ValueError):
        dense.parse_neuron(spec)


def test_neuron_wrong_parameter_count_is_an_error():
    with pytest.raises(ValueError):
        dense.neuron_forward(rand(2, 2), "tanh", (1.0,))
    with pytest.raises(ValueError):
        dense.neuron_forward(rand(2, 2), "abstanh", (1.0, 1.0))


# ------------------------------------------------------------------------------------------------ softmax

@pytest.mark.parametrize("k,n,scale", [(10, 6, 1.0), (3, 1, 5.0), (7, 4, 300.0)])
def test_softmax_matches_torch(k, n, scale):
    x = rand(k, n, scale=scale)
    dy = rand(k, n)
    y = dense.softmax_forward(x)
    tx = t(x, True)
    ty = torch.softmax(tx, dim=0)  # column-wise over the features
    assert np.isfinite(y).all()
    assert_close(y, ty.detach().numpy(), rtol=1e-5, atol=1e-7, what="softmax")
    (ty * t(dy)).sum().backward()
    assert_close(dense.softmax_backward(y, dy), tx.grad.numpy(), rtol=1e-4, atol=1e-6, what="softmax backward")


def test_softmax_backward_matches_finite_differences_float64():
    x, dy = rand(5, 3, dtype=np.float64), rand(5, 3, dtype=np.float64)
    num = numeric_grad(lambda v: float((dense.softmax_forward(v) * dy).sum()), x)
    assert_close(dense.softmax_backward(dense.softmax_forward(x), dy), num, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------------------ hs

def test_dropout_train_masks_without_rescaling():
    x = rand(200, 500)
    y, mask = dense.dropout_forward(x, keep=0.5, enable=True, train=True, rng=np.random.default_rng(1))
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    assert np.array_equal(y, x * mask)                          # no 1/keep
    assert abs(mask.mean() - 0.5) < 0.01                         # 100 000 draws: σ ≈ 0.0016
    _, mask2 = dense.dropout_forward(x, keep=0.5, enable=True, train=True, rng=np.random.default_rng(1))
    assert np.array_equal(mask, mask2)                           # reproducible from the caller's generator
    _, mask3 = dense.dropout_forward(x, keep=0.8, enable=True, train=True, rng=np.random.default_rng(2))
    assert abs(mask3.mean() - 0.8) < 0.01
    dy = rand(200, 500)
    assert np.array_equal(dense.dropout_backward(dy, mask, keep=0.5, enable=True, train=True), dy * mask)


def test_dropout_outside_training_scales_by_keep():
    """Test passes, and training with enable=false, multiply by keep: the expectation of the training mask,
    which is torch's inverted dropout times keep."""
    x, dy = rand(6, 4), rand(6, 4)
    for enable, train in [(True, False), (False, True), (False, False)]:
        y, mask = dense.dropout_forward(x, keep=0.5, enable=enable, train=train, rng=np.random.default_rng(0))
        assert mask is None
        expected = tf.dropout(t(x), p=0.5, training=False).numpy() * 0.5   # torch: identity at test
        assert_close(y, expected, rtol=0, atol=0)
        assert_close(dense.dropout_backward(dy, None, keep=0.5, enable=enable, train=train), dy * np.float32(0.5))


def test_dropout_training_needs_rng_and_mask():
    with pytest.raises(ValueError):
        dense.dropout_forward(rand(2, 2), keep=0.5, enable=True, train=True)
    with pytest.raises(ValueError):
        dense.dropout_backward(rand(2, 2), None, keep=0.5, enable=True, train=True)


# ---------------------------------------------------------------------------------------- concat, eltsum, eltmax

def test_concat_matches_torch_cat():
    xs = [rand(3, 4), rand(1, 4), rand(5, 4)]
    y = dense.concat_forward(xs)
    txs = [t(x, True) for x in xs]
    ty = torch.cat(txs, dim=0)
    assert_close(y, ty.detach().numpy())
    dy = rand(9, 4)
    (ty * t(dy)).sum().backward()
    for dx, tx in zip(dense.concat_backward(dy, [3, 1, 5]), txs):
        assert_close(dx, tx.grad.numpy())
    with pytest.raises(ValueError):
        dense.concat_backward(dy, [3, 1])


def test_eltsum_with_coeffs_matches_torch():
    xs = [rand(4, 3) for _ in range(3)]
    coeffs = [1.0, -0.5, 2.0]
    txs = [t(x, True) for x in xs]
    ty = sum(c * tx for c, tx in zip(coeffs, txs))
    assert_close(dense.eltsum_forward(xs, coeffs), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    assert_close(dense.eltsum_forward(xs[:2]), xs[0] + xs[1])     # default coeffs 1
    dy = rand(4, 3)
    (ty * t(dy)).sum().backward()
    for dx, tx in zip(dense.eltsum_backward(dy, coeffs), txs):
        assert_close(dx, tx.grad.numpy())


def test_eltmax_matches_torch_without_ties_and_duplicates_the_gradient_at_ties():
    xs = [rand(5, 4) for _ in range(3)]
    txs = [t(x, True) for x in xs]
    ty = torch.maximum(torch.maximum(txs[0], txs[1]), txs[2])
    y = dense.eltmax_forward(xs)
    assert_close(y, ty.detach().numpy())
    dy = rand(5, 4)
    (ty * t(dy)).sum().backward()
    for dx, tx in zip(dense.eltmax_backward(dy, xs, y), txs):
        assert_close(dx, tx.grad.numpy())
    # ties: every tied input gets the full gradient (torch would split it)
    a = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    b = np.array([[1.0, 5.0, 3.0]], dtype=np.float32)
    c = np.array([[0.0, 5.0, 3.0]], dtype=np.float32)
    y = dense.eltmax_forward([a, b, c])
    grads = dense.eltmax_backward(np.ones_like(a), [a, b, c], y)
    assert [g.tolist() for g in grads] == [[[1, 0, 1]], [[1, 1, 1]], [[0, 1, 1]]]
    with pytest.raises(ValueError):
        dense.eltmax_forward([a])


# ------------------------------------------------------------------------------------------------ treefc

# 5 leaves (0-4); inner nodes 5 = {0, 1}, 6 = {2, 3, 5}; root 7 = {6, 4}.
TREE = [[], [], [], [], [], [0, 1], [2, 3, 5], [6, 4]]


def test_softmax_tree_paths_and_sizes():
    tree = dense.SoftmaxTree.build(TREE, root=7)
    assert tree.num_nodes == 8 and tree.num_leaves == 5
    assert tree.sizes.tolist() == [1, 1, 1, 1, 1, 2, 4, 5]
    assert np.flatnonzero(tree.paths[:, 0]).tolist() == [0, 5, 6, 7]   # leaf 0: root → 6 → 5 → 0
    assert np.flatnonzero(tree.paths[:, 4]).tolist() == [4, 7]


@pytest.mark.parametrize("children,root", [
    ([[], [], [0, 1], [2]], 2),          # node 3 unreachable
    ([[], [0], [1, 0]], 2),              # node 0 reached twice
    ([[1, 2], [], []], 0),               # leaves 1, 2 are not 0..L-1
    ([[], [], [0, 5]], 2),               # child out of range
])
def test_softmax_tree_rejects_what_the_original_cannot_use(children, root):
    with pytest.raises(ValueError):
        dense.SoftmaxTree.build(children, root)


def torch_treefc(x, w, b, tree):
    eff = w @ torch.tensor(tree.paths, dtype=w.dtype)
    return tf.linear(x, eff[:, :tree.num_leaves].T, b)


def test_treefc_matches_torch_path_sums():
    tree = dense.SoftmaxTree.build(TREE, root=7)
    n, d = 4, 6
    x, w, b, dy = rand(d, n), rand(d, 8), rand(1, 5), rand(5, n)
    y = dense.treefc_forward(x, w, b, tree)
    tx, tw, tb = t(x.T, True), t(w, True), t(b.reshape(-1), True)
    ty = torch_treefc(tx, tw, tb, tree)
    assert_close(y, ty.detach().numpy().T, rtol=1e-5, atol=1e-5)
    # leaf 2's effective column is raw 2 + raw 6 + raw 7
    assert_close(dense.treefc_effective_weights(w, tree)[:, 2], w[:, 2] + w[:, 6] + w[:, 7], rtol=1e-6, atol=1e-6)
    (ty * t(dy.T)).sum().backward()
    assert_close(dense.treefc_backward_data(dy, w, tree), tx.grad.numpy().T, rtol=1e-5, atol=1e-5)
    g = dense.treefc_backward_weights(x, dy, tree)
    assert_close(g, tw.grad.numpy() / n, rtol=1e-5, atol=1e-5)
    # an inner node's gradient is the sum of its children's
    assert_close(g[:, 6], g[:, 2] + g[:, 3] + g[:, 5], rtol=1e-5, atol=1e-6)


def test_treefc_weight_gradient_matches_finite_differences_float64():
    tree = dense.SoftmaxTree.build(TREE, root=7)
    x, w, b, dy = (rand(3, 2, dtype=np.float64), rand(3, 8, dtype=np.float64),
                   rand(1, 5, dtype=np.float64), rand(5, 2, dtype=np.float64))
    num = numeric_grad(lambda v: float((dense.treefc_forward(x, v, b, tree) * dy).sum()), w)
    assert_close(dense.treefc_backward_weights(x, dy, tree), num / 2, rtol=1e-6, atol=1e-9)
