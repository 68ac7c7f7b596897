"""A semantic diff of two experiments (or two .cfg files).

Layers are matched by name: added, removed, or changed (key by key, and per
input index for the per-input lists: ``filters[1]: 128 → 256``). A layer
whose inputs changed is reported as moved ("rnorm1a: over pool1a → over
conv1a"). Parameters are compared the same way, schedules in their one
normalized form, so ``dexp[250,0,4]`` and
``dexp[tgtFactor=250,noiseStdev=0,numSteps=4]`` are equal. The logs are
compared entry by entry. Used by `alexnet-archive diff` and the compare page.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from .layers import LayerGraph
from .logbook import Logbook
from .params import ParamSet
from .source import SourceSpan


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: a label and whatever is known of it."""

    label: str
    layers: LayerGraph | None = None
    params: ParamSet | None = None
    logbook: Logbook | None = None
    files: tuple[tuple[str, str], ...] = ()  # (path, text) for the unified format


@dataclass(frozen=True, slots=True)
class KeyChange:
    key: str
    index: int | None  # input index for per-input lists
    old: object
    new: object
    old_span: SourceSpan | None
    new_span: SourceSpan | None

    @property
    def label(self) -> str:
        return self.key if self.index is None else f"{self.key}[{self.index}]"

    def to_json(self) -> dict:
        return {"key": self.key, "index": self.index, "old": _jsonable(self.old), "new": _jsonable(self.new),
                "old_line": self.old_span.line if self.old_span else None,
                "new_line": self.new_span.line if self.new_span else None}


@dataclass(frozen=True, slots=True)
class SectionDiff:
    """One layer (or one params section) compared: status is "added",
    "removed", "changed" or "same"."""

    name: str
    status: str
    type: str | None
    changes: tuple[KeyChange, ...] = ()
    moved_from: tuple[str, ...] | None = None  # old inputs, when the layer moved
    moved_to: tuple[str, ...] | None = None
    old_position: int | None = None
    new_position: int | None = None

    def to_json(self) -> dict:
        data = {"name": self.name, "status": self.status, "type": self.type,
                "changes": [c.to_json() for c in self.changes],
                "old_position": self.old_position, "new_position": self.new_position}
        if self.moved_to is not None:
            data["moved"] = {"from": list(self.moved_from or ()), "to": list(self.moved_to)}
        return data


@dataclass(frozen=True, slots=True)
class LogLine:
    op: str  # "-" only in A, "+" only in B
    text: str
    kind: str
    span: SourceSpan

    def to_json(self) -> dict:
        return {"op": self.op, "text": self.text, "kind": self.kind, "line": self.span.line, "file": self.span.path}


@dataclass(frozen=True, slots=True)
class ExperimentDiff:
    a: str
    b: str
    layers: tuple[SectionDiff, ...] = ()
    params: tuple[SectionDiff, ...] = ()
    log: tuple[LogLine, ...] = ()
    summary: tuple[str, ...] = field(default=())

    @property
    def same(self) -> bool:
        return (all(d.status == "same" for d in self.layers) and all(d.status == "same" for d in self.params)
                and not self.log)

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "same": self.same, "summary": list(self.summary),
                "layers": [d.to_json() for d in self.layers if d.status != "same"],
                "params": [d.to_json() for d in self.params if d.status != "same"],
                "log": [line.to_json() for line in self.log]}


def _jsonable(value):
    if hasattr(value, "canonical"):
        return value.canonical()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _normalized(value):
    """Compare schedules in their canonical form, numbers as numbers."""
    if hasattr(value, "canonical"):
        return value.canonical()
    if isinstance(value, tuple):
        return tuple(_normalized(v) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def _compare_values(key: str, old, new, old_span, new_span) -> list[KeyChange]:
    if _normalized(old) == _normalized(new):
        return []
    if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new) and len(old) > 1:
        return [KeyChange(key, i, o, n, old_span, new_span)
                for i, (o, n) in enumerate(zip(old, new)) if _normalized(o) != _normalized(n)]
    return [KeyChange(key, None, old, new, old_span, new_span)]


