"""Curator and visitor annotations kept in the site's SQLite database.

The file is shared with replay runs, so -- like replay/store.py -- this component keeps its own
row in `schema_versions` (component 'annotations'), upgrades itself through a list of
migrations in `BEGIN IMMEDIATE`, runs in WAL mode, and writes through one connection guarded
by a lock. Several processes may hold a store on the same file (the site, the CLI): SQLite's
busy timeout makes a writer wait its turn instead of failing.

Nothing is overwritten: an edit appends a revision, a status change appends an event, and
triggers refuse UPDATE/DELETE on those tables and DELETE on annotations. Addresses are kept
only as a salted HMAC (enough to count a poster's recent posts, useless to recover the IP).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from annotations.database import BUSY_TIMEOUT_MS, in_transaction, open_database
from annotations.markdown import render_curated, render_visitor

COMPONENT = "annotations"

ROLES = ("curator", "visitor")
STATUSES = ("pending", "approved", "hidden")
ACTIONS = ("create", "edit", "status")

MAX_BODY = 4000        # characters of Markdown, after line endings are made \n
MAX_AUTHOR = 80        # author, editor and actor names
MAX_ANCHOR = 300
MAX_ADDRESS = 200      # a client address as the webapp sees it (IPv6 with zone fits easily)

# Each migration is a list of statements (not a script: executescript would COMMIT the
# surrounding BEGIN IMMEDIATE). Migration i takes the schema from version i to i + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,           -- stable identity across export/import
            anchor TEXT NOT NULL,
            author TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('curator', 'visitor')),
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'hidden')),
            created TEXT NOT NULL,
            edited TEXT,                        -- NULL until the first edit
            address_hash TEXT                   -- HMAC of the poster's address, for rate limits
        )""",
        "CREATE INDEX annotations_anchor ON annotations (anchor, status)",
        "CREATE INDEX annotations_address ON annotations (address_hash, created)",
        """CREATE TABLE annotation_revisions (
            annotation INTEGER NOT NULL REFERENCES annotations (id),
            revision INTEGER NOT NULL,          -- 1 = the text as first posted
            body_markdown TEXT NOT NULL,
            body_html TEXT NOT NULL,
            editor TEXT NOT NULL,
            edited_at TEXT NOT NULL,
            PRIMARY KEY (annotation, revision)
        )""",
        """CREATE TABLE annotation_events (
            id INTEGER PRIMARY KEY,
            annotation INTEGER NOT NULL REFERENCES annotations (id),
            action TEXT NOT NULL,               -- create | edit | status
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT
        )""",
        "CREATE INDEX annotation_events_annotation ON annotation_events (annotation, id)",
        """CREATE TRIGGER annotation_revisions_no_update BEFORE UPDATE ON annotation_revisions
           BEGIN SELECT RAISE(ABORT, 'annotation revisions are append-only'); END""",
        """CREATE TRIGGER annotation_revisions_no_delete BEFORE DELETE ON annotation_revisions
           BEGIN SELECT RAISE(ABORT, 'annotation revisions are append-only'); END""",
        """CREATE TRIGGER annotation_events_no_update BEFORE UPDATE ON annotation_events
           BEGIN SELECT RAISE(ABORT, 'annotation events are append-only'); END""",
        """CREATE TRIGGER annotation_events_no_delete BEFORE DELETE ON annotation_events
           BEGIN SELECT RAISE(ABORT, 'annotation events are append-only'); END""",
        """CREATE TRIGGER annotations_no_delete BEFORE DELETE ON annotations
           BEGIN SELECT RAISE(ABORT, 'annotations are hidden, never deleted'); END""",
        """CREATE TABLE curators (
            name TEXT PRIMARY KEY,
            password_hash BLOB NOT NULL,        -- hashlib.scrypt output (annotations/accounts.py)
            salt BLOB NOT NULL,
            params TEXT NOT NULL,               -- JSON: {"n", "r", "p", "dklen"}
            created TEXT NOT NULL
        )""",
        """CREATE TABLE curator_logouts (
            name TEXT PRIMARY KEY,              -- a curator who logged out
            before_ms INTEGER NOT NULL          -- sessions issued at or before this (Unix ms) are over
        )""",
        """CREATE TABLE site_secrets (
            name TEXT PRIMARY KEY,              -- 'site' (cookies, CSRF), 'address-salt'
            value BLOB NOT NULL,
            created TEXT NOT NULL
        )""",
    ),
]


