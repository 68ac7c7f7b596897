"""The two ways a request can be wrong, raised by data functions and shown as 404/422 pages."""
from __future__ import annotations


class NotFound(Exception):
    """Nothing at this address: an unknown experiment id or file. The message says what was asked for."""


class BadQuery(Exception):
    """A query value that cannot be used; `field` names the request field, as FastAPI's 422s do."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
