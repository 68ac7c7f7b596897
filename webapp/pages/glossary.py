"""/glossary: every 2012 term of the release (annotations/glossary.md), grouped by kind, one
anchor (#term-...) per entry, so that any page can link a word it prints to its explanation."""
from __future__ import annotations

from markupsafe import Markup

from ..links import Links
from ..site import Site


def glossary_data(site: Site) -> list[dict]:
    """The JSON twin: an array of entries {term, explanation, origin, modern_name, kind, ...}."""
    from annotations.glossary import glossary_json

    return glossary_json(site.glossary)


def glossary_view(site: Site, links: Links) -> dict:
    from annotations.glossary import KINDS, link_terms
    from annotations.markdown import render_curated

    glossary = site.glossary
    groups = []
    for kind, terms in glossary.by_kind().items():
        entries = []
        for term in terms:
            # The explanation is curated Markdown (raw HTML off); links to other entries added.
            html = link_terms(render_curated(term.explanation), links.href, glossary)
            see = []
            for word in term.see:
                other = glossary.lookup(word)
                see.append({"word": word, "href": f"/glossary#{other.slug}" if other else None})
            entries.append({"term": term.term, "slug": term.slug, "kinds": list(term.kinds),
                            "aliases": list(term.aliases), "modern_name": term.modern_name,
                            "origin": term.origin, "html": Markup(html), "see": see})
        plural = kind[:-2] + "uses" if kind.endswith("us") else kind + "s"  # "run statuses"
        groups.append({"kind": kind, "plural": plural, "id": "kind-" + kind.replace(" ", "-"), "entries": entries})
    order = {kind: i for i, kind in enumerate(KINDS)}
    groups.sort(key=lambda g: order.get(g["kind"], len(order)))
    return {"title": "Glossary", "groups": groups, "count": len(glossary)}
