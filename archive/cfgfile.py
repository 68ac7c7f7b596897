"""A lossless reader for cuda-convnet's configuration dialect.

The 2012 code read its `layers-*.cfg` and `layer-params-*.cfg` files with
`MyConfigParser` (layer.py), a subclass of Python 2's `ConfigParser.SafeConfigParser`.
That parser throws away comments, blank lines and line numbers -- and the
comments at the end of the parameter files are the experiment log, the most
precious part of the archive. So we keep every physical line, typed, with its
number and its exact line ending, and interpret the lines the way Python 2.7's
`RawConfigParser._read` did:

- a line that is blank, or whose *first character* is ``#`` or ``;``, is a
  comment (an indented ``#`` is not: it may continue a value);
- a line starting with ``rem`` + whitespace is a comment too (a Python 2 quirk);
- an indented line continues the previous value (joined with a newline);
- ``[name]`` at the start of a line opens a section (text after ``]`` is
  ignored, as in Python 2); repeated sections merge, later keys winning;
- ``key = value`` or ``key: value``; keys are case-insensitive; in the value,
  a ``;`` preceded by whitespace starts an inline comment;
- anything else is an invalid line (Python 2 collected these into a
  ParsingError raised after reading the whole file).

`render(parse_cfg(text))` gives back `text` byte for byte.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .source import ArchiveError, Finding, SourceSpan

# Python 2.7 ConfigParser.RawConfigParser.SECTCRE / OPTCRE.
_SECTION_RE = re.compile(r"\[(?P<header>[^]]+)\]")
_OPTION_RE = re.compile(r"(?P<option>[^:=\s][^:=]*)\s*(?P<vi>[:=])\s*(?P<value>.*)$")
DEFAULT_SECTION = "DEFAULT"

# Kinds of physical line.
SECTION = "section"
ENTRY = "entry"
CONTINUATION = "continuation"
COMMENT = "comment"
BLANK = "blank"
INVALID = "invalid"


class Line(NamedTuple):
    """One physical line: its 1-based number, kind, text (without the line
    ending) and the line ending itself ("\\n", "\\r\\n", or "" at EOF).

    (NamedTuples, not dataclasses, for the two records made per line: the
    release has 45,000 lines and reading it must stay fast.)"""

    number: int
    kind: str
    text: str
    newline: str

    @property
    def comment_text(self) -> str:
        """For a comment line, the text after the comment marker."""
        if self.kind != COMMENT:
            return ""
        if self.text[:1] in ("#", ";"):
            return self.text[1:]
        return self.text[3:]  # 'rem'


class Entry(NamedTuple):
    """``key=value`` as written (`key` keeps its case) and as Python 2 read it
    (`value`: inline comment removed, stripped, continuation lines joined by
    newlines). `line` is where the key is; `end_line` the last continuation."""

    key: str
    value: str
    separator: str
    path: str
    line: int
    end_line: int

    @property
    def span(self) -> SourceSpan:
        return SourceSpan(self.path, self.line)

    @property
    def name(self) -> str:
        """The key as the original looked it up (`optionxform` lower-cases)."""
        return self.key.lower()


@dataclass(frozen=True, slots=True)
class Section:
    """One ``[name]`` block as written. A name may occur more than once in a
    file; see `CfgFile.merged`."""

    name: str
    span: SourceSpan
    entries: tuple[Entry, ...]
    end_line: int

    @property
    def line(self) -> int:
        return self.span.line

    def entry(self, key: str) -> Entry | None:
        """The last entry for `key` (case-insensitive), as Python 2 kept it."""
        key = key.lower()
        for entry in reversed(self.entries):
            if entry.name == key:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class MergedSection:
    """A section name with all its blocks merged as Python 2 did it: keys in
    first-seen order, the last value winning. `spans` lists every block."""

    name: str
    spans: tuple[SourceSpan, ...]
    entries: dict[str, Entry] = field(repr=False)

    @property
    def span(self) -> SourceSpan:
        return self.spans[0]

    def get(self, key: str, default: str | None = None) -> str | None:
        entry = self.entries.get(key.lower())
        return default if entry is None else entry.value

    def entry(self, key: str) -> Entry | None:
        return self.entries.get(key.lower())

    def __contains__(self, key: str) -> bool:
        return key.lower() in self.entries


@dataclass(frozen=True, slots=True)
class CfgFile:
    """A parsed file: every physical line, the sections in file order, and the
    problems Python 2 would have raised (never raised here: see `check`)."""

    path: str
    lines: tuple[Line, ...]
    sections: tuple[Section, ...]
    problems: tuple[Finding, ...]
    # `merged()`, computed on first use: params, layers and the catalog all ask for it.
    _merged: dict[str, MergedSection] | None = field(default=None, init=False, repr=False, compare=False)

    def render(self) -> str:
        """The file's text, exactly as read."""
        return "".join(line.text + line.newline for line in self.lines)

    def merged(self) -> dict[str, MergedSection]:
        """Sections by name as `MyConfigParser` saw them: repeated sections
        merged (later keys win), ``[DEFAULT]`` keys applied to every section."""
        if self._merged is None:
            object.__setattr__(self, "_merged", self._merge())
        return dict(self._merged)  # a copy: callers may not change the memo

    def _merge(self) -> dict[str, MergedSection]:
        blocks: dict[str, list[Section]] = {}
        for section in self.sections:
            blocks.setdefault(section.name, []).append(section)
        defaults: dict[str, Entry] = {}
        for section in blocks.pop(DEFAULT_SECTION, []):
            for entry in section.entries:
                defaults[entry.name] = entry
        merged: dict[str, MergedSection] = {}
        for name, parts in blocks.items():
            entries = dict(defaults)
            for part in parts:
                for entry in part.entries:
                    entries[entry.name] = entry
            merged[name] = MergedSection(name, tuple(p.span for p in parts), entries)
        return merged

    def comment_lines(self) -> list[Line]:
        return [line for line in self.lines if line.kind == COMMENT]

    def check(self) -> "CfgFile":
        """Raise the first error as an ArchiveError, as Python 2 would have
        refused the file; return self when there is none (warnings pass)."""
        for problem in self.problems:
            if problem.severity == "error":
                raise problem.as_error()
        return self

    def span(self, line: int) -> SourceSpan:
        return SourceSpan(self.path, line)


