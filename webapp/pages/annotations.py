"""Notes in the margin: curated museum notes (annotations/notes/*.md) and approved visitor or
curator annotations (the site's database), gathered for a page by where they are pinned.

A page asks for the notes of one experiment (or of several, for a comparison) and gets
them grouped by place: the experiment itself (its notes section), each layer (the layer
table's margin; a key's notes go beside its layer, labelled with the key), and each line
of a file the page shows. Only *approved* annotations ever reach these functions'
results: pending and hidden ones are for curators (webapp/pages/curator.py).

HTML: a note's or annotation's HTML comes from annotations/markdown.py (raw HTML off,
links made safe) and then only gets glossary links added (annotations.glossary.link_terms,
which re-emits tags as they were and re-escapes text). That is the one place markup from
a note is marked safe for the templates.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from markupsafe import Markup

from annotations.anchors import Anchor, AnchorError, parse_anchor

from ..links import Links
from ..site import Site


@dataclass
class Margins:
    """What one page shows in its margins, each list oldest first (notes before annotations)."""

    experiment: dict[str, list[dict]] = field(default_factory=dict)   # experiment id -> items
    layers: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # (id, layer) -> items
    lines: dict[str, dict[int, list[dict]]] = field(default_factory=dict)   # path -> line -> items
    notes: list = field(default_factory=list)          # annotations.notes.Note, for the JSON twin
    annotations: list = field(default_factory=list)    # approved annotations.store.Annotation

    def for_experiment(self, eid: str) -> list[dict]:
        return self.experiment.get(eid, [])

    def for_layer(self, eid: str, layer: str) -> list[dict]:
        return self.layers.get((eid, layer), [])

    def for_line(self, path: str, line: int) -> list[dict]:
        return self.lines.get(path, {}).get(line, [])

    def lines_of(self, path: str) -> dict[int, list[dict]]:
        return self.lines.get(path, {})

    def layer_groups(self, ids: list[str]) -> list[tuple[str, str, list[dict]]]:
        """(experiment, layer, items) in the order of `ids`, then of first appearance."""
        return [(eid, layer, items) for eid in ids for (owner, layer), items in self.layers.items() if owner == eid]

    def count(self) -> int:
        return (sum(map(len, self.experiment.values())) + sum(map(len, self.layers.values()))
                + sum(len(items) for lines in self.lines.values() for items in lines.values()))

    def twin(self) -> dict:
        return {"notes": [note.to_json() for note in self.notes],
                "annotations": [annotation.to_json() for annotation in self.annotations]}


def canonical_anchor(site: Site, text: str) -> Anchor | None:
    canonical = site.canonical_anchor(text)
    return parse_anchor(canonical) if canonical is not None else None


def _note_anchors(site: Site) -> list[tuple[object, tuple[Anchor, ...]]]:
    """Each curated note with its anchors in canonical spelling (computed once per site)."""
    cached = site.__dict__.get("_note_anchors")
    if cached is None:
        cached = []
        for note in site.notes:
            anchors = tuple(a for a in (canonical_anchor(site, str(anchor)) for anchor in note.anchors) if a)
            cached.append((note, anchors))
        site.__dict__["_note_anchors"] = cached
    return cached


def margins(site: Site, experiment_ids: Iterable[str], files: Iterable[str], links: Links) -> Margins:
    """The notes and approved annotations pinned to these experiments (themselves, their layers
    and keys) and to lines of these files."""
    ids = list(dict.fromkeys(experiment_ids))
    paths = list(dict.fromkeys(files))
    found = Margins()

    def lands(anchor: Anchor) -> bool:
        return anchor.path in paths if anchor.kind == "line" else anchor.experiment in ids

    def place(anchor: Anchor, item: dict) -> None:
        if anchor.kind == "line":
            found.lines.setdefault(anchor.path, {}).setdefault(anchor.line, []).append(
                item | {"label": f"line {anchor.line}"})
        elif anchor.kind == "experiment":
            found.experiment.setdefault(anchor.experiment, []).append(item | {"label": ""})
        else:
            found.layers.setdefault((anchor.experiment, anchor.layer), []).append(
                item | {"label": anchor.key or ""})

    for note, anchors in _note_anchors(site):
        here = [anchor for anchor in anchors if lands(anchor)]
        if here:  # rendered (glossary links added) only when the page shows it
            item = note_item(site, note, links)
            for anchor in here:
                place(anchor, item)
            found.notes.append(note)

    if site.annotations is not None:
        approved = []
        for eid in ids:
            approved += site.annotations.list(status="approved", prefix=eid)
        for path in paths:
            approved += site.annotations.list(status="approved", prefix=path)
        seen: set[int] = set()
        for annotation in sorted(approved, key=lambda a: a.id):
            if annotation.id in seen:
                continue
            seen.add(annotation.id)
            try:
                anchor = parse_anchor(annotation.anchor)
            except AnchorError:
                continue  # stored before a rename of the release; the curator page still lists it
            if lands(anchor):
                place(anchor, annotation_item(site, annotation, links))
                found.annotations.append(annotation)
    return found


def experiment_margins(site: Site, experiment, links: Links) -> Margins:
    files = [path for path in (experiment.params_file, experiment.layers_file) if path]
    return margins(site, [experiment.id], files, links)


# --- items as the templates show them ---------------------------------------------------------

def with_terms(site: Site, html: str, links: Links) -> Markup:
    """Rendered note HTML with glossary links added, marked safe for the templates. Only call
    this with the output of annotations/markdown.py's renderers."""
    from annotations.glossary import link_terms

    return Markup(link_terms(html, links.href, site.glossary))


