"""The SVG diagrams: well-formed, one box per record, no overlaps, escaped, deterministic."""
from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime

import pytest

from archive.cfgfile import parse_cfg
from archive.layers import LayerGraph, parse_layers
from webapp.diagrams import (
    STATUS_STYLE,
    TimelineRun,
    cross_gpu_edges,
    lineage_svg,
    network_svg,
    timeline_count,
    timeline_runs,
    timeline_svg,
)

NS = "{http://www.w3.org/2000/svg}"


def href(path: str) -> str:
    return "/site" + path


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.get("viewBox") and root.get("role") == "img"
    return root


def classes(element: ET.Element) -> set[str]:
    return set((element.get("class") or "").split())


def groups(root: ET.Element, css: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if css in classes(g)]


def rect_of(group: ET.Element, css: str = "box") -> tuple[float, float, float, float]:
    rect = next(r for r in group.iter(f"{NS}rect") if css in classes(r))
    return tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))


def overlapping(rects: list[tuple[float, float, float, float]]) -> list[tuple]:
    return [(a, b) for a, b in itertools.combinations(rects, 2)
            if a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]]


def link_to(root: ET.Element, element_id: str) -> str:
    """The href of the <a> around the element with that id."""
    return next(a.get("href") for a in root.iter(f"{NS}a") if any(c.get("id") == element_id for c in a))


def hover(element: ET.Element) -> str:
    return element.find(f"{NS}title").text


HAND_MADE = """[data]
type=data
dataIdx=0

[labels]
type=data
dataIdx=1

[<script>]
type=fc
outputs=10
inputs=data
gpu=0

[b&"x']
type=fc
outputs=10
inputs=<script>
gpu=1

[stray]
type=fc
outputs=10
inputs=data,b&"x'

[probs]
type=softmax
inputs=b&"x'

[logprob]
type=cost.logreg
inputs=labels,probs
"""


@pytest.fixture(scope="module")
def hand_made() -> LayerGraph:
    return parse_layers(parse_cfg(HAND_MADE, "hand/layers-x.cfg"), {0: 3 * 8 * 8, 1: 1})


# --- network ---------------------------------------------------------------------------------

def test_every_release_graph_draws_all_boxes_and_edges_without_overlap(release):
    assert len(release.layer_graphs) == 72
    for path, graph in release.layer_graphs.items():
        root = parse(network_svg(graph, href=href, id_prefix="net"))
        layers = groups(root, "layer")
        assert [g.get("id") for g in layers] == [f"net-{layer.name}" for layer in graph.layers], path
        edges = [p for p in root.iter(f"{NS}path") if "edge" in classes(p)]
        names = set(graph.names())
        assert len(edges) == sum(1 for layer in graph.layers for s in layer.inputs if s in names), path
        gpu = {layer.name: layer.gpu for layer in graph.layers}
        crossing = sum(1 for layer in graph.layers for s in layer.inputs
                       if layer.gpu >= 0 and gpu[s] >= 0 and gpu[s] != layer.gpu)
        assert sum("cross-gpu" in classes(p) for p in edges) == crossing == cross_gpu_edges(graph), path
        assert not overlapping([rect_of(g) for g in layers]), path


def test_network_120_reads_like_the_paper_figure(release):
    graph = release.experiment("120").layers
    svg = network_svg(graph, href=href, id_prefix="n120")
    root = parse(svg)
    assert {g.get("id") for g in groups(root, "lane")} == {"n120-lane-gpu0", "n120-lane-gpu1"}
    assert float(root.get("viewBox").split()[2]) <= 900  # readable on a page without scaling down
    conv1a = root.find(f".//{NS}g[@id='n120-conv1a']")
    texts = [t.text for t in conv1a.iter(f"{NS}text")]
    assert texts == ["conv1a", "conv", "55×55×32"]
    assert "gpu: 0" in hover(conv1a) and "inputs: data" in hover(conv1a) and "parameters: 11,648" in hover(conv1a)
    layer = graph["conv1a"]
    assert link_to(root, "n120-conv1a") == f"/site/files/{graph.path}#L{layer.line}"
    pool1a = root.find(f".//{NS}g[@id='n120-pool1a']")
    assert [t.text for t in pool1a.iter(f"{NS}text")][1] == "pool · relu"
    fc = root.find(f".//{NS}g[@id='n120-fc2048a']")
    assert [t.text for t in fc.iter(f"{NS}text")][2] == "2048"
    # Every layer sits below all of its inputs.
    box = {g.get("id")[len("n120-"):]: rect_of(g) for g in groups(root, "layer")}
    for layer in graph.layers:
        for source in layer.inputs:
            assert box[source][1] + box[source][3] < box[layer.name][1], (source, layer.name)
    # Data layers share the band on top.
    data_band = next(r for r in root.iter(f"{NS}rect") if {"band", "data"} <= classes(r))
    assert float(data_band.get("y")) < box["data"][1] < float(data_band.get("y")) + float(data_band.get("height"))


