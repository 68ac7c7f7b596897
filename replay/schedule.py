"""Learning rates as the 2012 trainer used them: the schedule of a params file (SEMANTICS.md §5,
src/lr.cu) applied to a base rate that the author changed by hand between resumes (the log's
"epoch 26: set epsw to 0.001 from 0.01").

Three pieces:

- `scheduled_rate(schedule, eps0, progress, rng=None)`: ε(p) for every schedule form, through
  `archive.params.schedule_rate` (lr.cu's `_getRate`), plus lr.cu's half-normal noise when a
  generator is passed.
- `training_progress(...)`: p as convnet.py's `start_batch` computes it.
- `epsw_timetables(experiment)`: the base rate epsW of every weight matrix per epoch, rebuilt
  backwards from the params file (the state at the END of the logged work, SEMANTICS §1.1) through
  the log's epsW changes. `rate_at(param, epoch, progress)` combines a plan parameter's timetable
  with its schedule.

The rebuild is `archive.lrhistory.epsw_history`, the same history the site's charts draw
(webapp/curves.py). The replay needs ONE timeline per weight matrix where the history may hold
several runs (restarts): it follows the history's last run, the one the params file ends; a
change without an epoch takes effect at the epoch of the event before it; and every epoch gets a
value (an unknown earlier value is assumed equal to the next known one: `Timetable.assumed`).
"""
from __future__ import annotations

from dataclasses import dataclass

from archive.lrhistory import Track, TrackRun, epsw_history, layer_matches
from archive.params import Schedule, schedule_rate

__all__ = [
    "scheduled_rate", "training_progress", "Step", "Timetable", "TimetableSet", "epsw_timetables",
    "constant_timetable", "rate_at", "layer_matches",
]


# --- ε(p) -----------------------------------------------------------------------------------

def scheduled_rate(schedule: Schedule | None, eps0: float, progress: float, rng=None) -> float:
    """The rate lr.cu's `getRate(progress)` returns for base rate `eps0`.

    schedule None means `default` (layer.py's default for schedW/schedB). With noiseStdev σ > 0
    and a numpy Generator `rng`, the deterministic rate is multiplied by 1 + σ·|z|, z ~ N(0,1),
    redrawn on every call (LearningRateSchedule::getRate); without `rng` the noise is left out.
    The 2012 draws came from Box-Muller over C `random()` and cannot be reproduced bit for bit.
    """
    if schedule is None:
        base = float(eps0)
    else:
        base = schedule_rate(schedule, eps0, progress)
    sigma = schedule.noise_stdev if schedule is not None else None
    if rng is not None and sigma is not None and sigma > 0:
        return base * (1.0 + abs(float(rng.standard_normal())) * sigma)
    return base


def training_progress(epoch: int, batch_position: int, batches_per_epoch: int, epochs: int) -> float:
    """p = clamp((k − 1)/(E·B), 0, 1) with k = B·(epoch − 1) + batch_position + 1 (convnet.py:
    ConvNet.start_batch; k is gpumodel's get_num_batches_done, counted before this batch file).

    epoch: 1-based, as the trainer prints it ("26.3" is epoch 26); batch_position: 0-based index
    of the batch file within --train-range; batches_per_epoch: B, the number of files in
    --train-range; epochs: E, the *current* --epochs (it was raised on resumes, SEMANTICS §5).
    The rate is set once per batch file, so all its minibatches share one p.
    """
    if batches_per_epoch <= 0 or epochs <= 0:
        raise ValueError("batches_per_epoch and epochs must be positive")
    done = batches_per_epoch * (epoch - 1) + batch_position + 1
    return min(1.0, max(0.0, (done - 1) / (epochs * batches_per_epoch)))


# --- timetables --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Step:
    """From `epoch` on (inclusive), the base rate is `value`. source: "file:line" of the log
    line or params value that gives it; text: why (the log's words, or a note)."""

    epoch: float
    value: float
    source: str
    text: str

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "value": self.value, "source": self.source, "text": self.text}


