"""Cost layers of the 2012 cuda-convnet: every `cost.*` type layer.py registers.

cost.logreg, cost.crossent, cost.crossent2, cost.rflickr, cost.sum2, cost.gsum2 are here. cost.msm
(multi-softmax, src/multisoftmax.cpp) and cost.tica (convTICA, a kernel the release does not ship) are not;
the archive uses neither (nor cost.crossent or cost.gsum2).

What a cost layer reports is a list of raw SUMS over the minibatch's cases (`CostLayer::getCost`), never
multiplied by coeff. What it differentiates is coeff × (first entry): `ConvNet::getCostValue` sums
coeff·cost[0], and that is what `ConvNet::checkGradient` compares the gradients with. So (our sign) every
backward here returns d(coeff·cost[0])/d(input), per case, NOT divided by N. The original stores the
negation of that (the descent direction) and adds it in the update; the docstrings say where that matters.

Labels/targets are in the (rows, N) layout: logreg labels (1, N) float class indices; multi-label targets
(classes, N) of 0/1 (or probabilities for cost.crossent).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NonFiniteCostError(FloatingPointError):
    """A reported cost is NaN or ±inf. convnet.py `print_costs` prints "^ got nan or inf!" and exits."""


def _finite_or_raise(name: str, values: Sequence[float]) -> None:
    if not all(np.isfinite(v) for v in values):
        raise NonFiniteCostError(f"{name}: cost {list(values)} is not finite; the 2012 code stops here "
                                 "(convnet.py print_costs: '^ got nan or inf!', exit 1)")


def _label_indices(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(1, N) float labels -> (N,) ints, truncated like the kernels' int(labels[i])."""
    idx = np.asarray(labels).reshape(-1).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {idx.min()}..{idx.max()}")
    return idx


# --------------------------------------------------------------------------------------------------
# cost.logreg (src/layer.cu: LogregCostLayer; src/layer_kernels.cu: kLogregCost, kMultiSoftmaxCost,
# kLogregCostGrad, kLogregSoftmaxGrad)
# --------------------------------------------------------------------------------------------------


def logreg_case_terms(labels: np.ndarray, probs: np.ndarray, *, topk: int = 1
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per case n with label t: (log y_t, top-1 credit, top-k credit), each (N,).

    probs: (K, N) softmax outputs; labels: (1, N).
    - log y_t with no clamp (__logf): y_t = 0 gives −inf.
    - top-1 credit = [y_t == max_j y_j] / #{j : y_j == max}   (a tie for the max shares the credit).
    - top-k credit, with b = #{j : y_j > y_t} and e = #{j : y_j == y_t} (t included):
      0 if b ≥ k, 1 if b + e ≤ k, else (k − b)/e   (`kMultiSoftmaxCost`; fractional credit for ties).
    Comparisons are exact, in the dtype of `probs`. layer.py does not range-check topk: topk <= 0 simply
    gives every case 0 top-k credit.
    """
    t = _label_indices(labels, probs.shape[0])
    cases = np.arange(probs.shape[1])
    y_t = probs[t, cases]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_y_t = np.log(y_t)
    max_p = probs.max(axis=0)
    num_max = (probs == max_p).sum(axis=0)
    top1 = np.where(y_t == max_p, 1.0 / num_max, 0.0)
    bigger = (probs > y_t).sum(axis=0)
    equal = (probs == y_t).sum(axis=0)
    slots = topk - bigger
    topk_credit = np.where(slots <= 0, 0.0, np.where(equal <= slots, 1.0, slots / np.maximum(equal, 1)))
    return log_y_t, top1, topk_credit


def logreg_cost(labels: np.ndarray, probs: np.ndarray, *, topk: int = 1,
                check_finite: bool = True) -> tuple[float, float, float]:
    """The cost.logreg output vector: (−Σ_n log y_t, N − Σ top-1 credit, N − Σ top-k credit).

    Raw sums over the N columns (convnet.py divides by the case count only when printing). With topk = 1 the
    third entry equals the second (`LogregCostLayer::fpropActs`). NaN/inf raises NonFiniteCostError unless
    check_finite=False (then e.g. y_t = 0 gives +inf, which the original only notices when printing).
    """
    log_y_t, top1, topk_credit = logreg_case_terms(labels, probs, topk=topk)
    n = probs.shape[1]
    nll = -float(log_y_t.astype(np.float64).sum())
    top1_err = n - float(top1.sum())
    topk_err = top1_err if topk == 1 else n - float(topk_credit.sum())
    out = (nll, top1_err, topk_err)
    if check_finite:
        _finite_or_raise("cost.logreg", out)
    return out


def multiview_average(views: Sequence[np.ndarray]) -> np.ndarray:
    """Multiview test: the arithmetic mean of the views' softmax outputs (probabilities, not logits);
    cost.logreg is then computed once on it (`LogregCostLayer::fpropActs`, _probsAccum / _numAccumed)."""
    acc = views[0].copy()
    for v in views[1:]:
        acc = acc + v
    return acc * acc.dtype.type(1.0 / len(views))


def logreg_backward_probs(labels: np.ndarray, probs: np.ndarray, coeff: float) -> np.ndarray:
    """Unfused gradient w.r.t. the softmax OUTPUT: −coeff·[j = t]/y_j.  (K, N) -> (K, N).

    `kLogregCostGrad` stores +coeff·[j=t]/y_j (negative derivative); ours is its negation. The kernel
    divides for every j, so a probability that underflowed to 0 gives 0/0 = NaN even off the label (and
    1/0 = inf on it); kept here (IEEE division). Through `kSoftmaxGrad` one such NaN spoils the whole
    column. Used only when the softmax does not fuse (softmax_logreg_fused is False).
    """
    t = _label_indices(labels, probs.shape[0])
    onehot = np.zeros_like(probs)
    onehot[t, np.arange(probs.shape[1])] = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return -probs.dtype.type(coeff) * onehot / probs


def softmax_logreg_backward(labels: np.ndarray, probs: np.ndarray, coeff: float) -> np.ndarray:
    """Fused softmax + logreg gradient w.r.t. the softmax INPUT: coeff·(y − onehot(t)).  (K, N) -> (K, N).

    `kLogregSoftmaxGrad` stores coeff·(onehot − y); ours is its negation.
    """
    t = _label_indices(labels, probs.shape[0])
    g = probs * probs.dtype.type(coeff)
    g[t, np.arange(probs.shape[1])] -= probs.dtype.type(coeff)
    return g


def softmax_logreg_fused(softmax_consumers: Sequence[str], same_gpu: bool) -> bool:
    """Whether the original uses the fused gradient: the softmax has exactly ONE consumer, it is a
    cost.logreg, and it runs on the softmax's GPU (`SoftmaxLayer::bpropActs` doLogregGrad, mirrored by
    `LogregCostLayer::bpropActs` doWork). Otherwise: logreg_backward_probs, then dense.softmax_backward."""
    return len(softmax_consumers) == 1 and softmax_consumers[0] == "cost.logreg" and same_gpu


# --------------------------------------------------------------------------------------------------
# cost.crossent2 (src/layer.cu: CrossEnt2CostLayer, NeuronLayer::bpropActs; include/layer.cuh:
# CrossEntOperator, CrossEntGradientOperator; include/layer_kernels.cuh: safelog)
# --------------------------------------------------------------------------------------------------


def safelog(z: np.ndarray) -> np.ndarray:
    """log z for z > 0, else −50 (layer_kernels.cuh `safelog`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z > 0, np.log(np.where(z > 0, z, 1)), z.dtype.type(-50))


