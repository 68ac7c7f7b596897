"""The catalog: every file of the release read once, and tied together into
experiments.

An *experiment* is a layer-parameter file (`layers/layer-params-120.cfg` is
experiment ``120``) paired with the layer-definition file it was trained with,
plus the log at its end. The pairing follows the author's own conventions, in
this order (each experiment records which rule paired it):

1. a layer file with the same name (``layer-params-X.cfg`` ↔ ``layers-X.cfg``);
2. a reference in the log ("so uses def file #120", "uses config file
   #153-4gpu", "like #153 (so uses same file)", "using def file layers-….cfg");
3. the longest name prefix that has a layer file (``120-4gpu-auto3`` →
   ``layers-120-4gpu.cfg``, ``18pct-noisylr`` → ``layers-18pct.cfg``).

Whatever cannot be paired is listed (`Archive.unpaired_params`,
`Archive.unpaired_layers`), never dropped.
"""
from __future__ import annotations

import gc
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from . import cfgfile
from .cfgfile import CfgFile
from .layers import LayerGraph, parse_layers
from .logbook import Logbook, parse_logbook
from .machines import Machines, load_machines
from .params import ParamSet, check_against, parse_params
from .source import ArchiveError, Finding, SourceSpan

# Folder of the release -> prefix of experiment ids from it (ids stay unique and URL-safe).
FOLDER_PREFIX = {"layers": "", "layers-cifar": "cifar-", "example-layers": "example-"}

_PARAMS_NAME = re.compile(r"^layer-params(?P<sep>[-.])(?P<stem>.+?)\.cfg(?P<tail>.*)$")
_LAYERS_NAME = re.compile(r"^layers[-.](?P<stem>.+?)\.cfg$")
_LEADING_NUMBER = re.compile(r"^(\d+)")


@dataclass(frozen=True, slots=True)
class Dataset:
    """What an experiment was trained on, as far as the files tell.

    family: "ImageNet" | "CIFAR-10" | "Flickr" | None; version: e.g. "ILSVRC-2012",
    "ILSVRC-2010", "ImageNet Fall 2009 (10k classes)"; full: the "full" 2012 set
    (the author's "full sucks we now know") vs "non-full"; jpeg: trained from JPEG
    batches. `rule` says which evidence decided; `span` points at it."""

    family: str | None
    version: str | None
    full: bool | None
    jpeg: bool | None
    classes: int | None
    rule: str
    span: SourceSpan | None
    subset: str | None = None  # the log's words for a part of it: "1-8800", "10k", "20k", "half"

    def label(self) -> str:
        parts = [self.version or self.family or "unknown"]
        if self.subset:
            parts.append(self.subset)
        if self.full is True:
            parts.append("full")
        elif self.full is False and self.version == "ILSVRC-2012":
            parts.append("non-full")
        if self.jpeg:
            parts.append("JPEG")
        return " ".join(parts)

    def to_json(self) -> dict:
        return {"family": self.family, "version": self.version, "full": self.full, "jpeg": self.jpeg,
                "subset": self.subset, "classes": self.classes, "label": self.label(), "rule": self.rule,
                "line": _span_json(self.span)}


