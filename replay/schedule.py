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

DUPLICATION (temporary): the rebuild follows the rules of webapp/curves.py (its module docstring,
rules 1-6 and 8) because replay may not import webapp. Both should use one implementation in
archive/ (see the report of the replay-plan helper). Where this module differs it says so:
it rebuilds ONE timeline (the last run's, when runs overlap), and it gives every epoch a value
(an unknown earlier value is assumed equal to the next known one, with a note).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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


# The rebuild (webapp/curves.py rules, duplicated: see the module docstring) -----------------

def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-15)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def layer_matches(written: str, layer_name: str) -> bool:
    """Whether the log's "conv1" names `layer_name`: exactly, or by a prefix that does not run on
    into a longer number (conv1 -> conv1a, conv1b; never conv10; "fc" -> fc1000). curves.py rule 2."""
    if layer_name == written:
        return True
    if not layer_name.startswith(written):
        return False
    rest = layer_name[len(written):]
    return not (written[-1:].isdigit() and rest[0].isdigit())


def _epsw_changes(entry):
    return [c for c in entry.changes if c.quantity == "epsw"]


def _named(written_names, tracks):
    chosen = []
    for written in written_names:
        exact = [t for t in tracks if t[0] == written]
        chosen += exact or [t for t in tracks if layer_matches(written, t[0])]
    return list(dict.fromkeys(chosen))


def _targets(change, entry, tracks, state):
    """(tracks a change applies to walking backwards, "named" | "value")."""
    if change.layers:
        return _named(change.layers, tracks), "named"
    if change.scope == "everywhere":
        return list(tracks), "named"
    if change.scope == "elsewhere":
        others = {t for c in _epsw_changes(entry) if c is not change for t in _named(c.layers, tracks)}
        return [t for t in tracks if t not in others], "named"
    if change.scope == "conv layers":
        return [t for t in tracks if t[0].startswith("conv")], "named"
    new = _number(change.new)
    return [t for t in tracks if state[t] is not None and _same(state[t], new)], "value"


def _run_events(experiment, run, notes):
    """The run's epsW events in file order with their epoch (curves.py rules 6 and 8)."""
    out = []
    last = None
    for index in run.entries:
        entry = experiment.logbook.entries[index]
        if entry.kind != "event" or not _epsw_changes(entry):
            continue
        where = f"{entry.span}"
        epoch = entry.epoch
        if epoch is None:
            notes.append(f"{where}: the change has no epoch ({entry.epoch_text or 'none'}); "
                         f"placed at epoch {last if last is not None else 0:g}, the one before it")
            epoch = last if last is not None else 0.0
        elif last is not None and epoch < last:
            notes.append(f"{where}: epoch {epoch:g} comes after epoch {last:g} in the log; placed at {last:g}")
            epoch = last
        last = epoch
        out.append((entry, float(epoch)))
    return out


def _first_epoch(experiment, run):
    epochs = [experiment.logbook.entries[i].epoch for i in run.entries
              if experiment.logbook.entries[i].epoch is not None]
    return min(epochs) if epochs else None


def _undo(entry, epoch, tracks, state, steps, notes) -> bool:
    """Undo one event walking backwards (curves.py rules 2-5); False if a change chosen by
    value matches no layer (rule 4b)."""
    where = str(entry.span)
    text = " ".join(part.strip() for part in entry.text.splitlines() if part.strip())
    for change in reversed(_epsw_changes(entry)):
        new, old = _number(change.new), _number(change.old)
        targets, how = _targets(change, entry, tracks, state)
        if not targets and how == "value":
            return False
        if not targets:
            notes.append(f"{where}: “{change.text.strip()}” names no weight layer of the params file")
            continue
        for track in targets:
            current = state[track]
            if current is None:
                if how != "named":
                    continue
                current = new  # a change naming the layer gives its value again (rule 3)
            if new is not None and not _same(current, new):
                notes.append(f"{where}: “{change.text.strip()}”, but {track[0]} input {track[1]} holds "
                             f"{current:g} afterwards; kept {current:g} (the file wins)")
            steps[track].insert(0, Step(epoch, current, where, text))
            state[track] = old
            if old is None:
                notes.append(f"{where}: “{change.text.strip()}” does not say the rate before it "
                             f"({track[0]} input {track[1]})")
    return True


_UNKNOWN = object()


