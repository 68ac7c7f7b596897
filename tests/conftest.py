"""Shared fixtures. The release is read from ALEXNET_ARCHIVE, else from
../shared/AlexNet-Source-Code beside the repository (as CI lays it out)."""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
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


# --- the museum site: the parsed Site, an in-process TestClient, and a real uvicorn server started
# the way a visitor starts it (`alexnet-archive serve`) ---------------------------------------

ANNOUNCEMENT = "The exhibit is open at "
SERVER_START_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def settings(archive_root: Path):
    from webapp.settings import Settings

    return Settings(archive=archive_root)


@pytest.fixture(scope="session")
def site(settings):
    """The release parsed once for the whole session (tests must not mutate it)."""
    from webapp.site import Site

    return Site.load(settings)


@pytest.fixture(scope="session")
def client(settings, site):
    from fastapi.testclient import TestClient

    from webapp.app import create_app

    with TestClient(create_app(settings, site)) as test_client:
        yield test_client


def _pump(stream, lines: queue.Queue, keep: list[str]) -> None:
    """Read a pipe to its end in a thread (so the server never blocks on a full pipe)."""
    for line in iter(stream.readline, ""):
        keep.append(line)
        lines.put(line)
    lines.put(None)


@pytest.fixture(scope="session")
def live_server(archive_root: Path, tmp_path_factory):
    """A real server process on a free port; yields its base URL ("http://127.0.0.1:PORT/")."""
    command = [sys.executable, "-m", "webapp.cli", "serve", "--archive", str(archive_root),
               "--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path_factory.mktemp("site") / "site.sqlite")]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, encoding="utf-8", errors="replace")
    stdout_lines: queue.Queue = queue.Queue()
    stdout_kept: list[str] = []
    stderr_kept: list[str] = []
    threads = [threading.Thread(target=_pump, args=(process.stdout, stdout_lines, stdout_kept), daemon=True),
               threading.Thread(target=_pump, args=(process.stderr, queue.Queue(), stderr_kept), daemon=True)]
    for thread in threads:
        thread.start()

    def fail(why: str):
        if process.poll() is None:
            process.kill()
            process.wait(5)
        time.sleep(0.1)  # let the pump threads drain the pipes
        pytest.fail(f"{why}\ncommand: {' '.join(command)}\nexit status: {process.returncode}\n"
                    f"stdout:\n{''.join(stdout_kept)}\nstderr:\n{''.join(stderr_kept)}")

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    base_url = None
    try:
        while base_url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail("the server did not announce its URL in time")
            try:
                line = stdout_lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                fail("the server exited before announcing its URL")
            if ANNOUNCEMENT in line:
                base_url = line.split(ANNOUNCEMENT, 1)[1].split()[0]
        if not base_url.startswith("http://127.0.0.1:") or not base_url.endswith("/"):
            fail(f"unexpected announced URL {base_url!r}")
        # The URL is announced just before uvicorn starts serving: poll until it answers.
        while True:
            if process.poll() is not None:
                fail("the server died while starting")
            try:
                with urllib.request.urlopen(base_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                fail(f"the server did not answer at {base_url} within {SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield base_url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