def test_network_status_colours_removed_extras_and_legend(release):
    old, new = release.experiment("120").layers, release.experiment("131").layers
    status = {"conv1a": "changed", "rnorm1a": "moved", "conv1b": "added"}
    removed = [layer for layer in old.layers if layer.name == "blur0"]
    root = parse(network_svg(replace(new, layers=tuple(l for l in new.layers if l.name != "blur0")),
                             href=href, id_prefix="d", status=status, extra_layers=removed))
    by_id = {g.get("id"): g for g in groups(root, "layer")}
    for name, state in status.items():
        group = by_id[f"d-{name}"]
        assert state in classes(group)
        rect = next(group.iter(f"{NS}rect"))
        assert rect.get("stroke") == STATUS_STYLE[state][0]
    blur = by_id["d-blur0"]
    assert "removed" in classes(blur) and next(blur.iter(f"{NS}rect")).get("stroke-dasharray")
    assert "same" in classes(by_id["d-conv2a"])
    assert root.find(f".//{NS}g[@class='legend']") is not None
    assert not overlapping([rect_of(g) for g in by_id.values()])
    plain = parse(network_svg(new, href=href, id_prefix="p"))
    assert plain.find(f".//{NS}g[@class='legend']") is None
    assert not any(classes(g) & set(STATUS_STYLE) for g in groups(plain, "layer"))


