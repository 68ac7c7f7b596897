"""The training loop, as convnet.py ran it (SEMANTICS.md §7.1), on one screen.

The training set is cut into "batch files" of `batch_size` images (CIFAR's data_batch_1..5
hold 10,000 each), visited in order; an epoch is one pass. Each batch file is split into
minibatches of `--mini` columns, in order, the last one smaller: forward (train), costs,
backward, update. Every `--test-freq` batch files, and always at the end, one test pass.
The learning rate of every weight follows its plan: the schedule (§5) at the training
progress of the batch file, and the log's hand-made changes at their epochs.

Each minibatch prints the original's line, `epoch.batch... logprob: c, e1, ek (t sec)`, and
is stored with the run; a checkpoint is written every `checkpoint_minutes` and at the end,
so a killed run resumes where it stopped, with the same generators: the same seed and
backend give the same curve, bit for bit, interrupted or not.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .backends.cuda.devices import as_numpy
from .checkpoint import load_checkpoint, network_arrays, network_parts, save_checkpoint
from .data import Cropping, DataError, Dataset, Images, evaluation_views, train_batch
from .network import Network
from .schedule import training_progress
from .store import Point, RunStore


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 1
    mini: int = 128
    batch_size: int = 10_000        # images per "batch file"
    test_freq: int = 50             # batch files between test passes (convnet.py's default)
    crop_border: int | None = None  # None: what the data and the net's input size imply
    color_noise: float | None = None  # None: as the log set it over the epochs (plan.color_noise)
    multiview_test: bool = False
    test_one: bool = True           # gpumodel.py's --test-one: each test pass reads the next test batch file
    seed: int = 0
    fixes: tuple[str, ...] = ()
    checkpoint_minutes: float = 10.0
    max_minibatches: int | None = None  # stop early (tests, --scale small): the run is then 'stopped'


@dataclass
class Progress:
    """Where a run stands; all of it goes into the checkpoint."""

    epoch: int = 1
    batch_position: int = 0      # index of the current batch file within the epoch
    minibatch_position: int = 0  # index of the next minibatch within that file
    batches_done: int = 0
    minibatches_done: int = 0
    tests_done: int = 0
    test_position: int = 0       # the next test batch file (--test-one cycles through --test-range)
    train_rng: dict = field(default_factory=dict)
    update_rng: dict = field(default_factory=dict)


def cropping_for(dataset: Dataset, inner: int, border: int | None, per_image: bool) -> Cropping:
    if border is None:
        if (dataset.size - inner) % 2 or dataset.size < inner:
            raise DataError(f"{dataset.description}: {dataset.size}×{dataset.size} images cannot give the net's "
                            f"{inner}×{inner} input by cropping the same border on each side")
        border = (dataset.size - inner) // 2
    if dataset.size - 2 * border != inner:
        raise DataError(f"--crop-border {border} turns {dataset.size}×{dataset.size} images into "
                        f"{dataset.size - 2 * border}×{dataset.size - 2 * border}, but the net takes {inner}×{inner}")
    return Cropping(dataset.size, border, per_image)


def log_line(epoch: int, batch: int, name: str, values: tuple[float, ...], cases: int, seconds: float) -> str:
    """convnet.py's training line: costs per case with %.6f, then the time."""
    shown = ", ".join(f"{v / cases:.6f}" for v in values)
    return f"{epoch}.{batch}... {name}: {shown} ({seconds:.3f} sec)"


