"""Curated museum notes: Markdown files in ``annotations/notes/``, each pinned to one or
more places in the release by a small front matter:

    ---
    title: What #120 is
    anchor: 120, layers/layer-params-120.cfg:161
    interpretation: true
    sources:
      - layers/layer-params-120.cfg:161
      - paper §6
    ---
    The note itself, in Markdown.

Fields: ``anchor`` (required; one or several, comma-separated or a ``- item`` list),
``title`` (required), ``interpretation`` (true when the note interprets rather than
reports; default false), ``sources`` (citations: ``path:line`` of a release file, of the
2012 code as ``code:layer.py:1184``, or free text such as ``paper §3.3``).

The parser is a deliberately tiny subset of YAML (no PyYAML): ``key: value``,
``key: [a, b]``, and ``key:`` followed by ``  - item`` lines. Anything else is a
`NoteError` naming the file and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from archive.catalog import Archive

from .anchors import Anchor, AnchorError, file_lines, parse_anchor, resolve

NOTES_FOLDER = Path(__file__).with_name("notes")
_FIELDS = ("title", "anchor", "anchors", "interpretation", "sources")
_KEY_RE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_-]*):(?:\s+(?P<value>.*?))?\s*$")
_ITEM_RE = re.compile(r"^\s+-\s+(?P<value>.*?)\s*$")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# "layers/layer-params-120.cfg:161" or "code:layer.py:1184" (a file of the 2012 source tree).
_FILE_CITATION_RE = re.compile(r"^(?P<code>code:)?(?P<path>[A-Za-z0-9_][A-Za-z0-9_./\-]*):(?P<line>[0-9]+)$")


class NoteError(ValueError):
    """A note file that cannot be read; the message starts with file:line."""

    def __init__(self, path: str, line: int, message: str):
        self.path, self.line = path, line
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True, slots=True)
class Citation:
    """One entry of `sources`: a line of a release file (`code` False), a line of the 2012
    source code (`code` True, path relative to the source tree), or free text (path None)."""

    text: str
    path: str | None
    line: int | None
    code: bool = False

    def to_json(self) -> dict:
        return {"text": self.text, "file": self.path, "line": self.line, "code": self.code}


def parse_citation(text: str) -> Citation:
    match = _FILE_CITATION_RE.match(text.strip())
    if match:
        return Citation(text.strip(), match.group("path"), int(match.group("line")), bool(match.group("code")))
    return Citation(text.strip(), None, None)


@dataclass(frozen=True, slots=True)
class Note:
    slug: str
    title: str
    anchors: tuple[Anchor, ...]
    body_markdown: str
    html: str
    interpretation: bool
    sources: tuple[Citation, ...]
    path: str

    def to_json(self) -> dict:
        return {"slug": self.slug, "title": self.title, "anchors": [str(a) for a in self.anchors],
                "interpretation": self.interpretation, "sources": [s.to_json() for s in self.sources],
                "markdown": self.body_markdown, "html": self.html, "path": self.path}

    def is_about(self, prefix: Anchor, archive: Archive | None = None) -> bool:
        """Whether one of its anchors lies within `prefix` (see `Anchor.is_within`). With an
        archive, a line of an experiment's own files also counts as within that experiment,
        and an experiment or layer anchor is within a whole-file prefix of its files."""
        return any(_within(anchor, prefix, archive) for anchor in self.anchors)


def _within(anchor: Anchor, prefix: Anchor, archive: Archive | None) -> bool:
    if anchor.is_within(prefix):
        return True
    if archive is None or anchor.kind != "line" or prefix.kind != "experiment":
        return False
    experiment = archive.experiments.get(prefix.experiment or "")
    return experiment is not None and anchor.path in (experiment.params_file, experiment.layers_file)


# --- Reading one note ------------------------------------------------------------------------

def parse_note(text: str, path: str, slug: str | None = None) -> Note:
    """Read a note's text; `path` names it in errors (and in `Note.path`)."""
    slug = slug if slug is not None else Path(path).stem
    if not _SLUG_RE.match(slug):
        raise NoteError(path, 1, f"note file names are lower-case words joined by '-', not {slug!r}")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise NoteError(path, 1, "a note starts with a front matter: a line '---', 'anchor: ...' and "
                                 "'title: ...', then '---'")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise NoteError(path, 1, "the front matter opened on line 1 is never closed with '---'") from None
    fields = _parse_front_matter(lines[1:end], path, first_line=2)
    for required in ("title", "anchor"):
        if required not in fields:
            raise NoteError(path, 1, f"the front matter has no {required!r}")
    title_line, title = fields["title"]
    if not isinstance(title, str) or not title:
        raise NoteError(path, title_line, "title is one line of text")
    anchor_line, anchor_value = fields["anchor"]
    anchor_texts = anchor_value if isinstance(anchor_value, list) else _split_commas(anchor_value)
    if not anchor_texts:
        raise NoteError(path, anchor_line, "anchor names no place")
    anchors = []
    for anchor_text in anchor_texts:
        try:
            anchors.append(parse_anchor(anchor_text))
        except AnchorError as error:
            raise NoteError(path, anchor_line, str(error)) from None
    interpretation = False
    if "interpretation" in fields:
        line, value = fields["interpretation"]
        if not isinstance(value, str) or value.lower() not in ("true", "false", "yes", "no"):
            raise NoteError(path, line, f"interpretation is true or false, not {value!r}")
        interpretation = value.lower() in ("true", "yes")
    sources: list[Citation] = []
    if "sources" in fields:
        line, value = fields["sources"]
        items = value if isinstance(value, list) else _split_commas(value)
        sources = [parse_citation(item) for item in items]
    body = "\n".join(lines[end + 1:]).strip("\n")
    if not body.strip():
        raise NoteError(path, end + 2, "the note has no text after its front matter")
    return Note(slug=slug, title=title, anchors=tuple(anchors), body_markdown=body, html=_render(body),
                interpretation=interpretation, sources=tuple(sources), path=path)


