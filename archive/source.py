"""Where a fact came from, and the errors and findings that name it.

Every record the archive builds keeps a `SourceSpan` back to the file and line it
was read from, so a historian can always check a claim against the 2012 text.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class SourceSpan:
    """A place in a file of the archive: path (relative to the archive root when
    known), 1-based line and column."""

    path: str
    line: int
    column: int = 1

    def to_json(self) -> dict:
        return {"file": self.path, "line": self.line}

    def __str__(self) -> str:
        if self.column > 1:
            return f"{self.path}:{self.line}:{self.column}"
        return f"{self.path}:{self.line}"


class ArchiveError(Exception):
    """The one error type the archive raises for bad input.

    Its text always starts with ``file:line:`` and names the rule broken, so the
    message alone is enough to find and fix the problem.
    """

    def __init__(self, span: SourceSpan | None, message: str, rule: str | None = None):
        self.span = span
        self.message = message
        self.rule = rule
        where = f"{span}: " if span is not None else ""
        why = f" [{rule}]" if rule else ""
        super().__init__(f"{where}{message}{why}")


@dataclass(frozen=True, slots=True)
class Finding:
    """Something worth telling about a file that does not stop it being read:
    an objection the 2012 parser would have raised, an unknown key, a typo.

    severity: "error" (the original code would have refused the file),
    "warning" (accepted but suspicious), "info" (worth knowing).
    rule: a short stable code, e.g. "layer.gpu-missing", "cfg.invalid-line".
    """

    span: SourceSpan
    severity: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.span}: {self.severity}: {self.message} [{self.rule}]"

    def to_json(self) -> dict:
        return {"file": self.span.path, "line": self.span.line, "severity": self.severity,
                "rule": self.rule, "message": self.message}

    def as_error(self) -> ArchiveError:
        return ArchiveError(self.span, self.message, self.rule)