class Trainer:
    def __init__(self, network: Network, dataset: Dataset, options: TrainOptions, *, store: RunStore | None,
                 run_id: str | None, checkpoint: Path | None, out=None, progress_bar: bool = True):
        self.net, self.data, self.options = network, dataset, options
        self.store, self.run_id, self.checkpoint = store, run_id, checkpoint
        self.out = out if out is not None else sys.stdout
        self.cropping = cropping_for(dataset, network.plan.input_size, options.crop_border,
                                     per_image=dataset.size <= 32)
        self.parts = dataset.train_parts(options.batch_size)
        self.files = len(self.parts)
        self.minibatches_per_epoch = max(1, sum(-(-part.cases // options.mini) for part in self.parts))
        self.state = Progress()
        self.train_rng = np.random.default_rng([options.seed, 1])
        self.update_rng = np.random.default_rng([options.seed, 2])
        self.last_checkpoint = time.monotonic()
        self.bar = None
        if progress_bar and sys.stderr.isatty():  # a bar with rate and ETA, on a terminal only
            from archive.locate import ProgressBar

            total = options.epochs * self.minibatches_per_epoch
            self.bar = ProgressBar(total, "replay", sys.stderr, unit="minibatches")

    # --- checkpoints --------------------------------------------------------------------------

    def save(self) -> None:
        if self.checkpoint is None:
            return
        arrays = network_arrays(self.net.to_host())  # NumPy arrays whatever the backend: either resumes it
        self.state.train_rng = self.train_rng.bit_generator.state
        self.state.update_rng = self.update_rng.bit_generator.state
        save_checkpoint(self.checkpoint, arrays, {"progress": asdict(self.state), "run": self.run_id,
                                                  "experiment": self.net.experiment.id})
        self.last_checkpoint = time.monotonic()

    def restore(self) -> None:
        arrays, state = load_checkpoint(self.checkpoint)
        try:
            self.net.load_from_host(network_parts(arrays))
        except KeyError as error:
            part, key = error.args[0]
            raise DataError(f"{self.checkpoint}: has no {part} {key!r}; it belongs to another net") from None
        self.state = Progress(**state["progress"])
        self.train_rng.bit_generator.state = self.state.train_rng
        self.update_rng.bit_generator.state = self.state.update_rng
        if self.store and self.run_id:
            self.store.keep_first(self.run_id, train=self.state.minibatches_done, test=self.state.tests_done)

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> str:
        """Train to the end (or max_minibatches); returns the run's status."""
        o, s = self.options, self.state
        while s.epoch <= o.epochs:
            while s.batch_position < self.files:
                # 2012: files and the cases in each in order, no shuffling (§7.1)
                images = self.parts[s.batch_position].load()
                progress = training_progress(s.epoch, s.batch_position, self.files, o.epochs)
                # the line says epoch.N with N the batch file's number, as convnet.py printed it
                number = getattr(self.parts[s.batch_position], "number", s.batch_position + 1)
                if not self._train_file(images, progress, number):
                    self.save()
                    return "stopped"
                s.batch_position += 1
                s.batches_done += 1
                if s.batches_done % o.test_freq == 0:
                    self.test()
                if time.monotonic() - self.last_checkpoint > 60 * o.checkpoint_minutes:
                    self.save()
            s.epoch += 1
            s.batch_position = 0
        if self.bar:
            self.bar.close()
        self.test()  # a run always ends with a test pass
        self.save()
        return "finished"

    def _train_file(self, images: Images, progress: float, number: int) -> bool:
        o, s = self.options, self.state
        started = time.perf_counter()
        sums: dict[str, np.ndarray] = {}
        count = 0
        while s.minibatch_position * o.mini < len(images):
            if o.max_minibatches is not None and s.minibatches_done >= o.max_minibatches:
                return False
            index = np.arange(s.minibatch_position * o.mini, min((s.minibatch_position + 1) * o.mini, len(images)))
            self.net.epoch = s.epoch
            noise = o.color_noise if o.color_noise is not None else self.net.plan.color_noise.value_at(s.epoch)
            data, labels = train_batch(self.data, index, self.cropping, self.train_rng, noise, images)
            costs = self.net.forward(data, labels, train=True, rng=self.train_rng)
            self.net.backward(labels)
            self.net.update(epoch=s.epoch, progress=progress, rng=self.update_rng)
            s.minibatches_done += 1
            s.minibatch_position += 1
            if self.bar:
                self.bar.update(1)
            count += costs.cases
            for name, values in costs.values.items():
                sums[name] = sums.get(name, 0) + np.asarray(values, dtype=np.float64)
            if self.store and self.run_id:
                name, values = next(iter(costs.values.items()))
                self.store.add_points(self.run_id, "train", [Point(
                    s.epoch, s.batches_done + 1, costs.cases, values[0] / costs.cases,
                    values[1] / costs.cases, values[2] / costs.cases, time.perf_counter() - started,
                    s.minibatches_done / self.minibatches_per_epoch)])
        for name, values in sums.items():
            print(log_line(s.epoch, number, name, tuple(values), count,
                           time.perf_counter() - started), file=self.out, flush=True)
        s.minibatch_position = 0
        return True

    def test(self) -> dict[str, tuple[float, ...]]:
        """One test pass (the next test batch file, or all of them with test_one=False): dropout
        scaled, the centre crop or the multiview average."""
        o, s = self.options, self.state
        started = time.perf_counter()
        sums: dict[str, np.ndarray] = {}
        count = 0
        parts = self.data.test_parts()
        if o.test_one:  # gpumodel.py: get_test_error reads one file per pass, cycling, unless --test-one 0
            parts = [parts[s.test_position % len(parts)]]
            s.test_position += 1
        for part in parts:
            images = part.load()
            for start in range(0, len(images), o.mini):
                index = np.arange(start, min(start + o.mini, len(images)))
                labels = images.labels[index].astype(np.float32).reshape(1, -1)
                views = evaluation_views(self.data, index, self.cropping, o.multiview_test, images)
                costs = self._evaluate(views, labels)
                count += len(index)
                for name, values in costs.items():
                    sums[name] = sums.get(name, 0) + np.asarray(values, dtype=np.float64)
        result = {name: tuple(v / count for v in values) for name, values in sums.items()}
        for name, values in result.items():
            shown = ", ".join(f"{v:.6f}" for v in values)
            print(f"======================Test output======================\n{name}: {shown}"
                  f" ({time.perf_counter() - started:.3f} sec)", file=self.out, flush=True)
            if self.store and self.run_id:
                self.store.add_points(self.run_id, "test", [Point(s.epoch, s.batches_done, count, *values[:3],
                                                                  time.perf_counter() - started,
                                                                  s.batches_done / self.files)])
        s.tests_done += 1
        return result

    def _evaluate(self, views: list[np.ndarray], labels: np.ndarray) -> dict[str, tuple[float, ...]]:
        if len(views) == 1:
            return dict(self.net.forward(views[0], labels, train=False, rng=self.train_rng).values)
        # Multiview: the softmax outputs of the views averaged, the cost computed once on the average
        # (LogregCostLayer::fpropActs).
        from .backends.numpy_ref.costs import logreg_cost

        averaged: dict[str, np.ndarray] = {}
        for view in views:
            self.net.forward(view, labels, train=False, rng=self.train_rng)
            for layer in self.net.plan.layers:
                if layer.type == "cost.logreg":
                    probs = as_numpy(self.net.output(layer.inputs[1]))  # the reference's cost, on the host
                    averaged[layer.name] = averaged.get(layer.name, 0) + probs / len(views)
        return {name: logreg_cost(labels.astype(np.int64).reshape(-1), probs,
                                  topk=int(self.net._params_value(self.net.layers[name], "topk", 1) or 1))
                for name, probs in averaged.items()}
