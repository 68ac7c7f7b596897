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
