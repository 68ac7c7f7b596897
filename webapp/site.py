"""The exhibit's state: the archive, parsed once at start-up, and what every page shares.

Nothing here changes while the server runs (the archive is immutable), so derived
things are computed on first use and kept.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from archive.catalog import Archive, load_archive

from .settings import Settings


@dataclass
class Site:
    settings: Settings
    archive: Archive
    # The checkout's files a visitor may read (relative POSIX paths), and the newest mtime among them.
    readable_files: dict[str, Path] = field(default_factory=dict)
    last_modified: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    runs: object | None = None  # replay.store.RunStore: replays shown beside the history, when a db is set
    # annotations.store.AnnotationStore on the same database file: visitor and curator notes.
    annotations: object | None = None

    @classmethod
    def load(cls, settings: Settings) -> Site:
        archive = load_archive(settings.archive)
        files = checkout_files(Path(archive.root))
        newest = max((p.stat().st_mtime for p in files.values()), default=0.0)
        runs = annotation_store = None
        if settings.db is not None:
            from replay.store import RunStore  # standard library only: no NumPy for the site

            settings.db.parent.mkdir(parents=True, exist_ok=True)
            runs = RunStore(settings.db)
            annotation_store = open_annotations(settings.db, archive)
        return cls(settings, archive, files, datetime.fromtimestamp(int(newest), timezone.utc), runs,
                   annotation_store)

    def runs_version(self) -> object:
        """What the pages depend on besides the (immutable) archive: the stored replays and the
        annotations. Both live in the one database file, so its stat (file and WAL) changes with
        every write of either, which is what the page cache keys on."""
        if self.runs is not None:
            return self.runs.version()
        return _file_version(self.settings.db) if self.annotations is not None else None

    @cached_property
    def notes(self) -> list:
        """The curated museum notes (annotations/notes/*.md)."""
        from annotations.notes import load_notes

        return load_notes()

    @cached_property
    def glossary(self):
        from annotations.glossary import load_glossary

        return load_glossary()

    @cached_property
    def site_secret(self) -> bytes:
        """The database's key for cookies and CSRF tokens (made once per database, kept)."""
        if self.annotations is None:
            raise RuntimeError("no annotations database")
        return self.annotations.site_secret()

    def canonical_anchor(self, anchor) -> str | None:
        """The anchor as pages index it (keys spelt as the 2012 code did), or None when it
        points at nothing in the release."""
        from annotations.anchors import AnchorError, resolve

        try:
            return str(resolve(anchor, self.archive).canonical)
        except AnchorError:
            return None

    def replays(self, eid: str) -> list[dict]:
        """The stored replay runs of an experiment, with their curves."""
        if self.runs is None:
            return []
        return [self.runs.run(summary["id"]) for summary in self.runs.runs(eid)]

    def charts_for(self, experiment, replays: list[dict] | None = None) -> list:
        """The experiment's charts with its replays' curves (pass `replays` when already read)."""
        from .curves import experiment_charts

        return experiment_charts(experiment, self.replays(experiment.id) if replays is None else replays)

    @cached_property
    def timeline(self) -> list:
        """The runs on the entrance's timeline (webapp/diagrams.py: timeline_runs)."""
        from .diagrams import timeline_runs

        return timeline_runs(self.archive)

    @cached_property
    def version(self) -> str:
        """A short fingerprint of the archive's bytes: part of every ETag."""
        digest = hashlib.sha256()
        for name in sorted(self.archive.cfg):
            digest.update(name.encode())
            digest.update(self.archive.cfg[name].render().encode())
        return digest.hexdigest()[:16]

    @cached_property
    def hosts(self) -> list[str]:
        return sorted({h for e in self.archive.experiments.values() for h in e.hosts})

    @cached_property
    def statuses(self) -> list[str]:
        return sorted({e.status for e in self.archive.experiments.values() if e.status})

    @cached_property
    def dataset_labels(self) -> list[str]:
        return sorted({e.dataset.label() for e in self.archive.experiments.values()})

    @cached_property
    def experiment_for_file(self) -> dict[str, str]:
        """Release path -> the experiment whose params or layers file it is (first one wins)."""
        owners: dict[str, str] = {}
        for e in self.archive.sorted_experiments():
            owners.setdefault(e.params_file, e.id)
            if e.layers_file:
                owners.setdefault(e.layers_file, e.id)
        return owners


def open_annotations(db: Path, archive: Archive):
    """The annotation store on the site's database; an anchor must name a place in the release."""
    from annotations.anchors import resolve
    from annotations.store import AnnotationStore

    return AnnotationStore(db, validate_anchor=lambda anchor: resolve(anchor, archive))


def _file_version(path: Path | None) -> tuple:
    stamps = []
    for candidate in (path, path.with_name(path.name + "-wal")) if path else ():
        try:
            stat = candidate.stat()
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except FileNotFoundError:
            stamps.append(None)
    return tuple(stamps)


# Folders a checkout may have that are not part of the exhibit.
_SKIPPED_DIRS = {".git", "__pycache__", ".hg", ".svn", "node_modules"}


def checkout_files(root: Path) -> dict[str, Path]:
    """Every regular file under the checkout, by relative POSIX path. Symbolic links are left
    out (they could point outside the root), and so are version-control folders."""
    found: dict[str, Path] = {}
    root = root.resolve()
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not (Path(folder) / d).is_symlink())
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            found[path.relative_to(root).as_posix()] = path
    return found
