"""The CUDA backend as a whole: a 2012 CIFAR net's forward and backward through our kernels (run by the
CPU emulator on NumPy arrays), against the NumPy reference backend on the same weights and data. This is
the check that the backend's glue — shapes, launch sizes, which kernel each layer calls — is right, beside
the kernel-by-kernel tests."""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends import get_backend
from replay.network import Network
from replay.plan import build_plan


@pytest.mark.parametrize("experiment_id", ["cifar-18pct-noisylr", "cifar-conv-local-13pct-noisylr"])
def test_a_cifar_net_through_the_cuda_kernels_matches_the_reference(release, experiment_id):
    experiment = release.experiment(experiment_id)
    plan = build_plan(experiment)
    data_rng = np.random.default_rng(0)
    x = (30.0 * data_rng.normal(size=(3 * plan.input_size ** 2, 4))).astype(np.float32)
    labels = np.array([[1, 3, 3, 7]], dtype=np.float32)
    nets = {}
    for name in ("numpy", "cuda"):
        net = Network(plan, experiment, rng=np.random.default_rng(5), backend=get_backend(name))
        nets[name] = (net, net.forward(x, labels, train=True, rng=np.random.default_rng(1)))
        net.backward(labels)
    (reference, want), (ours, got) = nets["numpy"], nets["cuda"]
    for layer, values in want.values.items():
        np.testing.assert_allclose(got.values[layer], values, rtol=1e-5)
    for layer in plan.layers:
        if layer.type != "data":
            np.testing.assert_allclose(ours.output(layer.name), reference.output(layer.name), rtol=1e-4,
                                       atol=1e-5 * float(np.abs(reference.output(layer.name)).max()))
    assert set(ours.grads) == set(reference.grads) and reference.grads
    for key, grad in reference.grads.items():
        scale = float(np.abs(grad).max())
        assert float(np.abs(ours.grads[key] - grad).max()) <= 1e-4 * scale, key


def _section(name: str, **keys) -> str:
    return f"[{name}]\n" + "".join(f"{key}={value}\n" for key, value in keys.items())


@pytest.mark.parametrize("fixed", [False, True])
def test_href_and_its_overwrite_through_the_cuda_kernels(release, fixed):
    """An href that meets a gradient already written to its input (fc3 feeds `out` directly and through
    `mirror`; the release has no such net): the CUDA backend replays the 2012 overwrite, and the fix, as
    the reference does."""
    import dataclasses

    from archive.cfgfile import parse_cfg
    from archive.layers import parse_layers
    from archive.params import parse_params

    layers = "\n".join([
        _section("data", type="data", dataIdx=0), _section("labels", type="data", dataIdx=1),
        _section("fc3", type="fc", inputs="data", outputs=48, initW=0.3, gpu=0),
        _section("mirror", type="href", inputs="fc3", channels=3, gpu=0),
        _section("out", type="fc", inputs="mirror,fc3", outputs=5, initW="0.3,0.3", gpu=0),
        _section("probs", type="softmax", inputs="out", gpu=0),
        _section("logprob", type="cost.logreg", inputs="labels,probs", gpu=0)])
    rates = {"epsB": 0.02, "momB": 0.9}
    params = "\n".join([_section("fc3", epsW=0.01, momW=0.9, wc=0, **rates),
                        _section("out", epsW="0.01,0.01", momW="0.9,0.9", wc="0,0", **rates),
                        _section("logprob", coeff=1)])
    experiment = dataclasses.replace(release.experiment("cifar-18pct-noisylr"), id="href-toy",
                                     layers=parse_layers(parse_cfg(layers, "toy-layers.cfg"), {0: 12, 1: 1}),
                                     params=parse_params(parse_cfg(params, "toy-params.cfg")))
    plan = build_plan(experiment, as_written=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 6)).astype(np.float32)
    labels = rng.integers(0, 5, size=(1, 6)).astype(np.float32)
    grads = {}
    for name in ("numpy", "cuda"):
        net = Network(plan, experiment, rng=np.random.default_rng(5), backend=get_backend(name),
                      fixes=frozenset({"href-overwrite"}) if fixed else frozenset())
        net.forward(x, labels, train=True, rng=np.random.default_rng(1))
        net.backward(labels)
        grads[name] = net.grads
    assert set(grads["cuda"]) == set(grads["numpy"]) and "fc3.weights[0]" in grads["numpy"]
    for key, grad in grads["numpy"].items():
        np.testing.assert_allclose(grads["cuda"][key], grad, rtol=1e-5, atol=1e-6 * float(np.abs(grad).max()))
