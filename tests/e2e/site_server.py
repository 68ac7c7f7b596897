"""Start `alexnet-archive serve` as a real process on a database of the test's choosing (the
session's live_server fixture makes its own database, which these tests need to prepare or
to kill the server over)."""
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

REPO = Path(__file__).resolve().parents[2]
ANNOUNCEMENT = "The exhibit is open at "


class SiteServer:
    def __init__(self, archive_root: Path, db: Path, env: dict[str, str] | None = None, timeout: float = 30.0):
        self.command = [sys.executable, "-m", "webapp.cli", "serve", "--archive", str(archive_root),
                        "--host", "127.0.0.1", "--port", "0", "--db", str(db)]
        self.process = subprocess.Popen(self.command, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        encoding="utf-8", errors="replace")
        self.output: list[str] = []
        lines: queue.Queue = queue.Queue()
        for stream, sink in ((self.process.stdout, lines), (self.process.stderr, queue.Queue())):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        self.url = self._wait_for_url(lines, timeout)

    def _pump(self, stream, sink: queue.Queue) -> None:
        for line in iter(stream.readline, ""):
            self.output.append(line)
            sink.put(line)
        sink.put(None)

    def _wait_for_url(self, lines: queue.Queue, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            if time.monotonic() > deadline:
                self.fail("the server did not announce its URL in time")
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                self.fail("the server exited before announcing its URL")
            if ANNOUNCEMENT in line:
                url = line.split(ANNOUNCEMENT, 1)[1].split()[0].rstrip("/")
        while True:  # announced just before uvicorn serves: poll until it answers
            if self.process.poll() is not None:
                self.fail("the server died while starting")
            try:
                with urllib.request.urlopen(url + "/files.json", timeout=2) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.fail("the server did not answer in time")
            time.sleep(0.05)

    def fail(self, why: str):
        import pytest

        self.stop()
        pytest.fail(f"{why}\ncommand: {' '.join(self.command)}\noutput:\n{''.join(self.output)}")

    def kill(self) -> None:
        """kill -9: no shutdown handler runs, nothing is flushed but what SQLite already committed."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
