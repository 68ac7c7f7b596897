"""The SVG diagrams: well-formed, one box per record, no overlaps, escaped, deterministic."""
from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace

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


def first_rect(group: ET.Element) -> tuple[float, float, float, float]:
    rect = next(group.iter(f"{NS}rect"))
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


def path_points(d: str, samples: int = 12) -> list[tuple[float, float]]:
    """The points of an SVG path made of absolute M, L, Q and C commands (curves sampled)."""
    tokens = re.findall(r"[MLQC]|-?\d+(?:\.\d+)?", d)
    points: list[tuple[float, float]] = []
    i = 0
    while i < len(tokens):
        command = tokens[i]
        assert command in "MLQC", d
        count = {"M": 1, "L": 1, "Q": 2, "C": 3}[command]
        coords = [float(t) for t in tokens[i + 1:i + 1 + 2 * count]]
        controls = [points[-1]] if points else []
        controls += list(zip(coords[0::2], coords[1::2]))
        if command in "ML":
            points.append(controls[-1])
        else:
            for step in range(1, samples + 1):
                t = step / samples
                level = controls
                while len(level) > 1:  # de Casteljau
                    level = [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for a, b in itertools.pairwise(level)]
                points.append(level[0])
        i += 1 + 2 * count
    return points


def segment_enters(a: tuple[float, float], b: tuple[float, float], rect: tuple[float, float, float, float],
                   inset: float = 1.0) -> bool:
    """Whether the segment a–b passes through the interior of rect (shrunk by `inset`)."""
    x0, y0, x1, y1 = rect[0] + inset, rect[1] + inset, rect[0] + rect[2] - inset, rect[1] + rect[3] - inset
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q <= 0:
                return False
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
    return t0 < t1


def edges_through_boxes(root: ET.Element, prefix: str) -> list[tuple[str, str]]:
    box = {g.get("id")[len(prefix) + 1:]: rect_of(g) for g in groups(root, "layer")}
    bad = []
    for path in (p for p in root.iter(f"{NS}path") if "edge" in classes(p)):
        source, target = hover(path).split(" (")[0].split(" → ")
        points = path_points(path.get("d"))
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        for name, rect in box.items():
            if name in (source, target) or rect[0] > max(xs) or rect[0] + rect[2] < min(xs) \
                    or rect[1] > max(ys) or rect[1] + rect[3] < min(ys):
                continue
            if any(segment_enters(a, b, rect) for a, b in itertools.pairwise(points)):
                bad.append((f"{source} → {target}", name))
    return bad


def test_no_edge_passes_through_another_box(release, hand_made):
    routed = 0
    for path, graph in release.layer_graphs.items():
        root = parse(network_svg(graph, href=href, id_prefix="net"))
        assert edges_through_boxes(root, "net") == [], path
        routed += sum("routed" in classes(p) for p in root.iter(f"{NS}path"))
    assert routed >= 72  # at least labels → logprob in every graph skips rows
    root = parse(network_svg(hand_made, href=href, id_prefix="h"))
    assert edges_through_boxes(root, "h") == []
    # The check itself can fail: a straight line from labels to logprob crosses the GPU 1 boxes.
    root = parse(network_svg(release.experiment("120").layers, href=href, id_prefix="n"))
    labels = root.find(f".//{NS}g[@id='n-labels']")
    x, y, w, h = rect_of(labels)
    logprob = rect_of(root.find(f".//{NS}g[@id='n-logprob']"))
    straight = f"M{x + w / 2},{y + h} L{logprob[0] + w / 2},{logprob[1]}"
    edge = next(p for p in root.iter(f"{NS}path") if hover(p) == "labels → logprob")
    assert "routed" in classes(edge)
    edge.set("d", straight)
    assert ("labels → logprob", "probs") in edges_through_boxes(root, "n")


