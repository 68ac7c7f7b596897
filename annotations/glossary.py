"""The glossary of 2012 terms: every layer type, key, neuron, log word, machine and data
set the release uses, explained in plain words, tied to the 2012 code that gave it its
meaning, and given today's name where one exists.

The entries live in ``annotations/glossary.md``, one ``## term`` section each:

    ## epsW
    kind: params key, log term
    aliases: epsw, eps
    modern: learning rate (weights)
    origin: layer.py: WeightLayerParser.add_params; src/weights.cu: Weights::update
    see: epsB, schedW
    link: prose

    Plain-language explanation, one or more paragraphs of Markdown.

Fields: ``kind`` (required; several kinds when one word has several roles in the
release, e.g. ``pool`` is a layer type and a layers-file key), ``origin`` (required),
``modern`` (optional), ``aliases``, ``see``, ``link`` (``prose`` to link the word in
running text, ``code`` to link it only where a note writes it as code; by default
words that look like code -- capitals, digits, dots -- link in prose, plain words only
in code).

`terms_in_archive` lists the terms the loaded release actually contains, so a test can
require an entry for each one.
"""
from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable

from archive.catalog import Archive
from archive.layers import KNOWN_KEYS, parse_neuron
from archive.params import OLD_KEYS, RELEASE_KEYS

GLOSSARY_FILE = Path(__file__).with_name("glossary.md")

# The kinds of term, in the order a glossary page lists them.
KINDS = ("layer type", "layers key", "params key", "neuron", "pool kind", "schedule", "log term",
         "run status", "host", "device", "data set", "concept")
_FIELDS = ("kind", "aliases", "modern", "origin", "see", "link")
_FIELD_RE = re.compile(r"^(?P<name>[a-z]+):\s*(?P<value>.*)$")
_CANONICAL_KEYS = {name.lower(): name for name in (*KNOWN_KEYS, *RELEASE_KEYS, *OLD_KEYS)}


class GlossaryError(ValueError):
    """The glossary file is malformed; the message names file:line."""


@dataclass(frozen=True, slots=True)
class Term:
    term: str
    kind: str                      # the first of `kinds`
    explanation: str               # Markdown
    origin: str                    # where the 2012 code gives it meaning: "file: function; file: class"
    modern_name: str | None
    aliases: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    see: tuple[str, ...] = ()
    link_in_prose: bool = False
    line: int = 0                  # where the entry starts in glossary.md

    @property
    def slug(self) -> str:
        """The HTML id of its entry on the glossary page: "term-cost-logreg"."""
        return term_slug(self.term)

    def names(self) -> tuple[str, ...]:
        return (self.term, *self.aliases)

    def to_json(self) -> dict:
        return {"term": self.term, "explanation": self.explanation, "origin": self.origin,
                "modern_name": self.modern_name, "kind": self.kind, "kinds": list(self.kinds),
                "aliases": list(self.aliases), "see": list(self.see), "id": self.slug}


def term_slug(term: str) -> str:
    return "term-" + (re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-") or "x")


@dataclass(frozen=True, slots=True)
class Glossary:
    terms: tuple[Term, ...]
    _index: dict[str, Term] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Term] = {}
        for term in self.terms:  # terms first, so an alias never hides another entry's own name
            index.setdefault(term.term.lower(), term)
        for term in self.terms:
            for alias in term.aliases:
                index.setdefault(alias.lower(), term)
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.terms)

    def __iter__(self):
        return iter(self.terms)

    def lookup(self, word: str) -> Term | None:
        """The entry for `word` or one of its aliases, ignoring case (as ConfigParser did for keys)."""
        return self._index.get(word.strip().lower())

    def __getitem__(self, word: str) -> Term:
        term = self.lookup(word)
        if term is None:
            raise KeyError(word)
        return term

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.lookup(word) is not None

    def covers(self, kind: str, word: str) -> bool:
        """Whether an entry explains `word` in the role `kind`."""
        term = self.lookup(word)
        return term is not None and kind in term.kinds

    def by_kind(self) -> dict[str, list[Term]]:
        groups: dict[str, list[Term]] = {kind: [] for kind in KINDS}
        for term in self.terms:
            groups.setdefault(term.kind, []).append(term)
        return {kind: sorted(terms, key=lambda t: t.term.lower()) for kind, terms in groups.items() if terms}

    def to_json(self) -> list[dict]:
        return [term.to_json() for term in sorted(self.terms, key=lambda t: (t.term.lower(), t.term))]