def split_lines(text: str) -> list[tuple[str, str]]:
    """Split into (text, line ending) pairs as Python 2's readline did: on
    "\\n" only (a "\\r" before it is kept as part of the ending; any other
    "\\r" stays in the text). The last pair may have ending ""."""
    parts = text.split("\n")
    pairs = [(part[:-1], "\r\n") if part.endswith("\r") else (part, "\n") for part in parts[:-1]]
    if parts[-1]:
        pairs.append((parts[-1], ""))
    return pairs


def _option_value(vi: str, raw_value: str) -> str:
    # Python 2.7: a ';' preceded by whitespace starts an inline comment.
    if ";" in raw_value and vi in ("=", ":"):
        pos = raw_value.find(";")
        if pos != -1 and raw_value[pos - 1].isspace():
            raw_value = raw_value[:pos]
    value = raw_value.strip()
    return "" if value == '""' else value


def parse_cfg(text: str, path: str = "<string>") -> CfgFile:
    """Parse `text` losslessly. Never raises for content; problems are
    collected as findings (rule ``cfg.*``)."""
    lines: list[Line] = []
    sections: list[Section] = []
    problems: list[Finding] = []
    append_line = lines.append

    section_name: str | None = None
    section_line = 0
    entries: list[Entry] = []
    # The open entry: key, separator, line, value parts; its last line.
    open_key: str | None = None
    open_sep = ""
    open_line = 0
    open_parts: list[str] = []
    last_content_line = 0

    def close_entry() -> None:
        nonlocal open_key
        if open_key is not None:
            value = open_parts[0] if len(open_parts) == 1 else "\n".join(open_parts)
            entries.append(Entry(open_key, value, open_sep, path, open_line, last_content_line))
            open_key = None

    def close_section() -> None:
        nonlocal entries
        close_entry()
        if section_name is not None:
            sections.append(Section(section_name, SourceSpan(path, section_line), tuple(entries),
                                    max(last_content_line, section_line)))
        entries = []

    number = 0
    for body, newline in split_lines(text):
        number += 1
        first = body[:1]
        if not body or body.isspace():
            append_line(Line(number, BLANK, body, newline))
            continue
        if first in "#;" or (first in "rR" and body[:3].lower() == "rem" and (len(body) == 3 or body[3].isspace())):
            append_line(Line(number, COMMENT, body, newline))
            continue
        if first.isspace() and open_key is not None:
            open_parts.append(body.strip())
            last_content_line = number
            append_line(Line(number, CONTINUATION, body, newline))
            continue
        if first == "[":
            header = _SECTION_RE.match(body)
            if header:
                close_section()
                section_name = header.group("header")
                section_line = last_content_line = number
                append_line(Line(number, SECTION, body, newline))
                if body[header.end():].strip():
                    problems.append(Finding(SourceSpan(path, number, header.end() + 1), "warning",
                                            "cfg.text-after-section",
                                            f"text after the section header is ignored: {body[header.end():].strip()!r}"))
                continue
            if "]" not in body:
                append_line(Line(number, INVALID, body, newline))
                problems.append(Finding(SourceSpan(path, number), "error", "cfg.unclosed-section",
                                        f"section header without its closing ']': {body!r}"))
                continue
        if section_name is None:
            append_line(Line(number, INVALID, body, newline))
            # Python 2 stopped at the first such line (MissingSectionHeaderError).
            if not any(p.rule == "cfg.missing-section" for p in problems):
                problems.append(Finding(SourceSpan(path, number), "error", "cfg.missing-section",
                                        f"text before the first [section] header: {body!r}"))
            continue
        option = _OPTION_RE.match(body)
        if option:
            close_entry()
            key, vi, raw_value = option.group("option", "vi", "value")
            value = _option_value(vi, raw_value)
            open_key, open_sep, open_line, open_parts = key.rstrip(), vi, number, [value]
            last_content_line = number
            append_line(Line(number, ENTRY, body, newline))
            if "%" in value:
                problems.append(Finding(SourceSpan(path, number), "error", "cfg.interpolation",
                                        f"'%' in the value of {open_key!r}: SafeConfigParser would raise an "
                                        f"interpolation error"))
            continue
        append_line(Line(number, INVALID, body, newline))
        problems.append(Finding(SourceSpan(path, number), "error", "cfg.invalid-line",
                                f"neither a [section], a key=value pair nor a comment: {body!r}"))
    close_section()
    return CfgFile(path, tuple(lines), tuple(sections), tuple(problems))


def read_text(path: Path) -> str:
    """Read a file so that any bytes at all survive a round trip."""
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def read_cfg(path: Path | str, display_path: str | None = None) -> CfgFile:
    """Read and parse a file; `display_path` is the name used in spans and
    errors (by default the path as given)."""
    path = Path(path)
    try:
        text = read_text(path)
    except OSError as error:
        raise ArchiveError(SourceSpan(display_path or str(path), 0), f"cannot read file: {error.strerror}",
                           "io.read") from None
    return parse_cfg(text, display_path or str(path))
