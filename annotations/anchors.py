"""Anchors: the places in the release a note or an annotation is pinned to.

Four kinds, written as people cite them:

- an experiment: ``120`` (the id `archive.catalog` gives a params file);
- a layer of it: ``120/conv1a`` (a section of its layers file or of its params file);
- a key of that layer: ``120/conv1a/epsW`` (case-insensitive, as ConfigParser read keys);
- a line of a file: ``layers/layer-params-120.cfg:167`` (path relative to the release root).

`parse_anchor` checks the spelling only; `resolve` checks the anchor against a loaded
release and says where it lands (file and line), so a page can put the note beside it.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from archive.catalog import Archive, Experiment
from archive.cfgfile import CfgFile, Entry, MergedSection
from archive.layers import KNOWN_KEYS
from archive.params import OLD_KEYS, RELEASE_KEYS
from archive.source import SourceSpan

KINDS = ("experiment", "layer", "key", "line")

# Ids, layer names and keys as the release spells them; anything else (spaces, slashes,
# quotes) is refused so that an anchor is always safe inside a URL path or an HTML id.
_EXPERIMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_LAYER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE_RE = re.compile(r"(?P<path>[^:\s]+):(?P<line>[0-9]+)")
_PATH_PART_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
MAX_ANCHOR_LENGTH = 300

# The 2012 code's spelling of every key (layer.py); ConfigParser lower-cased them all.
_CANONICAL_KEYS = {name.lower(): name for name in (*KNOWN_KEYS, *RELEASE_KEYS, *OLD_KEYS)}


class AnchorError(ValueError):
    """An anchor that is misspelt, or that names no place in the release."""


@dataclass(frozen=True, slots=True)
class Anchor:
    kind: str  # "experiment" | "layer" | "key" | "line"
    experiment: str | None = None
    layer: str | None = None
    key: str | None = None
    path: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "line":
            return f"{self.path}:{self.line}"
        return "/".join(part for part in (self.experiment, self.layer, self.key) if part is not None)

    def to_json(self) -> dict:
        return {"anchor": str(self), "kind": self.kind, "experiment": self.experiment, "layer": self.layer,
                "key": self.key, "file": self.path, "line": self.line}

    def is_within(self, prefix: "Anchor") -> bool:
        """Whether this anchor lies inside `prefix`: ``120/conv1a/epsW`` is within ``120/conv1a``
        and ``120`` (not within ``120-2012``); a line is within only the same line.
        Keys compare case-insensitively, as ConfigParser did."""
        if prefix.kind == "line" or self.kind == "line":
            return self == prefix
        mine = (self.experiment, self.layer, (self.key or "").lower() or None)
        theirs = (prefix.experiment, prefix.layer, (prefix.key or "").lower() or None)
        depth = KINDS.index(prefix.kind) + 1
        return KINDS.index(self.kind) >= KINDS.index(prefix.kind) and mine[:depth] == theirs[:depth]


def experiment_anchor(experiment: str) -> Anchor:
    return Anchor("experiment", experiment=experiment)


def layer_anchor(experiment: str, layer: str) -> Anchor:
    return Anchor("layer", experiment=experiment, layer=layer)


def key_anchor(experiment: str, layer: str, key: str) -> Anchor:
    return Anchor("key", experiment=experiment, layer=layer, key=key)


def line_anchor(path: str, line: int) -> Anchor:
    return Anchor("line", path=path, line=line)


def parse_anchor(text: str) -> Anchor:
    """Read an anchor as written; AnchorError says what is wrong with the spelling.
    (Whether the place exists is `resolve`'s question.)"""
    if not isinstance(text, str):
        raise AnchorError(f"an anchor is text, not {type(text).__name__}")
    written = text.strip()
    if not written:
        raise AnchorError("empty anchor: write an experiment (120), a layer (120/conv1a), a key "
                          "(120/conv1a/epsW) or a file line (layers/layer-params-120.cfg:167)")
    if len(written) > MAX_ANCHOR_LENGTH:
        raise AnchorError(f"anchor longer than {MAX_ANCHOR_LENGTH} characters")
    if ":" in written:
        return _parse_line_anchor(written)
    parts = written.split("/")
    if len(parts) > 3:
        raise AnchorError(f"anchor {written!r} has {len(parts)} parts; at most 3: experiment/layer/key "
                          "(a file line is written path:line)")
    if any(part == "" for part in parts):
        raise AnchorError(f"anchor {written!r} has an empty part")
    experiment = parts[0]
    if not _EXPERIMENT_RE.fullmatch(experiment):
        raise AnchorError(f"{experiment!r} is not an experiment id (letters, digits, '.', '_' and '-', "
                          "as in 120, 120-2012, cifar-18pct-noisylr)")
    if len(parts) == 1:
        return experiment_anchor(experiment)
    layer = parts[1]
    if not _LAYER_RE.fullmatch(layer):
        raise AnchorError(f"{layer!r} is not a layer name (letters, digits, '.', '_' and '-')")
    if len(parts) == 2:
        return layer_anchor(experiment, layer)
    key = parts[2]
    if not _KEY_RE.fullmatch(key):
        raise AnchorError(f"{key!r} is not a key name (letters, digits and '_', as in epsW)")
    return key_anchor(experiment, layer, key)


def _parse_line_anchor(written: str) -> Anchor:
    match = _LINE_RE.fullmatch(written)
    if not match:
        raise AnchorError(f"{written!r} is not a file line: write path:line, e.g. layers/layer-params-120.cfg:167")
    path, number = match.group("path"), int(match.group("line"))
    # Relative, forward slashes, no '..': the path can only name a file inside the release.
    if not all(_PATH_PART_RE.fullmatch(part) and part not in (".", "..") for part in path.split("/")):
        raise AnchorError(f"{path!r} is not a path relative to the release root "
                          "(e.g. layers/layer-params-120.cfg)")
    if number < 1:
        raise AnchorError(f"{written!r}: lines are numbered from 1")
    return line_anchor(path, number)


# --- Resolving against the release -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ResolvedAnchor:
    """An anchor checked against the release. `canonical` spells the key as the 2012 code
    did (epsw -> epsW); `span` is where the anchor lands (the line a margin note goes beside);
    `spans` every place it names (a layer in both files; a section written in two blocks);
    `text` the landing line as written."""

    anchor: Anchor
    canonical: Anchor
    span: SourceSpan
    spans: tuple[SourceSpan, ...]
    text: str

    def to_json(self) -> dict:
        return {"anchor": str(self.anchor), "canonical": str(self.canonical), "kind": self.anchor.kind,
                "file": self.span.path, "line": self.span.line,
                "places": [span.to_json() for span in self.spans], "text": self.text}


def resolve(anchor: Anchor | str, archive: Archive) -> ResolvedAnchor:
    """Check `anchor` against the loaded release; AnchorError names what is missing."""
    if isinstance(anchor, str):
        anchor = parse_anchor(anchor)
    if anchor.kind == "line":
        return _resolve_line(anchor, archive)
    experiment = archive.experiments.get(anchor.experiment or "")
    if experiment is None:
        near = difflib.get_close_matches(anchor.experiment or "", list(archive.experiments), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise AnchorError(f"anchor {anchor}: no experiment {anchor.experiment!r} in the release{hint}")
    if anchor.kind == "experiment":
        span = SourceSpan(experiment.params_file, 1)
        return ResolvedAnchor(anchor, anchor, span, (span,), _line_text(archive, span))

    params_section, layers_section = _sections(archive, experiment, anchor.layer or "")
    if params_section is None and layers_section is None:
        names = sorted(set(experiment.params.names()) | set(experiment.layers.names() if experiment.layers else ()))
        near = difflib.get_close_matches(anchor.layer or "", names, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise AnchorError(f"anchor {anchor}: experiment {experiment.id} has no layer {anchor.layer!r} in "
                          f"{_files_of(experiment)}{hint}")
    sections = [s for s in (layers_section, params_section) if s is not None]
    if anchor.kind == "layer":
        # The definition first: that is where the layer is; its params block says how it learnt.
        spans = tuple(span for section in sections for span in section.spans)
        return ResolvedAnchor(anchor, anchor, spans[0], spans, _line_text(archive, spans[0]))

    # A key: params file first (the 2012 code read learning settings there), then the layers file.
    entries: list[Entry] = []
    for section in (params_section, layers_section):
        entry = section.entry(anchor.key or "") if section is not None else None
        if entry is not None:
            entries.append(entry)
    if not entries:
        known = sorted({entry.key for section in sections for entry in section.entries.values()})
        raise AnchorError(f"anchor {anchor}: layer {anchor.layer!r} of experiment {experiment.id} has no key "
                          f"{anchor.key!r} (it has: {', '.join(known)})")
    spelling = _CANONICAL_KEYS.get(entries[0].name, entries[0].key)
    canonical = key_anchor(experiment.id, anchor.layer or "", spelling)
    spans = tuple(entry.span for entry in entries)
    return ResolvedAnchor(anchor, canonical, spans[0], spans, _line_text(archive, spans[0]))


def _sections(archive: Archive, experiment: Experiment, layer: str) -> tuple[MergedSection | None, MergedSection | None]:
    params_cfg = archive.cfg.get(experiment.params_file)
    layers_cfg = archive.cfg.get(experiment.layers_file) if experiment.layers_file else None
    return _section(params_cfg, layer), _section(layers_cfg, layer)


def _section(cfg: CfgFile | None, name: str) -> MergedSection | None:
    # Section names are case-sensitive in ConfigParser; only keys are folded.
    return cfg.merged().get(name) if cfg is not None else None


def _files_of(experiment: Experiment) -> str:
    if experiment.layers_file:
        return f"{experiment.layers_file} or {experiment.params_file}"
    return experiment.params_file


def _resolve_line(anchor: Anchor, archive: Archive) -> ResolvedAnchor:
    path = anchor.path or ""
    if path not in archive.files:
        near = difflib.get_close_matches(path, list(archive.files), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise AnchorError(f"anchor {anchor}: the release has no file {path!r}{hint}")
    lines = file_lines(archive, path)
    if not 1 <= (anchor.line or 0) <= len(lines):
        raise AnchorError(f"anchor {anchor}: {path} has {len(lines)} lines")
    span = SourceSpan(path, anchor.line or 0)
    return ResolvedAnchor(anchor, anchor, span, (span,), lines[span.line - 1])


def file_lines(archive: Archive, path: str) -> tuple[str, ...]:
    """The lines of a release file as the archive numbers them (split on "\\n", endings dropped)."""
    cfg = archive.cfg.get(path)
    if cfg is not None:
        return tuple(line.text for line in cfg.lines)
    return _read_lines(str(Path(archive.root) / path))


@lru_cache(maxsize=32)
def _read_lines(filename: str) -> tuple[str, ...]:
    text = Path(filename).read_bytes().decode("utf-8", errors="replace")
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return tuple(part.removesuffix("\r") for part in parts)


def _line_text(archive: Archive, span: SourceSpan) -> str:
    lines = file_lines(archive, span.path)
    return lines[span.line - 1] if 1 <= span.line <= len(lines) else ""


def anchors_for_experiment(experiment: Experiment) -> set[Anchor]:
    """Every experiment, layer and key anchor one experiment offers (both of its files)."""
    anchors = {experiment_anchor(experiment.id)}
    for params in experiment.params.layers:
        anchors.add(layer_anchor(experiment.id, params.name))
        anchors.update(key_anchor(experiment.id, params.name, key) for key in params.entries)
    for layer in experiment.layers.layers if experiment.layers else ():
        anchors.add(layer_anchor(experiment.id, layer.name))
        anchors.update(key_anchor(experiment.id, layer.name, key) for key in layer.setting_lines)
    return anchors
