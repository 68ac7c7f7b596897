"""replay/network.py: whole archived nets forward and backward on logical GPUs.

Layer by layer the rules are tested against PyTorch in the backend's tests; here the wiring is:
the gradient of the whole net (float64) against finite differences of its cost, and the
GPU-to-GPU traffic of #120 against what the plan predicts."""
from __future__ import annotations

import numpy as np
import pytest

from replay.network import Network, ReplayError
from replay.plan import build_plan


def make(release, eid, dtype=np.float64, seed=0):
    experiment = release.experiment(eid)
    return Network(build_plan(experiment), experiment, rng=np.random.default_rng(seed), dtype=dtype), experiment


def batch(experiment, cases, seed=1, scale=1.0, classes=10):
    rng = np.random.default_rng(seed)
    side = experiment.input.size
    data = rng.normal(0.0, scale, size=(3 * side * side, cases))
    labels = rng.integers(0, classes, size=(1, cases)).astype(np.float64)
    return data, labels


def total_cost(net, data, labels):
    costs = net.forward(data, labels, train=False, rng=np.random.default_rng(0))
    coeffs = {name: float(net._params_value(net.layers[name], "coeff", 1.0)) for name in costs.values}
    return sum(coeffs[name] * values[0] for name, values in costs.values.items())


# conv + pool + rnorm + fc; conv + local; conv + cmrnorm + concat + three fc (one reading a layer twice).
# Input scales: pixel-sized inputs keep the pre-activations well away from the relu kinks at this step
# size, and example-gc's wide fc layers need small ones so that no probability underflows to 0.
@pytest.mark.parametrize("eid,scale", [("cifar-18pct-noisylr", 20.0), ("example-conv-local-12pct", 20.0),
                                       ("example-gc", 1.0)])
def test_whole_net_gradient_matches_finite_differences(release, eid, scale):
    net, experiment = make(release, eid)
    data, labels = batch(experiment, cases=3, scale=scale)
    cases = data.shape[1]
    net.forward(data, labels, train=True, rng=np.random.default_rng(0))
    net.backward(labels)
    rng = np.random.default_rng(2)
    base = total_cost(net, data, labels)
    checked = kinks = 0
    for param in net.plan.params:
        if param.key not in net.grads:
            continue
        w = net.weights[param.key]
        done = 0
        while done < 3:
            index = tuple(int(rng.integers(0, n)) for n in w.shape)
            saved, step = w[index], 1e-7
            w[index] = saved + step
            up = total_cost(net, data, labels)
            w[index] = saved - step
            down = total_cost(net, data, labels)
            w[index] = saved
            # A relu input within `step` of 0 makes the cost bend inside the difference: the two
            # one-sided slopes disagree there. Such points say nothing about the wiring; draw another.
            right, left = (up - base) / step, (base - down) / step
            if abs(right - left) > 1e-3 * max(abs(right), abs(left)) + 1e-6:
                kinks += 1
                assert kinks < 20, "too many kinks: the check is not measuring anything"
                continue
            numeric = (up - down) / (2 * step) / cases  # weight gradients are 1/N-normalised
            # abs: the difference quotient's own rounding, ~1e-16·cost/step/N ≈ 1e-8 at a cost near 7.
            assert net.grads[param.key][index] == pytest.approx(numeric, rel=1e-4, abs=2e-8), (param.key, index)
            done += 1
            checked += 1
    assert checked >= 3 * 6


def test_120_moves_what_the_plan_says_between_its_gpus(release):
    net, experiment = make(release, "120", dtype=np.float32)
    data, labels = batch(experiment, cases=2, scale=20.0, classes=1000)
    costs = net.forward(data, labels, train=True, rng=np.random.default_rng(0))
    net.backward(labels)
    copies, moved = net.transfers.per_batch[-1]
    forward, backward = net.plan.transfer_bytes(2)
    assert moved == forward + backward
    # One copy per (source, other GPU) forward, and one back where the source wants its gradient.
    assert copies == len(net.plan.transfers) + sum(t.backward for t in net.plan.transfers)
    cost, top1, top5 = costs.values["logprob"]
    assert np.isfinite(cost) and 0 <= top1 <= 2 and 0 <= top5 <= top1
    # Every tensor stays on its layer's GPU: both towers got weight gradients, and conv1/conv2 too
    # (their rates start above zero: the plan rebuilds the starting values from the log).
    assert {"conv1a.weights[0]", "conv1b.weights[0]", "fc1000.weights[0]"} <= set(net.grads)


def test_an_update_moves_the_weights_the_2012_way(release):
    net, experiment = make(release, "cifar-18pct-noisylr", dtype=np.float64)
    data, labels = batch(experiment, cases=4, scale=0.5)
    before = {k: v.copy() for k, v in net.weights.items()}
    net.forward(data, labels, train=True, rng=np.random.default_rng(0))
    net.backward(labels)
    net.update(epoch=1, progress=0.0)
    param = next(p for p in net.plan.params if p.kind == "weights" and p.timetable.value_at(1) > 0)
    eps = param.timetable.value_at(1)
    # First step from zero momentum: V = −ε·G − wc·ε·W, W' = W + V (SEMANTICS.md §4.3, our sign).
    expected = before[param.key] - eps * net.grads[param.key] - param.wc * eps * before[param.key]
    np.testing.assert_allclose(net.weights[param.key], expected, rtol=1e-12)


