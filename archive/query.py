"""Plain functions over a loaded Archive: filtering, counting, and turning a
command-line argument (an id or a .cfg path) into one side of a diff. Used by
the CLI and, later, the web pages."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Callable

from . import cfgfile
from .catalog import Archive, Experiment, _LAYERS_NAME, _PARAMS_NAME
from .compare import Side
from .layers import parse_layers
from .logbook import parse_logbook
from .params import parse_params
from .source import ArchiveError, SourceSpan


def _date(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ArchiveError(None, f"{option} {text!r} is not a date (YYYY-MM-DD)", "cli.bad-date") from None


def filter_experiments(archive: Archive, *, host: str | None = None, since: str | None = None,
                       until: str | None = None, status: str | None = None,
                       dataset: str | None = None, text: str | None = None) -> list[Experiment]:
    since_d, until_d = _date(since, "--since"), _date(until, "--until")
    if until_d is not None and until_d.hour == until_d.minute == 0 and len(until or "") <= 10:
        until_d = until_d.replace(hour=23, minute=59, second=59)
    out = []
    for e in archive.sorted_experiments():
        if host and host.lower() not in (h.lower() for h in e.hosts):
            continue
        if since_d and (e.start is None or e.start < since_d):
            continue
        if until_d and (e.start is None or e.start > until_d):
            continue
        if status:
            wanted = status.lower().replace(" ", "_").replace("-", "_")
            if (e.status or "none") != wanted:
                continue
        if dataset and not _dataset_matches(e, dataset):
            continue
        if text and text.lower() not in "\n".join(x.text for x in e.logbook.entries).lower():
            continue
        out.append(e)
    return out


def _dataset_matches(e: Experiment, wanted: str) -> bool:
    """'full' / 'non-full' ask about the 2012 set's variant; anything else is a
    case-insensitive substring of the label ("2012", "cifar", "jpeg")."""
    wanted = wanted.strip().lower()
    if wanted in ("full", "non-full", "nonfull"):
        return e.dataset.full is (wanted == "full")
    return wanted in e.dataset.label().lower()


def archive_stats(archive: Archive) -> dict:
    files_by_kind = Counter(f.kind for f in archive.files.values())
    layer_types: Counter = Counter()
    for graph in archive.layer_graphs.values():
        layer_types.update(layer.type for layer in graph.layers)
    kinds: Counter = Counter()
    comment_lines = typed_lines = note_lines = entries = runs = 0
    for e in archive.experiments.values():
        runs += len(e.logbook.runs)
        for entry in e.logbook.entries:
            entries += 1
            kinds[entry.kind] += 1
            if entry.kind == "note":
                note_lines += len(entry.lines)
            else:
                typed_lines += len(entry.lines)
        comment_lines += len(archive.cfg[e.params_file].comment_lines())
    severities = Counter(f.severity for f in archive.findings)
    rules = Counter(f.rule for f in archive.findings)
    return {
        "root": str(archive.root),
        "files": {"total": len(archive.files), "by_kind": dict(sorted(files_by_kind.items()))},
        "experiments": len(archive.experiments),
        "runs": runs,
        "layer_files": len(archive.layer_graphs),
        "unpaired_layers": dict(archive.unpaired_layers),
        "unpaired_params": dict(archive.unpaired_params),
        "layers": {"total": sum(layer_types.values()), "by_type": dict(layer_types.most_common())},
        "log": {"comment_lines": comment_lines, "typed_lines": typed_lines, "note_lines": note_lines,
                "typed_share": typed_lines / comment_lines if comment_lines else 0.0,
                "entries": entries, "by_kind": dict(kinds.most_common())},
        "findings": {"total": len(archive.findings), "by_severity": dict(severities.most_common()),
                     "by_rule": dict(rules.most_common())},
        "machines": _machines_summary(archive),
        "load_ms": archive.load_seconds * 1000,
    }


def _machines_summary(archive: Archive) -> dict | None:
    """deviceQuery.txt: the GPUs of the machine it was run on, in one line."""
    query = archive.machines.device_query if archive.machines else None
    if query is None:
        return None
    return {"file": query.path, "driver": query.driver_version, "runtime": query.runtime_version,
            "devices": [{"index": d.index, "name": d.name, "memory_bytes": d.global_memory_bytes,
                         "cuda_cores": d.cuda_cores, "compute_capability": d.compute_capability}
                        for d in query.devices]}


def side_for(arg: str, load_archive: Callable[[], Archive]) -> Side:
    """An experiment id, or a path to a layers-*.cfg / layer-params-*.cfg file."""
    path = Path(arg)
    if arg.endswith((".cfg", ".save")) or path.is_file():
        if not path.is_file():
            raise ArchiveError(SourceSpan(arg, 0), "no such file", "cli.no-such-file")
        text = cfgfile.read_text(path)
        cfg = cfgfile.parse_cfg(text, arg)
        if _PARAMS_NAME.match(path.name):
            return Side(arg, params=parse_params(cfg), logbook=parse_logbook(cfg), files=((arg, text),))
        if _LAYERS_NAME.match(path.name):
            return Side(arg, layers=parse_layers(cfg, {0: 3 * 224 * 224}), files=((arg, text),))
        # Unknown name: guess by content (a file with `type=` keys defines layers).
        if any(section.entry("type") for section in cfg.sections):
            return Side(arg, layers=parse_layers(cfg, {0: 3 * 224 * 224}), files=((arg, text),))
        return Side(arg, params=parse_params(cfg), logbook=parse_logbook(cfg), files=((arg, text),))
    archive = load_archive()
    e = archive.experiment(arg)
    files = []
    if e.layers_file:
        files.append((e.layers_file, archive.cfg[e.layers_file].render()))
    files.append((e.params_file, archive.cfg[e.params_file].render()))
    return Side(e.id, layers=e.layers, params=e.params, logbook=e.logbook, files=tuple(files))
