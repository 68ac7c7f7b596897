"""`alexnet-archive replay` and `runs` end to end, on the real release (small scale)."""
from __future__ import annotations

import json

import pytest

from webapp import cli


@pytest.fixture
def use_release(release, monkeypatch):
    monkeypatch.setattr(cli, "_load", lambda args: release)


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_of_every_experiment_prints(use_release, release, capsys):
    for e in release.sorted_experiments():
        if e.layers is None:
            code, out, err = run_cli(capsys, "replay", e.id, "--plan")
            assert code == 2 and "has no layer-definition file" in err
            continue
        code, out, err = run_cli(capsys, "replay", e.id, "--plan")
        assert code == 0, (e.id, err)
        assert f"Replay plan of #{e.id}" in out


def test_replay_stores_a_run_that_resumes_after_a_stop(use_release, capsys, tmp_path):
    db = str(tmp_path / "site.sqlite")
    code, out, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--scale", "small", "--db", db,
                             "--max-minibatches", "3")
    assert code == 0 and "SYNTHETIC" in err and "stopped" in err
    assert "--resume" in err
    code, out, _ = run_cli(capsys, "runs", "--db", db, "--json")
    [run] = json.loads(out)
    assert run["experiment"] == "cifar-18pct-noisylr" and run["status"] == "stopped" and run["backend"] == "numpy"
    # The resumed run takes its options from the stored run, not from this command line.
    code, out, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--db", db, "--resume", run["id"])
    assert code == 0, err
    code, out, _ = run_cli(capsys, "runs", "show", run["id"], "--db", db, "--json")
    shown = json.loads(out)
    assert shown["status"] == "finished"
    assert len(shown["train"]) == 64 // 8 and len(shown["tests"]) == 1
    assert {"epoch", "batch", "cost", "top1", "topk"} <= set(shown["train"][0])
    code, out, _ = run_cli(capsys, "runs", "export", run["id"], str(tmp_path / "net.safetensors"), "--db", db)
    assert code == 0 and (tmp_path / "net.safetensors").stat().st_size > 0
    code, out, _ = run_cli(capsys, "runs", "filters", run["id"], str(tmp_path / "filters.png"), "--db", db)
    assert code == 0 and (tmp_path / "filters.png").read_bytes().startswith(b"\x89PNG")


def test_bad_data_and_unknown_runs_are_clear_errors(use_release, capsys, tmp_path):
    code, _, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--data", str(tmp_path / "nowhere"),
                           "--db", str(tmp_path / "s.sqlite"))
    assert code == 2 and "nowhere: no such folder" in err
    code, _, err = run_cli(capsys, "runs", "show", "nope", "--db", str(tmp_path / "s.sqlite"))
    assert code == 2 and "no run 'nope'" in err
    code, _, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--fix", "bogus", "--db", str(tmp_path / "s.sqlite"))
    assert code == 2 and "not a known 2012 bug" in err


