"""The 2012 parameter update (SEMANTICS.md §4.3, §4.4; src/weights.cu `Weights::update`,
src/layer.cu `*Layer::constrainWeights`).

SIGN: every `grad` here is OUR gradient, the derivative of cost/N (PyTorch's sign, the 1/N-
normalised weight gradient of the backends). The original stores the NEGATIVE derivative and adds
it (V ← μV + ε·G_orig − λεW with G_orig = −grad), so the rule below subtracts ε·grad.

Functions return new arrays (inputs are never modified) in the dtype of `w`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sgd_update", "bias_update", "super_update", "wball_constrain", "local_wball_constrain",
           "wc_norm_constrain", "constrain_weights", "update_param", "super_update_param"]


def sgd_update(w, v, grad, *, eps: float, mom: float, wc: float = 0.0, eps_decay: float | None = None,
               base_eps: float | None = None):
    """One weight update; returns (w', v').

        V ← mom·V − eps·grad − wc·eps_decay·W     (Weights::update: Inc = mom·Inc + rate·Grad,
        W ← W + V                                   then Inc += −wc·rate·W if wc > 0; W += Inc)

    eps: the scheduled rate ε(p) of this update; eps_decay: the rate of the decay term (lr.cu draws
    the LR noise again for it; default eps). base_eps: the schedule's base rate epsW (default
    eps): when it is <= 0 nothing happens at all -- no gradient step, no decay, no momentum
    (`getBaseRate() > 0`). Decay applies only when wc > 0 (`if (_wc > 0)`).
    Shapes: w, v, grad alike (any shape).
    """
    base = eps if base_eps is None else base_eps
    if not base > 0:
        return w.copy(), v.copy()
    dtype = w.dtype
    v_new = (mom * v - eps * grad).astype(dtype, copy=False)
    if wc > 0:
        rate = eps if eps_decay is None else eps_decay
        v_new = (v_new - (wc * rate) * w).astype(dtype, copy=False)
    return (w + v_new).astype(dtype, copy=False), v_new


def bias_update(b, v, grad, *, eps: float, mom: float, base_eps: float | None = None):
    """Bias update: as `sgd_update` without decay (layer.cu: biases are Weights with wc = 0)."""
    return sgd_update(b, v, grad, eps=eps, mom=mom, wc=0.0, base_eps=base_eps)


def super_update(w, v, grad, grad_avg, grad2_avg, *, eps: float, mom: float, super_eps: float,
                 wc: float = 0.0, eps_decay: float | None = None, fix: bool = False):
    """The superEps update (src/weights.cu: Weights::update with _superEps > 0, superMomUpdate;
    unused by every file of the release). Returns (w', v', grad_avg', grad2_avg').

        G  ← mom·G  + (1 − mom)·g          running mean of the gradient g (the original's sign, −grad)
        G2 ← mom·G2 + (1 − mom)·g²         running mean of its square (Grad2AvgOperator)
        V  ← 0.9·V + eps·g / √(G2 − G + superEps)     0.9 hard-coded, whatever momW says
        V  ← V − wc·eps_decay·W if wc > 0;  W ← W + V

    The denominator subtracts G where G² was meant (SEMANTICS.md §4.4, trap 23); `fix` uses G².
    A negative radicand gives NaN, as sqrtf did. grad_avg is kept in the original's sign.
    """
    dtype = w.dtype
    g = -grad
    grad_avg = (mom * grad_avg + (1.0 - mom) * g).astype(dtype, copy=False)
    grad2_avg = (mom * grad2_avg + (1.0 - mom) * g * g).astype(dtype, copy=False)
    spread = grad2_avg - (grad_avg * grad_avg if fix else grad_avg)
    with np.errstate(invalid="ignore", divide="ignore"):
        v_new = (0.9 * v + eps * g / np.sqrt(spread + super_eps)).astype(dtype, copy=False)
    if wc > 0:
        v_new = (v_new - (wc * (eps if eps_decay is None else eps_decay)) * w).astype(dtype, copy=False)
    return (w + v_new).astype(dtype, copy=False), v_new, grad_avg, grad2_avg


def wball_constrain(w, wball: float, fan_in: int):
    """fc/conv `wball` (FCLayer/ConvLayer::constrainWeights, WeightConstraintOperator): every
    column (output / filter) of w (rows, cols) whose L2 norm exceeds θ = wball·fan_in
    (layer.py: wballNormed, linear in the fan-in) is rescaled to norm θ. Off when wball <= 0."""
    if not wball > 0:
        return w.copy()
    theta = wball * fan_in
    sq = np.sum(w * w, axis=0, keepdims=True)
    factor = np.where(sq > theta * theta, theta / np.sqrt(np.maximum(sq, np.finfo(w.dtype).tiny)), 1.0)
    return (w * factor).astype(w.dtype, copy=False)


def local_wball_constrain(w, wball: float, fan_in: int, modules: int):
    """local `wball` (cc2 conv_util.cu: normalizeLocalWeights [M]): w (M·Cf·fs², F), one norm per
    (module, filter) over its fan_in = Cf·fs² rows; above θ = wball·fan_in rescaled to θ."""
    if not wball > 0:
        return w.copy()
    rows, filters = w.shape
    blocks = w.reshape(modules, rows // modules, filters)
    theta = wball * fan_in
    norm = np.sqrt(np.sum(blocks * blocks, axis=1, keepdims=True))
    factor = np.where(norm > theta, theta / np.maximum(norm, np.finfo(w.dtype).tiny), 1.0)
    return (blocks * factor).reshape(rows, filters).astype(w.dtype, copy=False)


def wc_norm_constrain(w, wc_norm_min: float, wc_norm_max: float):
    """conv wcNormMin/wcNormMax (ConvLayer::constrainWeights, WeightContrastNormOperator): per
    filter column w of length D: a = ‖w − mean(w)‖₂ / D (not the standard deviation); the
    UNCENTRED column is multiplied by min/a if a < min, max/a if a > max. Off unless max > 0."""
    if not wc_norm_max > 0:
        return w.copy()
    d = w.shape[0]
    centred = w - w.mean(axis=0, keepdims=True)
    a = np.sqrt(np.sum(centred * centred, axis=0, keepdims=True)) / d
    with np.errstate(divide="ignore"):
        factor = np.where(a < wc_norm_min, wc_norm_min / a, np.where(a > wc_norm_max, wc_norm_max / a, 1.0))
    return (w * factor).astype(w.dtype, copy=False)


def constrain_weights(w, *, layer_type: str, wball: float = 0.0, fan_in: int | None = None,
                      wc_norm_min: float = 0.0, wc_norm_max: float = 0.0, modules: int | None = None):
    """The constraints a layer applies after its update (only for weights it owns with base rate
    > 0; the caller checks that). conv: wcNorm first, then wball; fc: wball; local: per-module
    wball; others: none."""
    if layer_type == "conv":
        w = wc_norm_constrain(w, wc_norm_min, wc_norm_max)
        return wball_constrain(w, wball, fan_in or 0) if wball > 0 else w
    if layer_type == "fc":
        return wball_constrain(w, wball, fan_in or 0)
    if layer_type == "local":
        return local_wball_constrain(w, wball, fan_in or 0, modules or 1)
    return w.copy()


def update_param(param, w, v, grad, *, epoch: float, progress: float, layer_type: str,
                 modules: int | None = None, rng=None):
    """Update one plan.ParamTensor: its base rate at `epoch` (timetable), through its schedule at
    `progress` (two noise draws when the schedule has noise and `rng` is given: gradient and
    decay, as lr.cu), the rule above, then the layer's constraints. Returns (w', v')."""
    from .schedule import scheduled_rate

    base = param.timetable.value_at(epoch)
    if not base > 0:
        return w.copy(), v.copy()
    mom = param.mom if param.mom is not None else 0.0
    eps = scheduled_rate(param.schedule, base, progress, rng)
    if param.kind == "biases":
        return bias_update(w, v, grad, eps=eps, mom=mom, base_eps=base)
    eps_decay = scheduled_rate(param.schedule, base, progress, rng) if param.wc > 0 else eps
    w_new, v_new = sgd_update(w, v, grad, eps=eps, mom=mom, wc=param.wc, eps_decay=eps_decay, base_eps=base)
    w_new = constrain_weights(w_new, layer_type=layer_type, wball=param.wball, fan_in=param.fan_in,
                              wc_norm_min=param.wc_norm_min, wc_norm_max=param.wc_norm_max, modules=modules)
    return w_new, v_new


def super_update_param(param, w, v, grad, grad_avg, grad2_avg, *, epoch: float, progress: float, layer_type: str,
                       modules: int | None = None, rng=None, fix: bool = False):
    """`update_param` for a tensor whose layer sets superEps > 0: the same base rate, schedule
    draws and constraints around `super_update`. Returns (w', v', grad_avg', grad2_avg')."""
    from .schedule import scheduled_rate

    base = param.timetable.value_at(epoch)
    if not base > 0:
        return w.copy(), v.copy(), grad_avg, grad2_avg
    mom = param.mom if param.mom is not None else 0.0
    eps = scheduled_rate(param.schedule, base, progress, rng)
    wc = param.wc if param.kind == "weights" else 0.0
    eps_decay = scheduled_rate(param.schedule, base, progress, rng) if wc > 0 else eps
    w_new, v_new, grad_avg, grad2_avg = super_update(w, v, grad, grad_avg, grad2_avg, eps=eps, mom=mom,
                                                     super_eps=param.super_eps, wc=wc, eps_decay=eps_decay, fix=fix)
    if param.kind == "weights":
        w_new = constrain_weights(w_new, layer_type=layer_type, wball=param.wball, fan_in=param.fan_in,
                                  wc_norm_min=param.wc_norm_min, wc_norm_max=param.wc_norm_max, modules=modules)
    return w_new, v_new, grad_avg, grad2_avg