def crossent2_cost(targets: np.ndarray, probs: np.ndarray) -> float:
    """Elementwise binary cross-entropy: −Σ_{j,n} [t·log*(y) + (1−t)·log*(1−y)], log* = safelog.
    targets, probs: (K, N)."""
    one = probs.dtype.type(1)
    per = targets * safelog(probs) + (one - targets) * safelog(one - probs)
    return -float(per.astype(np.float64).sum())


def crossent2_backward(targets: np.ndarray, probs: np.ndarray, coeff: float, *,
                       fix_sign: bool = False) -> np.ndarray:
    """Gradient w.r.t. probs when the fused logistic path is NOT taken ("the stupid way").

    The BUG (include/layer.cuh, CrossEnt2CostLayer::CrossEntGradientOperator, used by
    src/layer.cu CrossEnt2CostLayer::bpropActs): it stores coeff·(t/y + (1−t)/(1−y)); the correct negative
    derivative of coeff·cost is coeff·(t/y − (1−t)/(1−y)). The second term has the wrong sign, so the
    (1−t) part pushes y towards 1 instead of 0.
    fix_sign=False (default, faithful): returns −coeff·(t/y + (1−t)/(1−y)) (the negation of what the
    original stores). fix_sign=True: the true derivative coeff·(−t/y + (1−t)/(1−y)).
    No clamp: y = 0 or 1 gives inf/NaN as __fdividef would.
    """
    one = probs.dtype.type(1)
    c = probs.dtype.type(coeff)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = targets / probs
        second = (one - targets) / (one - probs)
    if fix_sign:
        return c * (second - first)
    return -c * (first + second)


def logistic_crossent2_backward(targets: np.ndarray, y: np.ndarray, coeff: float) -> np.ndarray:
    """Fused logistic + crossent2 gradient w.r.t. the logistic neuron's INPUT: coeff·(y − t).

    `NeuronLayer::bpropActs` stores coeff·(t − y) (negative derivative, correct, no sign bug). Taken when
    logistic_crossent2_fused is True; the crossent2 layer then writes nothing."""
    return y.dtype.type(coeff) * (y - targets)


