"""Shared fixtures. The release is read from ALEXNET_ARCHIVE, else from
../shared/AlexNet-Source-Code beside the repository (as CI lays it out)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def release_root() -> Path:
    env = os.environ.get("ALEXNET_ARCHIVE")
    return Path(env) if env else REPO.parent / "shared" / "AlexNet-Source-Code"


@pytest.fixture(scope="session")
def archive_root() -> Path:
    """The root of the 2012 release (a checkout of computerhistory/AlexNet-Source-Code)."""
    root = release_root()
    if not (root / "layers").is_dir():
        pytest.fail(f"the 2012 release is not at {root}: set ALEXNET_ARCHIVE to a clone of "
                    "computerhistory/AlexNet-Source-Code")
    return root


@pytest.fixture(scope="session")
def release_cfg_files(archive_root: Path) -> list[Path]:
    """Every configuration file of the release (.cfg, and the editor's .cfg.save)."""
    return sorted(p for p in archive_root.rglob("*") if p.is_file() and ".cfg" in p.name)


@pytest.fixture(scope="session")
def release(archive_root):
    """The whole release, loaded once for the session (tests must not mutate it)."""
    from archive import load_archive

    return load_archive(archive_root)
