"""Links between pages, for the live site and for the static export.

Templates and SVG generators never write URLs themselves: they name a page by its
canonical site path ("/experiments/120", "/compare?ids=120,131",
"/files/layers/layers-120.cfg#L12") and call ``href(path)``. The live site
uses that path as it is; the static export turns it into a file name relative
to the page being written ("../experiments/120.html"), so the exported
exhibit opens from disk or from any static web server.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

# Files the export writes under their own names (everything else becomes NAME.html).
_KEEP_SUFFIXES = (".json", ".csv", ".svg", ".css", ".js", ".png", ".ico", ".txt")  # "/runs/x/filters.png" too


def compare_path(ids) -> str:
    """The canonical (permalink) path of a comparison."""
    return "/compare/" + ",".join(ids)


def static_file(path: str) -> str:
    """The export's file (relative to its root) for a canonical site path, without fragment.

    "/" -> "index.html"; "/experiments/120" -> "experiments/120.html";
    "/experiments/120.json" -> itself; "/compare?ids=120,131" -> "compare/120,131.html";
    "/files/layers/layers-120.cfg" -> "files/layers/layers-120.cfg.html" (a file page,
    whatever the file's own suffix; its JSON twin keeps ".json").
    """
    parts = urlsplit(path)
    route = unquote(parts.path)
    if parts.query:
        ids = parse_qs(parts.query).get("ids")
        if route in ("/compare", "/compare.json") and ids:
            suffix = ".json" if route.endswith(".json") else ""
            route = compare_path(ids[0].split(",")) + suffix
        # Other query strings (filters, sort orders) have no static form: the export links to the page.
    if route in ("", "/"):
        return "index.html"
    route = route.lstrip("/")
    if route.startswith("files/"):
        # A file page gets ".html" whatever the file's suffix; "X.json" is the twin of file X
        # (the release has no .json files, so no file page is ever named that way).
        return route if route.endswith(".json") else route + ".html"
    if route.endswith(_KEEP_SUFFIXES):
        return route
    return route + ".html"


@dataclass(frozen=True, slots=True)
class Links:
    """``href`` for one page. ``current`` is the canonical path of the page being rendered."""

    current: str = "/"
    static: bool = False
    root_path: str = ""  # the live site's mount point (uvicorn --root-path), "" at the server root

    def href(self, path: str) -> str:
        fragment = ""
        if "#" in path:
            path, fragment = path.split("#", 1)
            fragment = "#" + fragment
        if not path:
            return fragment or "#"
        if not self.static:
            return self.root_path + _quote_path(path) + fragment
        target = static_file(path)
        here = posixpath.dirname(static_file(self.current))
        relative = posixpath.relpath(target, here or ".")
        return quote(relative, safe="/,.-_~") + fragment

    def asset(self, name: str) -> str:
        return self.href("/static/" + name)


def _quote_path(path: str) -> str:
    parts = urlsplit(path)
    quoted = quote(unquote(parts.path), safe="/,.-_~")
    return quoted + ("?" + parts.query if parts.query else "")
