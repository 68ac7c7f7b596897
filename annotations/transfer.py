"""`annotations export|import`: every annotation with its full history as JSON Lines.

One line per annotation, in id order, keys sorted, no spaces -- so the same database always
exports the same text, and export -> import into an empty database -> export gives it back
byte for byte. A line:

    {"anchor": "120/conv1a", "author": "...", "created": "...", "edited": null,
     "events": [{"action": "create", "actor": "...", "at": "...", "from_status": null,
                 "to_status": "pending"}, ...],
     "id": 7, "revisions": [{"body": "...", "editor": "...", "edited_at": "...",
                             "html": "...", "revision": 1}, ...],
     "role": "visitor", "status": "approved", "uid": "<32 hex>"}

The uid is the identity: importing a file twice adds nothing the second time. The HTML is
there for people reading the file; an import renders it again from the Markdown. Address
hashes stay behind: they only mean something with the salt of the database they came from.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from annotations.store import Annotation, AnnotationConflict, AnnotationInputError, AnnotationStore, Event, Revision

_UID = re.compile(r"[0-9a-f]{32}")
_FIELDS = {"anchor", "author", "created", "edited", "events", "id", "revisions", "role", "status", "uid"}
_REVISION_FIELDS = {"body", "editor", "edited_at", "html", "revision"}
_EVENT_FIELDS = {"action", "actor", "at", "from_status", "to_status"}


class TransferError(ValueError):
    """A line of an import file that cannot be brought in; `line` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: int
    extended: int
    unchanged: int

    def to_json(self) -> dict:
        return {"added": self.added, "extended": self.extended, "unchanged": self.unchanged}


def annotation_line(annotation: Annotation) -> str:
    """The export line of an annotation read with its history."""
    data = annotation.to_json()
    del data["body"], data["html"]  # the last revision says it already
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def export_jsonl(store: AnnotationStore, out: TextIO) -> int:
    """Write every annotation (all statuses) to `out`; returns how many."""
    count = 0
    for annotation in store.list(with_history=True):
        out.write(annotation_line(annotation) + "\n")
        count += 1
    return count


def _expect(condition: bool, line: int, message: str) -> None:
    if not condition:
        raise TransferError(line, message)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _optional_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def parse_line(text: str, line: int) -> Annotation:
    """One export line back into an Annotation with its history (shape checks only)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TransferError(line, f"not JSON ({error.msg} at column {error.colno})") from None
    _expect(isinstance(data, dict), line, "not a JSON object")
    _expect(set(data) == _FIELDS, line,
            f"keys must be {sorted(_FIELDS)} (missing {sorted(_FIELDS - set(data))},"
            f" unknown {sorted(set(data) - _FIELDS)})")
    _expect(isinstance(data["uid"], str) and bool(_UID.fullmatch(data["uid"])), line, "uid is not 32 hex digits")
    _expect(type(data["id"]) is int and data["id"] > 0, line, "id is not a positive integer")
    for key in ("anchor", "author", "role", "status", "created"):
        _expect(_text(data[key]), line, f"{key} is not a string")
    _expect(_optional_text(data["edited"]), line, "edited is neither a string nor null")
    _expect(isinstance(data["revisions"], list) and bool(data["revisions"]), line, "revisions is not a non-empty list")
    _expect(isinstance(data["events"], list), line, "events is not a list")
    revisions = []
    for position, item in enumerate(data["revisions"], start=1):
        _expect(isinstance(item, dict) and set(item) == _REVISION_FIELDS, line,
                f"revision {position} must have the keys {sorted(_REVISION_FIELDS)}")
        _expect(type(item["revision"]) is int, line, f"revision {position}: 'revision' is not an integer")
        _expect(all(_text(item[key]) for key in ("body", "editor", "edited_at", "html")), line,
                f"revision {position}: body, editor, edited_at and html are strings")
        revisions.append(Revision(item["revision"], item["body"], item["html"], item["editor"], item["edited_at"]))
    events = []
    for position, item in enumerate(data["events"], start=1):
        _expect(isinstance(item, dict) and set(item) == _EVENT_FIELDS, line,
                f"event {position} must have the keys {sorted(_EVENT_FIELDS)}")
        _expect(all(_text(item[key]) for key in ("action", "actor", "at")), line,
                f"event {position}: action, actor and at are strings")
        _expect(_optional_text(item["from_status"]) and _optional_text(item["to_status"]), line,
                f"event {position}: from_status and to_status are strings or null")
        events.append(Event(item["action"], item["actor"], item["at"], item["from_status"], item["to_status"]))
    last = revisions[-1]
    return Annotation(data["id"], data["uid"], data["anchor"], data["author"], data["role"], data["status"],
                      data["created"], data["edited"], last.body, last.html, tuple(revisions), tuple(events))


def import_jsonl(store: AnnotationStore, lines: Iterable[str]) -> ImportReport:
    """Bring an export in, all or nothing: any bad line raises TransferError and nothing is written."""
    annotations: list[Annotation] = []
    line_of: list[int] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        annotation = parse_line(text, number)
        if annotation.uid in seen:
            raise TransferError(number, f"uid {annotation.uid} appeared already on line {seen[annotation.uid]}")
        seen[annotation.uid] = number
        annotations.append(annotation)
        line_of.append(number)
    # The store checks the values (limits, names, statuses) before it writes anything.
    for annotation, number in zip(annotations, line_of):
        try:
            store.check_restorable(annotation)
        except AnnotationInputError as error:
            raise TransferError(number, str(error)) from None
    try:
        outcomes = store.restore(annotations)
    except AnnotationConflict as error:
        raise TransferError(line_of[error.index], str(error)) from None
    return ImportReport(outcomes.count("added"), outcomes.count("extended"), outcomes.count("unchanged"))