def test_network_escapes_names_and_handles_odd_gpus(hand_made):
    graph = replace(hand_made, layers=tuple(replace(l, gpu=None) if l.name == "probs" else l
                                            for l in hand_made.layers))
    svg = network_svg(graph, href=href, id_prefix="x", title="<b>x</b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg
    root = parse(svg)
    ids = {g.get("id") for g in groups(root, "layer")}
    assert {"x-<script>", "x-b&\"x'"} <= ids  # round-trips through the XML escaping
    lanes = {g.get("id") for g in groups(root, "lane")}
    assert lanes == {"x-lane-gpu0", "x-lane-gpu1", "x-lane-unknown"}
    assert not overlapping([rect_of(g) for g in groups(root, "layer")])
    assert sum("cross-gpu" in classes(p) for p in root.iter(f"{NS}path")) == 1  # <script> → b&"x'


def test_network_survives_a_cycle(hand_made):
    layers = tuple(replace(l, inputs=("probs",)) if l.name == "<script>" else l for l in hand_made.layers)
    root = parse(network_svg(replace(hand_made, layers=layers), href=href, id_prefix="c"))
    assert len(groups(root, "layer")) == len(layers)
    assert not overlapping([rect_of(g) for g in groups(root, "layer")])


def test_network_is_deterministic(release):
    graph = release.experiment("120-4gpu").layers
    assert network_svg(graph, href=href, id_prefix="a") == network_svg(graph, href=href, id_prefix="a")


# --- lineage ---------------------------------------------------------------------------------

def test_lineage_draws_every_experiment_and_missing_parent(release):
    svg = lineage_svg(release, href=href)
    root = parse(svg)
    nodes = {g.get("id")[len("lineage-"):]: g for g in groups(root, "node")}
    missing = {p for e in release.experiments.values() for p in e.parents if p not in release.experiments}
    assert set(nodes) == set(release.experiments) | missing
    assert {n for n, g in nodes.items() if "missing" in classes(g)} == missing
    edges = [p for p in root.iter(f"{NS}path") if "edge" in classes(p)]
    assert len(edges) == sum(len(set(e.parents)) for e in release.experiments.values())
    assert not overlapping([rect_of(g) for g in nodes.values()])
    # A child sits below each of its parents; experiments link to their page.
    for e in release.experiments.values():
        for parent in e.parents:
            assert rect_of(nodes[parent])[1] < rect_of(nodes[e.id])[1]
    assert link_to(root, "lineage-120") == "/site/experiments/120"
    final = release.experiment("120").final_result
    assert f"top-5 {final.top5 * 100:.1f}%" in [t.text for t in nodes["120"].iter(f"{NS}text")]
    assert "family-ImageNet" in classes(nodes["120"]) and "family-CIFAR-10" in classes(nodes["example-18pct"])
    assert svg == lineage_svg(release, href=href)


def test_lineage_focus_fades_all_but_the_family(release):
    root = parse(lineage_svg(release, href=href, focus="131", id_prefix="f"))
    family = {"131"} | _flatten(release.ancestors("131")) | _flatten(release.descendants("131"))
    nodes = {g.get("id")[2:]: g for g in groups(root, "node")}
    assert {n for n, g in nodes.items() if "faded" not in classes(g)} == family
    assert "focus" in classes(nodes["131"])
    only = parse(lineage_svg(release, href=href, focus="131", only=family, id_prefix="o"))
    assert {g.get("id")[2:] for g in groups(only, "node")} == family
    assert not any("faded" in classes(g) for g in groups(only, "node"))


def _flatten(tree: dict) -> set[str]:
    return set(tree) | {n for sub in tree.values() for n in _flatten(sub)}


# --- timeline --------------------------------------------------------------------------------

def test_timeline_runs_cover_the_archive(release):
    runs = timeline_runs(release)
    count = timeline_count(release)
    assert count.runs == sum(len(e.own_runs) + len(e.copied_runs) for e in release.experiments.values())
    assert count.shown == len(runs)
    assert count.shown + count.no_start + count.no_host + count.not_started + count.copies == count.runs
    assert all(r.start < r.end and r.end_is_estimate and r.host for r in runs)
    # One training process, one bar: #135-2009 copies #135's log (same run directory).
    run_135 = next(r for r in runs if r.experiment_id == "135")
    assert "135-2009" in run_135.also_logged_in
    assert not any(r.experiment_id == "135-2009" and r.run_index == 0 for r in runs)
    run_120 = next(r for r in runs if r.experiment_id == "120")
    assert run_120.host == "gpu" and run_120.moved_to == ("guppy7",) and run_120.outcome == "result"
    assert run_120.top5 == release.experiment("120").final_result.top5
    assert (run_120.end - run_120.start).total_seconds() == 106 * 1.5 * 3600


def test_timeline_svg_has_a_bar_per_run_and_none_overlap(release):
    runs = timeline_runs(release)
    svg = timeline_svg(runs, href=href)
    root = parse(svg)
    bars = groups(root, "run")
    assert len(bars) == len(runs)
    assert not overlapping([rect_of(g, "bar") for g in bars])
    hosts = [t.text for g in groups(root, "host") for t in g.iter(f"{NS}text")]
    assert hosts == sorted({r.host for r in runs})
    bar_120 = root.find(f".//{NS}g[@id='timeline-120-run0']")
    assert hover(bar_120).startswith("#120 on gpu (then guppy7), 2012-07-22 04:40 → epoch 106 (est. 2012-07-28)")
    assert "top-5 17.2%" in hover(bar_120) and "killed" in hover(bar_120)
    assert "result" in classes(bar_120)
    assert svg == timeline_svg(runs, href=href)


def test_timeline_packs_concurrent_runs_and_escapes(release):
    start = datetime(2012, 7, 1, 12)
    runs = [TimelineRun(f"<x{i}>", 0, "guppy9", start, datetime(2012, 7, 6), True, outcome, 0.2, "a & b")
            for i, outcome in enumerate(["result", "killed", "on_hold", "unknown"])]
    svg = timeline_svg(runs, href=href, id_prefix="t")
    assert "<x0>" not in svg
    root = parse(svg)
    rects = [rect_of(g, "bar") for g in groups(root, "run")]
    assert len({r[1] for r in rects}) == 4 and not overlapping(rects)
    assert [classes(g) & {"result", "killed", "on_hold", "unknown"} for g in groups(root, "run")] == \
        [{"result"}, {"killed"}, {"on_hold"}, {"unknown"}]
    assert len({next(g.iter(f"{NS}rect")).get("fill") for g in groups(root, "run")}) == 4
