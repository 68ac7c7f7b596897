"""Replays on the museum site: the runs pages, the curves beside the history, the filters picture,
and a run stored while the server runs showing at once."""
from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from replay.data import synthetic_dataset
from replay.network import Network
from replay.plan import build_plan
from replay.store import RunStore
from replay.train import Trainer, TrainOptions
from webapp.app import create_app
from webapp.settings import Settings
from webapp.site import Site

NET = "cifar-18pct-noisylr"


def replay_into(store: RunStore, release, seed: int) -> str:
    experiment = release.experiment(NET)
    data = synthetic_dataset(32, 10, train_size=32, test_size=16, seed=seed)
    run_id = store.create_run(experiment=NET, backend="numpy", data=data.description, synthetic=True,
                              options={"epochs": 1, "mini": 16}, fixes=[], code_version="test")
    net = Network(build_plan(experiment), experiment, rng=np.random.default_rng(seed))
    trainer = Trainer(net, data, TrainOptions(epochs=1, mini=16, batch_size=32), store=store, run_id=run_id,
                      checkpoint=store.checkpoint_path(run_id), out=io.StringIO())
    store.finish_run(run_id, trainer.run(), transfers={"copies_per_batch": 0, "bytes_per_batch": 0})
    return run_id


@pytest.fixture(scope="module")
def replayed(release, archive_root, tmp_path_factory):
    db = tmp_path_factory.mktemp("replays") / "site.sqlite"
    store = RunStore(db)
    run_id = replay_into(store, release, seed=0)
    settings = Settings(archive=archive_root, db=db)
    client = TestClient(create_app(settings, Site.load(settings)))
    return client, store, run_id


def test_runs_pages_and_twins(replayed):
    client, store, run_id = replayed
    listing = client.get("/runs.json").json()
    assert [r["id"] for r in listing["runs"]] == [run_id]
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200 and "Synthetic data." in page.text and f"/runs/{run_id}/filters.png" in page.text
    twin = client.get(f"/runs/{run_id}.json").json()
    assert len(twin["train"]) == 2 and len(twin["tests"]) == 1 and twin["has_checkpoint"]
    png = client.get(f"/runs/{run_id}/filters.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get("/runs/nope").status_code == 404
    assert client.get("/runs/nope/filters.png").status_code == 404


def test_the_experiment_shows_its_replay_beside_the_history(replayed):
    client, store, run_id = replayed
    data = client.get(f"/experiments/{NET}.json").json()
    assert [r["id"] for r in data["replays"]] == [run_id]
    errors = next(c for c in data["charts"] if c["id"].startswith("results-"))
    names = [s["name"] for s in errors["series"]]
    assert f"replay {run_id}: train top-1" in names and f"replay {run_id}: test top-1" in names
    page = client.get(f"/experiments/{NET}")
    assert f'href="/runs/{run_id}"' in page.text


def test_a_run_stored_while_serving_shows_at_once(replayed, release):
    client, store, first = replayed
    before = client.get(f"/experiments/{NET}").text  # now cached
    second = replay_into(store, release, seed=1)
    after = client.get(f"/experiments/{NET}").text
    assert second not in before and second in after
    assert [r["id"] for r in client.get("/runs.json").json()["runs"]] == [first, second]


def test_an_unreadable_runs_database_is_a_503_page_not_a_traceback(archive_root, tmp_path):
    import sqlite3

    db = tmp_path / "site.sqlite"
    RunStore(db).close()
    broken = sqlite3.connect(db)
    broken.execute("DROP TABLE replay_points")  # a database another version left behind
    broken.execute("DROP TABLE replay_runs")
    broken.commit()
    broken.close()
    settings = Settings(archive=archive_root, db=db)
    client = TestClient(create_app(settings, Site.load(settings)))
    page = client.get(f"/experiments/{NET}")
    assert page.status_code == 503 and "The replays cannot be read" in page.text
    assert str(db) not in page.text and "Traceback" not in page.text
    assert client.get("/experiments/120.json").status_code == 503
    assert client.get("/lineage").status_code == 200


def test_the_compare_page_overlays_the_replays(replayed):
    client, store, run_id = replayed
    data = client.get(f"/compare.json?ids={NET},example-18pct").json()
    assert data["ids"] == [NET, "example-18pct"]
    page = client.get(f"/compare?ids={NET},example-18pct")
    assert page.status_code == 200
    chart = client.get(f"/compare/{NET},example-18pct/charts/results.json").json()
    names = [s["name"] for s in chart["series"]]
    assert f"#{NET} replay {run_id}: train top-1" in names
