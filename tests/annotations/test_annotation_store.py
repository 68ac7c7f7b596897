"""AnnotationStore: statuses, append-only history, limits, rate counting, schema and migrations.

(Named test_annotation_store.py: tests/replay/test_store.py already owns the module name
test_store, and the test folders have no __init__.py.)
"""
from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest

from annotations import store as store_module
from annotations.markdown import VISITOR_LINK_REL
from annotations.store import (
    MAX_ANCHOR,
    MAX_AUTHOR,
    MAX_BODY,
    AnnotationInputError,
    AnnotationNotFound,
    AnnotationStore,
    AnnotationStoreError,
    schema_version,
)


class FakeClock:
    def __init__(self):
        self.now = datetime(2012, 9, 30, 12, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock):
    with AnnotationStore(tmp_path / "site.db", clock=clock) as opened:
        yield opened


def test_a_visitor_annotation_waits_and_a_curator_annotation_is_approved(store):
    visitor = store.add("120/conv1a", "See [the paper](https://example.org)", author="Ada", role="visitor")
    curator = store.add("120", "![filters](/static/f.png)", author="curator", role="curator")
    assert (visitor.status, curator.status) == ("pending", "approved")
    assert f'rel="{VISITOR_LINK_REL}"' in visitor.html           # visitor renderer
    assert '<img src="/static/f.png"' in curator.html             # curated renderer
    assert store.get(visitor.id) == visitor
    assert len(visitor.uid) == 32 and visitor.uid != curator.uid
    assert visitor.to_json() == {
        "id": visitor.id, "uid": visitor.uid, "anchor": "120/conv1a", "author": "Ada", "role": "visitor",
        "status": "pending", "created": "2012-09-30T12:00:00.000+00:00", "edited": None,
        "body": "See [the paper](https://example.org)", "html": visitor.html}


def test_edits_append_revisions_and_status_changes_are_logged(store, clock):
    first = store.add("120/conv1a/epsW", "first", author="Ada", role="visitor")
    clock.advance(5)
    store.edit(first.id, "second", editor="Ada")
    assert store.edit(first.id, "second", editor="Ada").edited == "2012-09-30T12:00:05.000+00:00"  # same text: no-op
    clock.advance(5)
    approved = store.set_status(first.id, "approved", actor="curator")
    store.set_status(first.id, "approved", actor="curator")  # no-op, no event
    clock.advance(5)
    store.set_status(first.id, "hidden", actor="curator")
    full = store.get(first.id, with_history=True)
    assert approved.status == "approved" and full.status == "hidden"
    assert (full.body, full.html, full.edited) == ("second", "<p>second</p>\n", "2012-09-30T12:00:05.000+00:00")
    assert [(r.number, r.body, r.editor) for r in full.revisions] == [(1, "first", "Ada"), (2, "second", "Ada")]
    assert [(e.action, e.actor, e.from_status, e.to_status) for e in full.events] == [
        ("create", "Ada", None, "pending"), ("edit", "Ada", "pending", "pending"),
        ("status", "curator", "pending", "approved"), ("status", "curator", "approved", "hidden")]
    assert [r["revision"] for r in full.to_json()["revisions"]] == [1, 2]
    assert "revisions" not in store.get(first.id).to_json()