@dataclass(frozen=True, slots=True)
class Timetable:
    """The base rate of one parameter tensor over the epochs: `steps` sorted by epoch, the first
    at epoch 0. `assumed` is True where some value had to be assumed (the log does not say it)."""

    steps: tuple[Step, ...]
    assumed: bool = False

    def value_at(self, epoch: float) -> float:
        """The base rate during `epoch` (1-based, as printed: a change logged at "epoch 26"
        applies from epoch 26 on [L: the log does not say whether before or after its first batch])."""
        value = self.steps[0].value
        for step in self.steps:
            if step.epoch <= epoch:
                value = step.value
            else:
                break
        return value

    @property
    def start(self) -> float:
        return self.steps[0].value

    @property
    def end(self) -> float:
        return self.steps[-1].value

    def to_json(self) -> dict:
        return {"steps": [s.to_json() for s in self.steps], "assumed": self.assumed}


def constant_timetable(value: float, source: str, text: str) -> Timetable:
    return Timetable((Step(0.0, value, source, text),))


@dataclass(frozen=True, slots=True)
class TimetableSet:
    """epsW timetables of an experiment, keyed (layer, input index), and the notes of the rebuild."""

    tables: dict[tuple[str, int], Timetable]
    notes: tuple[str, ...]


def rate_at(param, epoch: float, progress: float, rng=None) -> float:
    """ε of a plan parameter (anything with `.timetable` and `.schedule`, e.g. plan.ParamTensor)
    during `epoch` at training progress `progress`: the timetable's base rate put through the
    schedule. A base rate <= 0 returns 0.0: Weights::update then does nothing (getBaseRate() > 0)."""
    base = param.timetable.value_at(epoch)
    if not base > 0:
        return 0.0
    return scheduled_rate(param.schedule, base, progress, rng)


# The timetables, from archive.lrhistory -----------------------------------------------------

def _timetable(track: Track, track_run: TrackRun | None) -> Timetable:
    """One timeline of `track_run` (None: no run to follow, the file's value throughout)."""
    file_source = str(track.span)
    if track_run is None:
        return constant_timetable(track.file_value, file_source, "params file (no logged change)")
    steps = [Step(s.effective_epoch, s.value, str(s.span), s.text) for s in track_run.steps]
    assumed = track_run.start is None
    if assumed:
        known = steps[0] if steps else None
        first = Step(0.0, known.value if known else track.file_value, known.source if known else file_source,
                     "value before the first change unknown; assumed equal to the next known one")
    elif steps:
        first = Step(0.0, track_run.start, steps[0].source, "value before the first logged change")
    else:
        first = Step(0.0, track_run.start, file_source, "params file (no logged change)")
    # Several changes at one epoch: the last one holds from that epoch on.
    compact: list[Step] = []
    for step in [first] + steps:
        if compact and compact[-1].epoch == step.epoch:
            compact[-1] = step
        else:
            compact.append(step)
    return Timetable(tuple(compact), assumed)


def epsw_timetables(experiment) -> TimetableSet:
    """epsW per (layer, input index) of every params section with epsW: one timeline each,
    from `archive.lrhistory.epsw_history` (its rules 1-8).

    The timetables follow the history's last run, the one the params file ends, walked
    backwards from it: the runs with changes (and the last run) as one timeline when none
    restarts at an epoch before an earlier one ended; otherwise (restarts) only the last run,
    whose end the file holds (the earlier runs were abandoned; in #170 the last run changes
    nothing, so the file's values hold throughout). A change without an epoch holds from the epoch of the event before it (the
    history's `effective_epoch`). Where a change gives no earlier value, the earliest known
    value is assumed back to epoch 0 (`Timetable.assumed`).
    """
    history = epsw_history(experiment)
    notes = [n.text for n in history.notes]
    final = history.runs[-1] if history.runs else None
    if final is not None and history.overlap:
        notes.append(f"the timetables follow {final.name} (from {final.span}), the last run, whose end the "
                     "params file holds; the earlier, restarted runs are not replayed")
    tables: dict[tuple[str, int], Timetable] = {}
    undated: dict[str, float] = {}
    for th in history.tracks:
        table = _timetable(th.track, th.final)
        for index in th.track.inputs:
            tables[(th.track.layer, index)] = table
        for step in th.final.steps if th.final else ():
            if step.epoch is None:
                undated.setdefault(str(step.span), step.effective_epoch)
    notes += [f"{where}: the change has no epoch; the timetable places it at epoch {epoch:g}, the event before it"
              for where, epoch in undated.items()]
    return TimetableSet(tables, tuple(dict.fromkeys(notes)))