def test_configs_the_replay_cannot_run_are_refused_before_training(release):
    experiment = release.experiment("example-example")  # its params file lacks the norm layers' scale/pow
    with pytest.raises(ReplayError, match=r"layer 'rnorm1' \(example-layers/layers-example.cfg:\d+\).*gives no 'scale'"):
        Network(build_plan(experiment), experiment, rng=np.random.default_rng(0))
    with pytest.raises(ReplayError, match="not a known 2012 bug"):
        make(release, "cifar-18pct-noisylr")[0].__class__(build_plan(release.experiment("cifar-18pct-noisylr")),
                                                          release.experiment("cifar-18pct-noisylr"),
                                                          rng=np.random.default_rng(0), fixes=frozenset({"nope"}))


# --- href: the release's #126, and the overwrite on a hand-made net where it can happen -----------------

def test_126_with_its_href_layers_takes_one_sgd_step(release):
    """layers-126: href-data and href-nails mirror the data and nails0 (a nailbed of the blurred data) for
    tower b. One training step
    at a small scale (2 cases, float32): a finite cost, the mirrored outputs, weights that move."""
    from replay.backends.numpy_ref.preprocess import href_forward
    from replay.network import replayed_bugs

    net, experiment = make(release, "126-2012-full", dtype=np.float32)
    data, labels = batch(experiment, cases=2, classes=1000)
    data = data.astype(np.float32)
    costs = net.forward(data, labels, train=True, rng=np.random.default_rng(0))
    assert costs.values and all(np.isfinite(v[0]) for v in costs.values.values())
    np.testing.assert_array_equal(net.output("href-data"), href_forward(data, channels=3))
    np.testing.assert_array_equal(net.output("href-nails"), href_forward(net.output("nails0"), channels=3))
    net.backward(labels)
    before = {key: value.copy() for key, value in net.weights.items()}
    net.update(epoch=1, progress=0.0)
    assert not np.array_equal(before["conv1b.weights[0]"], net.weights["conv1b.weights[0]"])  # reads href-data
    # both href layers read layers that take no gradient (data; nails0 <- blur0 <- data): no overwrite here
    assert "href-overwrite" not in {name for name, _ in replayed_bugs(net.plan)}


TOY_LAYERS = """[data]
type=data
dataIdx=0

[labels]
type=data
dataIdx=1

[fc3]
type=fc
inputs=data
outputs=48
initW=0.3
gpu=0

[mirror]
type=href
inputs=fc3
channels=3
gpu=0

[out]
type=fc
inputs=mirror,fc3
outputs=5
initW=0.3,0.3
gpu=0

[probs]
type=softmax
inputs=out
gpu=0

[logprob]
type=cost.logreg
inputs=labels,probs
gpu=0
"""
TOY_PARAMS = """[fc3]
epsW=0.01
epsB=0.02
momW=0.9
momB=0.9
wc=0

[out]
epsW=0.01,0.01
epsB=0.02
momW=0.9,0.9
momB=0.9
wc=0,0

[logprob]
coeff=1
"""


def toy_href_experiment(release):
    """fc3's output (3 maps of 4×4) goes to `out` directly and through href `mirror`: two consumers on one
    GPU, so href's backward meets a gradient `out` already sent (out runs first, backwards)."""
    import dataclasses

    from archive.cfgfile import parse_cfg
    from archive.layers import parse_layers
    from archive.params import parse_params

    return dataclasses.replace(release.experiment("cifar-18pct-noisylr"), id="href-toy",
                               layers=parse_layers(parse_cfg(TOY_LAYERS, "toy-layers.cfg"), {0: 12, 1: 1}),
                               params=parse_params(parse_cfg(TOY_PARAMS, "toy-params.cfg")))


@pytest.mark.parametrize("fixed", [False, True])
def test_href_overwrites_the_gradient_of_its_input_unless_fixed(release, fixed):
    from replay.backends.numpy_ref.costs import softmax_logreg_backward
    from replay.backends.numpy_ref.dense import fc_backward_data, fc_backward_weights
    from replay.backends.numpy_ref.preprocess import href_forward
    from replay.network import replayed_bugs

    experiment = toy_href_experiment(release)
    plan = build_plan(experiment, as_written=True)
    fixes = frozenset({"href-overwrite"}) if fixed else frozenset()
    net = Network(plan, experiment, rng=np.random.default_rng(0), dtype=np.float64, fixes=fixes)
    named = replayed_bugs(plan, fixes)
    assert named == ([] if fixed else [("href-overwrite", named[0][1])]) and (fixed or "'mirror'" in named[0][1])
    rng = np.random.default_rng(1)
    data, labels = rng.normal(size=(12, 5)), rng.integers(0, 5, size=(1, 5)).astype(np.float64)
    net.forward(data, labels, train=True, rng=np.random.default_rng(0))
    net.backward(labels)
    # d(cost)/d(out), then fc3's two gradients: through mirror (mirrored) and straight from out
    g = softmax_logreg_backward(labels.astype(np.int64).reshape(-1), net.output("probs"), 1.0)
    through_mirror = href_forward(fc_backward_data(g, net.weights["out.weights[0]"]), channels=3)
    direct = fc_backward_data(g, net.weights["out.weights[1]"])
    # 2012: HorizontalReflectionLayer::bpropActs writes over `direct`; the fix adds
    dy = through_mirror + direct if fixed else through_mirror
    np.testing.assert_allclose(net.grads["fc3.weights[0]"], fc_backward_weights(data, dy), rtol=1e-10, atol=1e-14)
    if fixed:  # and the fixed gradient is the true one: a central difference of the cost
        w = net.weights["fc3.weights[0]"]
        saved, step = w[4, 7], 1e-6
        w[4, 7] = saved + step
        up = total_cost(net, data, labels)
        w[4, 7] = saved - step
        down = total_cost(net, data, labels)
        w[4, 7] = saved
        numeric = (up - down) / (2 * step) / data.shape[1]
        assert net.grads["fc3.weights[0]"][4, 7] == pytest.approx(numeric, rel=1e-6)
