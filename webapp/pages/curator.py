"""/annotate (a visitor's form for a note on one anchor) and /curator (the queue a curator
approves, hides or edits): the data behind those pages. The routes, with their CSRF and
session checks, are in webapp/app.py; the tokens in webapp/auth.py."""
from __future__ import annotations

from annotations.anchors import AnchorError, anchors_for_experiment, resolve

from ..errors import NotFound
from ..site import Site
from .annotations import anchor_page

RECENT = 50          # decided annotations the curator page lists, newest first
PENDING_SHOWN = 200  # the oldest pending ones first: a queue


def place(site: Site, anchor: str) -> dict:
    """Where an anchor lands, for a page that shows it: its page, its file line and that
    line's text. An anchor that no longer resolves is still shown (curators see everything)."""
    try:
        resolved = resolve(anchor, site.archive)
    except AnchorError as error:
        return {"anchor": anchor, "kind": None, "page": None, "file": None, "line": None, "text": "",
                "problem": str(error)}
    canonical = str(resolved.canonical)
    return {"anchor": canonical, "kind": resolved.anchor.kind, "page": anchor_page(resolved.canonical),
            "file": resolved.span.path, "line": resolved.span.line, "text": resolved.text,
            "file_page": f"/files/{resolved.span.path}#L{resolved.span.line}"
            if resolved.span.path in site.readable_files else None, "problem": None}


def key_anchors(site: Site, anchor: str) -> list[str]:
    """For a layer anchor: the key anchors of that layer (so a visitor can pin a note to one key)."""
    try:
        resolved = resolve(anchor, site.archive)
    except AnchorError:
        return []
    target = resolved.canonical
    if target.kind != "layer":
        return []
    experiment = site.archive.experiments[target.experiment]
    keys = {site.canonical_anchor(str(a)) for a in anchors_for_experiment(experiment)
            if a.kind == "key" and a.layer == target.layer}
    return sorted(k for k in keys if k)


def curator_data(site: Site, curator: str) -> dict:
    store = site.annotations
    pending = store.list(status="pending", limit=PENDING_SHOWN, with_history=True)
    decided = sorted(store.list(status="approved") + store.list(status="hidden"), key=lambda a: -a.id)[:RECENT]
    decided = [store.get(a.id, with_history=True) for a in decided]
    return {"curator": curator, "pending_count": len(store.list(status="pending")),
            "pending": [a.to_json() | {"place": place(site, a.anchor)} for a in pending],
            "recent": [a.to_json() | {"place": place(site, a.anchor)} for a in decided]}


def require_store(site: Site):
    if site.annotations is None:
        raise NotFound("This site was started without a database (serve --db), so it takes no notes.")
    return site.annotations
