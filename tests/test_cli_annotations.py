"""Issue 7 on the command line: `glossary`, `curator`, `annotations`, and the notes and
annotations that `show` and `log` print beside what they annotate. Real release, real
SQLite files in tmp_path."""
from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys

import pytest

from annotations.accounts import verify_curator
from annotations.glossary import load_glossary
from annotations.store import AnnotationStore
from webapp import cli
from webapp.cli import main

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _env(monkeypatch, archive_root, release, tmp_path):
    monkeypatch.setenv("ALEXNET_ARCHIVE", str(archive_root))
    monkeypatch.setenv("ALEXNET_ARCHIVE_DB", str(tmp_path / "site.sqlite"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(cli, "_load", lambda args: release)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "site.sqlite"


@pytest.fixture
def seeded(db):
    """Three annotations on #120: approved (curator, on a layer), pending (visitor, on the
    experiment), approved after an edit (visitor, on log line 167 of the params file)."""
    with AnnotationStore(db) as store:
        approved = store.add("120/conv1a", "Curators' *remark*: see [the paper](https://example.org/paper).",
                             author="ada", role="curator")
        pending = store.add("120", "A visitor's note still waiting", author="vis", role="visitor")
        on_line = store.add("layers/layer-params-120.cfg:167", "The first drop by hand", author="bea",
                            role="visitor")
        store.set_status(on_line.id, "approved", actor="ada")
        store.edit(on_line.id, "The first drop by hand, at epoch 26", editor="ada")
    return {"approved": approved.id, "pending": pending.id, "on_line": on_line.id}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- glossary --------------------------------------------------------------------------------

def test_glossary_lists_every_entry_by_kind(capsys):
    glossary = load_glossary()
    code, out, _ = run(capsys, "glossary")
    assert code == 0
    assert out.startswith(f"glossary of the 2012 code: {len(glossary)} terms")
    entries = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(entries) == len(glossary)
    assert "  hs — dropout — \"Hidden sex\", the code's name for dropout." in entries
    assert "  epsW — learning rate (weights) — The learning rate of a layer's weights, one value per input." in entries
    headings = [line for line in out.splitlines()[1:] if line and not line.startswith(" ")]
    assert headings[:2] == ["layer type", "layers key"]
    # grouped: every layer type is listed under "layer type"
    layer_types = out.split("\nlayer type\n", 1)[1].split("\n\n", 1)[0]
    assert "  conv — convolution (Conv2d)" in layer_types and "  cmrnorm — " in layer_types


def test_glossary_one_term_in_full(capsys):
    code, out, _ = run(capsys, "glossary", "hs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "hs  (layer type, log term)"
    assert "  modern name  dropout" in lines
    assert any(line.startswith("  origin       layer.py: HiddenSexLayerParser") for line in lines)
    assert any(line.startswith("  aliases      ") and "dropout" in line for line in lines)
    assert "keep" in out.split("\n\n", 1)[1]  # the explanation, as plain text
    # Lookup ignores case and knows aliases, as ConfigParser ignored the case of keys.
    assert run(capsys, "glossary", "EPSW")[1].startswith("epsW  (")
    assert run(capsys, "glossary", "dropout")[1].startswith("hs  (")


def test_glossary_unknown_term_suggests(capsys):
    code, out, err = run(capsys, "glossary", "epsv")
    assert code == 2 and out == ""
    assert err.startswith("alexnet-archive: no glossary entry for 'epsv' (did you mean ") and "epsW" in err
    code, _, err = run(capsys, "glossary", "zzzzzz")
    assert code == 2 and "`alexnet-archive glossary` lists them all" in err


def test_glossary_json(capsys):
    code, out, _ = run(capsys, "glossary", "--json")
    entries = json.loads(out)
    assert code == 0 and len(entries) == len(load_glossary())
    assert all({"term", "explanation", "origin", "modern_name", "kind", "aliases"} <= set(e) for e in entries)
    by_term = {e["term"]: e for e in entries}
    assert by_term["hs"]["modern_name"] == "dropout"
    assert by_term["wc"]["modern_name"].startswith("weight decay")
    assert by_term["cmrnorm"]["modern_name"].startswith("local response normalization")
    code, out, _ = run(capsys, "glossary", "epsw", "--json")
    one = json.loads(out)
    assert code == 0 and one == by_term["epsW"] and one["modern_name"] == "learning rate (weights)"


# --- curators --------------------------------------------------------------------------------

def test_curator_add_from_stdin_then_login_works(capsys, monkeypatch, db):
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\nignored second line\n"))
    code, out, err = run(capsys, "curator", "add", "ada", "--password-stdin")
    assert (code, err) == (0, "") and out == f"added curator ada in {db}\n"
    with AnnotationStore(db) as store:
        assert verify_curator(store, "ada", PASSWORD)
        assert not verify_curator(store, "ada", PASSWORD + "!")
        assert not verify_curator(store, "ada", "ignored second line")
    code, out, _ = run(capsys, "curator", "list")
    assert code == 0 and out.splitlines()[2].startswith("ada ") and "1 curator in" in out
    code, out, _ = run(capsys, "curator", "list", "--json")
    [listed] = json.loads(out)
    assert set(listed) == {"name", "created"} and listed["name"] == "ada"  # never the hash or the salt


def test_curator_errors_exit_2(capsys, monkeypatch, db):
    code, _, err = run(capsys, "curator", "list")
    assert code == 2 and f"no site database at {db}" in err and not db.exists()
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, _, err = run(capsys, "curator", "add", "ada")  # stdin is not a terminal: read from it
    assert code == 2 and "password: is shorter than 10 characters" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "curator", "add", "ada")
    assert code == 2 and "no password given" in err
    code, _, err = run(capsys, "curator", "add", "no spaces please")
    assert code == 2 and "a curator name is 1-40 letters" in err
    code, _, err = run(capsys, "curator", "add")
    assert code == 2 and "needs a NAME" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(capsys, "curator", "add", "ada")[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, _, err = run(capsys, "curator", "add", "ada")
    assert code == 2 and "curator 'ada' exists already" in err and "--replace" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("a brand new password\n"))
    code, out, _ = run(capsys, "curator", "add", "ada", "--replace")
    assert code == 0 and out.startswith("new password for curator ada")
    with AnnotationStore(db) as store:
        assert verify_curator(store, "ada", "a brand new password") and not verify_curator(store, "ada", PASSWORD)


def test_curator_add_asks_twice_on_a_terminal(capsys, monkeypatch, db):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    answers = iter([PASSWORD, PASSWORD + "typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = run(capsys, "curator", "add", "ada")
    assert code == 2 and "the two passwords differ" in err
    with AnnotationStore(db) as store:
        assert store.curator("ada") is None
    answers = iter([PASSWORD, PASSWORD])
    assert run(capsys, "curator", "add", "ada")[0] == 0
    with AnnotationStore(db) as store:
        assert verify_curator(store, "ada", PASSWORD)


# --- annotations list / export / import ------------------------------------------------------

def test_annotations_list_and_filters(capsys, seeded, db):
    code, out, _ = run(capsys, "annotations", "list")
    assert code == 0 and out.rstrip().endswith(f"3 annotations in {db}")
    rows = out.splitlines()[2:5]
    assert [row.split()[:4] for row in rows] == [[str(seeded["approved"]), "approved", "curator", "ada"],
                                                  [str(seeded["pending"]), "pending", "visitor", "vis"],
                                                  [str(seeded["on_line"]), "approved", "visitor", "bea"]]
    code, out, _ = run(capsys, "annotations", "list", "--status", "pending", "--json")
    assert [a["id"] for a in json.loads(out)] == [seeded["pending"]]
    code, out, _ = run(capsys, "annotations", "list", "--anchor", "120", "--json")
    assert [a["id"] for a in json.loads(out)] == [seeded["approved"], seeded["pending"]]
    code, out, _ = run(capsys, "annotations", "list", "--anchor", "layers/layer-params-120.cfg", "--json")
    [on_line] = json.loads(out)
    assert on_line["body"] == "The first drop by hand, at epoch 26" and on_line["edited"]
    with pytest.raises(SystemExit) as exit_:  # argparse refuses it, exit status 2
        main(["annotations", "list", "--status", "deleted"])
    assert exit_.value.code == 2 and "invalid choice: 'deleted'" in capsys.readouterr().err


def test_export_import_export_is_identical(capsys, seeded, db, tmp_path):
    exported = tmp_path / "annotations.jsonl"
    code, out, err = run(capsys, "annotations", "export", str(exported))
    assert code == 0 and out == "" and err == f"exported 3 annotations from {db} to {exported}\n"
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and len(json.loads(lines[2])["revisions"]) == 2  # the edit kept its history
    other = tmp_path / "other.sqlite"
    code, out, _ = run(capsys, "annotations", "import", str(exported), "--db", str(other))
    assert code == 0 and out.endswith(": 3 added, 0 extended, 0 unchanged\n")
    code, out, _ = run(capsys, "annotations", "import", str(exported), "--db", str(other), "--json")
    assert code == 0 and json.loads(out) == {"added": 0, "extended": 0, "unchanged": 3, "db": str(other)}
    code, out, _ = run(capsys, "annotations", "export", "-", "--db", str(other))
    assert code == 0 and out == exported.read_text(encoding="utf-8")


def test_import_names_the_bad_line_and_writes_nothing(capsys, seeded, tmp_path):
    source = tmp_path / "annotations.jsonl"
    assert run(capsys, "annotations", "export", str(source))[0] == 0
    good = source.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good[0] + "\n{not json\n" + good[1] + "\n", encoding="utf-8")
    other = tmp_path / "other.sqlite"
    code, out, err = run(capsys, "annotations", "import", str(broken), "--db", str(other))
    assert code == 2 and out == "" and err.startswith(f"alexnet-archive: {broken}: line 2: not JSON")
    with AnnotationStore(other) as store:
        assert store.count() == 0  # all or nothing
    code, _, err = run(capsys, "annotations", "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "annotations", "import")
    assert code == 2 and "needs a FILE" in err


def test_export_without_a_database_is_an_error_and_creates_none(capsys, db):
    code, out, err = run(capsys, "annotations", "export")
    assert code == 2 and out == "" and "no site database" in err and not db.exists()


# --- show and log ----------------------------------------------------------------------------

def test_show_prints_notes_and_approved_annotations(capsys, seeded):
    code, out, _ = run(capsys, "show", "120")
    assert code == 0
    notes = out.split("\nnotes\n", 1)[1].split("\nannotations\n", 1)[0]
    assert "  What #120 is, and why it matters  (interpretation)" in notes
    assert "    ▸ #120, the experiment as a whole" in notes
    assert "    ▸ layers/layer-params-120.cfg:161  # this is like #106" in notes
    assert "    Experiment #120 is a two-column ImageNet net from July 2012." in notes  # Markdown as text
    assert "    ▸ 120/hs1a  →  layers/layers-120.cfg:270  [hs1a]" in notes
    annotations = out.split("\nannotations\n", 1)[1].split("\nterms", 1)[0]
    assert "  #1 by ada (curator), " in annotations
    assert "    ▸ 120/conv1a  →  layers/layers-120.cfg:23  [conv1a]" in annotations
    assert "    Curators' remark: see the paper <https://example.org/paper>." in annotations
    assert ", edited " in annotations and "The first drop by hand, at epoch 26" in annotations
    assert "waiting" not in out  # pending: not shown
    # In the log, beside the line they are pinned to.
    log = out.split("\nlog\n", 1)[1]
    at_167 = log.split("\n     167  ", 1)[1].splitlines()
    assert at_167[1].strip() == "▸ note: Learning rates lowered by hand, and conv1 frozen"
    assert at_167[2].strip() == f"▸ annotation #{seeded['on_line']} by bea"


def test_show_terms_footer(capsys, monkeypatch):
    _, out, _ = run(capsys, "show", "120")
    terms = out.split("\nterms  (alexnet-archive glossary TERM for the whole entry)\n", 1)[1].splitlines()
    assert "  hs — dropout — \"Hidden sex\", the code's name for dropout." in terms
    assert "  epsW — learning rate (weights) — The learning rate of a layer's weights, one value per input." in terms
    assert any(line.startswith("  cmrnorm — local response normalization") for line in terms)
    assert any(line.startswith("  wc — weight decay") for line in terms)
    assert not any(line.startswith(("  treefc ", "  local ")) for line in terms)  # not in #120
    assert "\x1b]8" not in out
    # OSC 8 links only with --site-url and only on a terminal.
    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: True)
    code, out, _ = run(capsys, "show", "120", "--site-url", "http://127.0.0.1:8000/")
    assert code == 0
    assert "  \x1b]8;;http://127.0.0.1:8000/glossary#term-hs\x1b\\hs\x1b]8;;\x1b\\ — dropout" in out
    assert "\x1b]8" not in run(capsys, "show", "120")[1]


def test_show_json_carries_notes_and_annotations(capsys, seeded):
    code, out, _ = run(capsys, "show", "120", "--json")
    data = json.loads(out)
    assert code == 0 and data["id"] == "120"
    note = next(n for n in data["notes"] if n["slug"] == "what-is-120")
    assert note["anchors"] == ["120", "layers/layer-params-120.cfg:161"] and note["markdown"] and note["html"]
    assert [r["line"] for r in note["resolved"]] == [1, 161]
    assert [a["id"] for a in data["annotations"]] == [seeded["approved"], seeded["on_line"]]
    assert data["annotations"][0]["resolved"][0]["file"] == "layers/layers-120.cfg"
    code, out, _ = run(capsys, "log", "120", "--json")
    data = json.loads(out)
    assert data["entries"] and {n["slug"] for n in data["notes"]} >= {"what-is-120", "learning-rates-by-hand"}
    assert [a["id"] for a in data["annotations"]] == [seeded["approved"], seeded["on_line"]]


def test_log_prints_its_notes(capsys, seeded):
    code, out, _ = run(capsys, "log", "120")
    assert code == 0 and out.startswith("log of 120 (layers/layer-params-120.cfg)")
    assert "▸ note: What #120 is, and why it matters" in out.split("\nnotes\n")[0]
    assert "\nnotes\n" in out and "\nannotations\n" in out and "waiting" not in out


def test_show_never_creates_or_changes_a_database(capsys, db, tmp_path):
    code, out, _ = run(capsys, "show", "120")
    assert code == 0 and "\nnotes\n" in out and "\nannotations\n" not in out and not db.exists()
    # A database that holds only replays gets no annotations tables from `show`.
    replays = tmp_path / "replays.sqlite"
    with sqlite3.connect(replays) as connection:
        connection.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
        connection.execute("INSERT INTO schema_versions VALUES ('replay', 3)")
    connection.close()
    code, out, _ = run(capsys, "show", "120", "--db", str(replays), "--json")
    assert code == 0 and json.loads(out)["annotations"] == []
    with sqlite3.connect(replays) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert tables == {"schema_versions"}


def test_markdown_as_terminal_text():
    html = ("<h2>Head</h2>\n<p>One <em>two</em> <a href=\"https://x.org/\">link</a> "
            "<a href=\"#local\">here</a>.</p>\n<ul>\n<li>first</li>\n<li>second</li>\n</ul>\n"
            "<ol>\n<li>one</li>\n<li>two</li>\n</ol>\n<pre><code>epsW=0.01\n  wc=0.0005\n</code></pre>\n")
    assert cli.markdown_text(html, 80, "  ") == [
        "  Head", "", "  One two link <https://x.org/> here.", "", "  • first", "", "  • second", "",
        "  1. one", "", "  2. two", "", "      epsW=0.01", "        wc=0.0005"]
    wrapped = cli.markdown_text("<p>" + "word " * 40 + "</p>", 30, "    ")
    assert all(len(line) <= 30 for line in wrapped) and len(wrapped) > 5


def test_new_commands_stay_light(archive_root, tmp_path):
    """glossary, curator and annotations need the standard library, archive and markdown-it
    only; diff still loads neither NumPy, FastAPI nor the annotations package."""
    heavy = ("numpy", "cupy", "fastapi", "starlette", "uvicorn", "jinja2")
    for argv, also_absent in ((["glossary", "hs"], ()), (["annotations", "list"], ()),
                              (["diff", "120", "131"], ("annotations", "markdown_it"))):
        code = ("import json, sys\nfrom webapp.cli import main\n"
                f"main({argv!r})\nprint(json.dumps(sorted(sys.modules)))")
        env = {**__import__("os").environ, "ALEXNET_ARCHIVE": str(archive_root),
               "ALEXNET_ARCHIVE_DB": str(tmp_path / "none.sqlite")}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True)
        loaded = {m.split(".")[0] for m in json.loads(result.stdout.strip().splitlines()[-1])}
        assert not loaded & {*heavy, *also_absent}, (argv, loaded & {*heavy, *also_absent})
