"""replay/store.py against real SQLite files."""
from __future__ import annotations

import sqlite3

import pytest

from replay.store import Point, RunStore, StoreError


def make_run(store: RunStore, **extra) -> str:
    return store.create_run(experiment="120", backend="numpy", data="SYNTHETIC", synthetic=True,
                            options={"mini": 128, "epochs": 1}, fixes=[], code_version="test", **extra)


def test_a_run_and_its_curve_survive_reopening(tmp_path):
    path = tmp_path / "site.sqlite"
    store = RunStore(path)
    run_id = make_run(store)
    store.add_points(run_id, "train", [Point(1, 1, 128, 6.9, 0.99, 0.98, 0.5), Point(1, 2, 128, 6.8, 0.99, 0.97)])
    store.add_points(run_id, "test", [Point(1, 2, 256, 6.7, 0.98, 0.95)])
    store.finish_run(run_id, "finished", transfers={"copies": 12, "bytes": 4096})
    store.close()

    again = RunStore(path)
    [summary] = again.runs()
    assert summary["id"] == run_id and summary["status"] == "finished" and summary["synthetic"]
    run = again.run(run_id)
    assert [p["cost"] for p in run["train"]] == [6.9, 6.8]
    assert run["tests"][0]["topk"] == 0.95 and run["transfers"] == {"copies": 12, "bytes": 4096}
    assert again.runs("131") == []


def test_keep_first_forgets_what_came_after_a_checkpoint(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    run_id = make_run(store)
    store.add_points(run_id, "train", [Point(e, b, 10, 1.0, 0.5, 0.5) for e in (1, 2) for b in (1, 2, 3)])
    store.add_points(run_id, "test", [Point(1, 3, 10, 1.0, 0.5, 0.5), Point(2, 3, 10, 0.9, 0.4, 0.4)])
    store.keep_first(run_id, train=4, test=1)
    run = store.run(run_id)
    assert [(p["epoch"], p["batch"]) for p in run["train"]] == [(1, 1), (1, 2), (1, 3), (2, 1)]
    assert [p["cost"] for p in run["tests"]] == [1.0]


def test_other_components_tables_are_left_alone(tmp_path):
    path = tmp_path / "shared.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE annotations (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO annotations (body) VALUES ('a note')")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    store = RunStore(path)
    make_run(store)
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT body FROM annotations").fetchall() == [("a note",)]
    assert db.execute("SELECT version FROM schema_versions WHERE component = 'replay'").fetchone() == (1,)
    assert db.execute("PRAGMA user_version").fetchone() == (3,)


def test_errors_name_the_file(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        RunStore(junk)
    store = RunStore(tmp_path / "ok.sqlite")
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.run("nope")
    newer = sqlite3.connect(tmp_path / "ok.sqlite")
    newer.execute("UPDATE schema_versions SET version = 99 WHERE component = 'replay'")
    newer.commit()
    newer.close()
    store.close()
    with pytest.raises(StoreError, match="newer alexnet-archive"):
        RunStore(tmp_path / "ok.sqlite")


def test_opening_waits_for_another_writer_instead_of_failing(tmp_path):
    # Switching a file to WAL while another connection holds a write lock: SQLite answers
    # "database is locked" at once, without its busy handler (annotations/database.py waits).
    import sqlite3
    import threading

    path = tmp_path / "site.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE someone_elses (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO someone_elses VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        store = RunStore(path)
        store.create_run(experiment="120", backend="numpy", data="d", synthetic=True, options={}, fixes=[],
                         code_version="t")
    finally:
        release.join()
        other.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
