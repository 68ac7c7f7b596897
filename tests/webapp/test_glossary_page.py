"""/glossary and /glossary.json: every entry of annotations/glossary.md, grouped by kind, one
anchor per term; and the static export's copy of both."""
from __future__ import annotations

import re

from pagecheck import check_page


def test_glossary_twin_lists_every_entry(client, site):
    response = client.get("/glossary.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    entries = response.json()
    assert isinstance(entries, list) and len(entries) == len(site.glossary)
    for entry in entries:
        assert {"term", "explanation", "origin", "modern_name"} <= entry.keys()
        assert entry["explanation"] and entry["origin"]
    by_term = {entry["term"]: entry for entry in entries}
    # The modern names issue 7 asks for.
    assert by_term["hs"]["modern_name"].lower().startswith("dropout")
    assert "learning rate" in by_term["epsW"]["modern_name"].lower()
    assert "weight decay" in by_term["wc"]["modern_name"].lower()
    assert "local response normalization" in by_term["cmrnorm"]["modern_name"].lower()


def test_glossary_page_has_an_anchor_per_term_grouped_by_kind(client, site):
    page = client.get("/glossary")
    assert page.status_code == 200
    report = check_page(page.text)
    assert not report.all_problems(), report.all_problems()[:10]
    for term in site.glossary:
        assert report.ids.get(term.slug) == 1, term.term
    sections = re.findall(r'<section id="kind-([a-z-]+)" class="glossary-kind">(.*?)</section>', page.text, re.S)
    groups = site.glossary.by_kind()
    assert [kind for kind, _ in sections] == [kind.replace(" ", "-") for kind in groups]
    for (kind, body), terms in zip(sections, groups.values()):
        assert re.findall(r'<dt id="([^"]+)"', body) == [t.slug for t in terms], kind
    assert page.headers["content-security-policy"]


def test_every_layer_type_and_key_of_120_is_linked_to_an_entry_that_exists(client, site):
    glossary_ids = check_page(client.get("/glossary").text).ids
    e = site.archive.experiment("120")
    for layer in e.layers.layers:
        assert site.glossary.lookup(layer.type) is not None, layer.type
    page = client.get("/experiments/120").text
    linked = set(re.findall(r'href="/glossary#([^"]+)"', page))
    assert {site.glossary.lookup(layer.type).slug for layer in e.layers.layers} <= linked
    assert {site.glossary.lookup(key).slug for key in ("epsW", "epsB", "momW", "momB", "wc")} <= linked
    assert linked <= set(glossary_ids)


def test_terms_in_curated_notes_link_to_the_glossary(client):
    notes = re.search(r'<section id="notes" class="notes">(.*?)</section>', client.get("/experiments/120").text,
                      re.S).group(1)
    assert re.search(r'<a class="term" href="/glossary#term-[a-z0-9-]+"', notes)


def test_glossary_is_in_the_static_export(site):
    from webapp.export import planned_pages
    from webapp.links import Links

    plan = dict(planned_pages(site))
    assert "/glossary" in plan and "/glossary.json" in plan
    html = plan["/glossary"](Links(current="/glossary", static=True))
    report = check_page(html)
    assert not report.all_problems()
    assert not [link for _, link in report.links if link.startswith("/")]
    assert 'href="#term-epsw"' in html or 'href="glossary.html#term-epsw"' in html
    experiment = plan["/experiments/120"](Links(current="/experiments/120", static=True))
    assert "../glossary.html#term-conv" in experiment
    assert "/annotate" not in experiment  # the export cannot take notes
