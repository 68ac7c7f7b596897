"""Whole 2012 ImageNet nets on the GPU, checked against the NumPy reference: one training step (forward with
dropout, backward, update) of #120 (two towers, cmrnorm and cnorm, blur and nailbed), #126-2012-full (the
2012 widths, href) and #170-4gpu (four logical GPUs on the one card, concat) at 224 pixels and 4 cases.

How they are compared, and why:
- Op by op, in place: the network runs on the CUDA backend through a shadow (`Shadow`) that gives every
  operation's inputs, copied to the host, to the reference as well and compares the two results before
  the network goes on. So each kernel is checked at the net's real shapes, on the data the net really
  produces, with the streams, pools and autotuned tilings of a real step.
- End to end where that is continuous: the costs and every layer's output against a reference net with the
  same weights, data and dropout masks; the copies between logical GPUs as the reference counts them.
- Not the gradients end to end: the 2012 rules are discrete at ties (a max pool sends the gradient to every
  input equal to the window's max; relu passes it where y > 0), and one pre-activation that rounds to 0 on
  one side and to 5e-7 on the other (as one did in #120's conv2a, in the emulator) sends a window's
  gradient to nine inputs instead of one. The op-by-op check gives both sides the same inputs instead.
- The update against replay/update.py's update_param from the GPU's own weights, momentum and gradients.

Tolerance: 1e-4 of each result's largest magnitude (1e-3 end to end): the GPU fuses multiply-adds and sums
in other orders, and a wrong index gives errors of order 1. Skipped without CuPy and a GPU (marker `gpu`);
the same comparisons run in the emulator for a CIFAR net (the last test here)."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from replay.backend import OPERATIONS
from replay.backends import get_backend
from replay.backends.cuda import philox
from replay.backends.cuda.devices import as_numpy
from replay.network import Network
from replay.plan import build_plan
from replay.update import update_param

CASES = 4
OP_TOLERANCE = 1e-4
END_TO_END_TOLERANCE = 1e-3


def relative_error(got, want) -> float:
    got, want = np.asarray(as_numpy(got), dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = float(np.max(np.abs(want), initial=0.0)) or 1.0
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


def reference_with_philox_dropout():
    """The NumPy backend, its dropout masks drawn as the CUDA backend draws them (a Philox key from the
    step's generator; replay/backends/cuda/philox.py mirrors the kernel bit for bit): the two backends'
    masks otherwise differ by design, with the same keep probability."""
    reference = get_backend("numpy")

    def dropout_forward(x, *, keep, enable, train, rng=None):
        if enable and train:
            mask = philox.dropout_mask(x.shape, keep, philox.draw_key(rng)).astype(x.dtype)
            return x * mask, mask
        return reference.dropout_forward(x, keep=keep, enable=enable, train=train, rng=rng)

    return SimpleNamespace(**{**vars(reference), "dropout_forward": dropout_forward})


def _to_host(value):
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.array(as_numpy(value), copy=True)
    return value


class Shadow:
    """The CUDA backend, each operation also run by the reference on host copies of the same inputs and
    compared with it (OP_TOLERANCE) before its result goes back to the network. `checked` counts the
    calls per operation."""

    def __init__(self, cuda, reference):
        self._cuda, self._reference = cuda, reference
        self.name = cuda.name
        self.checked: dict[str, int] = {}
        for op in OPERATIONS:
            setattr(self, op, self._wrap(op))

    def _wrap(self, op: str):
        ours, theirs = getattr(self._cuda, op), getattr(self._reference, op)

        def call(*args, **kwargs):
            host_args = _to_host(args)
            host_kwargs = {key: _to_host(value) for key, value in kwargs.items() if key not in ("saved", "out")}
            if "rng" in kwargs and kwargs["rng"] is not None:
                host_kwargs["rng"] = copy.deepcopy(kwargs["rng"])  # the same draws, on a twin generator
            want = theirs(*host_args, **host_kwargs)
            got = ours(*args, **kwargs)
            self._compare(op, got, want)
            self.checked[op] = self.checked.get(op, 0) + 1
            return got

        return call

    def _compare(self, op: str, got, want) -> None:
        if want is None:
            assert got is None, op
        elif isinstance(want, (list, tuple)):
            assert isinstance(got, (list, tuple)) and len(got) == len(want), op
            for part_got, part_want in zip(got, want):
                self._compare(op, part_got, part_want)
        elif isinstance(want, float):
            assert abs(got - want) <= OP_TOLERANCE * max(1.0, abs(want)), (op, got, want)
        else:
            error = relative_error(got, want)
            assert error <= OP_TOLERANCE, f"{op} (call {self.checked.get(op, 0) + 1}): relative error {error:.3g}"

    def __getattr__(self, name):  # anything else the network asks the backend for
        return getattr(self._cuda, name)


def check_a_step(release, experiment_id: str, cases: int = CASES, cuda=None) -> Shadow:
    experiment = release.experiment(experiment_id)
    plan = build_plan(experiment)
    rng = np.random.default_rng(0)
    x = (30.0 * rng.normal(size=(plan.input_channels * plan.input_size ** 2, cases))).astype(np.float32)
    probs = next(layer for layer in plan.layers if layer.type == "cost.logreg").inputs[1]
    labels = rng.integers(0, plan.layer(probs).outputs, size=(1, cases)).astype(np.float32)

    shadow = Shadow(cuda or get_backend("cuda"), reference_with_philox_dropout())
    nets = {}
    for name, backend in (("reference", reference_with_philox_dropout()), ("ours", shadow)):
        net = Network(plan, experiment, rng=np.random.default_rng(5), backend=backend)
        costs = net.forward(x, labels, train=True, rng=np.random.default_rng(1))
        nets[name] = (net, costs)
    (reference, want_costs), (ours, got_costs) = nets["reference"], nets["ours"]
    assert ours.on_cuda and ours.transfers.count == plan.num_gpus
    for layer, values in want_costs.values.items():
        np.testing.assert_allclose(got_costs.values[layer], values, rtol=END_TO_END_TOLERANCE)
    for layer in plan.layers:
        if layer.type not in ("data", "cost.logreg"):
            error = relative_error(ours.output(layer.name), reference.output(layer.name))
            assert error <= END_TO_END_TOLERANCE, f"#{experiment_id} {layer.name}: relative error {error:.3g}"

    reference.backward(labels)
    ours.backward(labels)  # every operation checked by the shadow
    assert ours.transfers.per_batch == reference.transfers.per_batch
    assert set(ours.grads) == set(reference.grads) and ours.grads

    before = {key: (as_numpy(ours.weights[key]).copy(), as_numpy(ours.momentum[key]).copy(),
                    as_numpy(ours.grads[key]).copy()) for key in ours.grads}
    ours.update(epoch=1, progress=0.0)
    params = {param.key: param for param in plan.params}
    moved = 0
    for key, (w, v, grad) in before.items():
        layer = plan.layer(params[key].layer)
        modules = layer.derived.get("modules") if layer.type == "local" else None
        want_w, want_v = update_param(params[key], w, v, grad, epoch=1, progress=0.0, layer_type=layer.type,
                                      modules=modules)
        got_w = as_numpy(ours.weights[key])
        assert relative_error(got_w - w, want_w - w) <= OP_TOLERANCE, f"#{experiment_id} update of {key}"
        assert relative_error(ours.momentum[key], want_v) <= OP_TOLERANCE, f"#{experiment_id} momentum of {key}"
        moved += bool(np.any(want_w != w))
    assert moved, f"#{experiment_id}: no weight moved"
    return shadow


@pytest.mark.gpu
@pytest.mark.parametrize("experiment_id", ["120", "126-2012-full", "170-4gpu"])
def test_a_224_pixel_net_on_the_gpu_matches_the_reference_op_by_op(release, experiment_id):
    shadow = check_a_step(release, experiment_id)
    for op in ("conv_forward", "conv_backward_data", "conv_backward_weights", "pool_backward", "cmrnorm_backward",
               "dropout_forward", "fc_backward_weights", "softmax_logreg_backward"):
        assert shadow.checked.get(op), (op, shadow.checked)


@pytest.fixture
def poisoned_allocations(monkeypatch):
    """numpy.empty and empty_like fill float arrays with NaN (and int arrays with a wild value): a kernel
    that reads memory nobody wrote, or leaves part of its output unwritten, then spreads NaN into the
    comparison — compute-sanitizer's initcheck, for the emulator."""
    empty, empty_like = np.empty, np.empty_like

    def poison(array):
        if array.dtype.kind == "f":
            array.fill(np.nan)
        elif array.dtype.kind == "i":
            array.fill(-123456789)
        return array

    monkeypatch.setattr(np, "empty", lambda *args, **kwargs: poison(empty(*args, **kwargs)))
    monkeypatch.setattr(np, "empty_like", lambda *args, **kwargs: poison(empty_like(*args, **kwargs)))


@pytest.mark.parametrize("experiment_id", ["cifar-18pct-noisylr", "cifar-conv-local-13pct-noisylr"])
def test_the_shadow_check_in_the_emulator_on_a_cifar_net(release, poisoned_allocations, experiment_id):
    """The same comparisons without a GPU, on nets the emulator runs in seconds, with every fresh buffer
    poisoned (so the check itself is tested in CI: a backend that is wrong anywhere fails it, see the
    next test)."""
    assert np.isnan(np.empty(3, dtype=np.float32)).all()
    shadow = check_a_step(release, experiment_id, cases=2)
    assert {"conv_forward", "conv_backward_data", "conv_backward_weights", "pool_backward", "fc_forward",
            "logreg_cost"} <= set(shadow.checked)


def test_the_shadow_check_catches_a_wrong_operation(release):
    cuda = get_backend("cuda")

    def off_by_one_row(*args, **kwargs):
        return np.roll(cuda.pool_backward(*args, **kwargs), 1, axis=0)

    wrong = SimpleNamespace(**{**vars(cuda), "pool_backward": off_by_one_row})
    with pytest.raises(AssertionError, match=r"pool_backward \(call 1\): relative error"):
        check_a_step(release, "cifar-18pct-noisylr", cases=2, cuda=wrong)