def note_item(site: Site, note, links: Links) -> dict:
    sources = []
    for citation in note.sources:
        target = None
        if citation.path and not citation.code and citation.path in site.readable_files:
            target = f"/files/{citation.path}#L{citation.line}"
        sources.append({"text": citation.text, "href": target})
    return {"kind": "note", "id": None, "label": "", "slug": note.slug, "title": note.title,
            "interpretation": note.interpretation, "html": with_terms(site, note.html, links),
            "sources": sources, "author": None, "role": "curator", "created": None}


def annotation_item(site: Site, annotation, links: Links) -> dict:
    return {"kind": "annotation", "id": f"annotation-{annotation.id}", "label": "", "slug": None, "title": None,
            "interpretation": False, "html": with_terms(site, annotation.html, links), "sources": [],
            "author": annotation.author, "role": annotation.role, "created": annotation.created}


# --- where an anchor is shown ------------------------------------------------------------------

def anchor_page(anchor: Anchor | str) -> str:
    """The site path (with fragment) where notes on `anchor` are shown."""
    if isinstance(anchor, str):
        anchor = parse_anchor(anchor)
    if anchor.kind == "line":
        return f"/files/{anchor.path}#L{anchor.line}"
    if anchor.kind == "experiment":
        return f"/experiments/{anchor.experiment}#notes"
    return f"/experiments/{anchor.experiment}#layer-{anchor.layer}"


def annotate_path(anchor: str) -> str:
    """The visitor's form for a note on `anchor` (anchors use only URL-safe characters)."""
    return "/annotate?anchor=" + anchor


def can_annotate(site: Site, links: Links) -> bool:
    """Whether pages offer "Add a note": the live site with a database (the static export cannot take posts)."""
    return site.annotations is not None and not links.static


def anchor_ok(text: str) -> bool:
    try:
        parse_anchor(text)
        return True
    except AnchorError:
        return False


def term_path(site: Site, word: str | None) -> str | None:
    """"/glossary#term-conv" for a word the glossary explains, else None (for table cells)."""
    if not word:
        return None
    term = site.glossary.lookup(word.split("[", 1)[0])
    return f"/glossary#{term.slug}" if term is not None else None
