"""replay/torch_graph.py: whole archived nets in PyTorch agree with replay/network.py (float64), and the
weights in today's layout go through a safetensors file into the PyTorch model unchanged.

Every layer's output is compared, not only the softmax: the nets cover conv (padding, stride 4 with the
2012 module rule reading 3 pixels past the border, two inputs with their own geometry), local, fc with
several inputs, max and avg pooling with clipped windows, rnorm, cmrnorm with minDiv, cnorm, blur,
nailbed, concat, hs at test time and relu; href (#126) on its own."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from replay.checkpoint import read_safetensors, save_checkpoint, write_safetensors
from replay.layout import to_nchw
from replay.network import Network
from replay.plan import build_plan
from replay.torch_graph import (
    TorchGraphError,
    build_torch_model,
    today_graph_note,
    today_layout,
    today_to_2012,
)

NETS = {  # experiment: (input scale, classes, redraw the weights at a 1/sqrt(fan-in) scale)
    "cifar-18pct-noisylr": (20.0, 10, True),
    "example-conv-local-12pct": (20.0, 10, True),
    "example-gc": (1.0, 10, True),
    "120": (20.0, 1000, False),  # 60M weights: keep initW's draw (its outputs are far from uniform already)
}
CASES = 2


def _redraw(net, rng):
    """Weights ~ N(0, 1/fan-in), biases ~ N(0, 0.1²): outputs far from the near-uniform initW nets."""
    for key, w in net.weights.items():
        layer = net.layers[key.split(".")[0]]
        if ".biases" in key:
            w[...] = 0.1 * rng.standard_normal(w.shape)
        else:
            fan_in = w.shape[0] // (layer.derived["modules"] if layer.type == "local" else 1)
            w[...] = rng.standard_normal(w.shape) / np.sqrt(fan_in)


@pytest.fixture(scope="module")
def nets(release):
    cache = {}

    def get(eid):
        if eid not in cache:
            scale, classes, redraw = NETS[eid]
            experiment = release.experiment(eid)
            plan = build_plan(experiment)
            net = Network(plan, experiment, rng=np.random.default_rng(0), dtype=np.float64)
            if redraw:
                _redraw(net, np.random.default_rng(3))
            rng = np.random.default_rng(1)
            side = experiment.input.size
            data = rng.normal(0.0, scale, size=(3 * side * side, CASES))
            labels = rng.integers(0, classes, size=(1, CASES)).astype(np.float64)
            net.forward(data, labels, train=False, rng=np.random.default_rng(0))
            cache[eid] = (plan, experiment, net, data)
        return cache[eid]

    return get


def _cost_layer(plan):
    return next(layer.name for layer in plan.layers if layer.type == "cost.logreg")


def _as_columns(t: torch.Tensor) -> np.ndarray:
    """(N, ...) torch output -> the (features, N) layout of the NumPy backend."""
    return t.detach().reshape(t.shape[0], -1).numpy().T


@pytest.mark.parametrize("eid", list(NETS))
def test_torch_graph_matches_the_numpy_network_layer_by_layer(nets, eid):
    plan, experiment, net, data = nets(eid)
    model = build_torch_model(plan, experiment, net.weights, dtype=torch.float64)
    names = [layer.name for layer in plan.layers if layer.type not in ("data", "cost.logreg")]
    x = torch.from_numpy(to_nchw(data, 3))
    with torch.no_grad():
        outs = model(x, outputs=names)
        probs = model(x).numpy()
    for name in names:
        ours, ref = _as_columns(outs[name]), net.output(name)
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-11 * np.abs(ref).max(), err_msg=name)
    expected = net.output(_cost_layer(plan)).T
    assert probs.shape == (CASES, plan.layer(_cost_layer(plan)).derived["numInputs"][1])
    np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=0)
    assert probs.max() > 2.0 / probs.shape[1]  # not a uniform output: the comparison sees the weights


@pytest.mark.parametrize("eid", list(NETS))
def test_exported_weights_load_into_the_torch_graph_by_name(nets, eid, tmp_path):
    plan, experiment, net, data = nets(eid)
    tensors = today_layout(plan, net.weights, conns=net.conns)
    path = tmp_path / "net.safetensors"
    write_safetensors(path, tensors, today_graph_note(plan))
    back, meta = read_safetensors(path)
    model = build_torch_model(plan, experiment, None, dtype=torch.float64)
    assert set(model.state_dict()) == set(back)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)
    with torch.no_grad():
        probs = model(torch.from_numpy(to_nchw(data, 3))).numpy()
    np.testing.assert_allclose(probs, net.output(_cost_layer(plan)).T, rtol=1e-6, atol=0)
    # the metadata names every tensor's 2012 key and shape, and the inverse layout gives them back exactly
    note = json.loads(meta["tensors"])
    assert meta["layers_file"] == plan.layers_file and set(note) == set(back)
    by_key = {v["key_2012"]: v for v in note.values()}
    assert {key: tuple(v["shape_2012"]) for key, v in by_key.items()} == {p.key: p.shape for p in plan.params}
    if eid != "120":  # same layer types as the small nets; its 60M weights would double the test's time
        restored = today_to_2012(plan, back)
        for param in plan.params:
            np.testing.assert_array_equal(restored[param.key], net.weights[param.key])


def test_today_layout_shapes_and_names(nets):
    plan, _, net, _ = nets("example-conv-local-12pct")
    t = today_layout(plan, net.weights)
    assert t["conv1.weight"].shape == (64, 3, 5, 5) and t["conv1.bias"].shape == (64,)
    assert t["local3.weight"].shape == (36, 32, 64, 3, 3) and t["local3.bias"].shape == (32 * 36,)
    assert t["fc10.weight"].shape == (10, 1152) and t["fc10.bias"].shape == (10,)
    # local row ((m·Cf + c)·fs + u)·fs + v, column f  ->  [m, f, c, u, v]
    m, f, c, u, v = 7, 5, 11, 2, 1
    assert t["local3.weight"][m, f, c, u, v] == net.weights["local3.weights[0]"][((m * 64 + c) * 3 + u) * 3 + v, f]
    gc_plan, _, gc_net, _ = nets("example-gc")
    names = set(today_layout(gc_plan, gc_net.weights))
    assert {"fc16c.weight.0", "fc16c.weight.2", "fc16c.bias", "fc10.weight"} <= names


def test_what_it_cannot_express_is_a_clear_error(release, nets):
    plan, experiment, net, _ = nets("cifar-18pct-noisylr")
    with pytest.raises(TorchGraphError, match=r"no tensor 'conv1.weights\[0\]'"):
        build_torch_model(plan, experiment, {k: v for k, v in net.weights.items() if k != "conv1.weights[0]"})
    sparse = release.experiment("96-16k")  # randSparse inputs: the channel choice is drawn, not in the files
    with pytest.raises(TorchGraphError, match=r"randSparse input 1 needs its conns"):
        build_torch_model(build_plan(sparse), sparse, None)


def test_runs_export_writes_todays_layout(monkeypatch, release, nets, tmp_path, capsys):
    from webapp import cli

    plan, experiment, net, _ = nets("example-conv-local-12pct")
    checkpoint = tmp_path / "run.npz"
    save_checkpoint(checkpoint, {f"w/{k}": v.astype(np.float32) for k, v in net.weights.items()}, {})

    class Store:
        def checkpoint_path(self, run_id):
            return checkpoint

    monkeypatch.setattr(cli, "_load", lambda args: release)
    dest = tmp_path / "out.safetensors"
    run = {"id": "r1", "experiment": experiment.id, "options": {}}
    assert cli._export_run(Store(), run, str(dest)) == 0
    tensors, meta = read_safetensors(dest)
    assert set(tensors) == set(build_torch_model(plan, experiment, None).state_dict())
    assert tensors["conv2.weight"].dtype == np.float32 and tensors["conv2.weight"].shape == (64, 64, 5, 5)
    assert meta["experiment"] == experiment.id and meta["layers_file"] == plan.layers_file
    assert json.loads(meta["tensors"])["local4.weight"]["shape_2012"] == [10368, 32]
    assert [layer["name"] for layer in json.loads(meta["graph"])] == [layer.name for layer in plan.layers]


def test_href_is_a_flip_of_the_width_axis(release):
    """#126's href-data and href-nails (zero weights: only the parameter-free layers are compared) against
    the NumPy reference's href on the same inputs."""
    from replay.backends.numpy_ref.preprocess import href_forward

    experiment = release.experiment("126-2012-full")
    plan = build_plan(experiment)
    model = build_torch_model(plan, experiment, None, dtype=torch.float64)
    data = np.random.default_rng(4).normal(size=(3 * 224 * 224, 1))
    with torch.no_grad():
        outs = model(torch.from_numpy(to_nchw(data, 3)), outputs=["href-data", "nails0", "href-nails"])
    np.testing.assert_array_equal(_as_columns(outs["href-data"]), href_forward(data, channels=3))
    np.testing.assert_array_equal(_as_columns(outs["href-nails"]),
                                  href_forward(_as_columns(outs["nails0"]), channels=3))
