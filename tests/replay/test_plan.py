"""replay/plan.py over the whole release: every experiment with a layer file planned, shapes and
parameter counts equal to the archive's shape inference, and #120 checked by hand against its
layer and params files."""
from __future__ import annotations

import json

import pytest

from archive import ArchiveError
from replay.plan import build_plan, format_plan

F32 = 4


def _check_against_archive(e, plan):
    graph = e.layers
    names = [layer.name for layer in plan.layers]
    position = {name: i for i, name in enumerate(names)}
    assert len(set(names)) == len(names)
    for layer in plan.layers:  # dependency order: every input runs first
        assert all(position[i] < position[layer.name] for i in layer.inputs if i in position), layer.name
    for ld in graph.layers:
        pl = plan.layer(ld.name)
        assert (pl.type, pl.outputs, pl.channels, pl.img_size, pl.params) == \
            (ld.type, ld.outputs, ld.channels, ld.img_size, ld.params), ld.name
        if ld.type == "data":
            assert pl.gpu is None
        else:
            assert pl.gpu == (ld.gpu if ld.gpu is not None and ld.gpu >= 0 else 0)
        detached = ld.derived.get("neuronLayer") if ld.type != "neuron" else None
        if detached:  # layer.py: detach_neuron_layer -- X_neuron on X's GPU, every consumer rewired
            neuron = plan.layer(detached)
            assert (neuron.type, neuron.inputs, neuron.neuron, neuron.gpu, neuron.outputs, neuron.split_from) == \
                ("neuron", (ld.name,), ld.neuron, pl.gpu, ld.outputs, ld.name)
            assert pl.neuron is None
            assert [l.name for l in plan.layers if ld.name in l.inputs] == [detached]
            for consumer in graph.consumers(ld.name):
                assert detached in plan.layer(consumer).inputs
    assert len(plan.layers) == len(graph.layers) + sum(
        1 for ld in graph.layers if ld.type != "neuron" and ld.derived.get("neuronLayer"))
    assert plan.total_params() == graph.total_params()
    for ld in graph.layers:  # the tensors' shapes add up to the archive's count per layer
        counts = [p.count for p in plan.params if p.layer == ld.name]
        if ld.params is not None and ld.type in ("conv", "local", "fc"):
            assert sum(counts) == ld.params, ld.name
    for p in plan.params:
        assert p.gpu == plan.layer(p.layer).gpu
        assert p.timetable.steps[0].epoch == 0.0


def test_every_experiment_of_the_release_is_planned(release):
    planned = refused = 0
    for e in release.sorted_experiments():
        if e.layers is None:
            # #107: its log names def file #101, which the release does not contain
            with pytest.raises(ArchiveError, match="no layer-definition file"):
                build_plan(e)
            assert e.params_file in release.unpaired_params
            refused += 1
            continue
        for as_written in (False, True):
            plan = build_plan(e, as_written=as_written)
            _check_against_archive(e, plan)
            json.dumps(plan.to_json())
            assert plan.experiment in format_plan(plan)
        planned += 1
    assert (planned, refused) == (106, 1)


def test_120_layers_shapes_and_gpus(release):
    e = release.experiment("120")
    plan = build_plan(e)
    assert plan.num_gpus == 2 and plan.total_params() == 60_870_376
    conv1a = plan.param("conv1a", "weights", 0)
    assert conv1a.shape == (3 * 11 * 11, 32) and conv1a.gpu == 0  # (Cf·fs², F)
    assert plan.param("conv1a", "biases").shape == (32, 1)          # shared biases (F, 1)
    assert plan.param("conv2a", "weights", 1).shape == (32 * 5 * 5, 128)
    assert plan.param("conv3b", "weights", 0).shape == (128 * 3 * 3, 192)
    assert plan.param("fc2048a", "weights", 0).shape == (6 * 6 * 128, 2048)  # (in, out)
    assert plan.param("fc1000", "biases").shape == (1, 1000) and plan.param("fc1000", "biases").gpu == 1
    # epsW 0.01 at the start, dropping at epochs 26/47/66/72 (the log's lines 167-171)
    steps = conv1a.timetable.steps
    assert [(s.epoch, s.value) for s in steps] == [(0, 0.01), (26, 0.001), (47, 0.0001), (66, 0.00001), (72, 0.0)]
    assert conv1a.sources["epsW"] == f"{e.params_file}:2" and conv1a.sources["wc"] == f"{e.params_file}:6"
    assert (conv1a.mom, conv1a.wc, conv1a.wball, conv1a.schedule) == (0.9, 0.0005, 0.0, None)
    assert plan.param("conv3a", "biases").eps == 0.02 and plan.param("conv3a", "biases").wc == 0.0
    # FLOPs: conv1a = 2·F·M·Cf·fs² = 2·32·55²·363
    assert plan.layer("conv1a").flops == 2 * 32 * 55 ** 2 * 363 == 70_276_800
    assert plan.layer("fc2048a").flops == 2 * 2048 * (4608 + 4608)


