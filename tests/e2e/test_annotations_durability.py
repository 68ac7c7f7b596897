"""Visitor notes posted over HTTP to a real `alexnet-archive serve` process survive it: a burst from
several clients, the server killed with SIGKILL in the middle, and every note that was answered
with its 303 is in the database afterwards, which SQLite finds intact. Without the kill, concurrent
clients' notes all land."""
from __future__ import annotations

import re
import sqlite3
import threading
import time

import pytest

from site_server import SiteServer

httpx = pytest.importorskip("httpx")

CLIENTS = 6
ANCHORS = ["120", "120/conv1a", "120/conv1a/epsW", "layers/layer-params-120.cfg:167", "131/fc1000"]


def visitor_client(url: str, anchor: str):
    """A client with its own CSRF cookie and the form's token, as a browser would have after GET /annotate."""
    client = httpx.Client(base_url=url, timeout=10, follow_redirects=False)
    page = client.get("/annotate", params={"anchor": anchor})
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.cookies.get("csrf") == token
    return client, token


def burst(url: str, worker: int, acknowledged: list[str], errors: list[str], stop: threading.Event,
          limit: int | None = None) -> None:
    anchor = ANCHORS[worker % len(ANCHORS)]
    try:
        client, token = visitor_client(url, anchor)
    except Exception as error:  # reported by the test, not lost in a thread
        errors.append(f"client {worker} could not get a form: {error!r}")
        return
    n = 0
    try:
        while not stop.is_set() and (limit is None or n < limit):
            body = f"burst note {worker}-{n}"
            try:
                response = client.post("/annotate", data={"anchor": anchor, "body": body, "name": f"client {worker}",
                                                          "website": "", "csrf": token})
            except httpx.HTTPError:
                return  # the server is gone: what was not answered was never promised
            if response.status_code == 303:
                acknowledged.append(body)
            else:
                errors.append(f"{response.status_code}: {response.text[:200]}")
            n += 1
    finally:
        client.close()


def stored_bodies(db) -> list[str]:
    from annotations.store import AnnotationStore

    with AnnotationStore(db) as store:
        return [a.body for a in store.list(status="pending")]


def integrity(db) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def server_factory(archive_root):
    servers: list[SiteServer] = []

    def start(db):
        servers.append(SiteServer(archive_root, db, env={"ALEXNET_ARCHIVE_POST_LIMIT": "1000000"}))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_a_killed_server_loses_no_acknowledged_note(server_factory, tmp_path):
    db = tmp_path / "site.sqlite"
    server = server_factory(db)
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=burst, args=(server.url, i, acknowledged, errors, stop)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # in the middle of the burst: the clients are still posting
    stop.set()
    for thread in threads:
        thread.join(15)
    assert not errors, errors[:3]
    assert len(acknowledged) >= 60, f"only {len(acknowledged)} notes were acknowledged before the kill"

    assert integrity(db) == "ok"
    stored = stored_bodies(db)
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged notes lost: {sorted(missing)[:5]}"
    assert len(stored) == len(set(stored))  # and none stored twice
    # The database still opens for a new server, which still shows nothing pending to visitors.
    again = server_factory(db)
    page = httpx.get(again.url + "/experiments/120", timeout=10).text
    assert "burst note" not in page


def test_concurrent_clients_all_land(server_factory, tmp_path):
    db = tmp_path / "site.sqlite"
    server = server_factory(db)
    acknowledged: list[str] = []
    errors: list[str] = []
    per_client = 15
    stop = threading.Event()
    threads = [threading.Thread(target=burst, args=(server.url, i, acknowledged, errors, stop, per_client))
               for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(acknowledged) == CLIENTS * per_client
    server.stop()
    assert integrity(db) == "ok"
    assert sorted(stored_bodies(db)) == sorted(acknowledged)
