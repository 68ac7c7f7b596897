"""Replays kept in the site's SQLite database (the file `serve --db` reads).

One row per run (what was replayed, on which backend and data, with which options and code,
when, how it ended, the GPU-transfer counts), and its curve: a point per training minibatch
and one per test pass, each as the original printed them (cost per case, top-1, top-k).

Several parts of the project share the file, so each keeps its own schema version in
`schema_versions` (component, version) instead of the one `PRAGMA user_version`. Writes go
through one connection, each in `BEGIN IMMEDIATE` (the habit of Datasette's database.py).
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from annotations.database import in_transaction, open_database

COMPONENT = "replay"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replay_runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    backend TEXT NOT NULL,
    data TEXT NOT NULL,
    synthetic INTEGER NOT NULL,
    options TEXT NOT NULL,          -- JSON: the run's options, convnet.py's names
    fixes TEXT NOT NULL,            -- JSON: the 2012 bugs corrected (--fix), [] = replayed as they were
    code_version TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    status TEXT NOT NULL,           -- running | finished | killed | failed
    transfers TEXT,                 -- JSON: copies and bytes between logical GPUs per batch
    note TEXT
);
CREATE INDEX IF NOT EXISTS replay_runs_experiment ON replay_runs (experiment);
CREATE TABLE IF NOT EXISTS replay_points (
    run TEXT NOT NULL REFERENCES replay_runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,             -- train | test
    epoch INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    cases INTEGER NOT NULL,
    cost REAL, top1 REAL, topk REAL,
    seconds REAL,
    progress REAL                   -- epochs done when the point was taken (the curves' x)
);
CREATE INDEX IF NOT EXISTS replay_points_run ON replay_points (run, kind);
"""


class StoreError(Exception):
    """A database that cannot hold runs; the message names the file."""


@dataclass(frozen=True, slots=True)
class Point:
    epoch: int
    batch: int
    cases: int
    cost: float | None
    top1: float | None
    topk: float | None
    seconds: float | None = None
    progress: float | None = None

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "cases": self.cases, "cost": self.cost,
                "top1": self.top1, "topk": self.topk, "seconds": self.seconds, "progress": self.progress}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self._db = open_database(self.path)  # WAL, foreign keys, waits for other writers
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable SQLite database ({error})") from None
        self._lock = threading.Lock()
        self._migrate()

    def checkpoint_path(self, run_id: str) -> Path:
        """Where a run's checkpoint lives: beside the database, one file per run."""
        return self.path.parent / "replay-checkpoints" / f"{run_id}.ckpt"

    def close(self) -> None:
        self._db.close()

    def _write(self, statements):
        try:
            return in_transaction(self._db, self._lock, statements)
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: {error}") from None

    def _migrate(self) -> None:
        def migrate(db):
            db.execute("CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
            row = db.execute("SELECT version FROM schema_versions WHERE component = ?", (COMPONENT,)).fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: runs were stored by a newer alexnet-archive "
                                 f"(schema {version}, this one knows {SCHEMA_VERSION})")
            if version < 1:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("INSERT OR REPLACE INTO schema_versions VALUES (?, ?)", (COMPONENT, SCHEMA_VERSION))
        self._write(migrate)

    # --- writing ----------------------------------------------------------------------------

    def create_run(self, *, experiment: str, backend: str, data: str, synthetic: bool, options: dict,
                   fixes: list[str], code_version: str, run_id: str | None = None) -> str:
        run_id = run_id or f"{experiment}-{secrets.token_hex(3)}"
        self._write(lambda db: db.execute(
            "INSERT INTO replay_runs (id, experiment, backend, data, synthetic, options, fixes, code_version,"
            " started, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
            (run_id, experiment, backend, data, int(synthetic), json.dumps(options, sort_keys=True),
             json.dumps(sorted(fixes)), code_version, _now())))
        return run_id

    def add_points(self, run_id: str, kind: str, points: list[Point]) -> None:
        if kind not in ("train", "test"):
            raise ValueError(f"kind is train or test, not {kind!r}")
        rows = [(run_id, kind, p.epoch, p.batch, p.cases, p.cost, p.top1, p.topk, p.seconds, p.progress)
                for p in points]
        self._write(lambda db: db.executemany("INSERT INTO replay_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))

    def keep_first(self, run_id: str, *, train: int, test: int) -> None:
        """Forget points after a checkpoint (a resumed run continues from there): keep the first
        `train` training points and `test` test points."""
        def trim(db):
            for kind, keep in (("train", train), ("test", test)):
                db.execute("DELETE FROM replay_points WHERE run = ? AND kind = ? AND rowid NOT IN (SELECT rowid FROM"
                           " replay_points WHERE run = ? AND kind = ? ORDER BY rowid LIMIT ?)",
                           (run_id, kind, run_id, kind, keep))
        self._write(trim)

    def finish_run(self, run_id: str, status: str, *, transfers: dict | None = None, note: str | None = None) -> None:
        self._write(lambda db: db.execute(
            "UPDATE replay_runs SET status = ?, ended = ?, transfers = coalesce(?, transfers),"
            " note = coalesce(?, note) WHERE id = ?",
            (status, _now(), json.dumps(transfers) if transfers is not None else None, note, run_id)))

    def reopen_run(self, run_id: str) -> None:
        self._write(lambda db: db.execute("UPDATE replay_runs SET status = 'running', ended = NULL WHERE id = ?",
                                          (run_id,)))

    # --- reading ----------------------------------------------------------------------------

    def _summary(self, row) -> dict:
        (run_id, experiment, backend, data, synthetic, options, fixes, code_version, started, ended, status,
         transfers, note) = row
        return {"id": run_id, "experiment": experiment, "backend": backend, "data": data,
                "synthetic": bool(synthetic), "options": json.loads(options), "fixes": json.loads(fixes),
                "code_version": code_version, "started": started, "ended": ended, "status": status,
                "transfers": json.loads(transfers) if transfers else None, "note": note}

    def version(self) -> tuple:
        """Changes whenever any process writes runs (the site keys its page cache on it)."""
        stamps = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                stat = path.stat()
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except FileNotFoundError:
                stamps.append(None)
        return tuple(stamps)

    def _read(self, query: str, params: tuple = ()) -> list:
        with self._lock:
            try:
                return self._db.execute(query, params).fetchall()
            except sqlite3.DatabaseError as error:
                raise StoreError(f"{self.path}: cannot read runs ({error})") from None

    def runs(self, experiment: str | None = None) -> list[dict]:
        # rowid: the order they were started in (start times tie within a second)
        query = "SELECT * FROM replay_runs" + (" WHERE experiment = ?" if experiment else "") + " ORDER BY rowid"
        return [self._summary(row) for row in self._read(query, (experiment,) if experiment else ())]

    def run(self, run_id: str) -> dict:
        rows = self._read("SELECT * FROM replay_runs WHERE id = ?", (run_id,))
        row = rows[0] if rows else None
        points = self._read("SELECT kind, epoch, batch, cases, cost, top1, topk, seconds, progress FROM replay_points"
                            " WHERE run = ? ORDER BY rowid", (run_id,))
        if row is None:
            raise StoreError(f"{self.path}: no run {run_id!r} (see `alexnet-archive runs`)")
        data = self._summary(row)
        data["train"] = [Point(*p[1:]).to_json() for p in points if p[0] == "train"]
        data["tests"] = [Point(*p[1:]).to_json() for p in points if p[0] == "test"]
        return data