def _diff_sections(old: dict[str, tuple[str | None, dict, dict, tuple[str, ...] | None]],
                   new: dict[str, tuple[str | None, dict, dict, tuple[str, ...] | None]]) -> list[SectionDiff]:
    """old/new: name -> (type, values, spans, inputs)."""
    out: list[SectionDiff] = []
    old_names, new_names = list(old), list(new)
    old_pos = {name: i for i, name in enumerate(old_names)}
    new_pos = {name: i for i, name in enumerate(new_names)}
    # Walk the union in B's order, slotting A-only names where they stood in A.
    order: list[str] = []
    matcher = difflib.SequenceMatcher(a=old_names, b=new_names, autojunk=False)
    # Names in both files but outside their longest common order changed place.
    in_order = {name for block in matcher.get_matching_blocks() for name in old_names[block.a:block.a + block.size]}
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            order += old_names[i1:i2]
        else:
            order += [n for n in old_names[i1:i2] if n not in new_pos]
            order += new_names[j1:j2]
    order += [n for n in old_names if n not in order]
    seen: set[str] = set()
    for name in order:
        if name in seen:
            continue
        seen.add(name)
        if name not in new:
            out.append(SectionDiff(name, "removed", old[name][0], old_position=old_pos[name]))
            continue
        if name not in old:
            out.append(SectionDiff(name, "added", new[name][0], new_position=new_pos[name]))
            continue
        otype, ovalues, ospans, oinputs = old[name]
        ntype, nvalues, nspans, ninputs = new[name]
        changes: list[KeyChange] = []
        for key in list(ovalues) + [k for k in nvalues if k not in ovalues]:
            if key == "inputs":
                continue
            changes += _compare_values(key, ovalues.get(key), nvalues.get(key), ospans.get(key), nspans.get(key))
        rewired = oinputs is not None and ninputs is not None and tuple(oinputs) != tuple(ninputs)
        if rewired:
            changes.insert(0, KeyChange("inputs", None, tuple(oinputs), tuple(ninputs),
                                        ospans.get("inputs"), nspans.get("inputs")))
        # A layer that changed place in the file *and* sits over something else has moved
        # (131 puts rnorm1 right over conv1); others whose inputs changed were only rewired.
        moved = rewired and name not in in_order
        status = "changed" if changes else "same"
        out.append(SectionDiff(name, status, ntype or otype, tuple(changes),
                               tuple(oinputs) if moved else None, tuple(ninputs) if moved else None,
                               old_pos[name], new_pos[name]))
    return out


def _layer_table(graph: LayerGraph | None) -> dict:
    if graph is None:
        return {}
    table = {}
    for layer in graph.layers:
        spans = {key: layer.setting_span(key) for key in layer.settings}
        table[layer.name] = (layer.type, dict(layer.settings), spans, tuple(layer.inputs))
    return table


def _params_table(params: ParamSet | None) -> dict:
    if params is None:
        return {}
    table = {}
    for section in params.layers:
        spans = {key: section.value_span(key) for key in section.values}
        table[section.name] = (None, dict(section.values), spans, None)
    return table


_SPACES = re.compile(r"\s+")


def _log_lines(logbook: Logbook | None) -> list[tuple[str, str, SourceSpan]]:
    if logbook is None:
        return []
    return [(_SPACES.sub(" ", entry.text).strip(), entry.kind, entry.span) for entry in logbook.entries]


def diff_sides(a: Side, b: Side) -> ExperimentDiff:
    layers = _diff_sections(_layer_table(a.layers), _layer_table(b.layers)) if (a.layers or b.layers) else []
    params = _diff_sections(_params_table(a.params), _params_table(b.params)) if (a.params or b.params) else []
    old_log, new_log = _log_lines(a.logbook), _log_lines(b.logbook)
    log: list[LogLine] = []
    matcher = difflib.SequenceMatcher(a=[t for t, _, _ in old_log], b=[t for t, _, _ in new_log], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        log += [LogLine("-", t, k, s) for t, k, s in old_log[i1:i2]]
        log += [LogLine("+", t, k, s) for t, k, s in new_log[j1:j2]]
    return ExperimentDiff(a.label, b.label, tuple(layers), tuple(params), tuple(log),
                          tuple(_summary(layers, params, log)))


def _summary(layers: list[SectionDiff], params: list[SectionDiff], log: list[LogLine]) -> list[str]:
    lines = []
    for d in layers:
        if d.moved_to is not None and d.moved_from is not None:
            was = ",".join(d.moved_from)
            now = ",".join(d.moved_to)
            lines.append(f"{d.name} moved: over {was} → over {now}")
    count = lambda items, status: sum(1 for d in items if d.status == status)  # noqa: E731
    if layers:
        lines.append(f"layers: {count(layers, 'added')} added, {count(layers, 'removed')} removed, "
                     f"{count(layers, 'changed')} changed, {count(layers, 'same')} the same")
    if params:
        lines.append(f"params: {count(params, 'added')} added, {count(params, 'removed')} removed, "
                     f"{count(params, 'changed')} changed, {count(params, 'same')} the same")
    if log:
        lines.append(f"log: {sum(1 for l in log if l.op == '-')} entries only in A, "
                     f"{sum(1 for l in log if l.op == '+')} only in B")
    return lines


def unified(a: Side, b: Side, context: int = 3) -> str:
    """A plain unified diff of the files behind each side, pairing them in order."""
    chunks = []
    for (apath, atext), (bpath, btext) in zip(a.files, b.files):
        chunks += difflib.unified_diff(atext.splitlines(keepends=True), btext.splitlines(keepends=True),
                                       fromfile=apath, tofile=bpath, n=context)
    text = "".join(chunks)
    return text if not text or text.endswith("\n") else text + "\n"
