"""initWFunc/initBFunc (layer.py: call_init_func; initw.py: makew/makeb): the 8 configs of the release
that start from another net's layers take them from a run of ours (--init-from), or stop with an
error that says what the 2012 function was."""
from __future__ import annotations

import numpy as np
import pytest

from replay.network import Network, ReplayError
from replay.plan import build_plan


@pytest.fixture(scope="module")
def parent_weights(release):
    """#146-2009 "is 145, and initialized from 145 (up to conv5)": a fresh #145 stands in for the
    2012 checkpoint initw.py loaded."""
    parent = release.experiment("145")
    net = Network(build_plan(parent), parent, rng=np.random.default_rng(7))
    return net.weights


def test_without_a_source_the_error_names_the_function_the_line_and_the_way_out(release):
    child = release.experiment("146-2009")
    with pytest.raises(ReplayError) as caught:
        Network(build_plan(child), child, rng=np.random.default_rng(0))
    message = str(caught.value)
    assert "layer 'conv1a'" in message and "layers-146-2009.cfg" in message
    assert "initWFunc=initw.makew(conv1a)" in message and "--init-from RUN" in message and "#145" in message


def test_named_layers_are_copied_and_the_others_drawn(release, parent_weights):
    child = release.experiment("146-2009")
    plan = build_plan(child)
    net = Network(plan, child, rng=np.random.default_rng(0), init_source=parent_weights, init_source_name="#145")
    with_function = {layer.name for layer in plan.layers if layer.settings.get("initWFunc")}
    assert with_function == {f"conv{i}{t}" for i in range(1, 6) for t in "ab"}
    copied = [p.key for p in plan.params if p.layer in with_function]
    assert len(copied) == 22  # 10 layers × (weights + biases), conv2a/b with two inputs each
    for key in copied:  # makew(conv3a) -> src['conv3a']['weights'][idx]; makeb -> its biases
        np.testing.assert_array_equal(net.weights[key], parent_weights[key])
        assert not net.momentum[key].any()
    # conv6 has no initWFunc: drawn from initW as usual, so it differs from anything of the parent
    fresh = [p.key for p in plan.params if p.layer.startswith("conv6") and p.kind == "weights"]
    assert fresh and all(key not in parent_weights or not np.array_equal(net.weights[key], parent_weights[key])
                         for key in fresh)


def test_a_source_of_the_wrong_shape_or_without_the_layer_is_refused(release, parent_weights):
    child = release.experiment("146-2009")
    plan = build_plan(child)
    wrong = dict(parent_weights)
    wrong["conv1a.weights[0]"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ReplayError, match=r"gives conv1a.weights\[0\] of shape \(3, 3\) from run x"):
        Network(plan, child, rng=np.random.default_rng(0), init_source=wrong, init_source_name="run x")
    missing = {k: v for k, v in parent_weights.items() if not k.startswith("conv4b.")}
    with pytest.raises(ReplayError, match=r"wants conv4b.weights\[0\], which run y does not hold"):
        Network(plan, child, rng=np.random.default_rng(0), init_source=missing, init_source_name="run y")
