"""`annotations export|import`: JSON Lines without loss, idempotent, bad lines named."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from annotations.store import AnnotationStore
from annotations.transfer import TransferError, export_jsonl, import_jsonl


def ticking_clock():
    moment = [datetime(2012, 9, 30, 12, 0, tzinfo=timezone.utc)]

    def now():
        moment[0] += timedelta(seconds=1)
        return moment[0]
    return now


def exported(store) -> str:
    out = io.StringIO()
    export_jsonl(store, out)
    return out.getvalue()


@pytest.fixture
def source(tmp_path):
    with AnnotationStore(tmp_path / "source.db", clock=ticking_clock()) as store:
        visitor = store.add("120/conv1a", "Why **11×11**? [paper](https://example.org)", author="Zoë",
                            role="visitor", address="203.0.113.7")
        store.edit(visitor.id, "Why **11×11** filters, stride 4?", editor="Zoë")
        store.set_status(visitor.id, "approved", actor="curator")
        curated = store.add("layers/layer-params-120.cfg:167", "| a | b |\n|---|---|\n| 1 | 2 |",
                            author="curator", role="curator")
        store.set_status(curated.id, "hidden", actor="curator")
        store.add("120", "spam <script>alert(1)</script>", author="bot", role="visitor")
        yield store


def open_empty(tmp_path, name="target.db"):
    return AnnotationStore(tmp_path / name)


def test_export_import_export_gives_the_same_text(source, tmp_path):
    text = exported(source)
    assert len(text.splitlines()) == 3
    with open_empty(tmp_path) as target:
        report = import_jsonl(target, io.StringIO(text))
        assert report.to_json() == {"added": 3, "extended": 0, "unchanged": 0}
        assert exported(target) == text
        assert [a.to_json() for a in target.list(with_history=True)] == \
               [a.to_json() for a in source.list(with_history=True)]


def test_an_export_line_has_the_documented_shape(source):
    line = json.loads(exported(source).splitlines()[0])
    assert sorted(line) == ["anchor", "author", "created", "edited", "events", "id", "revisions", "role",
                            "status", "uid"]
    assert [r["body"] for r in line["revisions"]] == ["Why **11×11**? [paper](https://example.org)",
                                                      "Why **11×11** filters, stride 4?"]
    assert [e["action"] for e in line["events"]] == ["create", "edit", "status"]
    assert "Zoë" in exported(source)                         # UTF-8 kept, not \u-escaped
    assert "address" not in exported(source) and "203.0.113.7" not in exported(source)


def test_importing_twice_adds_nothing(source, tmp_path):
    text = exported(source)
    with open_empty(tmp_path) as target:
        import_jsonl(target, text.splitlines())
        again = import_jsonl(target, text.splitlines())
        assert again.to_json() == {"added": 0, "extended": 0, "unchanged": 3}
        assert target.count() == 3 and exported(target) == text


def test_a_later_export_extends_what_an_earlier_one_brought(source, tmp_path):
    earlier = exported(source)
    first = source.list()[0]
    source.edit(first.id, "Third thoughts.", editor="Zoë")
    source.set_status(first.id, "pending", actor="curator")
    later = exported(source)
    with open_empty(tmp_path) as target:
        import_jsonl(target, earlier.splitlines())
        assert import_jsonl(target, later.splitlines()).to_json() == {"added": 0, "extended": 1, "unchanged": 2}
        assert exported(target) == later
        # And the older file again changes nothing: the database already has more.
        assert import_jsonl(target, earlier.splitlines()).to_json() == {"added": 0, "extended": 0, "unchanged": 3}
        assert exported(target) == later


def test_ids_are_kept_when_free_and_replaced_when_taken(source, tmp_path):
    text = exported(source)
    with open_empty(tmp_path) as target:
        mine = target.add("131", "already here", author="a", role="visitor")
        import_jsonl(target, text.splitlines())
        by_uid = {a.uid: a.id for a in target.list()}
        exported_ids = {json.loads(line)["uid"]: json.loads(line)["id"] for line in text.splitlines()}
        assert mine.id == 1 and by_uid[mine.uid] == 1
        taken = [uid for uid, id_ in exported_ids.items() if id_ == 1]
        assert by_uid[taken[0]] != 1
        assert all(by_uid[uid] == id_ for uid, id_ in exported_ids.items() if id_ != 1)


def test_imported_html_is_rendered_again_not_trusted(source, tmp_path):
    lines = exported(source).splitlines()
    record = json.loads(lines[0])
    record["revisions"][0]["html"] = '<script>alert("from the file")</script>'
    lines[0] = json.dumps(record)
    with open_empty(tmp_path) as target:
        import_jsonl(target, lines)
        html = target.get(record["id"], with_history=True).revisions[0].html
        assert "<script>" not in html and html.startswith("<p>Why <strong>11×11</strong>?")


def test_a_changed_history_for_a_known_uid_is_a_conflict_on_its_line(source, tmp_path):
    lines = exported(source).splitlines()
    with open_empty(tmp_path) as target:
        import_jsonl(target, lines)
        record = json.loads(lines[1])
        record["revisions"][0]["body"] = "rewritten history"
        lines[1] = json.dumps(record)
        with pytest.raises(TransferError, match=r"^line 2: annotation [0-9a-f]{32}: its history differs"):
            import_jsonl(target, lines)


def mangle(line: str, change) -> str:
    record = json.loads(line)
    change(record)
    return json.dumps(record)


@pytest.mark.parametrize("bad, message", [
    (lambda line: "{not json", r"not JSON"),
    (lambda line: "[1, 2]", r"not a JSON object"),
    (lambda line: mangle(line, lambda r: r.pop("author")), r"keys must be .*missing \['author'\]"),
    (lambda line: mangle(line, lambda r: r.update(extra=1)), r"unknown \['extra'\]"),
    (lambda line: mangle(line, lambda r: r.update(uid="XYZ")), r"uid is not 32 hex digits"),
    (lambda line: mangle(line, lambda r: r.update(id="7")), r"id is not a positive integer"),
    (lambda line: mangle(line, lambda r: r.update(status="deleted")), r"status: is 'deleted'"),
    (lambda line: mangle(line, lambda r: r.update(role="admin")), r"role: is 'admin'"),
    (lambda line: mangle(line, lambda r: r.update(anchor="")), r"anchor: is empty"),
    (lambda line: mangle(line, lambda r: r.update(revisions=[])), r"revisions is not a non-empty list"),
    (lambda line: mangle(line, lambda r: r["revisions"][0].update(revision=5)), r"numbered 1, 2"),
    (lambda line: mangle(line, lambda r: r["revisions"][0].update(body="x" * 4001)), r"body: is longer"),
    (lambda line: mangle(line, lambda r: r["revisions"][0].pop("html")), r"revision 1 must have the keys"),
    (lambda line: mangle(line, lambda r: r["events"][0].update(action="delete")), r"action: is 'delete'"),
    (lambda line: mangle(line, lambda r: r["events"][0].update(at=5)), r"event 1: action, actor and at"),
])
def test_a_bad_line_is_named_and_nothing_is_imported(source, tmp_path, bad, message):
    lines = exported(source).splitlines()
    lines.insert(1, "")                   # blank lines are skipped but still counted
    lines[3] = bad(lines[3])
    with open_empty(tmp_path) as target:
        with pytest.raises(TransferError, match=rf"^line 4: .*{message}") as error:
            import_jsonl(target, lines)
        assert error.value.line == 4
        assert target.count() == 0        # all or nothing


def test_a_uid_twice_in_one_file_is_refused(source, tmp_path):
    lines = exported(source).splitlines()
    with open_empty(tmp_path) as target, pytest.raises(TransferError, match="^line 4: uid .* on line 1"):
        import_jsonl(target, lines + [lines[0]])
