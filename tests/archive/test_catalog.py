"""The catalog over the real release: pairing, identity, lineage, timeline,
data sets, input sizes, machines, and the JSON contract of `show`."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from archive.catalog import experiment_id, normalize_id
from archive.source import ArchiveError


@pytest.fixture(scope="module")
def archive(release):
    return release


def test_every_file_is_read_and_counted(archive):
    kinds = {}
    for f in archive.files.values():
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    assert kinds == {"params": 107, "layers": 72, "device-query": 1, "sdk-log": 1, "readme": 1, "license": 1}
    assert len(archive.experiments) == 107
    assert len(archive.layer_graphs) == 72
    # Every cfg file is kept whole: rendering gives back its text.
    for path, cfg in archive.cfg.items():
        assert cfg.render() == (archive.root / path).read_bytes().decode()


@pytest.mark.parametrize("path, eid", [
    ("layers/layer-params-120.cfg", "120"),
    ("layers/layer-params-120-2012-full.cfg", "120-2012-full"),
    ("layers/layer-params-120-4gpu-auto3.cfg", "120-4gpu-auto3"),
    ("layers/layer-params-147.cfg.save", "147.save"),
    ("layers/layer-params-flickr-102.cfg", "flickr-102"),
    ("layers-cifar/layer-params-18pct-noisylr.cfg", "cifar-18pct-noisylr"),
    ("example-layers/layer-params.gc.cfg", "example-gc"),
    ("layers/layers-120.cfg", None),
])
def test_experiment_ids(path, eid):
    assert experiment_id(path) == eid


def test_ids_are_found_however_written(archive):
    for text in ("120", "#120", "layer-params-120.cfg", "layers/layer-params-120.cfg"):
        assert archive.experiment(text).id == "120"
    assert normalize_id("layer-params-147.cfg.save") == "147.save"
    with pytest.raises(ArchiveError, match="no experiment '999'"):
        archive.experiment("999")


@pytest.mark.parametrize("eid, layers_file, rule, line", [
    ("120", "layers/layers-120.cfg", "same name", None),
    ("120-2012-full", "layers/layers-120.cfg", "log comment", 161),   # "(so uses def file #120)"
    ("136", "layers/layers-135.cfg", "log comment", 165),             # "(so uses def file 135)"
    ("139", "layers/layers-137.cfg", "log comment", 169),             # "(hence uses same file)"
    ("155", "layers/layers-153.cfg", "log comment", 180),             # "like #153 (so uses same file)"
    ("170-4gpu", "layers/layers-153-4gpu.cfg", "log comment", 405),   # "uses config file #153-4gpu"
    ("120-4gpu-auto3", "layers/layers-120-4gpu.cfg", "name prefix", None),
    ("126-2012-full", "layers/layers-126.cfg", "name prefix", None),
    ("cifar-18pct-noisylr", "layers-cifar/layers-18pct.cfg", "name prefix", None),
    ("example-gc", "example-layers/layers.gc.cfg", "same name", None),
    ("107", None, "unpaired", None),                                  # names #101, not in the release
])
def test_pairing_rules(archive, eid, layers_file, rule, line):
    e = archive.experiment(eid)
    assert (e.layers_file, e.pairing) == (layers_file, rule)
    assert (e.pairing_span.line if e.pairing_span else None) == line


def test_what_cannot_be_paired_is_listed(archive):
    assert list(archive.unpaired_params) == ["layers/layer-params-107.cfg"]
    assert "101" in archive.unpaired_params["layers/layer-params-107.cfg"]
    # Named only by the runs of 141-2009 ("using def file layers-141-2009-2010.cfg").
    assert set(archive.unpaired_layers) == {"layers/layers-141-2009-2010.cfg", "layers/layers-141-2009-2012.cfg"}
    assert all("layer-params-141-2009.cfg" in why for why in archive.unpaired_layers.values())


def test_timeline_hosts_and_status_of_120(archive):
    e = archive.experiment("120")
    assert e.start == datetime(2012, 7, 22, 4, 40, 34)
    assert e.hosts == ("gpu", "guppy7")
    assert e.status == "killed" and e.last_epoch == 106
    assert e.parents == ("106",)
    final = e.final_result
    assert (final.cost, final.top1, final.top5, final.span.line) == (1.634692, 0.378533, 0.172360, 174)


def test_copied_notes_of_other_experiments_are_not_its_own_runs(archive):
    # layer-params-137-tree.cfg copies #137's whole log after a "137 notes:" heading.
    e = archive.experiment("137-tree")
    assert len(e.runs) > 1 and [r.index for r in e.own_runs] == [0]
    assert e.start == datetime(2012, 9, 10, 22, 47, 57) and e.status == "killed" and e.last_epoch == 38
    assert archive.experiment("135-2009-2012").start == datetime(2012, 9, 9, 15, 20, 47)


def test_the_summer_of_2012_runs_from_june_2012_to_march_2013(archive):
    starts = [e.start for e in archive.experiments.values() if e.start]
    assert min(starts) == datetime(2012, 6, 18, 18, 34, 17)   # inet-5layer-conv94-2gpu
    assert max(starts) == datetime(2013, 3, 4, 4, 8, 39)      # 184-4gpu-26epc
    hosts = {h for e in archive.experiments.values() for h in e.hosts}
    assert hosts == {"gpu", "guppy", "guppy5", "guppy7", "guppy8", "guppy9", "krunch"}


def test_lineage_is_symmetric(archive):
    for e in archive.experiments.values():
        for parent in e.parents:
            if parent in archive.experiments:
                assert e.id in archive.experiments[parent].children
        for child in e.children:
            assert e.id in archive.experiments[child].parents
    assert archive.experiment("133").parents == ("131", "132")   # "a hybrid of 131 and 132"
    assert {"131", "120-2012-full", "129"} <= set(archive.experiment("120").children)
    tree = archive.ancestors("133")
    assert set(tree) == {"131", "132"} and "120" in tree["131"] and "106" in tree["131"]["120"]
    assert "130" in archive.descendants("120")["129"]


@pytest.mark.parametrize("eid, label, rule", [
    ("120-2012-full", "ILSVRC-2012 full", "log comment"),
    ("120-2012", "ILSVRC-2012 non-full", "log comment"),
    ("131", "ILSVRC-2012 non-full", "log comment"),      # "(trained on 2012-nonfull)"
    ("115-jpeg", "ILSVRC-2010 JPEG", "log comment"),
    ("145-2010", "ILSVRC-2010", "log comment"),
    ("131-2009", "ImageNet Fall 2009", "file name"),
    ("170-4gpu", "ImageNet Fall 2009", "class count (10184 classes)"),  # four fc heads of 2546
    ("flickr-102", "Flickr", "log comment"),
    ("cifar-18pct-noisylr", "CIFAR-10", "network's cost layer"),
    ("120", "ImageNet JPEG", "network's cost layer"),    # "also train on jpegs"; no year said
    ("146-2011", "ImageNet Fall 2011 20k", "log comment"),  # "trained on 2011-20k"
    ("141-2009-half", "ImageNet Fall 2009 half", "log comment"),
])
def test_data_sets_as_far_as_the_files_tell(archive, eid, label, rule):
    dataset = archive.experiment(eid).dataset
    assert (dataset.label(), dataset.rule) == (label, rule)


@pytest.mark.parametrize("eid, size", [
    ("120", 224), ("flickr-105", 224), ("cifar-18pct-noisylr", 32), ("cifar-conv-local-13pct-noisylr", 24),
    ("example-80sec", 32), ("example-conv-local-12pct", 24),
])
def test_input_size_rule(archive, eid, size):
    e = archive.experiment(eid)
    assert e.input.size == size and e.input.rule
    if e.layers is not None:
        data = e.layers["data"]
        assert data.outputs == 3 * size * size


def test_shapes_are_derived_for_every_paired_network(archive):
    for e in archive.experiments.values():
        if e.layers is None:
            continue
        for layer in e.layers.layers:
            if layer.type == "treefc":   # its size comes from batches.meta, not the files
                continue
            assert layer.outputs is not None, (e.id, layer.name)
    assert archive.experiment("120").layers["conv1a"].img_size == 55


def test_114_parameter_count_matches_its_own_log(archive):
    e = archive.experiment("114")
    logged = [entry.count for entry in e.logbook.entries if entry.kind == "param_count"]
    assert logged == [140523240] and e.layers.total_params() == logged[0]


def test_objections_of_the_2012_parser_are_findings_not_crashes(archive):
    rules = {f.rule for f in archive.experiment("example-18pct").findings}
    assert "layer.gpu-range" in rules                   # no gpu= on the first layer
    rules = {f.rule for f in archive.experiment("169").findings}
    assert "params.schedule-rejected-2012" in rules     # dexp[250,0,4]
    assert any(f.rule == "cfg.missing-section" for f in archive.experiment("147.save").findings)
    assert not [f for f in archive.experiment("120").findings if f.severity != "info"]


def test_machines(archive):
    devices = archive.machines.device_query.devices
    assert [d.name for d in devices] == ["Tesla S2050"] * 4
    assert devices[0].global_memory_bytes == 3220897792 and devices[0].cuda_cores == 448


def test_show_json_contract(archive):
    data = json.loads(json.dumps(archive.experiment("120").to_json()))
    for key in ("id", "params_file", "layers_file", "parents", "hosts", "runs", "events", "results", "status",
                "layers"):
        assert key in data, key
    assert data["runs"][0]["start"] == "2012-07-22T04:40:34" and data["runs"][0]["host"] == "gpu"
    assert data["results"] == [{"cost": 1.634692, "top1": 0.378533, "top5": 0.17236, "multiview": None,
                                "split": None, "label": None, "run": 0, "line": 174,
                                "file": "layers/layer-params-120.cfg"}]
    conv1a = data["layers"][4]
    assert {k: conv1a[k] for k in ("name", "type", "inputs", "gpu", "outputs", "channels", "img_size", "params")} \
        == {"name": "conv1a", "type": "conv", "inputs": ["data"], "gpu": 0, "outputs": 55 * 55 * 32,
            "channels": 32, "img_size": 55, "params": 11 * 11 * 3 * 32 + 32}
    assert [l["name"] for l in data["layers"]][:3] == ["data", "labels", "blur0"]
    assert data["layers"][-1]["img_size"] is None
    assert {e["epoch"] for e in data["events"]} == {26, 47, 66, 72, 82}
    for e in archive.experiments.values():   # every experiment serializes
        json.dumps(e.to_json())