def test_data_boxes_sit_inside_one_lane(release):
    for path, graph in release.layer_graphs.items():
        root = parse(network_svg(graph, href=href, id_prefix="net"))
        lanes = [first_rect(g) for g in groups(root, "lane")]
        if not lanes:
            continue
        data = {layer.name for layer in graph.layers if layer.gpu == -1}
        for g in groups(root, "layer"):
            if g.get("id")[4:] in data:
                x, _, w, _ = rect_of(g)
                assert any(lx <= x and x + w <= lx + lw for lx, _, lw, _ in lanes), (path, g.get("id"))
    root = parse(network_svg(release.experiment("120").layers, href=href, id_prefix="n"))
    lane_of = {g.get("id"): first_rect(g) for g in groups(root, "lane")}
    labels = rect_of(root.find(f".//{NS}g[@id='n-labels']"))
    gpu1 = lane_of["n-lane-gpu1"]
    assert gpu1[0] <= labels[0] and labels[0] + labels[2] <= gpu1[0] + gpu1[2]  # above its cost layer


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


def label_boxes(root: ET.Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each run's bar and its text's estimated box (~6.5 px a character at 12 px)."""
    out = []
    for g in groups(root, "run"):
        bar = rect_of(g, "bar")
        text = next(g.iter(f"{NS}text"))
        size = float(text.get("font-size") or 12)
        width = len(text.text) * max(6.5, 0.54 * size)
        out.append((g.get("id"), bar))
        out.append((g.get("id") + " text", (float(text.get("x")), bar[1], width, bar[3])))
    return out


def test_timeline_labels_overlap_no_bar_or_label(release):
    root = parse(timeline_svg(timeline_runs(release), href=href))
    boxes = label_boxes(root)
    clashes = [(a[0], b[0]) for a, b in itertools.combinations(boxes, 2) if overlapping([a[1], b[1]])]
    assert clashes == []
    # Concurrent runs with long texts: each text pushes the next bar to another sub-row.
    start = datetime(2012, 7, 1)
    runs = [TimelineRun(f"{i}-a-long-experiment-name", 0, "krunch", datetime(2012, 7, 1 + 2 * i),
                        datetime(2012, 7, 2 + 2 * i), True, "result", 0.18, "") for i in range(5)]
    small = parse(timeline_svg(runs, href=href, start=start, end=datetime(2012, 9, 1)))
    boxes = label_boxes(small)
    assert not any(overlapping([a[1], b[1]]) for a, b in itertools.combinations(boxes, 2))
    assert len({box[1][1] for box in boxes}) > 1


def test_timeline_text_is_readable_at_the_page_width(release):
    """The entrance page shows the timeline at 1100 px or wider (site.css), scaled to fit."""
    root = parse(timeline_svg(timeline_runs(release), href=href))
    view_width = float(root.get("viewBox").split()[2])
    scale = min(1.0, 1100 / view_width)  # narrower drawings are stretched to 1100 px
    sizes = [float(t.get("font-size") or root.get("font-size")) for t in root.iter(f"{NS}text")]
    assert min(sizes) * scale >= 11, (min(sizes), view_width)


def test_lineage_boxes_fit_their_whole_id(release):
    root = parse(lineage_svg(release, href=href))
    nodes = {g.get("id")[len("lineage-"):]: g for g in groups(root, "node")}
    longest = max(nodes, key=len)
    assert len(longest) > 14  # "#flickr-102-inet-init": the release has ids longer than the narrowest box holds
    for eid, g in nodes.items():
        name = next(g.iter(f"{NS}text")).text
        assert name == f"#{eid}", name
        assert rect_of(g)[2] >= len(name) * 7.2, eid  # ~7.2 px a bold character at 12 px
    widths = {rect_of(g)[2] for g in nodes.values()}
    assert min(widths) == rect_of(nodes["120"])[2] < rect_of(nodes[longest])[2]
    # An absurdly long id is still cut (the whole id stays in the hover text).
    long_id = "x" * 60
    tiny = SimpleNamespace(experiments={
        "1": SimpleNamespace(id="1", parents=(), children=(long_id,), dataset=_Dataset(), final_result=None,
                             start=None),
        long_id: SimpleNamespace(id=long_id, parents=("1",), children=(), dataset=_Dataset(), final_result=None,
                                 start=None)})
    tiny.sorted_experiments = lambda: list(tiny.experiments.values())
    root = parse(lineage_svg(tiny, href=href, id_prefix="t"))
    node = root.find(f".//{NS}g[@id='t-{long_id}']")
    assert next(node.iter(f"{NS}text")).text.endswith("…") and long_id in hover(node)
    assert rect_of(node)[2] < 60 * 7.2


class _Dataset:
    family = "ImageNet"

    def label(self) -> str:
        return "ImageNet 2012"
