"""/compare?ids=120,131[,…]: experiments side by side. The first id is the baseline; every other
experiment is diffed against it (archive.compare, the same diff as `alexnet-archive diff`)."""
from __future__ import annotations

import re

from archive.compare import Side, diff_sides

from ..errors import BadQuery
from ..links import Links, compare_path
from ..render import natural_size
from ..site import Site
from .experiment import chart_block, chart_kind, find_experiment, layer_rows

MAX_IDS = 6  # side by side stops being readable beyond this
_ID_TEXT = re.compile(r"^[#A-Za-z0-9_.,\- ]*$")


def parse_ids(site: Site, text: str | None) -> list[str]:
    """"120,131" -> ["120", "131"]: known experiments, in the order given, without repeats."""
    if not text or not text.strip():
        raise BadQuery("ids", "give two or more experiment ids separated by commas, e.g. ids=120,131")
    if not _ID_TEXT.match(text):
        raise BadQuery("ids", "experiment ids are made of letters, digits, '.', '-' and '_'")
    ids: list[str] = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        eid = find_experiment(site, part).id
        if eid not in ids:
            ids.append(eid)
    if len(ids) < 2:
        raise BadQuery("ids", "give two or more different experiment ids, e.g. ids=120,131")
    if len(ids) > MAX_IDS:
        raise BadQuery("ids", f"compare at most {MAX_IDS} experiments at once")
    return ids


def _side(e) -> Side:
    return Side(e.id, layers=e.layers, params=e.params, logbook=e.logbook)


def compare_data(site: Site, ids: list[str], margins=None) -> dict:
    experiments = [find_experiment(site, eid) for eid in ids]
    base = experiments[0]
    diffs = [diff_sides(_side(base), _side(other)) for other in experiments[1:]]
    return {
        "ids": [e.id for e in experiments],
        "permalink": compare_path([e.id for e in experiments]),
        "experiments": [e.summary_json() for e in experiments],
        "diffs": [d.to_json() for d in diffs],
        "layers": aligned_layers(experiments),
        "params": aligned_params(experiments),
        # The notes and approved annotations pinned to these experiments, their layers and keys.
        **(margins if margins is not None else compare_margins(site, [e.id for e in experiments], Links())).twin(),
    }


def compare_margins(site: Site, ids: list[str], links: Links):
    from .annotations import margins

    return margins(site, ids, [], links)


def aligned_layers(experiments) -> list[dict]:
    """Layers aligned by name across experiments (first-seen order); each cell the layer's
    description in that experiment, `differs` when any cell differs from the baseline's."""
    tables = [{row["name"]: row for row in layer_rows(e) if not row.get("params_only")} for e in experiments]
    return _align(tables, lambda row: {
        "type": row["type"] + (f" · {row['neuron']}" if row["neuron"] else ""),
        "inputs": ",".join(row["inputs"]), "gpu": row["gpu"], "shape": row["shape"],
        "params": row["params"],
        # Each setting is its own field, so the one that changed is the one marked.
        **{k: _text(v) for k, v in row["settings"].items()},
    })


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def aligned_params(experiments) -> list[dict]:
    tables = [{row["name"]: row for row in layer_rows(e) if row["learning"]} for e in experiments]
    return _align(tables, lambda row: dict(row["learning"]))


def _align(tables: list[dict[str, dict]], describe) -> list[dict]:
    names: list[str] = []
    for table in tables:
        names += [n for n in table if n not in names]
    rows = []
    for name in names:
        cells = [describe(t[name]) if name in t else None for t in tables]
        keys: list[str] = []
        for cell in cells:
            keys += [k for k in (cell or {}) if k not in keys]
        differs = {k: any((c or {}).get(k) != (cells[0] or {}).get(k) for c in cells) for k in keys}
        status = ["same" if c == cells[0] else ("missing" if c is None else "added" if cells[0] is None else "changed")
                  for c in cells]
        rows.append({"name": name, "cells": cells, "fields": keys, "differs": differs,
                     "status": status, "same": all(s == "same" for s in status)})
    return rows


def compare_view(site: Site, ids: list[str], links: Links) -> dict:
    from ..diagrams import network_svg

    from .annotations import anchor_ok, can_annotate, term_path

    notes = compare_margins(site, ids, links)
    # Layer notes are listed in the notes section and referenced from the aligned table's margin
    # (a note may hold a table of its own, too wide for a cell): each copy gets its own id.
    count = 0
    for items in notes.layers.values():
        for item in items:
            if not item["id"]:
                count += 1
                item["id"] = f"layer-note-{count}"
    data = compare_data(site, ids, notes)
    experiments = [find_experiment(site, eid) for eid in data["ids"]]
    base = experiments[0]
    networks = []
    for index, e in enumerate(experiments):
        status, extra = None, ()
        if index and e.layers and base.layers:
            status, extra = _layer_status(data["diffs"][index - 1], e, base)
        networks.append({
            "id": e.id,
            # At its own size: side by side, a network shrunk to share the row is unreadable.
            "svg": natural_size(network_svg(e.layers, href=links.href, id_prefix=f"cmp{index}", status=status,
                                            extra_layers=extra, title=f"#{e.id}")) if e.layers else None,
        })
    charts = [chart_block(chart, data["permalink"], links) for chart in compare_charts(site, data["ids"]).values()]
    return {"c": data, "title": "Compare " + ", ".join(f"#{i}" for i in data["ids"]),
            "networks": networks, "charts": charts, "m": notes, "annotate_ok": can_annotate(site, links),
            "term": lambda word: term_path(site, word), "anchor_ok": anchor_ok}


def _layer_status(diff: dict, e, base) -> tuple[dict[str, str], tuple]:
    """Colour each layer of `e` by how it differs from the baseline's layer of the same name."""
    status = {layer.name: "same" for layer in e.layers.layers}
    removed = []
    for d in diff["layers"]:
        if d["status"] == "removed":
            removed.append(d["name"])
        elif "moved" in d:
            status[d["name"]] = "moved"
        elif d["name"] in status:
            status[d["name"]] = d["status"]
    base_layers = {layer.name: layer for layer in base.layers.layers}
    return status, tuple(base_layers[name] for name in removed if name in base_layers)


def compare_charts(site: Site, ids: list[str]):
    from ..curves import overlay

    experiments = [find_experiment(site, eid) for eid in ids]
    by_kind: dict[str, list] = {}  # matched by kind, not position: an experiment may lack a chart
    for e in experiments:
        for chart in site.charts_for(e):
            by_kind.setdefault(chart_kind(chart.id), []).append(chart)
    out = {}
    for kind, charts in by_kind.items():
        # "#120: weight learning rate (epsW)" -> "weight learning rate (epsW): #120, #131"
        title = charts[0].title.split(": ", 1)[-1] + ": " + ", ".join(f"#{e.id}" for e in experiments)
        out[kind] = overlay(charts, title)
    return out