def schema_version() -> int:
    """The version this code writes: one per migration."""
    return len(MIGRATIONS)


class AnnotationStoreError(Exception):
    """A database that cannot hold annotations; the message names the file."""


class AnnotationNotFound(LookupError):
    def __init__(self, annotation_id: int):
        super().__init__(f"no annotation {annotation_id}")
        self.annotation_id = annotation_id


class AnnotationInputError(ValueError):
    """Input refused before it reached the database; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AnnotationConflict(ValueError):
    """An imported annotation whose uid is stored with a different history."""

    def __init__(self, index: int, uid: str, message: str):
        super().__init__(f"annotation {uid}: {message}")
        self.index = index
        self.uid = uid
        self.message = message


# --- records ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Revision:
    number: int
    body: str
    html: str
    editor: str
    edited_at: str

    def to_json(self) -> dict:
        return {"revision": self.number, "body": self.body, "html": self.html, "editor": self.editor,
                "edited_at": self.edited_at}


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    action: str
    actor: str
    at: str
    from_status: str | None
    to_status: str | None

    def to_json(self) -> dict:
        return {"action": self.action, "actor": self.actor, "at": self.at, "from_status": self.from_status,
                "to_status": self.to_status}


@dataclasses.dataclass(frozen=True, slots=True)
class Annotation:
    id: int
    uid: str
    anchor: str
    author: str
    role: str
    status: str
    created: str
    edited: str | None
    body: str                                   # the latest revision's Markdown
    html: str                                   # ... and its rendering
    revisions: tuple[Revision, ...] | None = None   # oldest first; None unless asked for
    events: tuple[Event, ...] | None = None

    def to_json(self) -> dict:
        data = {"id": self.id, "uid": self.uid, "anchor": self.anchor, "author": self.author, "role": self.role,
                "status": self.status, "created": self.created, "edited": self.edited, "body": self.body,
                "html": self.html}
        if self.revisions is not None:
            data["revisions"] = [revision.to_json() for revision in self.revisions]
        if self.events is not None:
            data["events"] = [event.to_json() for event in self.events]
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class CuratorRecord:
    name: str
    password_hash: bytes
    salt: bytes
    params: dict
    created: str

    def to_json(self) -> dict:
        # The hash and salt never leave the database through JSON.
        return {"name": self.name, "created": self.created}


# --- input checks ----------------------------------------------------------------------------

def _has_control(text: str, allowed: str = "") -> bool:
    return any((ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) and ch not in allowed for ch in text)


def check_anchor(anchor: object) -> str:
    """The syntax every anchor must have; what it points at is annotations/anchors.py's business."""
    if not isinstance(anchor, str) or not anchor:
        raise AnnotationInputError("anchor", "is empty")
    if len(anchor) > MAX_ANCHOR:
        raise AnnotationInputError("anchor", f"is longer than {MAX_ANCHOR} characters")
    if _has_control(anchor) or anchor != anchor.strip():
        raise AnnotationInputError("anchor", "contains control characters or surrounding spaces")
    return anchor


def check_body(body: object) -> str:
    if not isinstance(body, str):
        raise AnnotationInputError("body", "is not text")
    body = body.replace("\r\n", "\n").replace("\r", "\n")  # browsers post \r\n; store one form
    if not body.strip():
        raise AnnotationInputError("body", "is empty")
    if len(body) > MAX_BODY:
        raise AnnotationInputError("body", f"is longer than {MAX_BODY} characters ({len(body)})")
    if _has_control(body, allowed="\n\t"):
        raise AnnotationInputError("body", "contains control characters")
    return body


