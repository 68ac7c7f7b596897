"""replay/train.py: a 2012 CIFAR net learns real images; runs repeat bit for bit and resume after a kill."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

from replay.data import Dataset, Images, synthetic_dataset
from replay.network import Network
from replay.plan import build_plan
from replay.store import RunStore
from replay.train import Trainer, TrainOptions, log_line

NET = "cifar-18pct-noisylr"  # layers-cifar/layers-18pct.cfg: conv, pool, rnorm ×2, conv, pool, fc


def digits_dataset(side: int = 32) -> Dataset:
    """scikit-learn's bundled handwritten digits (real images, no download), each 8×8 pixel
    blown up to side/8 × side/8 and copied to R, G and B, in 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    scale = side // 8
    images = np.kron(digits.images[:, None] * 16.0, np.ones((1, 3, scale, scale))).astype(np.float32)
    data = images.reshape(len(images), -1).T
    labels = digits.target.astype(np.int64)
    train, test = Images(data[:, :1500], labels[:1500]), Images(data[:, 1500:], labels[1500:])
    return Dataset("scikit-learn digits", side, tuple(str(d) for d in range(10)), train, test,
                   train.data.mean(axis=1).astype(np.float32))


def trainer(release, dataset, options, *, store=None, run_id=None, checkpoint=None, seed=0):
    experiment = release.experiment(NET)
    net = Network(build_plan(experiment), experiment, rng=np.random.default_rng(seed))
    out = io.StringIO()
    return Trainer(net, dataset, options, store=store, run_id=run_id, checkpoint=checkpoint, out=out), out


def test_a_2012_cifar_net_learns_real_digits(release):
    # Two epochs of 1,500 images in minibatches of 16 (188 updates) with the files' own rates.
    train, out = trainer(release, digits_dataset(), TrainOptions(epochs=2, mini=16, batch_size=1500, test_freq=1000))
    assert train.run() == "finished"
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"1\.1\.\.\. logprob: \d\.\d{6}, \d\.\d{6}, \d\.\d{6} \(\d+\.\d{3} sec\)", lines[0])
    test = train.test()["logprob"]
    assert test[1] < 0.5, f"top-1 test error {test[1]:.3f}: not well above chance (0.9)"


def _curve(store, run_id):
    run = store.run(run_id)
    return [(p["epoch"], p["batch"], p["cost"], p["top1"], p["topk"]) for p in run["train"]], \
           [(p["cost"], p["top1"]) for p in run["tests"]]


def test_same_seed_same_curve_and_a_killed_run_resumes_exactly(release, tmp_path):
    data = synthetic_dataset(32, 10, train_size=96, test_size=32, seed=4)
    options = TrainOptions(epochs=2, mini=16, batch_size=48, test_freq=2, color_noise=0.1)
    store = RunStore(tmp_path / "runs.sqlite")

    def fresh(name, **extra):
        run_id = store.create_run(experiment=NET, backend="numpy", data=data.description, synthetic=True,
                                  options={}, fixes=[], code_version="test", run_id=name)
        return trainer(release, data, TrainOptions(**{**options.__dict__, **extra}), store=store, run_id=run_id,
                       checkpoint=tmp_path / f"{name}.ckpt")[0], run_id

    whole, whole_id = fresh("whole")
    assert whole.run() == "finished"
    again, again_id = fresh("again")
    again.run()
    assert _curve(store, whole_id) == _curve(store, again_id)  # bit for bit

    killed, killed_id = fresh("killed", max_minibatches=7)  # stops inside the second batch file
    assert killed.run() == "stopped"
    resumed, _ = trainer(release, data, options, store=store, run_id=killed_id, checkpoint=tmp_path / "killed.ckpt")
    resumed.restore()
    assert resumed.run() == "finished"
    assert _curve(store, killed_id) == _curve(store, whole_id)
    assert len(_curve(store, whole_id)[0]) == 2 * 96 // 16


def test_a_damaged_checkpoint_is_refused(release, tmp_path):
    from replay.checkpoint import CheckpointError

    data = synthetic_dataset(32, 10, train_size=32, test_size=16, seed=1)
    train, _ = trainer(release, data, TrainOptions(epochs=1, mini=16, batch_size=32, max_minibatches=1),
                       checkpoint=tmp_path / "run.ckpt")
    assert train.run() == "stopped"
    raw = (tmp_path / "run.ckpt").read_bytes()
    (tmp_path / "run.ckpt").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(CheckpointError, match="run.ckpt: damaged or truncated"):
        trainer(release, data, TrainOptions(), checkpoint=tmp_path / "run.ckpt")[0].restore()


def test_log_line_is_the_originals():
    assert log_line(26, 3, "logprob", (2 * 1.634692, 2 * 0.378533, 2 * 0.17236), 2, 1.5) == \
        "26.3... logprob: 1.634692, 0.378533, 0.172360 (1.500 sec)"


def test_color_noise_follows_the_plan_epoch_by_epoch_unless_given(release, monkeypatch):
    import dataclasses

    import replay.train as train_module
    from replay.schedule import Step, Timetable

    seen: list[float] = []
    original = train_module.train_batch

    def recording(dataset, index, cropping, rng, color_noise=0.0, source=None):
        seen.append(color_noise)
        return original(dataset, index, cropping, rng, color_noise, source)

    monkeypatch.setattr(train_module, "train_batch", recording)
    experiment = release.experiment(NET)
    plan = build_plan(experiment)
    logged = Timetable((Step(0.0, 0.1, "log:1", "start"), Step(2.0, 0.0, "log:2", "set color noise to 0")))
    plan = dataclasses.replace(plan, color_noise=logged)
    data = synthetic_dataset(32, 10, train_size=16, test_size=8)
    for given, expected in ((None, [0.1, 0.1, 0.0, 0.0]), (0.3, [0.3] * 4)):
        seen.clear()
        net = Network(plan, experiment, rng=np.random.default_rng(0))
        options = TrainOptions(epochs=2, mini=8, batch_size=16, test_freq=100, color_noise=given)
        Trainer(net, data, options, store=None, run_id=None, checkpoint=None, out=io.StringIO()).run()
        assert seen == pytest.approx(expected)