def logged_setting_timetables(experiment, *, as_written: bool = False) -> tuple[Timetable, dict[str, Timetable]]:
    """(color noise, {hs layer: enable}) over the epochs, from the log's events (SEMANTICS.md §1.1:
    the files hold values as last edited; convnet.py's --color-noise and an hs layer's `enable`
    were changed by hand, and the log says when):

      "set color noise to 0 from 0.1" (epoch 44)  ->  0.1 until epoch 44, then 0
      "color noise put back to 0.1" (a run's start) ->  that run starts at 0.1
      "enabled dropout on hs3a,hs3b" (epoch 26)     ->  enable 0 until epoch 26, then 1 (all hs
                                                      layers when it names none)

    The runs are those the epsW timetables follow: all of them as one timeline, or only the last
    when a restart overlaps an earlier run. Without a change, color noise is 0 (convnet.py's
    default), `assumed`. as_written: the value the log ends with, throughout."""
    history = epsw_history(experiment)
    own = [run.index for run in experiment.own_runs]
    runs = set(history.runs[-1].runs if history.overlap and history.runs else own)
    hs_layers = [layer.name for layer in (experiment.layers.layers if experiment.layers else ())
                 if layer.type == "hs"]
    noise_start: Step | None = None
    noise_steps: list[Step] = []
    enable_steps: dict[str, list[Step]] = {}
    last_epoch = 0.0
    for entry in experiment.logbook.entries:
        if entry.run not in runs:
            continue
        where = str(entry.span)
        if entry.kind == "init":
            for change in entry.settings:
                if change.quantity == "color noise" and isinstance(change.new, (int, float)) and not noise_steps:
                    noise_start = Step(0.0, float(change.new), where, change.text.strip())
            continue
        if entry.kind != "event":
            continue
        epoch = entry.epoch if entry.epoch is not None else last_epoch  # an undated change: with the one before
        last_epoch = epoch
        for change in entry.changes:
            if change.quantity == "color noise" and isinstance(change.new, (int, float)):
                if noise_start is None and isinstance(change.old, (int, float)):
                    noise_start = Step(0.0, float(change.old), where, f"before: {change.text.strip()}")
                noise_steps.append(Step(float(epoch), float(change.new), where, change.text.strip()))
            elif change.quantity == "dropout" and change.action in ("enable", "disable"):
                value = 1.0 if change.action == "enable" else 0.0
                for name in (change.layers or hs_layers):
                    steps = enable_steps.setdefault(name, [Step(0.0, 1.0 - value, where, f"before: "
                                                                f"{change.text.strip()}")])
                    steps.append(Step(float(epoch), value, where, change.text.strip()))
    assumed = noise_start is None
    noise_start = noise_start or Step(0.0, 0.0, "convnet.py", "--color-noise default 0: the log names none")
    noise = Timetable(tuple([noise_start] + noise_steps), assumed=assumed)
    enables = {name: Timetable(tuple(steps)) for name, steps in enable_steps.items()}
    if as_written:
        final = noise.steps[-1]
        noise = Timetable((Step(0.0, final.value, final.source, "as last set, throughout"),), assumed=assumed)
        enables = {}  # the params file's enable= (as last edited) throughout
    return noise, enables
