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
    assert f"--resume" in err
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
