"""replay/backends/numpy_ref/costs.py against PyTorch (nll_loss, cross_entropy, binary_cross_entropy and
autograd), a slow per-case oracle for the top-1/top-k tie credit, and central finite differences (float64).

Layout: probabilities are (classes, N); torch's losses take (N, classes), so the oracle works on p.T.
Sign: every backward is d(coeff·cost[0]) — torch's autograd sign — where the original stores its negation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tf
from gradcheck import assert_close, numeric_grad

from replay.backends.numpy_ref import costs, dense

RNG = np.random.default_rng(1403)


def rand(*shape, dtype=np.float32, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def probs_and_labels(k, n, dtype=np.float32, scale=2.0):
    p = dense.softmax_forward(rand(k, n, dtype=dtype, scale=scale))
    labels = RNG.integers(0, k, size=(1, n)).astype(dtype)
    return p, labels


def t(a, grad=False):
    return torch.tensor(np.asarray(a), requires_grad=grad)


# ------------------------------------------------------------------------------------------------ logreg cost

def slow_case_credit(p_col, label, k):
    """Hand-written: rank credit for one case, ties shared out among the tied classes."""
    y_t = p_col[label]
    bigger = sum(1 for v in p_col if v > y_t)
    tied = sum(1 for v in p_col if v == y_t)
    slots = k - bigger
    if slots <= 0:
        return 0.0
    return 1.0 if tied <= slots else slots / tied


def slow_top1(p_col, label):
    best = max(p_col)
    if p_col[label] != best:
        return 0.0
    return 1.0 / sum(1 for v in p_col if v == best)


def slow_logreg(labels, probs, k):
    n = probs.shape[1]
    lab = [int(v) for v in labels.reshape(-1)]
    nll = -sum(float(np.log(np.float64(probs[lab[i], i]))) for i in range(n))
    top1 = sum(slow_top1(list(probs[:, i]), lab[i]) for i in range(n))
    topk = sum(slow_case_credit(list(probs[:, i]), lab[i], k) for i in range(n))
    return nll, n - top1, n - topk


@pytest.mark.parametrize("k,n,topk", [(10, 8, 1), (10, 8, 5), (3, 1, 2), (20, 16, 20)])
def test_logreg_cost_matches_torch_nll_and_argmax(k, n, topk):
    p, labels = probs_and_labels(k, n)
    nll, top1_err, topk_err = costs.logreg_cost(labels, p, topk=topk)
    torch_nll = tf.nll_loss(torch.log(t(p.T)), t(labels.reshape(-1).astype(np.int64)), reduction="sum")
    assert nll == pytest.approx(float(torch_nll.detach()), rel=1e-5)
    lab = labels.reshape(-1).astype(int)
    assert top1_err == float(n - (p.argmax(axis=0) == lab).sum())      # no ties in random floats
    top = torch.topk(t(p.T), min(topk, k), dim=1).indices.numpy()
    assert topk_err == float(n - sum(lab[i] in top[i] for i in range(n)))
    if topk == 1:
        assert topk_err == top1_err
    if topk >= k:
        assert topk_err == 0.0


# Crafted ties: (probabilities of one case, label, k, expected top-1 credit, expected top-k credit)
TIES = [
    ([0.25, 0.25, 0.25, 0.25], 2, 1, 1 / 4, 1 / 4),    # four-way tie for the max: 1/4 each
    ([0.25, 0.25, 0.25, 0.25], 2, 3, 1 / 4, 3 / 4),    # 3 slots shared by 4 tied classes
    ([0.4, 0.2, 0.2, 0.2], 1, 2, 0.0, 1 / 3),          # one bigger, 3 tied for the remaining slot
    ([0.4, 0.2, 0.2, 0.2], 1, 3, 0.0, 2 / 3),
    ([0.4, 0.2, 0.2, 0.2], 1, 4, 0.0, 1.0),            # b + e = 4 <= k
    ([0.4, 0.2, 0.2, 0.2], 0, 1, 1.0, 1.0),
    ([0.3, 0.3, 0.3, 0.1], 3, 3, 0.0, 0.0),            # b = 3 >= k
    ([0.3, 0.3, 0.2, 0.2], 2, 3, 0.0, 1 / 2),
    ([0.5, 0.5, 0.0, 0.0], 0, 1, 1 / 2, 1 / 2),
]


@pytest.mark.parametrize("col,label,k,top1,topk", TIES)
def test_logreg_fractional_tie_credit(col, label, k, top1, topk):
    p = np.array(col, dtype=np.float32).reshape(-1, 1)
    labels = np.array([[label]], dtype=np.float32)
    _, c1, ck = costs.logreg_case_terms(labels, p, topk=k)
    assert c1[0] == pytest.approx(top1) and ck[0] == pytest.approx(topk)
    assert slow_top1(list(p[:, 0]), label) == pytest.approx(top1)
    assert slow_case_credit(list(p[:, 0]), label, k) == pytest.approx(topk)
    _, e1, ek = costs.logreg_cost(labels, p, topk=k)
    assert e1 == pytest.approx(1 - top1) and ek == pytest.approx(1 - (top1 if k == 1 else topk))


@pytest.mark.parametrize("topk", [1, 2, 3, 5])
def test_logreg_cost_with_many_ties_matches_the_slow_oracle(topk):
    # quantised probabilities: many exact ties per column
    raw = RNG.integers(1, 4, size=(6, 40)).astype(np.float32)
    p = raw / raw.sum(axis=0, keepdims=True)
    labels = RNG.integers(0, 6, size=(1, 40)).astype(np.float32)
    got = costs.logreg_cost(labels, p, topk=topk)
    want = slow_logreg(labels, p, topk)
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    assert got[1] == pytest.approx(want[1], abs=1e-9)
    assert got[2] == pytest.approx(want[1] if topk == 1 else want[2], abs=1e-9)


def test_logreg_zero_probability_stops_like_print_costs():
    p = np.array([[1.0, 0.5], [0.0, 0.5]], dtype=np.float32)
    labels = np.array([[1, 0]], dtype=np.float32)
    with pytest.raises(costs.NonFiniteCostError, match="nan or inf"):
        costs.logreg_cost(labels, p)
    nll, _, _ = costs.logreg_cost(labels, p, check_finite=False)
    assert nll == np.inf


def test_logreg_labels_are_checked():
    p, _ = probs_and_labels(4, 3)
    with pytest.raises(ValueError):
        costs.logreg_cost(np.array([[0, 4, 1]], dtype=np.float32), p)
    # topk is not range-checked by layer.py; topk = 0 counts every case as a top-k error
    assert costs.logreg_cost(np.array([[0, 1, 1]], dtype=np.float32), p, topk=0)[2] == 3.0


def test_multiview_averages_probabilities():
    views = [probs_and_labels(5, 3)[0] for _ in range(4)]
    avg = costs.multiview_average(views)
    assert_close(avg, np.mean(views, axis=0), rtol=1e-6, atol=1e-7)
    assert avg.dtype == np.float32


# ------------------------------------------------------------------------------------------------ logreg gradients

@pytest.mark.parametrize("k,n,coeff", [(10, 6, 1.0), (4, 1, 0.25)])
def test_fused_softmax_logreg_gradient_matches_torch_cross_entropy(k, n, coeff):
    x = rand(k, n, scale=2.0)
    labels = RNG.integers(0, k, size=(1, n)).astype(np.float32)
    y = dense.softmax_forward(x)
    tx = t(x.T, True)
    loss = coeff * tf.cross_entropy(tx, t(labels.reshape(-1).astype(np.int64)), reduction="sum")
    loss.backward()
    g = costs.softmax_logreg_backward(labels, y, coeff)
    assert_close(g, tx.grad.numpy().T, rtol=1e-4, atol=1e-6)
    # the unfused path (logreg gradient on the probabilities, then the softmax Jacobian) agrees
    unfused = dense.softmax_backward(y, costs.logreg_backward_probs(labels, y, coeff))
    assert_close(unfused, g, rtol=1e-4, atol=1e-6)


def test_logreg_backward_probs_matches_torch_autograd():
    p, labels = probs_and_labels(6, 5)
    tp = t(p.T, True)
    (0.5 * tf.nll_loss(torch.log(tp), t(labels.reshape(-1).astype(np.int64)), reduction="sum")).backward()
    assert_close(costs.logreg_backward_probs(labels, p, 0.5), tp.grad.numpy().T, rtol=1e-5, atol=1e-7)


def test_logreg_gradients_match_finite_differences_float64():
    x = rand(5, 3, dtype=np.float64)
    labels = np.array([[0, 4, 2]], dtype=np.float64)
    coeff = 0.7
    cost = lambda v: coeff * costs.logreg_cost(labels, dense.softmax_forward(v))[0]
    assert_close(costs.softmax_logreg_backward(labels, dense.softmax_forward(x), coeff), numeric_grad(cost, x),
                 rtol=1e-6, atol=1e-8)
    p = dense.softmax_forward(x)
    cost_p = lambda v: coeff * -np.log(v[labels.astype(int)[0], np.arange(3)]).sum()
    assert_close(costs.logreg_backward_probs(labels, p, coeff), numeric_grad(cost_p, p, eps=1e-8),
                 rtol=1e-5, atol=1e-6)


def test_unfused_logreg_gradient_is_nan_when_any_probability_underflowed():
    """kLogregCostGrad divides coeff·[j = t] by y_j for every j: an off-label y_j = 0 gives 0/0 = NaN,
    and kSoftmaxGrad then spreads it over the whole column. The fused gradient stays finite."""
    p = np.array([[0.9, 0.6], [0.1, 0.4], [0.0, 0.0]], dtype=np.float32)
    labels = np.array([[0, 1]], dtype=np.float32)
    g = costs.logreg_backward_probs(labels, p, 1.0)
    assert np.isnan(g[2]).all() and np.isfinite(g[:2]).all()
    assert np.isnan(dense.softmax_backward(p, g)).all()
    assert np.isfinite(costs.softmax_logreg_backward(labels, p, 1.0)).all()


def test_softmax_logreg_fusion_rule():
    assert costs.softmax_logreg_fused(["cost.logreg"], same_gpu=True)
    assert not costs.softmax_logreg_fused(["cost.logreg"], same_gpu=False)
    assert not costs.softmax_logreg_fused(["cost.logreg", "fc"], same_gpu=True)
    assert not costs.softmax_logreg_fused(["cost.crossent"], same_gpu=True)


# ------------------------------------------------------------------------------------------------ crossent2

def multilabel(k, n, dtype=np.float32):
    targets = (RNG.random((k, n)) < 0.3).astype(dtype)
    x = rand(k, n, dtype=dtype, scale=2.0)
    return targets, x, dense.neuron_forward(x, "logistic")


def test_crossent2_cost_matches_torch_bce():
    targets, _, y = multilabel(7, 5)
    got = costs.crossent2_cost(targets, y)
    want = float(tf.binary_cross_entropy(t(y), t(targets), reduction="sum"))
    assert got == pytest.approx(want, rel=1e-5)


def test_crossent2_clamps_log_at_minus_50():
    # torch clamps log at −100; the 2012 safelog gives −50 for z <= 0
    targets = np.array([[1.0, 0.0, 1.0]], dtype=np.float32)
    y = np.array([[0.0, 1.0, 1.0]], dtype=np.float32)
    assert costs.crossent2_cost(targets, y) == pytest.approx(100.0)


def test_crossent2_fixed_gradient_matches_torch_and_the_default_replays_the_sign_bug():
    targets, _, y = multilabel(6, 4)
    coeff = 0.5
    ty = t(y, True)
    (coeff * tf.binary_cross_entropy(ty, t(targets), reduction="sum")).backward()
    fixed = costs.crossent2_backward(targets, y, coeff, fix_sign=True)
    assert_close(fixed, ty.grad.numpy(), rtol=1e-4, atol=1e-5)
    # the release's CrossEntGradientOperator stores coeff·(t/y + (1−t)/(1−y)); ours is its negation
    buggy = costs.crossent2_backward(targets, y, coeff)
    assert_close(buggy, -coeff * (targets / y + (1 - targets) / (1 - y)), rtol=1e-6, atol=1e-6)
    # it agrees with the true derivative where t = 1 and has the wrong sign of the (1−t) term elsewhere
    assert_close(buggy[targets == 1], fixed[targets == 1], rtol=1e-6, atol=1e-6)
    assert (buggy[targets == 0] < 0).all() and (fixed[targets == 0] > 0).all()


def test_crossent2_fixed_gradient_matches_finite_differences_float64():
    targets, _, y = multilabel(4, 3, dtype=np.float64)
    num = numeric_grad(lambda v: 2.0 * costs.crossent2_cost(targets, v), y, eps=1e-7)
    assert_close(costs.crossent2_backward(targets, y, 2.0, fix_sign=True), num, rtol=1e-5, atol=1e-6)


def test_fused_logistic_crossent2_gradient_matches_torch_bce_with_logits():
    targets, x, y = multilabel(5, 4)
    tx = t(x, True)
    (1.5 * tf.binary_cross_entropy_with_logits(tx, t(targets), reduction="sum")).backward()
    assert_close(costs.logistic_crossent2_backward(targets, y, 1.5), tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    # the same as the (fixed) unfused chain through the logistic neuron
    chain = dense.neuron_backward(x, y, costs.crossent2_backward(targets, y, 1.5, fix_sign=True), "logistic")
    assert_close(chain, costs.logistic_crossent2_backward(targets, y, 1.5), rtol=1e-4, atol=1e-5)


def test_logistic_crossent2_fusion_rule():
    assert costs.logistic_crossent2_fused("logistic", ["cost.crossent2"], same_gpu=True)
    assert not costs.logistic_crossent2_fused("relu", ["cost.crossent2"], same_gpu=True)
    assert not costs.logistic_crossent2_fused("logistic", ["cost.crossent2", "fc"], same_gpu=True)
    assert not costs.logistic_crossent2_fused("logistic", ["cost.crossent2"], same_gpu=False)


# ------------------------------------------------------------------------------------------------ rflickr, sum2, gsum2

def test_rflickr_matches_torch_autograd_and_finite_differences():
    targets, _, y = multilabel(5, 3)
    ty = t(y, True)
    loss = torch.log1p((ty - t(targets)) ** 2).sum()
    assert costs.rflickr_cost(targets, y) == pytest.approx(float(loss.detach()), rel=1e-5)
    (0.3 * loss).backward()
    assert_close(costs.rflickr_backward(targets, y, 0.3), ty.grad.numpy(), rtol=1e-5, atol=1e-7)
    targets64, y64 = targets.astype(np.float64), y.astype(np.float64)
    num = numeric_grad(lambda v: 0.3 * costs.rflickr_cost(targets64, v), y64)
    assert_close(costs.rflickr_backward(targets64, y64, 0.3), num, rtol=1e-6, atol=1e-9)


def test_sum2_matches_torch_autograd_and_finite_differences():
    x = rand(4, 3)
    tx = t(x, True)
    loss = (tx ** 2).sum()
    assert costs.sum2_cost(x) == pytest.approx(float(loss.detach()), rel=1e-6)
    (0.01 * loss).backward()
    assert_close(costs.sum2_backward(x, 0.01), tx.grad.numpy(), rtol=1e-6, atol=1e-9)
    x64 = x.astype(np.float64)
    assert_close(costs.sum2_backward(x64, 0.01), numeric_grad(lambda v: 0.01 * costs.sum2_cost(v), x64),
                 rtol=1e-6, atol=1e-9)


def test_gsum2_matches_torch_autograd():
    g, x = np.abs(rand(1, 4)), rand(3, 4)
    tg, tx = t(g, True), t(x, True)
    loss = (tg * tx ** 2).sum()
    assert costs.gsum2_cost(g, x) == pytest.approx(float(loss.detach()), rel=1e-6)
    (2.0 * loss).backward()
    dg, dx = costs.gsum2_backward(g, x, 2.0)
    assert dg.shape == (1, 4)
    assert_close(dg, tg.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert_close(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- crossent (soft labels)

def test_crossent_matches_torch_soft_cross_entropy():
    k, n = 5, 4
    x = rand(k, n, scale=2.0)
    soft = dense.softmax_forward(rand(k, n))           # soft targets, each column sums to 1
    y = dense.softmax_forward(x)
    ce, err = costs.crossent_cost(soft, y)
    tx = t(x.T, True)
    loss = tf.cross_entropy(tx, t(soft.T), reduction="sum")
    assert ce == pytest.approx(float(loss.detach()), rel=1e-5)
    assert err == 0.0                                  # every class has p > 0, so the argmax always "hits"
    (0.5 * loss).backward()
    assert_close(costs.softmax_crossent_backward(soft, y, 0.5), tx.grad.numpy().T, rtol=1e-4, atol=1e-6)
    unfused = dense.softmax_backward(y, costs.crossent_backward_probs(soft, y, 0.5))
    assert_close(unfused, tx.grad.numpy().T, rtol=1e-4, atol=1e-6)


def test_crossent_correct_count_with_hard_labels_and_ties():
    y = np.array([[0.4, 0.5], [0.4, 0.3], [0.2, 0.2]], dtype=np.float32)
    targets = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
    # case 0: label 1 is one of two tied maxima -> 1/2; case 1: label 2 is not the max -> 0
    assert costs.crossent_cost(targets, y)[1] == pytest.approx(2 - 0.5)