def test_nothing_can_be_overwritten_or_deleted_even_with_raw_sql(store, tmp_path):
    annotation = store.add("120", "text", author="Ada", role="visitor")
    db = sqlite3.connect(tmp_path / "site.db")
    for statement in ("UPDATE annotation_revisions SET body_markdown = 'x'", "DELETE FROM annotation_revisions",
                      "UPDATE annotation_events SET actor = 'x'", "DELETE FROM annotation_events",
                      "DELETE FROM annotations"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only|never deleted"):
            db.execute(statement)
    db.close()
    assert store.get(annotation.id, with_history=True).revisions[0].body == "text"


def test_missing_annotations_raise_not_found(store):
    with pytest.raises(AnnotationNotFound):
        store.get(99)
    with pytest.raises(AnnotationNotFound):
        store.edit(99, "x", editor="a")
    with pytest.raises(AnnotationNotFound):
        store.set_status(99, "approved", actor="a")


def test_list_filters_and_prefixes(store):
    ids = {anchor: store.add(anchor, "x", author="a", role=role).id for anchor, role in [
        ("120", "curator"), ("120/conv1", "visitor"), ("120/conv1a", "visitor"), ("120/conv1a/epsW", "curator"),
        ("layers/layer-params-120.cfg:167", "visitor"), ("layers/layer-params-120.cfg.save:3", "visitor"),
        ("131/conv1a", "visitor"), ("50%_/x", "visitor")]}
    anchors = lambda found: [a.anchor for a in found]
    assert anchors(store.list(prefix="120/conv1a")) == ["120/conv1a", "120/conv1a/epsW"]
    assert anchors(store.list(prefix="120/conv1")) == ["120/conv1"]
    assert anchors(store.list(prefix="layers/layer-params-120.cfg")) == ["layers/layer-params-120.cfg:167"]
    assert anchors(store.list(prefix="50%")) == []                 # no LIKE wildcards
    assert len(store.list(prefix="120")) == 4
    assert anchors(store.list(role="curator")) == ["120", "120/conv1a/epsW"]
    assert anchors(store.list(status="pending", prefix="120")) == ["120/conv1", "120/conv1a"]
    assert anchors(store.list(anchor="131/conv1a")) == ["131/conv1a"]
    assert [a.id for a in store.list()] == sorted(ids.values())
    assert len(store.list(limit=3)) == 3
    with pytest.raises(AnnotationInputError):
        store.list(status="deleted")


def test_approved_for_gives_every_anchor_asked_only_approved_annotations(store):
    pending = store.add("120/conv1a", "visitor", author="a", role="visitor")
    curated = store.add("120/conv1a", "curator", author="c", role="curator")
    later = store.add("120/conv1a", "approved later", author="a", role="visitor")
    store.set_status(later.id, "approved", actor="c")
    hidden = store.add("120", "hidden", author="c", role="curator")
    store.set_status(hidden.id, "hidden", actor="c")
    found = store.approved_for(["120/conv1a", "120", "nowhere", "120"])
    assert list(found) == ["120/conv1a", "120", "nowhere"]
    assert [a.id for a in found["120/conv1a"]] == [curated.id, later.id]
    assert found["120"] == [] and found["nowhere"] == []
    assert pending.id not in [a.id for a in found["120/conv1a"]]
    assert len(store.approved_for(f"anchor-{i}" for i in range(1200))) == 1200  # beyond one IN (...) chunk


def test_recent_posts_are_counted_per_address_without_keeping_the_address(store, clock, tmp_path):
    for _ in range(3):
        store.add("120", "post", author="a", role="visitor", address="203.0.113.7")
        clock.advance(30)
    store.add("120", "post", author="b", role="visitor", address="198.51.100.1")
    store.add("120", "curated", author="c", role="curator")
    # Posts at t=0, 30, 60 (and the other address at 90); now t=90.
    assert store.count_recent("203.0.113.7", 60) == 2
    assert store.count_recent("203.0.113.7", 3600) == 3
    assert store.count_recent("198.51.100.1", 60) == 1
    assert store.count_recent("192.0.2.1", 3600) == 0
    stored = {row[0] for row in sqlite3.connect(tmp_path / "site.db").execute("SELECT address_hash FROM annotations")}
    assert store.address_hash("203.0.113.7") in stored and len(stored) == 3  # two hashes and NULL
    everything = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("site.db"))
    assert b"203.0.113.7" not in everything and b"198.51.100.1" not in everything


def test_the_same_address_hashes_differently_in_another_database(tmp_path):
    with AnnotationStore(tmp_path / "a.db") as a, AnnotationStore(tmp_path / "b.db") as b:
        assert a.address_hash("203.0.113.7") != b.address_hash("203.0.113.7")
        assert a.address_hash("203.0.113.7") == a.address_hash("203.0.113.7")


@pytest.mark.parametrize("call, field", [
    (lambda s: s.add("", "x", author="a", role="visitor"), "anchor"),
    (lambda s: s.add("x" * (MAX_ANCHOR + 1), "x", author="a", role="visitor"), "anchor"),
    (lambda s: s.add("120\n", "x", author="a", role="visitor"), "anchor"),
    (lambda s: s.add(" 120", "x", author="a", role="visitor"), "anchor"),
    (lambda s: s.add("120", "", author="a", role="visitor"), "body"),
    (lambda s: s.add("120", " \n\t", author="a", role="visitor"), "body"),
    (lambda s: s.add("120", "x" * (MAX_BODY + 1), author="a", role="visitor"), "body"),
    (lambda s: s.add("120", "bell \x07", author="a", role="visitor"), "body"),
    (lambda s: s.add("120", "nul \x00", author="a", role="visitor"), "body"),
    (lambda s: s.add("120", "x", author="", role="visitor"), "author"),
    (lambda s: s.add("120", "x", author="a" * (MAX_AUTHOR + 1), role="visitor"), "author"),
    (lambda s: s.add("120", "x", author="a\x1b[31m", role="visitor"), "author"),
    (lambda s: s.add("120", "x", author="a", role="admin"), "role"),
    (lambda s: s.add("120", "x", author="a", role="visitor", address=""), "address"),
    (lambda s: s.edit(1, "x" * (MAX_BODY + 1), editor="a"), "body"),
    (lambda s: s.edit(1, "x", editor=" "), "editor"),
    (lambda s: s.set_status(1, "deleted", actor="a"), "status"),
    (lambda s: s.set_status(1, "approved", actor=""), "actor"),
])
def test_limits_name_the_field(store, call, field):
    store.add("120", "existing", author="a", role="visitor")
    with pytest.raises(AnnotationInputError) as error:
        call(store)
    assert error.value.field == field and isinstance(error.value, ValueError)
    assert str(error.value).startswith(f"{field}: ")
    assert store.count() == 1 and len(store.get(1, with_history=True).revisions) == 1


