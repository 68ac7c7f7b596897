"""`alexnet-archive replay ID --check`: the replayed net's weight gradients against finite differences.

What the 2012 code did (`convnet.py --check-grads` -> src/convnet.cu: ConvNet::checkGradients and
ConvNet::checkGradient, called per tensor by src/layer.cu: WeightLayer::checkGradients):
- one pass over the batch with PASS_GC (dropout off: HiddenSexLayer drops only on PASS_TRAIN), then for
  EVERY entry of EVERY weight matrix and bias vector a forward difference in float32:
  numGrad = (cost(w + eps) − cost) / (N·eps), eps = _wStep / _bStep (0.02 / 0.05 for conv and local,
  0.01 / 0.01 for fc, 0.001 for treefc weights), cost = Σ coeff·cost[0] over the cost layers
  (ConvNet::getCostValue);
- the whole tensor judged at once: relErr = ‖numGrad − analytic‖ / ‖analytic‖, failed when
  relErr >= GC_REL_ERR_THRESH = 0.02 (include/util.cuh); it printed a block per tensor ("PASS" or
  "****FAIL****", the top-left 6×4 of both matrices, the two norms, the relative error) and finally
  "ALL n TESTS PASSED" or "f/n TESTS FAILED"; a NaN/inf difference quotient stopped the program.

What this check does instead (the network built in float64):
- central differences, (cost(w + h) − cost(w − h)) / (2h·N), h = 1e-7, on a few sampled entries per
  tensor (`samples_per_tensor`): every entry of a 60M-parameter net would take days on a CPU;
- a point where the two one-sided slopes disagree is skipped and counted as a kink: a relu input or a
  max-pool's winner changes within ±h there, and the cost is not differentiable;
- per entry the relative error |analytic − numeric| / max(|analytic|, |numeric|, floor/tol), where the
  floor is the difference quotient's own rounding (~16·ε64·|cost|/(h·N)); a tensor passes when its
  largest error stays below `tolerance` (1e-4: float64 and central differences are far more exact than
  the original's float32 forward differences with its 2% threshold on the norm).
- The 2012 cnorm gradient holds the window mean constant (replay/backends/numpy_ref/norm.py), so every
  tensor whose gradient passes through a cnorm layer is EXPECTED to differ from the true derivative.
  Such tensors are marked with `CNORM_RULE`, and judged against the exact gradient instead (the same
  backward with cnorm's mean term included); the error against the replayed (2012) gradient is still
  reported.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from .backends.numpy_ref import norm as norm_ops
from .network import Network
from .plan import build_plan

__all__ = ["TensorCheck", "GradientReport", "check_gradients", "check_experiment_gradients", "format_checks",
           "below_cnorm", "CNORM_RULE", "TOLERANCE"]

CNORM_RULE = "2012 rule: cnorm's mean is held constant"
TOLERANCE = 1e-4
_EPS64 = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, slots=True)
class TensorCheck:
    """One weight tensor's check.

    checked: sampled entries compared; kinks: sampled points skipped (one-sided slopes disagree);
    max_rel_error: the largest per-entry error against the replay's (2012) gradient (None: nothing
    checked); rule: why a disagreement is expected (CNORM_RULE) or why nothing was checked;
    exact_rel_error: for CNORM_RULE tensors, the error against the exact gradient, which decides
    `passed` for them."""

    key: str
    layer: str
    checked: int
    kinks: int
    max_rel_error: float | None
    passed: bool
    rule: str | None = None
    exact_rel_error: float | None = None

    def to_json(self) -> dict:
        return {"key": self.key, "layer": self.layer, "checked": self.checked, "kinks": self.kinks,
                "max_rel_error": self.max_rel_error, "passed": self.passed, "rule": self.rule,
                "exact_rel_error": self.exact_rel_error}


@dataclass(frozen=True, slots=True)
class GradientReport:
    """check_experiment_gradients' result: the checks and the batch they were made on."""

    experiment: str
    cases: int
    input_scale: float
    cost: float
    checks: tuple[TensorCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def describe(self) -> str:
        return (f"gradient check of #{self.experiment}: float64, {self.cases} synthetic case(s) of N(0, "
                f"{self.input_scale:.3g}²) pixels, cost {self.cost:.6g}; central differences h = 1e-7 (1e-8, 1e-9 near a kink), "
                f"tolerance {TOLERANCE:g}")

    def to_json(self) -> dict:
        return {"experiment": self.experiment, "cases": self.cases, "input_scale": self.input_scale,
                "cost": self.cost, "passed": self.passed, "checks": [c.to_json() for c in self.checks]}


# --- the check -------------------------------------------------------------------------------

def _total_cost(network: Network, data: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Σ coeff·cost[0] over the cost layers (ConvNet::getCostValue), a test pass (dropout off, as
    PASS_GC); the same noise seed on every call, so nrelu's noise does not change between evaluations."""
    costs = network.forward(data, labels, train=False, rng=np.random.default_rng(seed))
    return sum(float(network._params_value(network.layers[name], "coeff", 1.0)) * values[0]
               for name, values in costs.values.items())


def below_cnorm(plan) -> set[str]:
    """The plan's layers whose output reaches a cnorm layer going forward: their gradients pass
    through one, so their 2012 gradients hold its window mean constant."""
    consumers: dict[str, list[str]] = {layer.name: [] for layer in plan.layers}
    for layer in plan.layers:
        for source in layer.inputs:
            consumers[source].append(layer.name)
    reaches: dict[str, bool] = {}
    for layer in reversed(plan.layers):  # consumers come later in the plan's order
        reaches[layer.name] = any(plan.layer(c).type == "cnorm" or reaches[c] for c in consumers[layer.name])
    return {name for name, hit in reaches.items() if hit}


@contextlib.contextmanager
def _exact_cnorm(network: Network):
    """Within: this network's cnorm backward includes the term through the window mean (not 2012
    behaviour; the NumPy reference's include_mean_grad). Only this network's operation table changes."""
    original = network.ops
    exact = SimpleNamespace(**vars(original))
    exact.cnorm_backward = functools.partial(norm_ops.cnorm_backward, include_mean_grad=True)
    network.ops = exact
    try:
        yield
    finally:
        network.ops = original


def check_gradients(network: Network, data: np.ndarray, labels: np.ndarray, *, samples_per_tensor: int = 3,
                    step: float = 1e-7, rng: np.random.Generator, keys: Iterable[str] | None = None,
                    tolerance: float = TOLERANCE, noise_seed: int = 0) -> list[TensorCheck]:
    """Compare `network`'s weight gradients with central differences of its cost (see the module
    docstring). The network should be float64; data (C·S·S, N), labels (1, N) as for Network.forward.
    keys: the parameter keys to check (default: every tensor of the plan, in plan order). The
    network's weights are restored exactly; its activations are those of the last evaluation."""
    if np.dtype(network.dtype) != np.float64:
        raise ValueError("check_gradients needs a float64 Network: float32 rounding swamps a 1e-7 step")
    wanted = None if keys is None else set(keys)
    params = [p for p in network.plan.params if wanted is None or p.key in wanted]
    if wanted is not None and len(params) != len(wanted):
        missing = wanted - {p.key for p in params}
        raise KeyError(f"no such parameter tensor: {', '.join(sorted(missing))}")
    cases = data.shape[1]
    base = _total_cost(network, data, labels, noise_seed)
    network.backward(labels)
    replayed = {k: v.copy() for k, v in network.grads.items()}
    below = below_cnorm(network.plan)
    exact = replayed
    if any(p.layer in below for p in params):
        with _exact_cnorm(network):
            network.backward(labels)
        exact = {k: v.copy() for k, v in network.grads.items()}
        network.grads = {k: v.copy() for k, v in replayed.items()}
    scale_c = max(abs(base), 1.0)

    def error(analytic: float, numeric: float, h: float) -> float:
        floor = 16 * _EPS64 * scale_c / (h * cases)  # the difference quotient's own rounding, per case
        return abs(analytic - numeric) / max(abs(analytic), abs(numeric), floor / tolerance)

    def probe(w: np.ndarray, index: tuple, h: float) -> float | None:
        """The central difference at `index` with step h, per case; None at a kink."""
        saved = w[index]
        w[index] = saved + h
        up = _total_cost(network, data, labels, noise_seed)
        w[index] = saved - h
        down = _total_cost(network, data, labels, noise_seed)
        w[index] = saved
        right, left = (up - base) / h, (base - down) / h
        # A kink between w − h and w + h changes the slope; undetected, it would bias the central
        # difference by up to half that change, so anything above the tolerance counts.
        if abs(right - left) > tolerance * max(abs(right), abs(left)) + 100 * _EPS64 * scale_c / h:
            return None
        return (up - down) / (2 * h) / cases  # weight gradients are 1/N-normalised

    checks = []
    for param in params:
        rule = CNORM_RULE if param.layer in below else None
        if param.key not in replayed:
            checks.append(TensorCheck(param.key, param.layer, 0, 0, None, True,
                                      "no gradient: not a gradient consumer at the starting rates"))
            continue
        w = network.weights[param.key]
        errors, exact_errors, kinks, draws = [], [], 0, 0
        while len(errors) < samples_per_tensor and draws < 10 * samples_per_tensor:
            draws += 1
            index = tuple(int(rng.integers(0, n)) for n in w.shape)
            # A kink within ±step is often outside ±step/10: two smaller steps before giving the point up.
            for h in (step, step / 10, step / 100):
                numeric = probe(w, index, h)
                if numeric is not None:
                    errors.append(error(float(replayed[param.key][index]), numeric, h))
                    exact_errors.append(error(float(exact[param.key][index]), numeric, h))
                    break
            else:
                kinks += 1  # a relu or max-pool switches within ±step/100: not differentiable here
        worst = max(errors) if errors else None
        if rule:
            worst_exact = max(exact_errors) if exact_errors else None
            ok = worst_exact is not None and worst_exact <= tolerance
            checks.append(TensorCheck(param.key, param.layer, len(errors), kinks, worst, ok, rule, worst_exact))
        else:
            checks.append(TensorCheck(param.key, param.layer, len(errors), kinks, worst,
                                      worst is not None and worst <= tolerance))
    return checks


# --- a whole experiment ----------------------------------------------------------------------

def _logits_spread(network: Network) -> float:
    """The largest spread (max − min) of any softmax's input over the cases: how peaked the outputs are."""
    spreads = []
    for layer in network.plan.layers:
        if layer.type == "softmax":
            logits = network.output(layer.inputs[0])
            spreads.append(float(np.max(logits.max(axis=0) - logits.min(axis=0))))
    return max(spreads) if spreads else float("nan")


def _input_scale(network: Network, raw: np.ndarray, labels: np.ndarray, target: float = 5.0) -> float:
    """A factor s for the input such that the logits' spread is about `target`.

    Multiplicative steps s *= target/spread (at most 1000× each way); stops when the spread lies in
    [target/2.5, 2·target], when a step changes it by less than 10% (the biases, not the input, set
    the logits: the previous s is kept), or when the cost overflows (the step is halved, in log)."""
    def spread_at(s: float) -> float:
        try:
            _total_cost(network, raw * s, labels, 0)
        except FloatingPointError:  # NonFiniteCostError: a probability underflowed to 0
            return float("inf")
        return _logits_spread(network)

    scale, spread = 1.0, spread_at(1.0)
    for _ in range(6):
        if not np.isfinite(spread) or spread == 0 or target / 2.5 <= spread <= 2 * target:
            break
        factor = float(np.clip(target / spread, 1e-3, 1e3))
        candidate = scale * factor
        new = spread_at(candidate)
        while not np.isfinite(new) and factor > 1.01:
            factor = factor ** 0.5
            candidate = scale * factor
            new = spread_at(candidate)
        if not np.isfinite(new) or abs(new - spread) < 0.1 * spread:
            break
        scale, spread = candidate, new
    return scale


def _classes(network: Network) -> int:
    for layer in network.plan.layers:
        if layer.type == "cost.logreg":
            outputs = network.layers[layer.inputs[1]].outputs
            if outputs:
                return int(outputs)
    return 10


def check_experiment_gradients(experiment, *, cases: int = 2, seed: int = 0, samples_per_tensor: int = 3,
                               keys: Iterable[str] | None = None, tolerance: float = TOLERANCE
                               ) -> GradientReport:
    """Plan the experiment, build a float64 Network (weights drawn from `seed`), make a synthetic batch
    of the net's input size and check its gradients (check_gradients).

    Nets with inputs of 128 pixels or more are checked on one case (every sampled entry costs two
    forward passes of the whole net). The input is N(0, s²) with s chosen so that the largest spread of
    the logits (a softmax's input) is about 5: small logits would make the lower layers' gradients
    vanish under the difference quotient's rounding, large ones would push probabilities to 0.
    ReplayError / ArchiveError where the experiment cannot be replayed at all."""
    plan = build_plan(experiment)
    network = Network(plan, experiment, rng=np.random.default_rng(seed), dtype=np.float64)
    if plan.input_size >= 128:
        cases = min(cases, 1)
    rng = np.random.default_rng(seed + 1)
    side = plan.input_size
    raw = rng.standard_normal((plan.input_channels * side * side, cases))
    labels = rng.integers(0, _classes(network), size=(1, cases)).astype(np.float64)
    scale = _input_scale(network, raw, labels)
    data = raw * scale
    checks = check_gradients(network, data, labels, samples_per_tensor=samples_per_tensor,
                             rng=np.random.default_rng(seed + 2), keys=keys, tolerance=tolerance)
    cost = _total_cost(network, data, labels, 0)
    return GradientReport(experiment.id, cases, scale, cost, tuple(checks))


# --- output ----------------------------------------------------------------------------------

def format_checks(checks: Iterable[TensorCheck], *, header: str | None = None) -> str:
    """One line per tensor, as the original's PASS / ****FAIL**** verdicts, then its closing summary
    ("ALL n TESTS PASSED" / "f/n TESTS FAILED")."""
    checks = list(checks)
    lines = [header, ""] if header else []
    width = max([len(c.key) for c in checks] + [6])
    lines.append(f"{'verdict':<12} {'tensor':<{width}} {'checked':>7} {'kinks':>5} {'rel. error':>10}  note")
    lines.append("-" * (len(lines[-1]) + 20))
    for c in checks:
        verdict = "skipped" if c.passed and c.checked == 0 else "PASS" if c.passed else "****FAIL****"
        err = "-" if c.max_rel_error is None else f"{c.max_rel_error:.2e}"
        note = c.rule or ""
        if c.rule == CNORM_RULE:
            exact = "-" if c.exact_rel_error is None else f"{c.exact_rel_error:.2e}"
            note = f"{c.rule} (error above: vs the 2012 gradient; vs the exact gradient: {exact})"
        lines.append(f"{verdict:<12} {c.key:<{width}} {c.checked:>7} {c.kinks:>5} {err:>10}  {note}".rstrip())
    failed = sum(not c.passed for c in checks)
    tested = sum(c.checked > 0 for c in checks)
    lines.append("------------------------")
    lines.append(f"{failed}/{len(checks)} TESTS FAILED" if failed else f"ALL {tested} TESTS PASSED")
    marked = sum(c.rule == CNORM_RULE for c in checks)
    if marked:
        lines.append(f"{marked} tensor(s) lie below a cnorm layer: their 2012 gradient holds the window mean "
                     "constant (convContrastNormUndo), so it differs from the true derivative; they are "
                     "judged against the exact gradient instead")
    return "\n".join(lines)