def test_120_cross_gpu_edges_and_bytes(release):
    plan = build_plan(release.experiment("120"))
    gpu_edges = {(x.source, x.target, x.source_gpu, x.target_gpu) for x in plan.edges if x.source_gpu is not None}
    # where the layer file reads the other tower: conv2b (nails0), conv3 (both pools), fc2048 (both
    # pool3 outputs, after their relu), fc2048ba/bb (both hs1), fc1000 on GPU 1 (hs2a)
    assert gpu_edges == {
        ("nails0", "conv2b", 0, 1), ("pool2b", "conv3a", 1, 0), ("pool2a", "conv3b", 0, 1),
        ("pool3b_neuron", "fc2048a", 1, 0), ("pool3a_neuron", "fc2048b", 0, 1),
        ("hs1b", "fc2048ba", 1, 0), ("hs1a", "fc2048bb", 0, 1), ("hs2a", "fc1000", 0, 1)}
    host = {(x.source, x.target) for x in plan.edges if x.source_gpu is None}
    assert host == {("data", "blur0"), ("data", "conv1a"), ("data", "conv1b"), ("labels", "logprob")}
    # forward, per case: 9408 (nails0) + 2·21632 (pool2) + 2·4608 (pool3) + 3·2048 (hs1a, hs1b, hs2a) floats
    forward, backward = plan.transfer_bytes(128)
    assert forward == 128 * F32 * (9408 + 2 * 21632 + 2 * 4608 + 3 * 2048) == 34_832_384
    # backward: nails0 has no weight layer below it (not a gradient consumer), so nothing comes back
    assert backward == forward - 128 * F32 * 9408 == 30_015_488


def test_120_as_written_and_memory(release):
    e = release.experiment("120")
    written = build_plan(e, as_written=True)
    assert [s.value for s in written.param("conv1a", "weights", 0).timetable.steps] == [0.0]
    # with the file's rates conv1/conv2 are frozen: no gradient below conv3 crosses GPUs
    assert not written.layer("pool2a").grad_consumer and build_plan(e).layer("pool2a").grad_consumer
    mem128, mem256 = build_plan(e).memory(128), build_plan(e).memory(256)
    for a, b in zip(mem128, mem256):
        assert b.activation_bytes == 2 * a.activation_bytes and b.training_param_bytes == a.training_param_bytes
    assert sum(m.params for m in mem128) == 60_870_376
    assert mem128[0].param_bytes == F32 * mem128[0].params


def test_four_gpu_files_and_num_gpus(release):
    e = release.experiment("120-4gpu")
    plan = build_plan(e)
    assert plan.num_gpus == 4 and {l.gpu for l in plan.layers if l.type != "data"} == {0, 1, 2, 3}
    with pytest.raises(ArchiveError, match="num-gpus"):
        build_plan(e, num_gpus=2)
    assert build_plan(release.experiment("120"), num_gpus=4).num_gpus == 4


def test_pre_multi_gpu_files_run_on_gpu_0(release):
    plan = build_plan(release.experiment("example-18pct"))
    assert plan.num_gpus == 1 and all(l.gpu in (None, 0) for l in plan.layers)
    assert any("gpu -1" in n for n in plan.notes)
