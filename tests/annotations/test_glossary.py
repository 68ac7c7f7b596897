"""The glossary: complete for the real release, every entry explained and tied to the 2012 code,
stable JSON, and safe linking of terms in rendered HTML."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from annotations.glossary import (GLOSSARY_FILE, KINDS, GlossaryError, glossary_json, link_terms, load_glossary,
                                  missing_terms, parse_glossary, term_slug, terms_in_archive)

SOURCE_MIRROR = Path("/work/.mirror/computerhistory+AlexNet-Source-Code/repo")


@pytest.fixture(scope="module")
def glossary():
    return load_glossary()


def href(path: str) -> str:
    return "/museum" + path


def test_every_term_of_the_release_is_explained(glossary, release):
    assert missing_terms(glossary, release) == []


def test_removing_an_entry_makes_the_completeness_check_fail(release):
    text = GLOSSARY_FILE.read_text(encoding="utf-8")
    start = text.index("\n## cmrnorm\n")
    end = text.index("\n## ", start + 1)
    without = parse_glossary(text[:start] + text[end:])
    assert ("layer type", "cmrnorm") in missing_terms(without, release)


def test_terms_in_archive_reads_the_real_release(release):
    terms = terms_in_archive(release)
    kinds = {kind for kind, _ in terms}
    assert kinds <= set(KINDS)
    # Checked against the files: 20 layer types are used, 31 keys occur in layers-*.cfg, 21 in
    # layer-params-*.cfg (the old `sched` and `wcnorm` included).
    assert len({t for k, t in terms if k == "layer type"}) == 20
    assert len({t for k, t in terms if k == "layers key"}) == 31
    assert len({t for k, t in terms if k == "params key"}) == 21
    for expected in [("layer type", "cmrnorm"), ("layer type", "hs"), ("layers key", "partialSum"),
                     ("params key", "epsW"), ("params key", "sched"), ("neuron", "relu"), ("pool kind", "rand"),
                     ("schedule", "jdexp"), ("log term", "color noise"), ("log term", "epsw"),
                     ("run status", "killed"), ("host", "guppy9"), ("host", "krunch"), ("device", "Tesla S2050"),
                     ("data set", "ILSVRC-2012")]:
        assert expected in terms, expected


def test_entries_are_complete(glossary):
    assert len(glossary) >= 100
    slugs = [term.slug for term in glossary]
    assert len(set(slugs)) == len(slugs)
    for term in glossary:
        assert term.explanation.strip() and term.origin.strip(), term.term
        assert term.kinds and term.kind == term.kinds[0] and set(term.kinds) <= set(KINDS)


def test_lookup_ignores_case_and_knows_aliases(glossary):
    assert glossary.lookup("EPSW").term == "epsW"
    assert glossary["epsw"] is glossary["epsW"]
    assert glossary.lookup("dropout").term == "hs"
    assert glossary.lookup("colour noise").term == "color noise"
    assert glossary.lookup("fade prob").term == "fade-in"
    assert glossary.lookup("no such term") is None
    assert "cost.logreg" in glossary


@pytest.mark.parametrize("term, modern", [
    ("hs", "dropout"), ("cmrnorm", "local response normalization"), ("epsW", "learning rate"),
    ("wc", "weight decay"), ("relu", "ReLU"), ("fc", "fully connected"),
])
def test_modern_names(glossary, term, modern):
    assert modern.lower() in (glossary[term].modern_name or "").lower()


def test_json_shape_and_stability(glossary):
    data = glossary_json(glossary)
    assert {"term", "explanation", "origin", "modern_name"} <= set(data[0])
    assert [entry["term"].lower() for entry in data] == sorted(entry["term"].lower() for entry in data)
    assert json.dumps(data, sort_keys=True) == json.dumps(glossary_json(load_glossary(GLOSSARY_FILE)), sort_keys=True)
    assert next(e for e in data if e["term"] == "cost.logreg")["id"] == term_slug("cost.logreg") == "term-cost-logreg"


@pytest.mark.skipif(not (SOURCE_MIRROR / "HEAD").exists(), reason="the 2012 source mirror is not here")
def test_origins_name_real_classes_and_functions(glossary):
    """Each "layer.py: Name" / "src/x.cu: Class::method" in an origin exists in that 2012 file."""
    sources: dict[str, str] = {}
    for term in glossary:
        for part in term.origin.split(";"):
            match = re.match(r"\s*([\w./]+\.(?:py|cu|cuh)): (.+)", part)
            if not match:
                continue
            path, names = match.groups()
            if path not in sources:
                shown = subprocess.run(["git", "-C", str(SOURCE_MIRROR), "show", f"HEAD:{path}"],
                                       capture_output=True, text=True, errors="replace")
                assert shown.returncode == 0, f"{term.term}: no {path} in the 2012 source"
                sources[path] = shown.stdout
            for name in re.findall(r"[A-Za-z_][\w]*(?:::\w+|\.\w+)?", names.split("(")[0]):
                last = re.split(r"::|\.", name)[-1]
                if last in ("only", "the", "table", "option", "default", "commented", "out", "in", "released",
                            "version", "one", "per", "worker", "thread", "GPU", "CROSSMAP_RESPONSE_NORM",
                            "RESPONSE_NORM", "CONTRAST_NORM", "wballNormed", "progress", "epoch", "epochs",
                            "tgtFactor", "num_views", "layer_parsers", "neuron_parsers", "lrs_parsers",
                            "quant_parsers"):
                    continue
                assert last in sources[path], f"{term.term}: {last!r} not in {path}"


# --- link_terms ------------------------------------------------------------------------------------

def test_links_the_first_occurrence_only(glossary):
    html = "<p>epsW was lowered, then epsW again; cmrnorm and relu too.</p>"
    out = link_terms(html, href, glossary)
    assert out.count('class="term"') == 3
    assert out.startswith('<p><a class="term" href="/museum/glossary#term-epsw" title="epsW: ')
    assert out.endswith(" again; <a class=\"term\" href=\"/museum/glossary#term-cmrnorm\" title=\"cmrnorm: "
                        "local response normalization (LRN) across channels\">cmrnorm</a> and "
                        "<a class=\"term\" href=\"/museum/glossary#term-relu\" title=\"relu: ReLU\">relu</a> too.</p>")


def test_plain_words_link_only_as_code(glossary):
    out = link_terms("<p>the data was killed</p><p><code>data</code></p>", href, glossary)
    assert out.startswith("<p>the data was killed</p>")
    assert '<code><a class="term" href="/museum/glossary#term-data"' in out


def test_code_is_linked_only_when_it_is_exactly_a_term(glossary):
    out = link_terms("<p><code>epsW=0.01</code> <code>partialSum</code></p>", href, glossary)
    assert "<code>epsW=0.01</code>" in out
    assert '<code><a class="term" href="/museum/glossary#term-partialsum"' in out


def test_no_links_inside_links_headings_or_pre(glossary):
    html = ('<h2>epsW</h2><p><a href="/x">epsW here</a></p><pre><code>epsW</code></pre>'
            '<p>now epsW</p>')
    out = link_terms(html, href, glossary)
    assert out.count('class="term"') == 1
    assert out.endswith('<p>now <a class="term" href="/museum/glossary#term-epsw" title="epsW: '
                        'learning rate (weights)">epsW</a></p>')


def test_attributes_and_escapes_are_left_alone(glossary):
    html = ('<p title="epsW &quot;x&quot;"><img alt="cmrnorm" src="a.png"> '
            '&lt;script&gt;epsW&lt;/script&gt; &amp; guppy9</p><!-- relu -->')
    out = link_terms(html, href, glossary)
    assert out.startswith('<p title="epsW &quot;x&quot;"><img alt="cmrnorm" src="a.png"> &lt;script&gt;')
    assert "<script" not in out
    assert "&amp; " in out and "<!-- relu -->" in out
    assert 'href="/museum/glossary#term-guppy9"' in out


def test_word_boundaries(glossary):
    out = link_terms("<p>guppy99, epsWx, cost.logregs, x.epsW and #relu stay plain</p>", href, glossary)
    assert 'class="term"' not in out


def test_unchanged_html_round_trips(glossary):
    html = '<div class="a"><p>Nothing to see <em>here</em>.<br>Line</p></div>'
    assert link_terms(html, href, glossary) == html


# --- glossary.md errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, words", [
    ("## x\norigin: o\n\nText", 1, "no 'kind'"),
    ("## x\nkind: layer type\n\nText", 1, "no 'origin'"),
    ("## x\nkind: layer type\norigin: o\n", 1, "no explanation"),
    ("## x\nkind: nonsense\norigin: o\n\nText", 1, "unknown kind"),
    ("## x\nkind: layer type\norigin: o\ncolour: red\n\nText", 4, "expected a field"),
    ("## x\nkind: layer type\nkind: neuron\norigin: o\n\nText", 3, "given twice"),
    ("## x\nkind: layer type\norigin: o\n\nA\n## X\nkind: neuron\norigin: o\n\nB", 6, "already an entry"),
    ("## \nkind: layer type\n", 1, "needs a term"),
])
def test_malformed_glossary_names_the_line(text, line, words):
    with pytest.raises(GlossaryError, match=words) as caught:
        parse_glossary(text, "g.md")
    assert str(caught.value).startswith(f"g.md:{line}: ")