def _forward(events, tracks, notes):
    """Replay events from an unknown start (curves.py `_Walker.forward`): (start per track,
    steps per track, the tracks some change touched)."""
    state: dict = {t: _UNKNOWN for t in tracks}
    starts: dict = {}
    steps: dict = {t: [] for t in tracks}
    touched: set = set()
    for entry, epoch in events:
        where = str(entry.span)
        text = " ".join(part.strip() for part in entry.text.splitlines() if part.strip())
        for change in _epsw_changes(entry):
            new, old = _number(change.new), _number(change.old)
            if change.layers or change.scope:
                targets, _ = _targets(change, entry, tracks, state)
            elif old is None:  # every layer not frozen at 0 ("conv1/2 still 0")
                targets = [t for t in tracks if state[t] is _UNKNOWN or (state[t] is not None and state[t] != 0)]
            else:
                targets = [t for t in tracks if state[t] is _UNKNOWN or _same(state[t], old)]
            if not targets:
                notes.append(f"{where}: “{change.text.strip()}” applies to no weight layer")
                continue
            for track in targets:
                current = state[track]
                if current is _UNKNOWN:
                    starts[track] = old
                elif old is not None and current is not None and not _same(current, old):
                    notes.append(f"{where}: “{change.text.strip()}”, but {track[0]} input {track[1]} "
                                 f"was at {current:g} before it")
                if new is None:
                    continue
                steps[track].append(Step(epoch, new, where, text))
                touched.add(track)
                state[track] = new
    return starts, steps, touched


def epsw_timetables(experiment) -> TimetableSet:
    """epsW per (layer, input index) of every params section with epsW, rebuilt from the params
    file backwards through the log's epsW changes (curves.py rules 1-6, 8).

    One timeline: all runs with changes, in file order, when none restarts at an epoch before an
    earlier one ended; otherwise (restarts) only the last such run, whose end the file holds
    (the earlier runs were abandoned). Where the file cannot be the state after a change (no layer
    holds its new value: the file was reset or not edited), that change and those before it are
    replayed forward instead (curves.py rule 4b). Where a change gives no earlier value, the
    earliest known value is assumed back to epoch 0 (`Timetable.assumed`), with a note.
    """
    notes: list[str] = []
    file_values: dict[tuple[str, int], float] = {}
    file_sources: dict[tuple[str, int], str] = {}
    for layer in experiment.params.layers:
        for i, inp in enumerate(layer.inputs):
            if inp.epsW is None:
                continue
            key = (layer.name, i)
            file_values[key] = float(inp.epsW)
            file_sources[key] = str(layer.value_span("epsW"))
    tracks = list(file_values)

    runs = list(experiment.own_runs)
    per_run = [(run, _run_events(experiment, run, notes)) for run in runs]
    with_events = [(run, events) for run, events in per_run if events]
    overlap, latest_end = False, None
    for run, _ in with_events:
        first = _first_epoch(experiment, run)
        if latest_end is not None and first is not None and first < latest_end:
            overlap = True
        if run.last_epoch is not None:
            latest_end = run.last_epoch if latest_end is None else max(latest_end, run.last_epoch)
    if overlap:
        events = with_events[-1][1]
        notes.append(f"the runs restart at earlier epochs; the timetable follows the last run with "
                     f"changes (from {with_events[-1][0].span}), whose end the params file holds")
    else:
        events = [ev for _, evs in with_events for ev in evs]

    state: dict = dict(file_values)
    steps: dict = {t: [] for t in tracks}
    for position in range(len(events) - 1, -1, -1):
        entry, epoch = events[position]
        saved = ({t: list(v) for t, v in steps.items()}, dict(state))
        event_notes: list[str] = []
        if _undo(entry, epoch, tracks, state, steps, event_notes):
            notes.extend(event_notes)
        else:
            # curves.py rule 4b: the file is not the state after this event (it was reset or not
            # edited): this event and all before it are replayed forward from an unknown start.
            steps, state = saved
            notes.append(f"{entry.span}: no layer holds the value this change sets, so the params file is "
                         "not the state after it; it and the changes before it are replayed forward")
            starts, forward_steps, touched = _forward(events[:position + 1], tracks, notes)
            for track in tracks:
                after = forward_steps[track][-1].value if forward_steps[track] else None
                if after is not None and state[track] is not None and not _same(after, state[track]):
                    notes.append(f"the log's changes leave {track[0]} input {track[1]} at {after:g}, but "
                                 f"{steps[track][0].source if steps[track] else 'the params file'} "
                                 f"starts from {state[track]:g}")
                steps[track] = forward_steps[track] + steps[track]
                if track in touched:
                    state[track] = starts[track]
            break

    tables: dict[tuple[str, int], Timetable] = {}
    assumed: set = set()
    for track in tracks:
        start = state[track]
        track_steps = steps[track]
        if start is None:
            known = track_steps[0] if track_steps else None
            value = known.value if known else file_values[track]
            first = Step(0.0, value, known.source if known else file_sources[track],
                         "value before the first change unknown; assumed equal to the next known one")
            assumed.add(track)
        elif track_steps:
            first = Step(0.0, start, track_steps[0].source, "value before the first logged change")
        else:
            first = Step(0.0, start, file_sources[track], "params file (no logged change)")
        merged = [first] + [s for s in track_steps]
        # Several changes at one epoch: the last one holds from that epoch on.
        compact: list[Step] = []
        for step in merged:
            if compact and compact[-1].epoch == step.epoch:
                compact[-1] = step
            else:
                compact.append(step)
        tables[track] = Timetable(tuple(compact), track in assumed)
    return TimetableSet(tables, tuple(dict.fromkeys(notes)))