# --- Reading glossary.md -------------------------------------------------------------------------

def parse_glossary(text: str, path: str = "glossary.md") -> Glossary:
    lines = text.split("\n")
    terms: list[Term] = []
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        terms.append(_parse_entry(lines, start, end, path))
    seen: dict[str, Term] = {}
    for term in terms:
        for name in term.names():
            other = seen.get(name.lower())
            if other is not None and other is not term:
                raise GlossaryError(f"{path}:{term.line}: {name!r} is already an entry or alias "
                                    f"({path}:{other.line})")
            seen[name.lower()] = term
    return Glossary(tuple(terms))


def _parse_entry(lines: list[str], start: int, end: int, path: str) -> Term:
    line_no = start + 1
    name = lines[start][3:].strip()
    if not name:
        raise GlossaryError(f"{path}:{line_no}: an entry needs a term after '## '")
    fields: dict[str, str] = {}
    i = start + 1
    while i < end and lines[i].strip():
        match = _FIELD_RE.match(lines[i].strip())
        if not match or match.group("name") not in _FIELDS:
            raise GlossaryError(f"{path}:{i + 1}: entry {name!r}: expected a field ({', '.join(_FIELDS)}) "
                                f"before the blank line that starts the explanation, got {lines[i].strip()!r}")
        if match.group("name") in fields:
            raise GlossaryError(f"{path}:{i + 1}: entry {name!r}: field {match.group('name')!r} given twice")
        fields[match.group("name")] = match.group("value").strip()
        i += 1
    explanation = "\n".join(lines[i:end]).strip()
    for required in ("kind", "origin"):
        if not fields.get(required):
            raise GlossaryError(f"{path}:{line_no}: entry {name!r} has no {required!r}")
    if not explanation:
        raise GlossaryError(f"{path}:{line_no}: entry {name!r} has no explanation")
    kinds = _split(fields["kind"])
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise GlossaryError(f"{path}:{line_no}: entry {name!r}: unknown kind {unknown[0]!r} "
                            f"(one of: {', '.join(KINDS)})")
    link = fields.get("link", "")
    if link not in ("", "prose", "code"):
        raise GlossaryError(f"{path}:{line_no}: entry {name!r}: link is 'prose' or 'code', not {link!r}")
    modern = fields.get("modern") or None
    return Term(term=name, kind=kinds[0], explanation=explanation, origin=fields["origin"],
                modern_name=modern, aliases=_split(fields.get("aliases", "")), kinds=kinds,
                see=_split(fields.get("see", "")),
                link_in_prose=link == "prose" if link else _looks_like_code(name), line=line_no)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _looks_like_code(word: str) -> bool:
    """epsW, cost.logreg, guppy9, ILSVRC-2012: safe to link in running text. Plain words
    (data, size, pool, killed) are English too, so they link only inside code."""
    return bool(re.search(r"[^a-z ]", word))


def load_glossary(path: Path | str | None = None) -> Glossary:
    """The glossary (cached for the default file)."""
    if path is None:
        return _default_glossary()
    file = Path(path)
    return parse_glossary(file.read_text(encoding="utf-8"), str(file))


@lru_cache(maxsize=1)
def _default_glossary() -> Glossary:
    return parse_glossary(GLOSSARY_FILE.read_text(encoding="utf-8"), "annotations/glossary.md")


# --- What the release contains ---------------------------------------------------------------------