def test_replay_on_a_cifar_batch_folder(use_release, capsys, tmp_path):
    """The public CIFAR-10 python layout (rows are images, Python-2 pickles), made small here."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = {b"data": rng.integers(0, 256, size=(24, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=24).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    db = str(tmp_path / "site.sqlite")
    code, out, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--data", str(folder), "--mini", "16",
                             "--db", db)
    assert code == 0, err
    assert "SYNTHETIC" not in err and out.splitlines()[0].startswith("1.1... logprob: ")
    code, out, _ = run_cli(capsys, "runs", "--db", db, "--json")
    [run] = json.loads(out)
    assert run["status"] == "finished" and "CIFAR-10 python batches" in run["data"]


def test_replay_over_batch_files_by_range(use_release, capsys, tmp_path):
    """convnet.py's --train-range 1-2 --test-range 3 over cuda-convnet batch files (32×32, uint8 columns)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(3)
    folder = tmp_path / "batches"
    folder.mkdir()
    for number in (1, 2, 3, 4):
        batch = {"data": rng.integers(0, 256, size=(3072, 16), dtype=np.uint8),
                 "labels": rng.integers(0, 10, size=16).tolist()}
        (folder / f"data_batch_{number}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {"data_mean": np.full((3072, 1), 120.0, dtype=np.float32), "num_vis": 3072,
         "label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    db = str(tmp_path / "site.sqlite")
    code, out, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--data", str(folder), "--train-range", "1-2",
                             "--test-range", "3-4", "--mini", "8", "--test-freq", "1", "--db", db)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("1.1... logprob: ") and lines[3].startswith("1.2... logprob: ")
    assert out.count("Test output") == 3  # after each batch file, and the run's last
    code, out, _ = run_cli(capsys, "runs", "--db", db, "--json")
    [run] = json.loads(out)
    code, out, _ = run_cli(capsys, "runs", "show", run["id"], "--db", db, "--json")
    shown = json.loads(out)
    assert "train 1-2, test 3-4" in shown["data"] and len(shown["train"]) == 4
    assert shown["options"]["train_range"] == "1-2"
    # --test-one 1 (2012's default): each pass reads the next test file, 3, 4, 3 — 16 cases each
    assert [t["cases"] for t in shown["tests"]] == [16, 16, 16]
    assert shown["tests"][0]["cost"] != shown["tests"][1]["cost"]
    code, out, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--data", str(folder), "--train-range", "1",
                             "--test-range", "3-4", "--mini", "8", "--test-one", "0", "--db", db)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "runs", "--db", db, "--json")
    code, out, _ = run_cli(capsys, "runs", "show", json.loads(out)[-1]["id"], "--db", db, "--json")
    assert [t["cases"] for t in json.loads(out)["tests"]] == [32]
    # one range without the other, or a range without --data, is refused
    code, _, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--train-range", "1-2", "--db", db)
    assert code == 2 and "go together" in err
    code, _, err = run_cli(capsys, "replay", "cifar-18pct-noisylr", "--data", str(folder), "--train-range", "1-2",
                           "--test-range", "9", "--db", db)
    assert code == 2 and "data_batch_9: missing" in err


def test_init_from_names_a_run_or_a_checkpoint(use_release, capsys, tmp_path):
    """--init-from RUN reads the run's checkpoint (its weights part); the copying itself is tested on
    the networks in test_init_from.py, without training two ImageNet-sized nets here."""
    import argparse

    import numpy as np

    from replay.checkpoint import network_arrays, save_checkpoint
    from replay.store import RunStore

    db = tmp_path / "site.sqlite"
    code, _, err = run_cli(capsys, "replay", "146-2009", "--scale", "small", "--db", str(db))
    assert code == 2 and "initw.makew(conv1a)" in err and "--init-from" in err
    store = RunStore(db)
    run_id = store.create_run(experiment="145", backend="numpy", data="x", synthetic=True, options={}, fixes=[],
                              code_version="test")
    weights = {"conv1a.weights[0]": np.arange(6, dtype=np.float32).reshape(2, 3)}
    store.checkpoint_path(run_id).parent.mkdir(parents=True)
    save_checkpoint(store.checkpoint_path(run_id), network_arrays({"weights": weights, "momentum": weights}), {})
    for given in (run_id, str(store.checkpoint_path(run_id))):
        source, name = cli._init_source(argparse.Namespace(init_from=given, db=str(db)))
        assert list(source) == ["conv1a.weights[0]"] and np.array_equal(source["conv1a.weights[0]"], weights[
            "conv1a.weights[0]"])
        assert (run_id in name) and ("#145" in name or "checkpoint" in name)
    code, _, err = run_cli(capsys, "replay", "146-2009", "--scale", "small", "--db", str(db), "--init-from", "nope")
    assert code == 2 and "--init-from nope: neither a checkpoint file nor a run" in err
