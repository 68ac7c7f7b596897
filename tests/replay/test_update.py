"""replay/update.py: the 2012 update rule and weight constraints (SEMANTICS.md §4.3, §4.4), against
hand-computed values (formulas in the comments) and torch.optim.SGD at a constant rate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from replay.plan import build_plan
from replay.update import (
    bias_update,
    constrain_weights,
    local_wball_constrain,
    sgd_update,
    super_update,
    update_param,
    wball_constrain,
    wc_norm_constrain,
)


def test_sgd_update_by_hand():
    w = np.array([1.0, -2.0], dtype=np.float64)
    v = np.array([0.5, 0.0])
    grad = np.array([0.2, -0.1])  # d(cost/N)/dW: the original's G is -grad
    w2, v2 = sgd_update(w, v, grad, eps=0.01, mom=0.9, wc=0.0005)
    # V = 0.9·V − ε·grad − wc·ε·W:  0.45 − 0.002 − 0.000005 = 0.447995;  0 + 0.001 + 0.00001 = 0.00101
    np.testing.assert_allclose(v2, [0.447995, 0.00101], rtol=0, atol=1e-15)
    # W = W + V
    np.testing.assert_allclose(w2, [1.447995, -1.99899], rtol=0, atol=1e-15)
    assert w.tolist() == [1.0, -2.0] and v.tolist() == [0.5, 0.0]  # inputs untouched


def test_zero_base_rate_means_no_update_at_all():
    w, v, grad = np.ones(3), np.full(3, 0.25), np.ones(3)
    # Weights::update runs only when getBaseRate() > 0: no step, no decay, momentum not applied.
    w2, v2 = sgd_update(w, v, grad, eps=0.0, mom=0.9, wc=0.0005)
    assert (w2 == w).all() and (v2 == v).all() and w2 is not w
    w3, v3 = sgd_update(w, v, grad, eps=0.5, mom=0.9, wc=0.0005, base_eps=0.0)
    assert (w3 == w).all() and (v3 == v).all()


def test_decay_only_for_positive_wc_and_with_its_own_rate():
    w, v, grad = np.array([2.0]), np.array([0.0]), np.array([0.0])
    # wc < 0: `if (_wc > 0)` skips the decay term.
    assert sgd_update(w, v, grad, eps=0.1, mom=0.9, wc=-1.0)[0][0] == 2.0
    # the decay term uses its own (separately noise-drawn) rate: V = −wc·ε_decay·W = −0.5·0.2·2 = −0.2
    w2, v2 = sgd_update(w, v, grad, eps=0.1, mom=0.9, wc=0.5, eps_decay=0.2)
    assert v2[0] == pytest.approx(-0.2) and w2[0] == pytest.approx(1.8)


def test_bias_update_never_decays():
    b, v, grad = np.array([1.0]), np.array([0.1]), np.array([0.5])
    b2, v2 = bias_update(b, v, grad, eps=0.02, mom=0.9)
    # V = 0.9·0.1 − 0.02·0.5 = 0.08; b = 1.08
    assert v2[0] == pytest.approx(0.08) and b2[0] == pytest.approx(1.08)


def test_float32_stays_float32():
    w = np.ones((4, 3), np.float32)
    w2, v2 = sgd_update(w, np.zeros_like(w), np.ones_like(w), eps=0.01, mom=0.9, wc=0.0005)
    assert w2.dtype == np.float32 and v2.dtype == np.float32


def test_matches_torch_sgd_at_a_constant_rate():
    # torch: g' = g + λw; buf = μ·buf + g'; w −= lr·buf. With a constant lr, V = −lr·buf: the same rule.
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 4))
    v = np.zeros_like(w)
    tw = torch.tensor(w.copy(), requires_grad=True)
    opt = torch.optim.SGD([tw], lr=0.01, momentum=0.9, weight_decay=0.0005)
    for _ in range(4):
        grad = rng.standard_normal(w.shape)
        w, v = sgd_update(w, v, grad, eps=0.01, mom=0.9, wc=0.0005)
        tw.grad = torch.tensor(grad)
        opt.step()
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_wball_rescales_columns_above_the_linear_threshold():
    w = np.array([[3.0, 0.3], [4.0, 0.4]])
    # θ = wball·fan_in = 0.5·2 = 1 (linear in fan-in); column 0 has norm 5 > 1 -> ×1/5; column 1 norm 0.5 stays
    out = wball_constrain(w, 0.5, 2)
    np.testing.assert_allclose(out, [[0.6, 0.3], [0.8, 0.4]])
    assert (wball_constrain(w, 0.0, 2) == w).all()


def test_local_wball_is_per_module_and_filter():
    w = np.array([[3.0], [4.0], [0.3], [0.4]])  # modules=2, Cf·fs² = 2 rows each, 1 filter
    out = local_wball_constrain(w, 0.5, 2, 2)
    np.testing.assert_allclose(out, [[0.6], [0.8], [0.3], [0.4]])


def test_wc_norm_uses_norm_over_d_and_scales_the_uncentred_filter():
    w = np.array([[1.0], [2.0], [3.0], [6.0]])
    # mean 3, centred (−2, −1, 0, 3), ‖·‖ = √14 = 3.741657; a = √14 / D = 0.935414 (D = 4)
    a = np.sqrt(14.0) / 4
    np.testing.assert_allclose(wc_norm_constrain(w, 0.0, 0.5), w * (0.5 / a))  # a > max
    np.testing.assert_allclose(wc_norm_constrain(w, 2.0, 3.0), w * (2.0 / a))  # a < min
    assert (wc_norm_constrain(w, 0.5, 1.0) == w).all()  # min ≤ a ≤ max
    assert (wc_norm_constrain(w, 5.0, 0.0) == w).all()  # off unless max > 0


def test_conv_constraints_apply_wcnorm_then_wball():
    w = np.array([[1.0], [2.0], [3.0], [6.0]])
    a = np.sqrt(14.0) / 4
    scaled = w * (0.5 / a)  # wcNorm first
    norm = np.linalg.norm(scaled)
    out = constrain_weights(w, layer_type="conv", wball=0.25, fan_in=4, wc_norm_min=0.0, wc_norm_max=0.5)
    # then wball: θ = 0.25·4 = 1 < ‖scaled‖
    np.testing.assert_allclose(out, scaled / norm)


def test_update_param_follows_the_plan(release):
    plan = build_plan(release.experiment("120"))
    conv1a = plan.param("conv1a", "weights", 0)
    w = np.ones((363, 32), np.float32)
    v = np.zeros_like(w)
    g = np.full_like(w, 0.1)
    # epoch 30: base epsW 0.001 (the log's "epoch 26: set epsw to 0.001"), default schedule, mom 0.9,
    # wc 0.0005: V = −0.001·0.1 − 0.0005·0.001·1 = −0.0001005
    _, v2 = update_param(conv1a, w, v, g, epoch=30, progress=0.3, layer_type="conv")
    np.testing.assert_allclose(v2, -0.0001005, rtol=1e-5)
    # epoch 80: base 0 ("epoch 72: set epsw to 0") -> untouched
    w3, v3 = update_param(conv1a, w, v, g, epoch=80, progress=0.9, layer_type="conv")
    assert (w3 == w).all() and (v3 == v).all()
    bias = plan.param("conv3a", "biases")
    _, vb2 = update_param(bias, np.ones((192, 1)), np.zeros((192, 1)), np.ones((192, 1)), epoch=1,
                           progress=0.0, layer_type="conv")
    np.testing.assert_allclose(vb2, -0.02)  # epsB 0.02, no decay


def test_super_update_by_hand_replays_the_g_for_g_squared_bug():
    w = np.array([1.0, 2.0])
    v = np.array([0.1, 0.0])
    grad = np.array([-0.2, 0.4])  # the original's g = −grad = [0.2, −0.4]
    g_avg, g2_avg = np.array([0.1, 0.0]), np.array([0.5, 0.3])
    w2, v2, g1, g21 = super_update(w, v, grad, g_avg, g2_avg, eps=0.01, mom=0.5, super_eps=0.05)
    # G = 0.5·G + 0.5·g = [0.15, −0.2];  G2 = 0.5·G2 + 0.5·g² = [0.27, 0.23]
    np.testing.assert_allclose(g1, [0.15, -0.2], atol=1e-15)
    np.testing.assert_allclose(g21, [0.27, 0.23], atol=1e-15)
    # V = 0.9·V + ε·g/√(G2 − G + superEps): [0.09 + 0.002/√0.17, −0.004/√0.48]  (0.9 whatever momW is)
    expected_v = [0.09 + 0.002 / np.sqrt(0.17), -0.004 / np.sqrt(0.48)]
    np.testing.assert_allclose(v2, expected_v, rtol=1e-12)
    np.testing.assert_allclose(w2, w + expected_v, rtol=1e-12)
    # --fix supereps-variance: √(G2 − G² + superEps)
    _, fixed_v, _, _ = super_update(w, v, grad, g_avg, g2_avg, eps=0.01, mom=0.5, super_eps=0.05, fix=True)
    np.testing.assert_allclose(fixed_v, [0.09 + 0.002 / np.sqrt(0.27 - 0.0225 + 0.05),
                                         -0.004 / np.sqrt(0.23 - 0.04 + 0.05)], rtol=1e-12)
    # G = 1.25 > G2 + superEps = 0.175: the buggy radicand is negative, NaN, as sqrtf gave
    _, nan_v, _, _ = super_update(w, v, np.array([-0.5, 0.0]), np.array([2.0, 0.0]), np.zeros(2), eps=0.01,
                                  mom=0.5, super_eps=0.05)
    assert np.isnan(nan_v[0]) and not np.isnan(nan_v[1])


def test_super_eps_reaches_the_plan_and_is_named_as_a_replayed_bug(release):
    import dataclasses

    from replay.network import replayed_bugs

    plan = build_plan(release.experiment("cifar-18pct-noisylr"))
    assert all(p.super_eps == 0 for p in plan.params) and replayed_bugs(plan) == []
    first = plan.params[0]
    hot = dataclasses.replace(plan, params=(dataclasses.replace(first, super_eps=1e-3),) + tuple(plan.params[1:]))
    [(name, where)] = replayed_bugs(hot)
    assert name == "supereps-variance" and first.layer in where and "superMomUpdate" in where
    assert replayed_bugs(hot, frozenset({"supereps-variance"})) == []