def terms_in_archive(archive: Archive) -> set[tuple[str, str]]:
    """Every (kind, term) the release uses: layer types, keys of both file kinds (in the
    2012 code's spelling), neurons, pool kinds, schedules, log words (what was changed,
    what became of a run, result words), hosts, GPUs and data sets."""
    found: set[tuple[str, str]] = set()
    for path, cfg in archive.cfg.items():
        file_kind = archive.files[path].kind
        for section in cfg.merged().values():
            for entry in section.entries.values():
                key = _CANONICAL_KEYS.get(entry.name, entry.key)
                found.add(("layers key" if file_kind == "layers" else "params key", key))
            if file_kind != "layers":
                continue
            layer_type = section.get("type")
            if layer_type:
                found.add(("layer type", layer_type.strip()))
            neuron = section.get("neuron")
            if neuron:
                parsed = parse_neuron(neuron.strip())
                found.add(("neuron", parsed[0] if parsed else neuron.strip()))
            pool = section.get("pool")
            if pool:
                found.add(("pool kind", pool.strip()))
    for experiment in archive.experiments.values():
        for params in experiment.params.layers:
            for key in ("schedW", "schedB", "sched"):
                schedule = params.values.get(key)
                kind = getattr(schedule, "kind", None)
                if kind:
                    found.add(("schedule", kind))
        for entry in experiment.logbook.entries:
            found |= _log_terms(entry)
        for run in experiment.logbook.runs:
            found.update(("host", host) for host in run.hosts)
    if archive.machines is not None and archive.machines.device_query is not None:
        found.update(("device", device.name) for device in archive.machines.device_query.devices)
    return found


def _log_terms(entry) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    changes = getattr(entry, "changes", ()) or getattr(entry, "settings", ()) or ()
    for change in changes:
        if change.quantity:
            found.add(("log term", change.quantity))
    if entry.kind == "status":
        found.add(("run status", entry.status.replace("_", " ")))
    if entry.kind == "host":
        found.add(("host", entry.host))
        if entry.now:
            found.add(("host", entry.now))
    if entry.kind == "result":
        if entry.form == "logprob":
            found.add(("log term", "logprob"))
        if entry.multiview:
            found.add(("log term", "multiview"))
    dataset = getattr(entry, "dataset", None)
    if dataset is not None:
        found.add(("data set", dataset.name))
    return found


def missing_terms(glossary: Glossary, archive: Archive) -> list[tuple[str, str]]:
    """(kind, term) pairs of the release that no entry explains in that role."""
    return sorted(pair for pair in terms_in_archive(archive) if not glossary.covers(*pair))


# --- Linking terms in rendered HTML ------------------------------------------------------------------

# Inside these, text is left alone (already a link, or literal/code-like content that
# must not change); <code> is handled on its own: see _TermLinker.
_SKIP = frozenset({"a", "pre", "script", "style", "textarea", "title", "button", "select", "option",
                   "label", "svg", "math", "h1", "h2", "h3", "h4", "h5", "h6"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                   "track", "wbr"})


def link_terms(html: str, href: Callable[[str], str], glossary: Glossary | None = None) -> str:
    """Wrap the first occurrence of each glossary term in `html`'s text with
    ``<a class="term" href=href("/glossary#term-...") title="...">``.

    Only text is touched, never tags or attribute values: the HTML is re-emitted token by
    token (html.parser), text re-escaped. Nothing inside <a>, <pre>, headings, scripts or
    form controls is linked. A <code> element is linked as a whole when its entire text is
    a term (``<code>epsW</code>``); in running text only code-like words and entries marked
    ``link: prose`` are linked, matched case-sensitively on word boundaries."""
    glossary = glossary or load_glossary()
    linker = _TermLinker(glossary, href)
    linker.feed(html)
    linker.close()
    return linker.result()


@lru_cache(maxsize=4)
def _prose_pattern(glossary: Glossary) -> re.Pattern[str] | None:
    words = sorted({name for term in glossary.terms if term.link_in_prose for name in term.names()},
                   key=lambda w: (-len(w), w))
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in words)
    # Not part of a longer word, id or number: "guppy9" must not match inside "guppy99" or "epsW=".
    return re.compile(rf"(?<![\w.\-/#])(?:{alternatives})(?![\w\-]|\.\w)")