def _parse_front_matter(lines: list[str], path: str, first_line: int) -> dict[str, tuple[int, str | list[str]]]:
    """key -> (line number, value): a string, or a list for ``key: [a, b]`` and ``- item`` lists."""
    fields: dict[str, tuple[int, str | list[str]]] = {}
    current: str | None = None  # the key whose "- item" list is being read
    for offset, raw in enumerate(lines):
        number = first_line + offset
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        item = _ITEM_RE.match(raw)
        if item:
            if current is None:
                raise NoteError(path, number, "a '- item' line must follow a 'key:' line with no value")
            value = _unquote(item.group("value"))
            if value:
                listed = fields[current][1]
                assert isinstance(listed, list)
                listed.append(value)
            continue
        match = _KEY_RE.match(raw)
        if not match:
            raise NoteError(path, number, f"expected 'key: value' in the front matter, got {raw.strip()!r}")
        key = match.group("key").lower()
        if key not in _FIELDS:
            raise NoteError(path, number, f"unknown field {key!r} (known: title, anchor, interpretation, sources)")
        key = "anchor" if key == "anchors" else key
        if key in fields:
            raise NoteError(path, number, f"field {key!r} given twice")
        value = match.group("value") or ""
        if not value:
            fields[key] = (number, [])
            current = key
        elif value.startswith("["):
            if not value.endswith("]"):
                raise NoteError(path, number, "a list written [a, b] must close with ']' on the same line")
            fields[key] = (number, _split_commas(value[1:-1]))
            current = None
        else:
            fields[key] = (number, _unquote(value))
            current = None
    for key, (number, value) in fields.items():
        if isinstance(value, list) and not value and key != "sources":
            raise NoteError(path, number, f"field {key!r} has no value")
    return fields


def _split_commas(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return value
    return [_unquote(part) for part in value.split(",") if part.strip()]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _render(markdown: str) -> str:
    # Imported here: rendering needs markdown-it, which reading the front matter does not.
    from .markdown import render_curated

    return render_curated(markdown)


# --- The collection ----------------------------------------------------------------------------

def load_notes(folder: Path | str | None = None) -> list[Note]:
    """Every ``*.md`` note in `folder` (default: the curated collection), sorted by slug."""
    if folder is None:
        return list(_default_notes())
    return _load(Path(folder))


@lru_cache(maxsize=1)
def _default_notes() -> tuple[Note, ...]:
    return tuple(_load(NOTES_FOLDER))


def _load(folder: Path) -> list[Note]:
    notes = []
    for file in sorted(folder.glob("*.md")):
        display = _display_path(file)
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise NoteError(display, 1, f"not UTF-8 text ({error.reason})") from None
        notes.append(parse_note(text, display))
    return notes


def _display_path(file: Path) -> str:
    try:
        return file.resolve().relative_to(NOTES_FOLDER.parent.parent).as_posix()
    except ValueError:
        return str(file)


def notes_for(anchor_prefix: Anchor | str, notes: list[Note] | None = None,
              archive: Archive | None = None) -> list[Note]:
    """The notes pinned at or inside `anchor_prefix` ("120" gives the notes on #120, its layers
    and keys, and -- with an archive -- on lines of its two files)."""
    prefix = parse_anchor(anchor_prefix) if isinstance(anchor_prefix, str) else anchor_prefix
    return [note for note in (load_notes() if notes is None else notes) if note.is_about(prefix, archive)]


def check_notes(notes: list[Note], archive: Archive, source_root: Path | None = None) -> list[str]:
    """Every problem of the collection against the release, one message each: an anchor that
    does not resolve, a cited release line that does not exist, a cited line of the 2012
    code past the end of its file (checked when `source_root`, a checkout of the original
    repository, is given)."""
    problems: list[str] = []
    for note in notes:
        for anchor in note.anchors:
            try:
                resolve(anchor, archive)
            except AnchorError as error:
                problems.append(f"{note.path}: {error}")
        for citation in note.sources:
            if citation.path is None:
                continue
            if citation.code:
                if source_root is not None:
                    problem = _check_code_citation(citation, source_root)
                    if problem:
                        problems.append(f"{note.path}: source {citation.text}: {problem}")
                continue
            if citation.path not in archive.files:
                problems.append(f"{note.path}: source {citation.text}: the release has no file {citation.path!r}")
                continue
            count = len(file_lines(archive, citation.path))
            if not 1 <= (citation.line or 0) <= count:
                problems.append(f"{note.path}: source {citation.text}: {citation.path} has {count} lines")
    return problems


def _check_code_citation(citation: Citation, source_root: Path) -> str | None:
    file = source_root / (citation.path or "")
    if not file.is_file():
        return f"no file {citation.path!r} in {source_root}"
    count = len(file.read_bytes().split(b"\n"))
    return None if 1 <= (citation.line or 0) <= count else f"{citation.path} has fewer than {citation.line} lines"
