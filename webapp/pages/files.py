"""/files and /files/{path}: the visitor's checkout, file by file, with line numbers.

Only files found under the archive root when the site started can be shown (a fixed
list, so no path a visitor types can reach outside it)."""
from __future__ import annotations

from ..errors import NotFound
from ..site import Site

_MAX_SHOWN = 2_000_000  # bytes shown as text; larger files are listed with their size only


def files_data(site: Site) -> dict:
    owners = site.experiment_for_file
    return {"root": site.archive.root.name,
            "files": [{"path": path, "size": p.stat().st_size, "experiment": owners.get(path)}
                      for path, p in site.readable_files.items()]}


def file_data(site: Site, path: str, notes=None) -> dict:
    real = site.readable_files.get(path)
    if real is None:
        raise NotFound(f"There is no file {path!r} in this archive.")
    raw = real.read_bytes()
    text = None
    if len(raw) <= _MAX_SHOWN and b"\0" not in raw[:8192]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # 2012 files are ASCII; never refuse to show one
    if notes is None:
        from ..links import Links
        from .annotations import margins

        notes = margins(site, [], [path], Links())
    # The curated notes and approved annotations pinned to its lines.
    return {"path": path, "size": len(raw), "experiment": site.experiment_for_file.get(path),
            "binary": text is None, "lines": text.splitlines() if text is not None else []} | notes.twin()


def file_view(site: Site, path: str, links) -> dict:
    from .annotations import anchor_ok, can_annotate, margins

    notes = margins(site, [], [path], links)
    data = file_data(site, path, notes)
    parts = path.split("/")
    return {"f": data, "title": path, "crumbs": parts, "line_notes": notes.lines_of(path),
            # "+ note" beside every line: only where a line can be an anchor (a text file, a safe path).
            "annotate_ok": can_annotate(site, links) and not data["binary"] and anchor_ok(f"{path}:1")}
