"""Finding the release, and downloading it (from a real tarball over a file://
URL: the machines that run the tests have no network)."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from archive.locate import (ENV_ARCHIVE, Manifest, fetch_release, manifest, resolve_archive_path,
                            verify_release)
from archive.source import ArchiveError


def test_the_shared_release_matches_the_pinned_manifest(archive_root):
    m = manifest()
    assert m.commit.startswith("2f8b81f") and m.repository == "computerhistory/AlexNet-Source-Code"
    report = verify_release(archive_root, data_only=True)
    assert report.ok and report.checked == 183 and not report.extra


def _tarball(root: Path, files: list[Path], top: str, tamper: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in files:
            relative = path.relative_to(root).as_posix()
            data = path.read_bytes()
            if relative == tamper:
                data = data.replace(b"0.9", b"0.8", 1)
            info = tarfile.TarInfo(f"{top}/{relative}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../escape.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    return buffer.getvalue()


def _data_manifest(root: Path, files: list[Path]) -> Manifest:
    entries = {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size)
               for p in files}
    return Manifest("computerhistory/AlexNet-Source-Code", manifest().commit, "unused", entries)


def test_fetch_downloads_extracts_and_verifies(tmp_path, archive_root):
    files = sorted(p for p in archive_root.rglob("*") if p.is_file())
    tarball = tmp_path / "release.tar.gz"
    tarball.write_bytes(_tarball(archive_root, files, "AlexNet-Source-Code-2f8b81f"))
    dest = tmp_path / "cache" / "release"
    path, report = fetch_release(dest, url=tarball.as_uri(), progress=False,
                                 against=_data_manifest(archive_root, files))
    assert path == dest and report.ok and report.checked == len(files)
    assert (dest / "layers" / "layers-120.cfg").read_bytes() == (archive_root / "layers" / "layers-120.cfg").read_bytes()
    assert not (tmp_path / "cache" / "escape.txt").exists()
    assert resolve_archive_path(dest) == dest


def test_fetch_refuses_a_tampered_download_and_leaves_nothing(tmp_path, archive_root):
    files = sorted(p for p in archive_root.rglob("*") if p.is_file())
    tarball = tmp_path / "release.tar.gz"
    tarball.write_bytes(_tarball(archive_root, files, "top", tamper="layers/layer-params-120.cfg"))
    dest = tmp_path / "cache" / "release"
    with pytest.raises(ArchiveError, match="does not match the manifest.*layer-params-120.cfg"):
        fetch_release(dest, url=tarball.as_uri(), progress=False, against=_data_manifest(archive_root, files))
    assert not dest.exists() and list((tmp_path / "cache").iterdir()) == []


def test_fetch_without_network_says_how_to_use_a_clone(tmp_path):
    with pytest.raises(ArchiveError) as raised:
        fetch_release(tmp_path / "r", url="http://127.0.0.1:9/nothing.tar.gz", progress=False, timeout=5)
    assert "git clone https://github.com/computerhistory/AlexNet-Source-Code" in str(raised.value)
    assert "--archive" in str(raised.value)


def test_archive_path_resolution(tmp_path, monkeypatch, archive_root):
    monkeypatch.setenv(ENV_ARCHIVE, str(archive_root))
    assert resolve_archive_path() == archive_root
    assert resolve_archive_path(archive_root) == archive_root
    with pytest.raises(ArchiveError, match="no layers/ folder"):
        resolve_archive_path(tmp_path)
    monkeypatch.delenv(ENV_ARCHIVE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(ArchiveError, match="none downloaded yet"):
        resolve_archive_path()


def test_cli_fetch_reports_a_clear_error_offline(tmp_path):
    result = subprocess.run([sys.executable, "-m", "webapp.cli", "fetch", "--dest", str(tmp_path / "r"),
                             "--url", "http://127.0.0.1:9/x.tar.gz"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "could not download" in result.stderr and "Traceback" not in result.stderr
