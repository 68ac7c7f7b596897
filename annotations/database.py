"""Opening the site's SQLite file, shared by annotations and replay runs.

One connection per store, WAL so readers never wait for the writer, a busy timeout so
writers from several processes queue instead of failing. The one subtlety: switching a
file to WAL needs an exclusive lock, and when another process holds a write lock at that
moment SQLite answers "database is locked" at once instead of calling the busy handler
(its deadlock avoidance), so the switch is retried here for as long as busy_timeout would wait.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def open_database(path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """An autocommit connection (isolation_level None: callers write in BEGIN IMMEDIATE) usable
    from several threads behind the caller's lock, with foreign keys on and WAL enabled.
    sqlite3.Error propagates; callers name the file in their own error type."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.execute("PRAGMA foreign_keys = ON")
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as error:
                transient = "locked" in str(error) or "busy" in str(error)
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
    except BaseException:
        db.close()
        raise
    return db


def in_transaction(db: sqlite3.Connection, lock, statements):
    """statements(db) as one write transaction: BEGIN IMMEDIATE (so concurrent writers queue at
    the start, not at COMMIT), COMMIT, or ROLLBACK on any exception, all under the store's lock.
    Returns what statements returned; sqlite3 errors propagate for the caller to name its file."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = statements(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result
