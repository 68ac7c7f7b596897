"""Finding the release on this machine, and downloading it when it is not.

The archive path comes from (in order) an explicit argument (`--archive`), the
``ALEXNET_ARCHIVE`` environment variable, or the per-user cache that
`fetch_release` fills. `fetch_release` downloads the public repository
computerhistory/AlexNet-Source-Code at the pinned commit and checks every file
against the hash manifest shipped with this package (release-manifest.json).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, TextIO

from .source import ArchiveError, SourceSpan

ENV_ARCHIVE = "ALEXNET_ARCHIVE"
ENV_URL = "ALEXNET_ARCHIVE_URL"  # overrides the download address (a mirror, or a file:// tarball)
PUBLIC_REPOSITORY = "https://github.com/computerhistory/AlexNet-Source-Code"


@dataclass(frozen=True, slots=True)
class Manifest:
    repository: str
    commit: str
    archive_url: str
    files: dict[str, tuple[str, int]]  # path -> (sha256, size)

    @property
    def short_commit(self) -> str:
        return self.commit[:7]


@cache
def manifest() -> Manifest:
    raw = json.loads((Path(__file__).with_name("release-manifest.json")).read_text())
    files = {path: (entry["sha256"], entry["size"]) for path, entry in raw["files"].items()}
    return Manifest(raw["repository"], raw["commit"], raw["archive_url"], files)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alexnet-archive"


def cached_release_path() -> Path:
    return cache_dir() / f"AlexNet-Source-Code-{manifest().short_commit}"


def how_to_point_at_a_clone() -> str:
    return (f"Point the tool at a clone of the public release:\n"
            f"  git clone {PUBLIC_REPOSITORY}\n"
            f"  alexnet-archive list --archive AlexNet-Source-Code\n"
            f"or set {ENV_ARCHIVE}=/path/to/AlexNet-Source-Code, or run `alexnet-archive fetch` "
            f"where the network is reachable.")


def resolve_archive_path(explicit: str | os.PathLike | None = None) -> Path:
    """The release root to read: --archive, else $ALEXNET_ARCHIVE, else the cache."""
    if explicit:
        where, path = "--archive", Path(explicit)
    elif os.environ.get(ENV_ARCHIVE):
        where, path = ENV_ARCHIVE, Path(os.environ[ENV_ARCHIVE])
    else:
        where, path = "the download cache", cached_release_path()
        if not path.is_dir():
            raise ArchiveError(None, "no archive given and none downloaded yet.\n" + how_to_point_at_a_clone(),
                               "archive.not-found")
    if not path.is_dir():
        raise ArchiveError(SourceSpan(str(path), 0), f"the archive path from {where} is not a directory",
                           "archive.not-found")
    if not (path / "layers").is_dir():
        raise ArchiveError(SourceSpan(str(path), 0),
                           f"the archive path from {where} has no layers/ folder; is it a clone of "
                           f"computerhistory/AlexNet-Source-Code?", "archive.not-a-release")
    return path


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def verify_release(root: Path, *, data_only: bool = False, against: Manifest | None = None) -> VerifyReport:
    """Compare the files under `root` with the manifest. `data_only` checks
    only the files present (a data-only copy such as ../shared has no source)."""
    expected = (against or manifest()).files
    missing, mismatched, checked = [], [], 0
    for path, (sha, size) in sorted(expected.items()):
        file = root / path
        if not file.is_file():
            if not data_only:
                missing.append(path)
            continue
        checked += 1
        data = file.read_bytes()
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            mismatched.append(path)
    extra = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                   if p.is_file() and ".git" not in p.parts and str(p.relative_to(root)) not in expected)
    return VerifyReport(checked, tuple(missing), tuple(mismatched), tuple(extra))


class ProgressBar:
    """A one-line progress bar with rate and ETA on a terminal (plain lines otherwise)."""

    def __init__(self, total: int | None, label: str, stream: TextIO = sys.stderr, unit: str = "MB"):
        self.total, self.label, self.stream, self.unit = total, label, stream, unit
        self.done = 0
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.tty = stream.isatty()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last_draw >= 0.1:
            self.draw(now)

    def draw(self, now: float, final: bool = False) -> None:
        self.last_draw = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        # Bytes are shown in MB; any other unit ("pages") as plain counts.
        scale, digits = (1e6, 2) if self.unit == "MB" else (1, 0)
        done, per_s = self.done / scale, rate / scale
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            text = (f"{self.label} [{bar:<30}] {frac:6.1%} {done:.{digits}f}/{self.total / scale:.{digits}f} "
                    f"{self.unit} {per_s:.2f} {self.unit}/s ETA {eta:4.0f}s")
        else:
            text = f"{self.label} {done:.{digits}f} {self.unit} {per_s:.2f} {self.unit}/s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
            self.stream.flush()
        elif final:
            self.stream.write(text + "\n")

    def close(self) -> None:
        self.draw(time.monotonic(), final=True)


def _download(url: str, progress: Callable[[int | None], ProgressBar] | None, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            bar = progress(int(total) if total else None) if progress else None
            chunks = []
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
            return b"".join(chunks)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ArchiveError(None, f"could not download the release from {url}: {reason}.\n"
                           + how_to_point_at_a_clone(), "fetch.network") from None


def fetch_release(dest: Path | None = None, *, url: str | None = None, timeout: float = 60.0,
                  progress: bool = True, against: Manifest | None = None) -> tuple[Path, VerifyReport]:
    """Download the release at the pinned commit into `dest` (default: the
    per-user cache), check every file against the manifest, and return its
    path. Nothing is left at `dest` unless every file matched."""
    m = against or manifest()
    dest = dest or cached_release_path()
    url = url or os.environ.get(ENV_URL) or m.archive_url
    bar_factory = (lambda total: ProgressBar(total, "downloading")) if progress else None
    blob = _download(url, bar_factory, timeout)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
                members = [member for member in tar.getmembers() if member.isfile()]
                for member in members:
                    # GitHub tarballs hold one top folder; drop it, refuse anything that escapes.
                    parts = Path(member.name).parts[1:]
                    if not parts or ".." in parts or Path(member.name).is_absolute():
                        continue
                    target = staging.joinpath(*parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is not None:
                        target.write_bytes(source.read())
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ArchiveError(None, f"the download from {url} is not a readable tar archive: {error}",
                               "fetch.bad-archive") from None
        report = verify_release(staging, against=m)
        if not report.ok:
            problems = ", ".join((report.missing + report.mismatched)[:5])
            raise ArchiveError(None, f"the download from {url} does not match the manifest of commit "
                               f"{m.short_commit}: {len(report.missing)} missing, {len(report.mismatched)} "
                               f"changed ({problems})", "fetch.manifest-mismatch")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
        return dest, report
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
