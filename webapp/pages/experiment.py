"""/experiments/{id}: one experiment — its network in GPU lanes, layers with their parameters,
the log as a timeline, results, family, and the raw files."""
from __future__ import annotations

from archive.catalog import Experiment
from archive.source import ArchiveError

from ..errors import NotFound
from ..links import Links, compare_path
from ..render import natural_size
from ..site import Site
from .annotations import anchor_ok, can_annotate, experiment_margins, term_path

# The per-layer learning parameters shown beside each layer (layer-params-*.cfg keys).
PARAM_KEYS = ("epsW", "epsB", "momW", "momB", "wc")


def find_experiment(site: Site, eid: str) -> Experiment:
    try:
        return site.archive.experiment(eid)
    except ArchiveError:
        raise NotFound(f"There is no experiment {eid!r} in this archive.") from None


def layer_rows(e: Experiment) -> list[dict]:
    """The layer table: every layer of the definition file with the params file's values for it
    (matched by name, as convnet.py does), then params sections no layer uses."""
    params = {p.name: p for p in e.params.layers}
    rows = []
    for layer in (e.layers.layers if e.layers else ()):
        p = params.pop(layer.name, None)
        rows.append({
            "name": layer.name, "type": layer.type, "neuron": layer.neuron, "gpu": layer.gpu,
            "inputs": list(layer.inputs), "shape": layer.shape_text(), "outputs": layer.outputs,
            "params": layer.params, "line": layer.line, "file": layer.span.path,
            "settings": {k: v for k, v in layer.settings.items() if k not in ("type", "inputs", "gpu", "neuron")},
            "learning": _learning(p), "params_line": p.span.line if p else None, "params_only": False,
        })
    for p in params.values():
        rows.append({"name": p.name, "type": None, "neuron": None, "gpu": None, "inputs": [], "shape": "",
                     "outputs": None, "params": None, "line": None, "file": None, "settings": {},
                     "learning": _learning(p), "params_line": p.span.line, "params_only": True})
    return rows


def _learning(p) -> dict:
    if p is None:
        return {}
    return {k: _plain(p.values[k]) for k in PARAM_KEYS if k in p.values} | {
        k: _plain(v) for k, v in p.values.items() if k not in PARAM_KEYS}


def _plain(value):
    if hasattr(value, "canonical"):
        return value.canonical()
    if isinstance(value, tuple):
        return list(value)
    return value


def log_runs(e: Experiment) -> list[dict]:
    """The log grouped by run, each entry with its kind, epoch and line (for the timeline list)."""
    runs = []
    copies = dict(e.copied_runs)
    for run in e.logbook.runs:
        entries = [e.logbook.entries[i] for i in run.entries]
        runs.append({
            "index": run.index, "label": run.label, "copied_from": run.experiment or copies.get(run.index),
            "start": run.start.isoformat() if run.start else None, "hosts": list(run.hosts),
            "status": run.status, "last_epoch": run.last_epoch,
            "entries": [{"kind": x.kind, "epoch": x.epoch, "line": x.span.line, "lines": list(x.lines),
                         "text": x.text} for x in entries],
        })
    return runs


def experiment_data(site: Site, eid: str, *, replays: list[dict] | None = None, charts: list | None = None,
                    margins=None) -> dict:
    """The JSON twin. The page passes the replays and charts it has already made, so nothing is
    read or reconstructed twice."""
    from ..charts import chart_json

    e = find_experiment(site, eid)
    replays = site.replays(e.id) if replays is None else replays
    charts = site.charts_for(e, replays) if charts is None else charts
    data = e.to_json()
    data["layer_table"] = layer_rows(e)
    data["log_runs"] = log_runs(e)
    data["charts"] = [chart_json(chart) for chart in charts]
    data["replays"] = [{k: run[k] for k in ("id", "status", "backend", "data", "synthetic", "started", "ended",
                                            "fixes", "transfers")}
                       | {"last_test": run["tests"][-1] if run["tests"] else None,
                          "train_points": len(run["train"])}
                       for run in replays]
    # The curated notes and approved annotations pinned to it, its layers, keys and file lines.
    data |= (margins if margins is not None else experiment_margins(site, e, Links())).twin()
    return data


def experiment_view(site: Site, eid: str, links: Links) -> dict:
    from ..diagrams import lineage_svg, network_svg

    e = find_experiment(site, eid)
    replays = site.replays(e.id)
    made = site.charts_for(e, replays)
    notes = experiment_margins(site, e, links)
    data = experiment_data(site, e.id, replays=replays, charts=made, margins=notes)
    family = {e.id} | _tree_ids(site.archive.ancestors(e.id)) | _tree_ids(site.archive.descendants(e.id))
    charts = [chart_block(chart, f"/experiments/{e.id}", links) for chart in made]
    files = [(path, site.archive.cfg[path]) for path in (e.params_file, e.layers_file) if path]
    return {
        "e": data,
        "title": f"Experiment #{e.id}",
        "network_svg": network_svg(e.layers, href=links.href, id_prefix=f"net-{_css_id(e.id)}",
                                   title=f"#{e.id}: {e.layers_file}") if e.layers else None,
        "family_svg": natural_size(lineage_svg(site.archive, href=links.href, id_prefix="family-tree", focus=e.id,
                                               only=family)) if len(family) > 1 else None,
        "charts": charts,
        "compare_links": [(p, compare_path([p, e.id])) for p in e.parents if p in site.archive.experiments],
        "files": [{"path": path, "lines": [(line.number, line.text) for line in cfg.lines]} for path, cfg in files],
        "m": notes,
        "annotate_ok": can_annotate(site, links),
        "term": lambda word: term_path(site, word),
        "anchor_ok": anchor_ok,
    }


def chart_block(chart, page_path: str, links: Links) -> dict:
    """A chart as a page shows it: drawn on both axis scales (a CSS toggle picks one, no
    JavaScript needed) with its downloads beside it."""
    from ..charts import render_svg

    kind = chart_kind(chart.id)
    return {
        "id": chart.id, "kind": kind, "title": chart.title, "notes": list(chart.notes),
        # Both drawings sit on one page, so their element ids differ by scale.
        "svg": {scale: render_svg(chart, y_scale=scale, href=links.href, id_prefix=f"{chart.id}-{scale}")
                for scale in ("linear", "log")},
        "default_scale": chart.y_scale,
        "downloads": {fmt: f"{page_path}/charts/{kind}.{fmt}" for fmt in ("svg", "csv", "json")},
    }


def chart_kind(chart_id: str) -> str:
    """"lr-120" -> "lr": the chart's name in its download address."""
    return chart_id.split("-", 1)[0]


def _tree_ids(tree: dict) -> set[str]:
    out: set[str] = set()
    for key, sub in tree.items():
        out.add(key)
        out |= _tree_ids(sub)
    return out


def _css_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