def test_the_limits_themselves_are_allowed(store):
    annotation = store.add("x" * MAX_ANCHOR, "é" * MAX_BODY, author="a" * MAX_AUTHOR, role="visitor")
    assert len(annotation.body) == MAX_BODY
    # \r\n counts as one character: browsers post it, the store keeps \n
    assert store.add("120", "a\r\n" * (MAX_BODY // 2), author="a", role="visitor").body == "a\n" * (MAX_BODY // 2)


def test_an_anchor_validator_can_refuse(tmp_path):
    def validate(anchor):
        if anchor.startswith("999"):
            raise ValueError("no experiment 999 in the release")
        return anchor != "120/nosuchlayer"

    with AnnotationStore(tmp_path / "site.db", validate_anchor=validate) as store:
        store.add("120/conv1a", "fine", author="a", role="visitor")
        with pytest.raises(AnnotationInputError, match="anchor: no experiment 999"):
            store.add("999", "x", author="a", role="visitor")
        with pytest.raises(AnnotationInputError, match="anchor: '120/nosuchlayer' does not point"):
            store.add("120/nosuchlayer", "x", author="a", role="visitor")
        assert store.count() == 1


def test_the_site_secret_is_made_once_and_kept(tmp_path):
    with AnnotationStore(tmp_path / "site.db") as store:
        secret = store.site_secret()
        assert len(secret) == 32 and store.site_secret() == secret
    with AnnotationStore(tmp_path / "site.db") as reopened:
        assert reopened.site_secret() == secret
    with AnnotationStore(tmp_path / "other.db") as other:
        assert other.site_secret() != secret


def test_schema_is_versioned_beside_replay_runs(tmp_path):
    from replay.store import RunStore  # the other tenant of the file (standard library only)

    runs = RunStore(tmp_path / "site.db")
    run_id = runs.create_run(experiment="120", backend="numpy", data="synthetic", synthetic=True, options={},
                             fixes=[], code_version="test")
    with AnnotationStore(tmp_path / "site.db") as store:
        store.add("120", "x", author="a", role="visitor")
    runs.close()
    db = sqlite3.connect(tmp_path / "site.db")
    assert dict(db.execute("SELECT component, version FROM schema_versions")) == {
        "replay": 1, "annotations": schema_version()}
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    assert RunStore(tmp_path / "site.db").run(run_id)["experiment"] == "120"


def test_a_database_from_a_newer_version_is_refused_by_name(tmp_path):
    path = tmp_path / "site.db"
    AnnotationStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_versions SET version = ? WHERE component = 'annotations'", (schema_version() + 1,))
    db.commit()
    db.close()
    with pytest.raises(AnnotationStoreError, match=rf"{path}: annotations were stored by a newer alexnet-archive"):
        AnnotationStore(path)


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(AnnotationStoreError, match=rf"{path}: not a usable SQLite database"):
        AnnotationStore(path)
    with pytest.raises(AnnotationStoreError, match=str(tmp_path)):
        AnnotationStore(tmp_path)  # a directory


def test_an_older_schema_is_upgraded_and_a_failed_upgrade_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "site.db"
    with AnnotationStore(path) as v1:
        kept = v1.add("120", "from version 1", author="a", role="visitor")
    assert schema_version() == 1
    broken = store_module.MIGRATIONS + [("ALTER TABLE annotations ADD COLUMN language TEXT",
                                         "THIS IS NOT SQL")]
    monkeypatch.setattr(store_module, "MIGRATIONS", broken)
    with pytest.raises(AnnotationStoreError, match=str(path)):
        AnnotationStore(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_versions WHERE component = 'annotations'").fetchone() == (1,)
    assert "language" not in [row[1] for row in db.execute("PRAGMA table_info(annotations)")]
    db.close()

    upgrade = store_module.MIGRATIONS[:1] + [("ALTER TABLE annotations ADD COLUMN language TEXT",)]
    monkeypatch.setattr(store_module, "MIGRATIONS", upgrade)
    with AnnotationStore(path) as v2:
        assert v2.get(kept.id) == kept
        v2.add("120", "from version 2", author="a", role="visitor")
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_versions WHERE component = 'annotations'").fetchone() == (2,)
    assert "language" in [row[1] for row in db.execute("PRAGMA table_info(annotations)")]
    db.close()


def test_threads_share_one_store(store):
    def post(thread):
        for i in range(25):
            store.add("120", f"thread {thread} post {i}", author=f"t{thread}", role="visitor")

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.body for a in store.list()) == sorted(f"thread {t} post {i}" for t in range(4) for i in range(25))


def test_opening_waits_for_a_writer_instead_of_failing(tmp_path):
    # Switching a file to WAL while another connection holds a write lock: SQLite answers
    # "database is locked" at once (no busy handler), so the store must wait by itself.
    # Without that wait, four processes creating the file together failed about 1 run in 30.
    path = tmp_path / "site.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE someone_elses (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO someone_elses VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with AnnotationStore(path) as store:
            store.add("120", "after the other writer", author="a", role="visitor")
    finally:
        release.join()
        other.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
