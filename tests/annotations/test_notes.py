"""The curated notes: front matter, rendering, and -- the point of them -- that every anchor
and every cited line is a real place in the release (and, where the original source mirror
is at hand, in the 2012 code)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from annotations.anchors import parse_anchor
from annotations.notes import (NOTES_FOLDER, NoteError, check_notes, load_notes, notes_for, parse_citation,
                               parse_note)

SOURCE_MIRROR = Path("/work/.mirror/computerhistory+AlexNet-Source-Code/repo")


@pytest.fixture(scope="module")
def notes():
    return load_notes()


def test_the_collection_is_large_enough_and_well_formed(notes):
    assert len(notes) >= 25
    assert len({note.slug for note in notes}) == len(notes)
    for note in notes:
        assert note.title and note.anchors and note.body_markdown.strip()
        assert note.sources, f"{note.path}: every note cites its sources"
        assert note.html.strip().startswith("<") and "<script" not in note.html.lower()
        assert note.path.endswith(f"{note.slug}.md")


def test_every_anchor_and_every_cited_release_line_exists(notes, release):
    assert check_notes(notes, release) == []


def test_a_note_pointing_at_a_missing_line_is_caught(release):
    text = "---\ntitle: Bad\nanchor: layers/layer-params-120.cfg:9999\nsources: layers/nope.cfg:3\n---\nText.\n"
    problems = check_notes([parse_note(text, "bad.md")], release)
    assert any("has" in p and "lines" in p for p in problems)
    assert any("no file 'layers/nope.cfg'" in p for p in problems)
    assert all(p.startswith("bad.md: ") for p in problems)


@pytest.mark.skipif(not (SOURCE_MIRROR / "HEAD").exists(), reason="the 2012 source mirror is not here")
def test_every_cited_line_of_the_2012_code_exists(notes):
    counts: dict[str, int | None] = {}
    for note in notes:
        for citation in note.sources:
            if not citation.code:
                continue
            if citation.path not in counts:
                shown = subprocess.run(["git", "-C", str(SOURCE_MIRROR), "show", f"HEAD:{citation.path}"],
                                       capture_output=True)
                counts[citation.path] = len(shown.stdout.split(b"\n")) if shown.returncode == 0 else None
            assert counts[citation.path] is not None, f"{note.path}: no {citation.path} in the 2012 source"
            assert 1 <= citation.line <= counts[citation.path], f"{note.path}: {citation.text}"


def test_required_topics_are_covered(notes):
    anchors = {str(a) for note in notes for a in note.anchors}
    for required in ["120", "110", "112/rnorm1a/size", "131/rnorm1a", "130",
                     "layers/layer-params-129.cfg:315", "layers/layer-params-126-2012-full.cfg:165",
                     "deviceQuery.txt:7", "145/conv1a/filterSize", "120/hs1a", "flickr-102",
                     "cifar-18pct-noisylr", "137-tree", "96-16k", "141-2009"]:
        assert required in anchors, required


def test_logged_numbers_are_in_the_cited_lines(notes, release):
    """Every logged value a note writes with five or more decimals (0.378533), and every code span
    that holds one, occurs verbatim in a release line the note cites."""
    from annotations.anchors import file_lines

    for note in notes:
        cited = " ".join(file_lines(release, c.path)[c.line - 1] for c in note.sources
                         if c.path and not c.code)
        for number in re.findall(r"\d+\.\d{5,}", note.body_markdown):
            assert number in cited, f"{note.path}: {number} is in no cited line"
        for span in re.findall(r"`([^`]+)`", note.body_markdown):
            if re.search(r"\d\.\d{5,}", span):
                assert span in cited, f"{note.path}: `{span}` is in no cited line"


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _seams(lines: list[str]) -> list[str]:
    """"end of one line + start of the next": present in a note only if it quotes across them."""
    squeezed = [_squeeze(line.lstrip("#;")) for line in lines]
    return [f"{a[-12:]} {b[:12]}" for a, b in zip(squeezed, squeezed[1:]) if len(a) >= 12 and len(b) >= 12]


def test_no_note_quotes_across_a_line_of_a_file(notes, release):
    """A quotation may not run from one line of a release file into the next: at most one line
    of the release is ever reproduced."""
    from annotations.anchors import file_lines

    for note in notes:
        body = _squeeze(note.body_markdown)
        for path in {c.path for c in note.sources if c.path and not c.code}:
            for seam in _seams(list(file_lines(release, path))):
                assert seam not in body, f"{note.path} quotes across two lines of {path}: {seam!r}"


def test_the_seam_check_can_fail(release):
    from annotations.anchors import file_lines

    two_lines = list(file_lines(release, "layers/layer-params-127.cfg")[161:163])
    body = _squeeze(" ".join(line.lstrip("#") for line in two_lines))
    assert any(seam in body for seam in _seams(two_lines))


def test_notes_that_interpret_say_so(notes):
    for note in notes:
        if re.search(r"\bour (reading|guess|inference|subtraction|question)\b|\bis ours\b|\bare ours\b",
                     note.body_markdown):
            assert note.interpretation, f"{note.path} interprets but is not flagged"


def test_notes_for_an_experiment(notes, release):
    slugs = {note.slug for note in notes_for("120", notes)}
    assert {"what-is-120", "learning-rates-by-hand", "dropout-is-hidden-sex"} <= slugs
    assert "color-noise" not in slugs  # anchored to lines of #120's file: found only with the archive
    with_lines = {note.slug for note in notes_for("120", notes, release)}
    assert "color-noise" in with_lines
    assert "what-is-120" not in {note.slug for note in notes_for("120-2012", notes)}
    assert [n.slug for n in notes_for("120/conv1a", notes)] == ["learning-rates-by-hand"]
    assert notes_for("deviceQuery.txt:7", notes)[0].slug == "the-machines"


def test_default_load_reads_the_collection_folder(notes):
    assert {p.stem for p in NOTES_FOLDER.glob("*.md")} == {n.slug for n in notes}


def test_to_json_shape(notes):
    data = notes[0].to_json()
    assert set(data) == {"slug", "title", "anchors", "interpretation", "sources", "markdown", "html", "path"}
    assert all(isinstance(a, str) for a in data["anchors"])
    assert set(data["sources"][0]) == {"text", "file", "line", "code"}


# --- front matter --------------------------------------------------------------------------------

def test_front_matter_forms():
    text = ("---\ntitle: \"A: title\"\nanchors:\n  - 120\n  - 120/conv1a/epsW\n"
            "interpretation: yes\nsources: [layers/layer-params-120.cfg:1, paper §5]\n---\n\nBody *here*.\n")
    note = parse_note(text, "x/some-note.md")
    assert note.slug == "some-note" and note.title == "A: title"
    assert [str(a) for a in note.anchors] == ["120", "120/conv1a/epsW"]
    assert note.interpretation is True
    assert [s.text for s in note.sources] == ["layers/layer-params-120.cfg:1", "paper §5"]
    assert "<em>here</em>" in note.html
    comma = parse_note("---\ntitle: T\nanchor: 120, 131/rnorm1a\n---\nx\n", "n.md")
    assert comma.anchors == (parse_anchor("120"), parse_anchor("131/rnorm1a"))
    assert comma.interpretation is False and comma.sources == ()


def test_citations():
    assert parse_citation("layers/layer-params-120.cfg:161").line == 161
    code = parse_citation("code:src/layer.cu:1126")
    assert code.code and code.path == "src/layer.cu" and code.line == 1126
    assert parse_citation("paper §3.3").path is None


@pytest.mark.parametrize("text, line, words", [
    ("title: T\nanchor: 120\n---\nx", 1, "starts with a front matter"),
    ("---\ntitle: T\nanchor: 120\nx", 1, "never closed"),
    ("---\ntitle: T\n---\nx", 1, "no 'anchor'"),
    ("---\nanchor: 120\n---\nx", 1, "no 'title'"),
    ("---\ntitle: T\nanchor: 120\nauthor: me\n---\nx", 4, "unknown field 'author'"),
    ("---\ntitle: T\nanchor: 120\ntitle: U\n---\nx", 4, "given twice"),
    ("---\ntitle: T\nanchor: 120/a b\n---\nx", 3, "not a layer name"),
    ("---\ntitle: T\nanchor: 120\ninterpretation: maybe\n---\nx", 4, "true or false"),
    ("---\ntitle: T\n  - 120\nanchor: 120\n---\nx", 3, "must follow"),
    ("---\ntitle: T\nanchor: [120, 131\n---\nx", 3, "close with"),
    ("---\ntitle: T\nanchor:\n---\nx", 3, "has no value"),
    ("---\ntitle: T\nanchor: 120\njust words\n---\nx", 4, "expected 'key: value'"),
    ("---\ntitle: T\nanchor: 120\n---\n\n", 5, "no text"),
])
def test_malformed_front_matter_names_file_and_line(text, line, words):
    with pytest.raises(NoteError, match=words) as caught:
        parse_note(text, "annotations/notes/broken.md")
    assert str(caught.value).startswith(f"annotations/notes/broken.md:{line}: ")


def test_bad_file_names_are_refused(tmp_path):
    (tmp_path / "Bad Name.md").write_text("---\ntitle: T\nanchor: 120\n---\nx\n", encoding="utf-8")
    with pytest.raises(NoteError, match="lower-case"):
        load_notes(tmp_path)