def logistic_crossent2_fused(neuron_kind: str, neuron_consumers: Sequence[str], same_gpu: bool) -> bool:
    """Whether the original fuses: the cost's second input is a logistic NEURON layer whose only consumer
    is the cost.crossent2, on the same GPU (`NeuronLayer::bpropActs` doCrossEntGrad and
    `CrossEnt2CostLayer::bpropActs` doWork). An fc with neuron=logistic counts: layer.py detaches the
    neuron into its own layer. Otherwise the buggy crossent2_backward runs, then the neuron's backward."""
    return (neuron_kind == "logistic" and len(neuron_consumers) == 1
            and neuron_consumers[0] == "cost.crossent2" and same_gpu)


# --------------------------------------------------------------------------------------------------
# cost.rflickr (src/layer.cu: RobustFlickrCost; include/layer.cuh: RobustFlickrCostOperator)
# --------------------------------------------------------------------------------------------------


def rflickr_cost(targets: np.ndarray, probs: np.ndarray) -> float:
    """Σ_{j,n} log(1 + (y − t)²). targets, probs: (K, N). (Not negated; no fused path.)"""
    d = probs - targets
    return float(np.log1p((d * d).astype(np.float64)).sum())


def rflickr_backward(targets: np.ndarray, probs: np.ndarray, coeff: float) -> np.ndarray:
    """coeff·2(y − t)/(1 + (y − t)²) w.r.t. probs. The original stores its negation (correct sign)."""
    d = probs - targets
    return probs.dtype.type(coeff) * (probs.dtype.type(2) * d) / (probs.dtype.type(1) + d * d)


# --------------------------------------------------------------------------------------------------
# cost.sum2, cost.gsum2 (src/layer.cu: SumOfSquaresCostLayer, GatedSumOfSquaresCostLayer)
# --------------------------------------------------------------------------------------------------


def sum2_cost(x: np.ndarray) -> float:
    """Σ x² over all elements. x: (D, N)."""
    return float((x.astype(np.float64) ** 2).sum())


def sum2_backward(x: np.ndarray, coeff: float) -> np.ndarray:
    """2·coeff·x (the original stores −2·coeff·x)."""
    return x.dtype.type(2 * coeff) * x


def gsum2_cost(gates: np.ndarray, x: np.ndarray) -> float:
    """Σ_n g_n·Σ_d x_dn². gates: (1, N); x: (D, N)."""
    return float((gates.astype(np.float64) * x.astype(np.float64) ** 2).sum())


def gsum2_backward(gates: np.ndarray, x: np.ndarray, coeff: float) -> tuple[np.ndarray, np.ndarray]:
    """(d/dgates (1, N) = coeff·Σ_d x², d/dx (D, N) = 2·coeff·g·x); the original stores both negated."""
    c = x.dtype.type(coeff)
    return c * (x * x).sum(axis=0, keepdims=True), x.dtype.type(2) * c * gates * x


# --------------------------------------------------------------------------------------------------
# cost.crossent (src/layer.cu: CrossEntCostLayer; src/layer_kernels.cu: kCrossEntCost, kCrossEntGrad,
# kCrossEntSoftmaxGrad). Soft-label cross-entropy over a softmax. Unused by the archive.
# --------------------------------------------------------------------------------------------------


def crossent_cost(targets: np.ndarray, probs: np.ndarray, *, check_finite: bool = True) -> tuple[float, float]:
    """(−Σ_n Σ_l p_l·log*(y_l), N − Σ_n correct_n); targets p, probs y: (K, N); log* = safelog.

    correct_n = 1/#{l : y_l == max} if some l with y_l == max has p_l > 0, else 0 (`kCrossEntCost`)."""
    ce = -float((targets * safelog(probs)).astype(np.float64).sum())
    max_p = probs.max(axis=0)
    at_max = probs == max_p
    hit = (at_max & (targets > 0)).any(axis=0)
    correct = np.where(hit, 1.0 / at_max.sum(axis=0), 0.0)
    out = (ce, probs.shape[1] - float(correct.sum()))
    if check_finite:
        _finite_or_raise("cost.crossent", out)
    return out


def crossent_backward_probs(targets: np.ndarray, probs: np.ndarray, coeff: float) -> np.ndarray:
    """−coeff·p/y w.r.t. the softmax output (`kCrossEntGrad` stores +coeff·p/y). Not clamped."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -probs.dtype.type(coeff) * targets / probs


def softmax_crossent_backward(targets: np.ndarray, probs: np.ndarray, coeff: float) -> np.ndarray:
    """coeff·(y·Σ_l p_l − p) w.r.t. the softmax input (`kCrossEntSoftmaxGrad` stores the negation).

    NOTE: the release never reaches this kernel. `CrossEntCostLayer::bpropActs` skips its own work when its
    input is a softmax with one consumer, but `SoftmaxLayer::bpropActs` only fuses for cost.logreg, so that
    softmax then runs kSoftmaxGrad on a gradient buffer nobody wrote (an assert, or garbage). For that
    configuration a replay must choose; this is the gradient the code evidently meant."""
    c = probs.dtype.type(coeff)
    return c * (probs * targets.sum(axis=0, keepdims=True) - targets)