class _TermLinker(HTMLParser):
    def __init__(self, glossary: Glossary, href: Callable[[str], str]):
        super().__init__(convert_charrefs=True)
        self.glossary = glossary
        self.href = href
        self.out: list[str] = []
        self.skip_depth = 0
        self.code_depth = 0
        self.code_buffer: list[str] | None = None  # text of a <code> element seen so far
        self.code_start = ""
        self.linked: set[str] = set()
        self.pattern = _prose_pattern(glossary)

    # Tags are copied exactly as written.
    def handle_starttag(self, tag, attrs):
        text = self.get_starttag_text() or ""
        if self.code_buffer is not None:
            self._flush_code()  # markup inside <code>: give up on linking it whole
        if tag == "code" and self.skip_depth == 0 and self.code_depth == 0:
            self.code_depth = 1
            self.code_buffer, self.code_start = [], text
            return
        if tag == "code":
            self.code_depth += 1
        if tag in _SKIP:
            self.skip_depth += 1
        self.out.append(text)

    def handle_startendtag(self, tag, attrs):
        if self.code_buffer is not None:
            self._flush_code()
        self.out.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag):
        if tag == "code" and self.code_depth:
            self.code_depth -= 1
            if self.code_depth == 0 and self.code_buffer is not None:
                self._close_code()
                return
        elif self.code_buffer is not None:
            self._flush_code()
        if tag in _SKIP and self.skip_depth:
            self.skip_depth -= 1
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        if self.code_buffer is not None:
            self.code_buffer.append(data)
        elif self.skip_depth or self.code_depth or self.pattern is None:
            self.out.append(html_lib.escape(data, quote=False))
        else:
            self.out.append(self._link_prose(data))

    def handle_comment(self, data):
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data):
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data):
        self.out.append(f"<![{data}]>")

    def result(self) -> str:
        if self.code_buffer is not None:
            self._flush_code()
        return "".join(self.out)

    # -- helpers
    def _anchor(self, term: Term, shown: str) -> str:
        url = self.href(f"/glossary#{term.slug}")
        title = term.modern_name or term.kind
        return (f'<a class="term" href="{html_lib.escape(url, quote=True)}" '
                f'title="{html_lib.escape(f"{term.term}: {title}", quote=True)}">{shown}</a>')

    def _link_prose(self, data: str) -> str:
        pieces: list[str] = []
        last = 0
        for match in self.pattern.finditer(data):
            term = self.glossary.lookup(match.group(0))
            if term is None or term.term in self.linked:
                continue
            self.linked.add(term.term)
            pieces.append(html_lib.escape(data[last:match.start()], quote=False))
            pieces.append(self._anchor(term, html_lib.escape(match.group(0), quote=False)))
            last = match.end()
        pieces.append(html_lib.escape(data[last:], quote=False))
        return "".join(pieces)

    def _close_code(self) -> None:
        text = "".join(self.code_buffer or [])
        shown = html_lib.escape(text, quote=False)
        term = self.glossary.lookup(text) if text.strip() == text and text else None
        if term is not None and term.term not in self.linked:
            self.linked.add(term.term)
            shown = self._anchor(term, shown)
        self.out.append(f"{self.code_start}{shown}</code>")
        self.code_buffer = None

    def _flush_code(self) -> None:
        """Emit a <code> opened earlier without linking it (markup inside it)."""
        self.out.append(self.code_start + html_lib.escape("".join(self.code_buffer or []), quote=False))
        self.code_buffer = None


def glossary_json(glossary: Glossary | None = None) -> list[dict]:
    """The whole glossary as JSON, sorted by term: stable for a given glossary.md."""
    return (glossary or load_glossary()).to_json()


def terms_named(glossary: Glossary, words: Iterable[str]) -> list[Term]:
    """The entries for `words` that exist, in order, without repeats."""
    seen: dict[str, Term] = {}
    for word in words:
        term = glossary.lookup(word)
        if term is not None:
            seen.setdefault(term.term, term)
    return list(seen.values())