@dataclass(frozen=True, slots=True)
class InputShape:
    """The image size shape inference uses, and why."""

    size: int
    channels: int
    rule: str

    def to_json(self) -> dict:
        return {"size": self.size, "channels": self.channels, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class Result:
    """A reported cost/error triple (the logreg "logprob" line: cost per case,
    top-1 error, top-5 error), taken from the log."""

    cost: float | None
    top1: float | None
    top5: float | None
    multiview: bool | None
    split: str | None
    label: str | None
    run: int
    span: SourceSpan

    def to_json(self) -> dict:
        return {"cost": self.cost, "top1": self.top1, "top5": self.top5, "multiview": self.multiview,
                "split": self.split, "label": self.label, "run": self.run, "line": self.span.line,
                "file": self.span.path}


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    number: int | None
    params_file: str
    layers_file: str | None
    pairing: str
    pairing_span: SourceSpan | None
    params: ParamSet
    layers: LayerGraph | None
    logbook: Logbook
    dataset: Dataset
    input: InputShape
    parents: tuple[str, ...]
    children: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    # Runs whose log is a copy of another experiment's run: (run index, the experiment that ran it).
    copied_runs: tuple[tuple[int, str], ...] = ()

    # Derived views of the log -------------------------------------------------
    @property
    def runs(self):
        return self.logbook.runs

    @property
    def own_runs(self):
        """Runs of this experiment, without other experiments' notes copied in: a
        "137 notes:" heading marks every run after it as #137's, until a heading
        names another experiment (layer-params-137-tree.cfg copies all of 137's log)."""
        own, copied_from = [], None
        for run in self.logbook.runs:
            if run.experiment:
                copied_from = run.experiment
            if copied_from is None or copied_from == self.id:
                own.append(run)
        copies = {index for index, _ in self.copied_runs}
        return [run for run in own or self.logbook.runs if run.index not in copies]

    @property
    def hosts(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for run in self.own_runs:
            for host in run.hosts:
                seen.setdefault(host, None)
        return tuple(seen)

    @property
    def start(self) -> datetime | None:
        starts = [run.start for run in self.own_runs if run.start is not None]
        return min(starts) if starts else None

    @property
    def last_epoch(self) -> float | None:
        epochs = [run.last_epoch for run in self.own_runs if run.last_epoch is not None]
        return max(epochs) if epochs else None

    @property
    def status(self) -> str | None:
        """The status logged last for the most recently started run of this experiment."""
        runs = self.own_runs
        dated = [run for run in runs if run.start is not None]
        latest = max(dated, key=lambda run: run.start) if dated else runs[-1] if runs else None
        if latest is not None and latest.status:
            return latest.status
        for run in reversed(runs):
            if run.status:
                return run.status
        return None

    @property
    def events(self):
        return [entry for entry in self.logbook.entries if entry.kind == "event"]

    @property
    def results(self) -> list[Result]:
        results = []
        for entry in self.logbook.entries:
            if entry.kind != "result":
                continue
            results.append(Result(entry.cost, entry.top1, entry.top5, entry.multiview, entry.split,
                                  entry.label, entry.run, entry.span))
        return results

    @property
    def final_result(self) -> Result | None:
        """The result a table shows: from the first run of this experiment that
        reports any, the last multiview result if there is one, else its last."""
        own = {run.index for run in self.own_runs}
        results = [r for r in self.results if r.run in own]
        if not results:
            return None
        first_run = results[0].run
        in_run = [r for r in results if r.run == first_run]
        multiview = [r for r in in_run if r.multiview]
        return (multiview or in_run)[-1]

    def summary_json(self) -> dict:
        final = self.final_result
        return {
            "id": self.id,
            "number": self.number,
            "params_file": self.params_file,
            "layers_file": self.layers_file,
            "start": _iso(self.start),
            "hosts": list(self.hosts),
            "parents": list(self.parents),
            "children": list(self.children),
            "status": self.status,
            "last_epoch": self.last_epoch,
            "dataset": self.dataset.label(),
            "final": final.to_json() if final else None,
            "top5": final.top5 if final else None,
        }

    def to_json(self) -> dict:
        data = self.summary_json()
        data.update({
            "pairing": {"rule": self.pairing, "line": _span_json(self.pairing_span)},
            "copied_runs": [{"run": index, "from": owner} for index, owner in self.copied_runs],
            "dataset": self.dataset.to_json(),
            "input": self.input.to_json(),
            "runs": [run.to_json() for run in self.logbook.runs],
            "events": [entry.to_json() for entry in self.events],
            "results": [result.to_json() for result in self.results],
            "log": self.logbook.to_json()["entries"],
            "layers": [layer.to_json() for layer in self.layers.layers] if self.layers else [],
            "total_params": self.layers.total_params() if self.layers else None,
            "params": [layer.to_json() for layer in self.params.layers],
            "findings": [f.to_json() for f in self.findings],
        })
        return data


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    path: str
    kind: str  # "layers" | "params" | "device-query" | "sdk-log" | "readme" | "license" | "source" | "other"
    size: int


@dataclass
class Archive:
    """The whole release, read once. Immutable in practice: nothing mutates it after `load_archive`."""

    root: Path
    files: dict[str, ReleaseFile]
    cfg: dict[str, CfgFile]
    experiments: dict[str, Experiment]
    layer_graphs: dict[str, LayerGraph]
    unpaired_params: dict[str, str] = field(default_factory=dict)   # path -> why
    unpaired_layers: dict[str, str] = field(default_factory=dict)  # path -> why
    machines: Machines | None = None
    findings: tuple[Finding, ...] = ()
    load_seconds: float = 0.0

    def experiment(self, eid: str) -> Experiment:
        """Look an experiment up by id, tolerating '#120' and file names."""
        key = normalize_id(eid)
        if key in self.experiments:
            return self.experiments[key]
        raise ArchiveError(None, f"no experiment {eid!r} in the archive at {self.root} "
                           f"(try `alexnet-archive list`)", "archive.unknown-experiment")

    def ancestors(self, eid: str) -> dict[str, dict]:
        """Nested {parent: {grandparent: {...}}} following "this is like #N"."""
        return _tree(eid, lambda e: self.experiments[e].parents if e in self.experiments else (), set())

    def descendants(self, eid: str) -> dict[str, dict]:
        return _tree(eid, lambda e: self.experiments[e].children if e in self.experiments else (), set())

    def sorted_experiments(self) -> list[Experiment]:
        return sorted(self.experiments.values(), key=experiment_sort_key)


def _tree(eid, nexts, seen) -> dict[str, dict]:
    out = {}
    for nxt in nexts(eid):
        if nxt in seen:
            out[nxt] = {}
            continue
        out[nxt] = _tree(nxt, nexts, seen | {eid, nxt})
    return out


def experiment_sort_key(experiment: Experiment):
    prefix = next((p for p in ("cifar-", "example-") if experiment.id.startswith(p)), "")
    return (prefix != "", prefix, experiment.number if experiment.number is not None else 10**9, experiment.id)


def normalize_id(text: str) -> str:
    text = text.strip().lstrip("#")
    name = Path(text).name
    match = _PARAMS_NAME.match(name)
    if match:
        return match.group("stem") + match.group("tail").replace(".cfg", "")
    return text


def experiment_id(relative: str) -> str | None:
    """``layers/layer-params-120-2012.cfg`` → ``120-2012``; the editor's
    ``layer-params-147.cfg.save`` → ``147.save``; other folders get a prefix."""
    path = Path(relative)
    match = _PARAMS_NAME.match(path.name)
    if not match:
        return None
    folder = path.parts[0] if len(path.parts) > 1 else ""
    return FOLDER_PREFIX.get(folder, folder + "-" if folder else "") + match.group("stem") + match.group("tail")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _span_json(span: SourceSpan | None) -> dict | None:
    return span.to_json() if span else None


def _classify(relative: str) -> str:
    name = Path(relative).name
    if _PARAMS_NAME.match(name):
        return "params"
    if _LAYERS_NAME.match(name):
        return "layers"
    if name == "deviceQuery.txt":
        return "device-query"
    if name == "SdkMasterLog.csv":
        return "sdk-log"
    if name.lower().startswith("readme"):
        return "readme"
    if name == "LICENSE":
        return "license"
    if name.endswith((".py", ".cu", ".cuh", ".h", ".cpp", ".sh", ".cutemp")) or name.startswith("Makefile"):
        return "source"
    return "other"


# --- Pairing -------------------------------------------------------------------

def _layers_path_for_ref(ref: str, folder: str, layer_files: set[str]) -> str | None:
    ref = ref.strip().lstrip("#").rstrip(".,:;)")
    candidates = [f"{folder}/{ref}", f"{folder}/layers-{ref}.cfg"] if folder else [ref, f"layers-{ref}.cfg"]
    for candidate in candidates:
        if candidate in layer_files:
            return candidate
    return None


def _pair(relative: str, logbook: Logbook, layer_files: set[str]) -> tuple[str | None, str, SourceSpan | None]:
    path = Path(relative)
    folder = str(path.parent) if str(path.parent) != "." else ""
    match = _PARAMS_NAME.match(path.name)
    stem = match.group("stem") if match else path.stem
    sep = match.group("sep") if match else "-"  # layer-params.gc.cfg pairs with layers.gc.cfg
    same = f"{folder}/layers{sep}{stem}.cfg" if folder else f"layers{sep}{stem}.cfg"
    if same in layer_files:
        return same, "same name", None
    # The log names the definition file ("so uses def file #120", "like #153 (so uses same file)").
    first_run = logbook.runs[0].index if logbook.runs else 0
    for entry in logbook.entries:
        ref = getattr(entry, "layers_file", None)
        if not ref or entry.run != first_run:
            continue
        found = _layers_path_for_ref(ref, folder, layer_files)
        if found:
            return found, "log comment", entry.span
    for entry in logbook.entries:
        ref = getattr(entry, "layers_file", None)
        if ref:
            found = _layers_path_for_ref(ref, folder, layer_files)
            if found:
                return found, "log comment", entry.span
    parts = stem.split("-")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = "-".join(parts[:cut])
        candidate = f"{folder}/layers-{prefix}.cfg" if folder else f"layers-{prefix}.cfg"
        if candidate in layer_files:
            return candidate, "name prefix", None
    return None, "unpaired", None


# --- Data set and input size ----------------------------------------------------

_YEAR_IN_ID = re.compile(r"-(2009|2010|2011|2012)(?:-(full))?")


def _classifier(graph: LayerGraph | None) -> tuple[str | None, int | None]:
    """(family, classes) from the cost layers of a graph."""
    if graph is None:
        return None, None
    types = {layer.type for layer in graph.layers}
    if types & {"cost.crossent2", "cost.rflickr", "cost.sum2"}:
        cost = next(layer for layer in graph.layers if layer.type in {"cost.crossent2", "cost.rflickr", "cost.sum2"})
        classes = None
        for name in cost.inputs:
            layer = graph.get(name)
            if layer is not None and layer.type != "data":
                classes = layer.outputs
        return "Flickr", classes
    for layer in graph.layers:
        if layer.type == "cost.logreg" and len(layer.inputs) > 1:
            probs = graph.get(layer.inputs[1])
            classes = probs.outputs if probs is not None else None
            if classes == 10:
                return "CIFAR-10", 10
            return "ImageNet", classes
    return None, None


_LOG_DATASET_VERSION = {"ILSVRC-2010": "ILSVRC-2010", "ILSVRC-2012": "ILSVRC-2012",
                        "ImageNet-2009": "ImageNet Fall 2009", "ImageNet-2011": "ImageNet Fall 2011"}


def _stated_dataset(logbook: Logbook):
    """The data set the log states for the experiment's first run: its own
    dataset line, else what its lineage sentence says ("trained on lsvrc-2012
    (full)"). Returns (Dataset record of the logbook, span) or (None, None)."""
    if not logbook.runs:
        return None, None
    first = logbook.runs[0]
    for index in first.entries:
        entry = logbook.entries[index]
        if entry.kind in ("dataset", "lineage") and getattr(entry, "dataset", None) is not None:
            return entry.dataset, entry.span
    return None, None


def _dataset(eid: str, logbook: Logbook, graph: LayerGraph | None, family_hint: str | None) -> Dataset:
    """Evidence in order: the log's own words, then the file name, then the
    size of the classifier (10184 classes: the Fall 2009 release)."""
    family, classes = _classifier(graph)
    family = family or family_hint
    version, full, jpeg, subset, rule, span = None, None, None, None, "network's cost layer", None
    if eid.startswith("flickr"):
        family = "Flickr"
    stated, stated_span = _stated_dataset(logbook)
    if stated is not None:
        rule, span = "log comment", stated_span
        version = _LOG_DATASET_VERSION.get(stated.name)
        full = stated.full
        if stated.subset == "jpeg":
            jpeg = True
        else:
            subset = stated.subset
        if stated.name in ("Flickr", "CIFAR-10"):
            family = stated.name
        elif stated.name.startswith(("ILSVRC", "ImageNet")):
            family = "ImageNet"
    if version is None:
        match = _YEAR_IN_ID.search(eid)
        if match:
            version = _version_for_year(match.group(1))
            full = True if match.group(2) else full
            rule = "file name"
    if "jpeg" in eid or _says_jpeg(logbook):
        jpeg = True  # "also train on jpegs" (layer-params-120.cfg), "-jpeg" in the name
    if version is None and family == "ImageNet" and classes == 10184:
        version, rule = "ImageNet Fall 2009", "class count (10184 classes)"
    return Dataset(family, version, full, jpeg, classes, rule, span, subset)


def _says_jpeg(logbook: Logbook) -> bool:
    """Whether the first run's lineage sentence says it was trained on JPEG batches."""
    if not logbook.runs:
        return False
    return any(logbook.entries[i].kind == "lineage" and "jpeg" in logbook.entries[i].text.lower()
               for i in logbook.runs[0].entries)


# Classes of each data set, as the release's own classifiers have them (fc1000 for the
# ILSVRC sets; 10184 outputs in every *-2009 network: the Fall 2009 release's 10k classes).
CLASSES_OF_VERSION = {"ILSVRC-2010": 1000, "ILSVRC-2012": 1000, "ImageNet Fall 2009": 10184}


def _version_for_year(year: str) -> str:
    return {"2009": "ImageNet Fall 2009", "2010": "ILSVRC-2010", "2011": "ImageNet Fall 2011",
            "2012": "ILSVRC-2012"}[year]


def _input_shape(folder: str, layers_file: str | None, family: str | None) -> InputShape:
    if folder in ("layers-cifar", "example-layers") or family == "CIFAR-10":
        name = Path(layers_file or "").name
        if "conv-local" in name:
            return InputShape(24, 3, "CIFAR-10 with translations: 24×24 crops of the 32×32 images "
                                     "(the cuda-convnet Methodology page these files cite trains "
                                     "the conv-local nets on random 24×24 patches)")
        return InputShape(32, 3, "CIFAR-10, whole 32×32 images (no translations)")
    return InputShape(224, 3, "ImageNet batches of 256×256 images, cropped by --crop-border=16 "
                              "to 224×224 (the paper's input size)")


def _family_hint(folder: str) -> str | None:
    return "CIFAR-10" if folder in ("layers-cifar", "example-layers") else None


# --- Loading ---------------------------------------------------------------------

def load_archive(root: Path | str) -> Archive:
    """Read every file of the release at `root` (lenient: objections become
    findings; only unreadable roots raise)."""
    # Loading makes ~200,000 long-lived small objects; the cyclic collector's passes over them
    # took a third of the load. It is paused, not skipped: the few cycles left behind (the
    # layer parser's scratch state) are collected once it runs again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_archive(root)
    finally:
        if collecting:
            gc.enable()


def _load_archive(root: Path | str) -> Archive:
    started = time.perf_counter()
    root = Path(root)
    if not (root / "layers").is_dir():
        raise ArchiveError(SourceSpan(str(root), 0), "not a release of AlexNet-Source-Code: no layers/ folder",
                           "archive.not-a-release")
    files: dict[str, ReleaseFile] = {}
    cfgs: dict[str, CfgFile] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or ".git" in path.relative_to(root).parts:
            continue
        relative = path.relative_to(root).as_posix()
        kind = _classify(relative)
        files[relative] = ReleaseFile(relative, kind, path.stat().st_size)
        if kind in ("layers", "params"):
            cfgs[relative] = cfgfile.parse_cfg(cfgfile.read_text(path), relative)

    layer_files = {p for p, f in files.items() if f.kind == "layers"}
    params_files = [p for p, f in files.items() if f.kind == "params"]
    graphs: dict[tuple[str, int], LayerGraph] = {}
    experiments: dict[str, Experiment] = {}
    unpaired_params: dict[str, str] = {}
    used_layers: set[str] = set()
    tree_nets: list[str] = []

    def graph_for(path: str, shape: InputShape, num_classes: int | None = None) -> LayerGraph:
        key = (path, shape.size, num_classes)
        if key not in graphs:
            graphs[key] = parse_layers(cfgs[path], {0: shape.channels * shape.size ** 2},
                                       num_classes=num_classes)
        return graphs[key]

    def findings_of(cfg: CfgFile, params: ParamSet, graph: LayerGraph | None) -> tuple[Finding, ...]:
        found = list(cfg.problems) + list(params.findings)
        if graph is not None:
            found += graph.findings
            found += check_against(params, {l.name: len(l.inputs) for l in graph.layers},
                                   {l.name: l.type for l in graph.layers})
        return _sorted_findings(found)

    for relative in params_files:
        cfg = cfgs[relative]
        eid = experiment_id(relative)
        folder = str(Path(relative).parent)
        params = parse_params(cfg)
        logbook = parse_logbook(cfg)
        layers_file, pairing, pairing_span = _pair(relative, logbook, layer_files)
        graph = None
        probe = InputShape(224, 3, "")
        if layers_file:
            used_layers.add(layers_file)
            graph = graph_for(layers_file, probe)
            family, _ = _classifier(graph)
            shape = _input_shape(folder, layers_file, family or _family_hint(folder))
            if shape.size != probe.size:
                graph = graph_for(layers_file, shape)
            if any(layer.type == "treefc" for layer in graph.layers):
                tree_nets.append(eid)
        else:
            shape = _input_shape(folder, None, _family_hint(folder))
            unpaired_params[relative] = _unpaired_reason(logbook)
        number = _LEADING_NUMBER.match(eid.split("-", 1)[-1] if eid.startswith(("cifar-", "example-")) else eid)
        experiments[eid] = Experiment(
            id=eid, number=int(number.group(1)) if number else None, params_file=relative,
            layers_file=layers_file, pairing=pairing, pairing_span=pairing_span, params=params,
            layers=graph, logbook=logbook, dataset=_dataset(eid, logbook, graph, _family_hint(folder)),
            input=shape, parents=_parents(logbook), findings=findings_of(cfg, params, graph))

    # treefc's width is the data provider's class count (layer.py: TreeFCLayerParser), which
    # follows from the data set; a tree net whose log names none was trained like its parent
    # (layer-params-137-tree.cfg: "this is like 137, but with treefc").
    for eid in tree_nets:
        e = experiments[eid]
        dataset = e.dataset
        parent = experiments.get(e.parents[0]) if e.parents else None
        if dataset.version is None and parent is not None and parent.dataset.version:
            dataset = replace(dataset, version=parent.dataset.version, rule=f"like its parent #{parent.id}",
                              span=parent.dataset.span)
        classes = CLASSES_OF_VERSION.get(dataset.version or "")
        if classes:
            graph = graph_for(e.layers_file, e.input, classes)
            experiments[eid] = replace(e, layers=graph, dataset=replace(dataset, classes=classes),
                                       findings=findings_of(cfgs[e.params_file], e.params, graph))

    # Children: the inverse of "this is like #N".
    children: dict[str, list[str]] = {}
    for experiment in experiments.values():
        for parent in experiment.parents:
            children.setdefault(parent, []).append(experiment.id)
    for eid, kids in children.items():
        if eid in experiments:
            experiments[eid] = replace(experiments[eid], children=tuple(sorted(kids, key=_id_order)))

    # Copied runs: the same run directory logged in two files. The run belongs to the experiment
    # whose id the other's extends (145 / 145-2010, 147 / 147.save, 120-4gpu / 120-4gpu-auto2):
    # the longer name is a variant or a backup that copied its notes.
    loggers: dict[str, list[tuple[str, int]]] = {}
    for experiment in experiments.values():
        for run in experiment.own_runs:
            if run.run_dirs:
                loggers.setdefault(_run_dir_name(run.run_dirs[0]), []).append((experiment.id, run.index))
    copies: dict[str, list[tuple[int, str]]] = {}
    for logged in loggers.values():
        for eid, index in logged:
            owners = [other for other, _ in logged if other != eid and _extends(eid, other)]
            if owners:
                copies.setdefault(eid, []).append((index, min(owners, key=len)))
    for eid, copied in copies.items():
        experiments[eid] = replace(experiments[eid], copied_runs=tuple(sorted(copied)))

    # Each layer file as its (first) experiment reads it; files no experiment uses are still
    # parsed and kept.
    layer_graphs: dict[str, LayerGraph] = {}
    for experiment in experiments.values():
        if experiment.layers is not None:
            layer_graphs.setdefault(experiment.layers_file, experiment.layers)
    # A layer file no experiment is paired with may still be named by one of their runs
    # (layer-params-141-2009.cfg: "using def file layers-141-2009-2010.cfg").
    named_by_runs: dict[str, SourceSpan] = {}
    for experiment in experiments.values():
        folder = str(Path(experiment.params_file).parent)
        for entry in experiment.logbook.entries:
            ref = getattr(entry, "layers_file", None)
            found = _layers_path_for_ref(ref, folder, layer_files) if ref else None
            if found:
                named_by_runs.setdefault(found, entry.span)
    unpaired_layers: dict[str, str] = {}
    for path in sorted(layer_files):
        if path not in used_layers:
            span = named_by_runs.get(path)
            unpaired_layers[path] = (f"no experiment of its own; named by a run's log at {span}" if span
                                     else "no parameter file names it or shares its name")
            folder = str(Path(path).parent)
            layer_graphs[path] = graph_for(path, _input_shape(folder, path, _family_hint(folder)))

    machines = load_machines(root)
    all_findings = tuple(f for e in experiments.values() for f in e.findings)
    archive = Archive(root=root, files=files, cfg=cfgs, experiments=experiments, layer_graphs=layer_graphs,
                      unpaired_params=unpaired_params, unpaired_layers=unpaired_layers,
                      machines=machines, findings=all_findings)
    archive.load_seconds = time.perf_counter() - started
    return archive


def _sorted_findings(findings: list[Finding]) -> tuple[Finding, ...]:
    # Duplicates dropped keeping the first (dict, not set: a set's order follows string hashes,
    # which change from run to run, and ties of path, line and rule kept that order).
    return tuple(sorted(dict.fromkeys(findings), key=lambda f: (f.span.path, f.span.line, f.rule)))


def _run_dir_name(path: str) -> str:
    """"/nobackup/kriz/tmp/ConvNet__2012-07-22_04.40.34/" -> "ConvNet__2012-07-22_04.40.34": the
    same run seen from another machine's mount keeps its name."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def _extends(eid: str, other: str) -> bool:
    """"145-2010" extends "145"; "147.save" extends "147"."""
    return len(eid) > len(other) and eid.startswith(other) and eid[len(other)] in "-._"


def _id_order(eid: str):
    number = _LEADING_NUMBER.match(eid)
    return (int(number.group(1)) if number else 10**9, eid)


def _parents(logbook: Logbook) -> tuple[str, ...]:
    """Parents named by the lineage lines of the first run ("this is like #101",
    "its also like #104"), in order, without duplicates."""
    first_run = logbook.runs[0].index if logbook.runs else 0
    seen: dict[str, None] = {}
    for entry in logbook.entries:
        if entry.kind == "lineage" and entry.run == first_run:
            for parent in entry.parents:
                seen.setdefault(parent, None)
    return tuple(seen)


def _unpaired_reason(logbook: Logbook) -> str:
    for entry in logbook.entries:
        ref = getattr(entry, "layers_file", None)
        if ref:
            return f"its log names {ref!r} ({entry.span}), which the release does not contain"
    return "no layer-definition file with its name or a prefix of it, and its log names none"