def check_name(field: str, name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise AnnotationInputError(field, "is empty")
    name = name.strip()
    if len(name) > MAX_AUTHOR:
        raise AnnotationInputError(field, f"is longer than {MAX_AUTHOR} characters")
    if _has_control(name):
        raise AnnotationInputError(field, "contains control characters")
    return name


def check_choice(field: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise AnnotationInputError(field, f"is {value!r}, not one of {', '.join(choices)}")
    return value  # type: ignore[return-value]


def render(role: str, body: str) -> str:
    """Curators' Markdown gets the curated renderer, visitors' the strict one."""
    return render_curated(body) if role == "curator" else render_visitor(body)


def _timestamp(moment: datetime) -> str:
    # Fixed width (milliseconds, UTC) so that timestamps compare as strings in SQL.
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


_ANNOTATION_COLUMNS = (
    "a.id, a.uid, a.anchor, a.author, a.role, a.status, a.created, a.edited, r.body_markdown, r.body_html"
)
_LATEST_REVISION = (
    "JOIN annotation_revisions r ON r.annotation = a.id"
    " AND r.revision = (SELECT max(revision) FROM annotation_revisions WHERE annotation = a.id)"
)


class AnnotationStore:
    def __init__(self, path: Path | str, *, validate_anchor: Callable[[str], object] | None = None,
                 clock: Callable[[], datetime] = _utc_now):
        """Open (creating or upgrading) the annotation tables in `path`.

        validate_anchor: optional check run after the syntax check; it may raise ValueError or
        return False to refuse an anchor (annotations/anchors.py knows what anchors exist).
        clock: returns an aware datetime; tests pass a fake one.
        """
        self.path = Path(path)
        self._validate_anchor = validate_anchor
        self._clock = clock
        self._lock = threading.Lock()
        self._address_salt: bytes | None = None
        try:
            self._db = open_database(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)
        except sqlite3.DatabaseError as error:
            raise AnnotationStoreError(f"{self.path}: not a usable SQLite database ({error})") from None
        except sqlite3.Error as error:
            raise AnnotationStoreError(f"{self.path}: cannot open the database ({error})") from None
        try:
            # FULL: a COMMIT that returned survives a power cut too, not only a killed process.
            self._db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise AnnotationStoreError(f"{self.path}: not a usable SQLite database ({error})") from None
        except AnnotationStoreError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnnotationStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------------

    def _write(self, statements):
        try:
            return in_transaction(self._db, self._lock, statements)
        except sqlite3.DatabaseError as error:
            raise AnnotationStoreError(f"{self.path}: {error}") from None

    def _read(self, query: str, params: tuple = ()) -> list:
        with self._lock:
            try:
                return self._db.execute(query, params).fetchall()
            except sqlite3.DatabaseError as error:
                raise AnnotationStoreError(f"{self.path}: cannot read annotations ({error})") from None

    def _migrate(self) -> None:
        target = schema_version()

        def migrate(db):
            db.execute("CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
            row = db.execute("SELECT version FROM schema_versions WHERE component = ?", (COMPONENT,)).fetchone()
            version = row[0] if row else 0
            if version > target:
                raise AnnotationStoreError(
                    f"{self.path}: annotations were stored by a newer alexnet-archive "
                    f"(schema {version}, this one knows {target})")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            if version != target:
                db.execute("INSERT OR REPLACE INTO schema_versions VALUES (?, ?)", (COMPONENT, target))

        self._write(migrate)

    def _now(self) -> str:
        return _timestamp(self._clock())

    def _check_anchor(self, anchor: object) -> str:
        anchor = check_anchor(anchor)
        if self._validate_anchor is not None:
            try:
                verdict = self._validate_anchor(anchor)
            except ValueError as error:
                raise AnnotationInputError("anchor", str(error)) from None
            if verdict is False:
                raise AnnotationInputError("anchor", f"{anchor!r} does not point at anything in the release")
        return anchor

    def _secret(self, name: str, size: int = 32) -> bytes:
        def fetch_or_create(db):
            # INSERT OR IGNORE: whichever process comes first decides; everyone reads its value.
            db.execute("INSERT OR IGNORE INTO site_secrets (name, value, created) VALUES (?, ?, ?)",
                       (name, secrets.token_bytes(size), self._now()))
            return db.execute("SELECT value FROM site_secrets WHERE name = ?", (name,)).fetchone()[0]
        return bytes(self._write(fetch_or_create))

    def site_secret(self) -> bytes:
        """32 random bytes made once per database and kept: the key for cookies and CSRF tokens."""
        return self._secret("site")

    def address_hash(self, address: str) -> str:
        """What is stored instead of a client address (HMAC-SHA256 under a per-database salt)."""
        if not isinstance(address, str) or not address or len(address) > MAX_ADDRESS:
            raise AnnotationInputError("address", f"is empty or longer than {MAX_ADDRESS} characters")
        if self._address_salt is None:
            self._address_salt = self._secret("address-salt")
        return hmac.new(self._address_salt, address.encode("utf-8"), hashlib.sha256).hexdigest()

    # --- writing --------------------------------------------------------------------------------

    def add(self, anchor: str, body: str, *, author: str, role: str, address: str | None = None) -> Annotation:
        """A new annotation: a visitor's waits as 'pending', a curator's is 'approved' at once."""
        anchor = self._check_anchor(anchor)
        body = check_body(body)
        author = check_name("author", author)
        role = check_choice("role", role, ROLES)
        address_hash = self.address_hash(address) if address is not None else None
        html = render(role, body)
        status = "approved" if role == "curator" else "pending"
        uid = uuid.uuid4().hex
        at = self._now()

        def insert(db):
            annotation_id = db.execute(
                "INSERT INTO annotations (uid, anchor, author, role, status, created, edited, address_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (uid, anchor, author, role, status, at, address_hash)).lastrowid
            db.execute("INSERT INTO annotation_revisions VALUES (?, 1, ?, ?, ?, ?)",
                       (annotation_id, body, html, author, at))
            db.execute("INSERT INTO annotation_events (annotation, action, actor, at, from_status, to_status)"
                       " VALUES (?, 'create', ?, ?, NULL, ?)", (annotation_id, author, at, status))
            return annotation_id

        annotation_id = self._write(insert)
        return Annotation(annotation_id, uid, anchor, author, role, status, at, None, body, html)

    def edit(self, annotation_id: int, body: str, *, editor: str) -> Annotation:
        """Append a revision (the old text stays in the history). The same text again changes nothing."""
        body = check_body(body)
        editor = check_name("editor", editor)
        at = self._now()

        def append(db):
            row = db.execute("SELECT role, status FROM annotations WHERE id = ?", (annotation_id,)).fetchone()
            if row is None:
                raise AnnotationNotFound(annotation_id)
            role, status = row
            number, latest = db.execute(
                "SELECT revision, body_markdown FROM annotation_revisions WHERE annotation = ?"
                " ORDER BY revision DESC LIMIT 1", (annotation_id,)).fetchone()
            if latest == body:
                return
            db.execute("INSERT INTO annotation_revisions VALUES (?, ?, ?, ?, ?, ?)",
                       (annotation_id, number + 1, body, render(role, body), editor, at))
            db.execute("UPDATE annotations SET edited = ? WHERE id = ?", (at, annotation_id))
            db.execute("INSERT INTO annotation_events (annotation, action, actor, at, from_status, to_status)"
                       " VALUES (?, 'edit', ?, ?, ?, ?)", (annotation_id, editor, at, status, status))

        self._write(append)
        return self.get(annotation_id)

    def set_status(self, annotation_id: int, status: str, *, actor: str) -> Annotation:
        """Approve, hide or send back to pending; logged as an event. The same status again changes nothing."""
        status = check_choice("status", status, STATUSES)
        actor = check_name("actor", actor)
        at = self._now()

        def change(db):
            row = db.execute("SELECT status FROM annotations WHERE id = ?", (annotation_id,)).fetchone()
            if row is None:
                raise AnnotationNotFound(annotation_id)
            if row[0] == status:
                return
            db.execute("UPDATE annotations SET status = ? WHERE id = ?", (status, annotation_id))
            db.execute("INSERT INTO annotation_events (annotation, action, actor, at, from_status, to_status)"
                       " VALUES (?, 'status', ?, ?, ?, ?)", (annotation_id, actor, at, row[0], status))

        self._write(change)
        return self.get(annotation_id)

    # --- reading --------------------------------------------------------------------------------

    def get(self, annotation_id: int, with_history: bool = False) -> Annotation:
        rows = self._read(f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a {_LATEST_REVISION} WHERE a.id = ?",
                          (annotation_id,))
        if not rows:
            raise AnnotationNotFound(annotation_id)
        annotation = Annotation(*rows[0])
        return self._with_history(annotation) if with_history else annotation

    def get_by_uid(self, uid: str, with_history: bool = False) -> Annotation | None:
        rows = self._read("SELECT id FROM annotations WHERE uid = ?", (uid,))
        return self.get(rows[0][0], with_history) if rows else None

    def _with_history(self, annotation: Annotation) -> Annotation:
        revisions = tuple(Revision(*row) for row in self._read(
            "SELECT revision, body_markdown, body_html, editor, edited_at FROM annotation_revisions"
            " WHERE annotation = ? ORDER BY revision", (annotation.id,)))
        events = tuple(Event(*row) for row in self._read(
            "SELECT action, actor, at, from_status, to_status FROM annotation_events"
            " WHERE annotation = ? ORDER BY id", (annotation.id,)))
        return dataclasses.replace(annotation, revisions=revisions, events=events)

    def list(self, *, anchor: str | None = None, status: str | None = None, role: str | None = None,
             prefix: str | None = None, limit: int | None = None, with_history: bool = False) -> list[Annotation]:
        """Annotations in the order they were posted (id), filtered by any of the arguments.

        prefix: an anchor and everything under it -- "120/conv1a" matches "120/conv1a",
        "120/conv1a/epsW", and "layers/x.cfg" matches "layers/x.cfg:167", but "120/conv1" does
        not match "120/conv1a".
        """
        where, params = [], []
        if anchor is not None:
            where.append("a.anchor = ?")
            params.append(anchor)
        if status is not None:
            where.append("a.status = ?")
            params.append(check_choice("status", status, STATUSES))
        if role is not None:
            where.append("a.role = ?")
            params.append(check_choice("role", role, ROLES))
        if prefix is not None:
            # substr, not LIKE: anchors may contain % and _
            where.append("(a.anchor = ? OR substr(a.anchor, 1, ?) IN (? || '/', ? || ':'))")
            params += [prefix, len(prefix) + 1, prefix, prefix]
        query = (f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a {_LATEST_REVISION}"
                 + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY a.id")
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        annotations = [Annotation(*row) for row in self._read(query, tuple(params))]
        return [self._with_history(a) for a in annotations] if with_history else annotations

    def approved_for(self, anchors: Iterable[str]) -> dict[str, list[Annotation]]:
        """For a page: each anchor asked for, with its approved annotations (oldest first)."""
        wanted = list(dict.fromkeys(anchors))
        found: dict[str, list[Annotation]] = {anchor: [] for anchor in wanted}
        for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self._read(f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a {_LATEST_REVISION}"
                                  f" WHERE a.status = 'approved' AND a.anchor IN ({marks}) ORDER BY a.id",
                                  tuple(chunk)):
                annotation = Annotation(*row)
                found[annotation.anchor].append(annotation)
        return found

    def count_recent(self, address: str, seconds: float) -> int:
        """How many annotations this address posted in the last `seconds` (for the rate limit)."""
        since = _timestamp(self._clock() - timedelta(seconds=seconds))
        rows = self._read("SELECT count(*) FROM annotations WHERE address_hash = ? AND created >= ?",
                          (self.address_hash(address), since))
        return rows[0][0]

    def count(self) -> int:
        return self._read("SELECT count(*) FROM annotations")[0][0]

    # --- curator accounts (hashing lives in annotations/accounts.py) ---------------------------

    def save_curator(self, name: str, password_hash: bytes, salt: bytes, params: dict, *,
                     replace: bool = False) -> CuratorRecord:
        """Store an account. An existing name is an error unless `replace` (a password reset)."""
        created = self._now()

        def save(db):
            old = db.execute("SELECT created FROM curators WHERE name = ?", (name,)).fetchone()
            if old is not None and not replace:
                raise AnnotationInputError("name", f"curator {name!r} exists already")
            kept = old[0] if old else created
            db.execute("INSERT OR REPLACE INTO curators VALUES (?, ?, ?, ?, ?)",
                       (name, password_hash, salt, json.dumps(params, sort_keys=True), kept))
            return kept

        kept = self._write(save)
        return CuratorRecord(name, bytes(password_hash), bytes(salt), dict(params), kept)

    def curator(self, name: str) -> CuratorRecord | None:
        rows = self._read("SELECT name, password_hash, salt, params, created FROM curators WHERE name = ?", (name,))
        if not rows:
            return None
        name, password_hash, salt, params, created = rows[0]
        return CuratorRecord(name, bytes(password_hash), bytes(salt), json.loads(params), created)

    def end_sessions(self, name: str, before_ms: int) -> None:
        """Logging out: every session of `name` issued at or before `before_ms` is over (the
        cookies themselves cannot be taken back, so the server remembers)."""
        self._write(lambda db: db.execute(
            "INSERT INTO curator_logouts VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
            "before_ms = max(before_ms, excluded.before_ms)", (name, int(before_ms))))

    def sessions_ended_before(self, name: str) -> int:
        """Unix ms: a session of `name` issued at or before this has been logged out (0: none)."""
        rows = self._read("SELECT before_ms FROM curator_logouts WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def curators(self) -> list[CuratorRecord]:
        names = [row[0] for row in self._read("SELECT name FROM curators ORDER BY name")]
        return [self.curator(name) for name in names]  # type: ignore[misc]

    # --- import (the file format lives in annotations/transfer.py) -----------------------------

    def restore(self, annotations: Sequence[Annotation]) -> list[str]:
        """Bring annotations with their full history in, in one transaction.

        Identity is the uid. A new uid is added (keeping its id when that id is free); a stored
        uid whose history is a prefix of the incoming one gets the rest appended ("extended");
        the same history, or an incoming one that is a prefix of the stored one, changes
        nothing ("unchanged"). Anything else raises AnnotationConflict. HTML is rendered again
        from the Markdown: an import file cannot put markup on the site that the renderer
        would not make. Returns "added" | "extended" | "unchanged" per annotation.
        """
        for annotation in annotations:
            self.check_restorable(annotation)

        def bring_in(db):
            outcomes: list[str] = ["added"] * len(annotations)
            id_taken = []
            for index, incoming in enumerate(annotations):
                row = db.execute("SELECT id, anchor, author, role, created FROM annotations WHERE uid = ?",
                                 (incoming.uid,)).fetchone()
                if row is not None:
                    outcomes[index] = self._extend_restored(db, index, row, incoming)
                elif db.execute("SELECT 1 FROM annotations WHERE id = ?", (incoming.id,)).fetchone():
                    id_taken.append(incoming)
                else:
                    self._insert_restored(db, incoming, incoming.id)
            # Only after every free id is kept: a new id must not take one a later line wants.
            for incoming in id_taken:
                self._insert_restored(db, incoming, None)
            return outcomes

        return self._write(bring_in)

    def check_restorable(self, annotation: Annotation) -> None:
        check_anchor(annotation.anchor)
        check_name("author", annotation.author)
        check_choice("role", annotation.role, ROLES)
        check_choice("status", annotation.status, STATUSES)
        if not annotation.revisions:
            raise AnnotationInputError("revisions", "an annotation has at least its first revision")
        for number, revision in enumerate(annotation.revisions, start=1):
            if revision.number != number:
                raise AnnotationInputError("revisions", f"are numbered 1, 2, ... (found {revision.number} at {number})")
            if check_body(revision.body) != revision.body:
                raise AnnotationInputError("revisions", f"revision {number}'s body has \\r line endings")
            check_name("editor", revision.editor)
        for event in annotation.events or ():
            check_choice("action", event.action, ACTIONS)
            check_name("actor", event.actor)
            for status in (event.from_status, event.to_status):
                if status is not None:
                    check_choice("status", status, STATUSES)

    @staticmethod
    def _insert_events(db, annotation_id: int, events: Iterable[Event]) -> None:
        db.executemany("INSERT INTO annotation_events (annotation, action, actor, at, from_status, to_status)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       [(annotation_id, e.action, e.actor, e.at, e.from_status, e.to_status) for e in events])

    @staticmethod
    def _insert_revisions(db, annotation_id: int, role: str, revisions: Iterable[Revision]) -> None:
        db.executemany("INSERT INTO annotation_revisions VALUES (?, ?, ?, ?, ?, ?)",
                       [(annotation_id, r.number, r.body, render(role, r.body), r.editor, r.edited_at)
                        for r in revisions])

    def _insert_restored(self, db, a: Annotation, annotation_id: int | None) -> None:
        annotation_id = db.execute(
            "INSERT INTO annotations (id, uid, anchor, author, role, status, created, edited, address_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (annotation_id, a.uid, a.anchor, a.author, a.role, a.status, a.created, a.edited)).lastrowid
        self._insert_revisions(db, annotation_id, a.role, a.revisions or ())
        self._insert_events(db, annotation_id, a.events or ())

    def _extend_restored(self, db, index: int, row: tuple, incoming: Annotation) -> str:
        annotation_id, anchor, author, role, created = row
        if (anchor, author, role, created) != (incoming.anchor, incoming.author, incoming.role, incoming.created):
            raise AnnotationConflict(index, incoming.uid, "stored with a different anchor, author, role or time")
        stored_revisions = [Revision(n, b, "", e, t) for n, b, e, t in db.execute(
            "SELECT revision, body_markdown, editor, edited_at FROM annotation_revisions"
            " WHERE annotation = ? ORDER BY revision", (annotation_id,))]
        stored_events = [Event(*r) for r in db.execute(
            "SELECT action, actor, at, from_status, to_status FROM annotation_events WHERE annotation = ?"
            " ORDER BY id", (annotation_id,))]
        new_revisions = [Revision(r.number, r.body, "", r.editor, r.edited_at) for r in incoming.revisions or ()]
        new_events = list(incoming.events or ())

        def shared_prefix(a: list, b: list) -> bool:
            return all(x == y for x, y in zip(a, b))

        if not (shared_prefix(stored_revisions, new_revisions) and shared_prefix(stored_events, new_events)):
            raise AnnotationConflict(index, incoming.uid, "its history differs from the stored one")
        extra_revisions = (incoming.revisions or ())[len(stored_revisions):]
        extra_events = new_events[len(stored_events):]
        if not extra_revisions and not extra_events:
            return "unchanged"
        if len(new_revisions) < len(stored_revisions) or len(new_events) < len(stored_events):
            raise AnnotationConflict(index, incoming.uid, "the stored and incoming histories have each moved on")
        self._insert_revisions(db, annotation_id, role, extra_revisions)
        self._insert_events(db, annotation_id, extra_events)
        db.execute("UPDATE annotations SET status = ?, edited = ? WHERE id = ?",
                   (incoming.status, incoming.edited, annotation_id))
        return "extended"
