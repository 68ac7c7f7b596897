"""The weight learning rate epsW of every weight layer over the epochs of an experiment,
rebuilt from its params file and the log's hand-made changes ("epoch 26: set epsw to
0.001 from 0.01"). One implementation for the site's charts (webapp/curves.py) and the
replay's timetables (replay/schedule.py).

Rules of the reconstruction (checked against the release, tests/archive/test_lrhistory.py
and tests/webapp/test_curves.py):

1. The params file holds the values at the END of the logged work: Alex edited
   the file while the net trained (convnet.py re-read it on every resume), so
   the last run is reconstructed backwards from it. Weight layers are the params
   sections with epsW; a layer with one epsW per input is one track when the
   inputs agree, else one track per input ("fc1000 (input 2)").
2. Which layers a change names: "conv1,conv2" means the layers called exactly
   that if there are any, else those whose names continue it without running
   on into another number (conv1 -> conv1a, conv1b; never conv10; "fc" -> every
   fc layer). Scope "everywhere": every layer; "elsewhere": every layer the
   event's other changes do not name; "conv layers": names starting "conv".
   A change with neither layers nor scope applies, walking backwards, to every
   layer whose current value is its `new` -- that is how "epoch 82: set epsw to
   0.00001 from 0.0001" leaves conv1/conv2 at 0 in #120.
3. The value before a change is its `old`. Without an old the earlier value is
   unknown and a note says so: the layer's series stops there going backwards,
   until an earlier change that names the layer (or a scope) gives its value
   again (#150: "epoch 72: set epsw to 0 on conv1" after "epoch 66: ... from
   0.0001 on conv1").
4. A named layer whose current value is not the change's `new` is a
   contradiction: the later value is kept (the file wins), the step drawn from
   `old` to it, and a note names the event's file:line.
   4b. Where, walking backwards, a change with neither layers nor scope matches
   no layer, the file cannot be the state after it (it was reset or not
   edited): that change and every one before it are replayed FORWARD from an
   unknown start instead, the file's values kept as the end, and a note says
   where the two disagree (#131-2009, #137, #141-2009, #147, #2009-101).
5. Changes of one event are undone in reverse order ("set epsw to 0.00008
   everywhere, set epsw to 0 from 0.00008 on conv1" in #170-4gpu).
6. Events without an epoch ("epoch 4x:", "300 batches:") still change the
   values (else every earlier step would look contradictory) but are not drawn:
   a note says where they are. (`Step.epoch` is None; `Step.effective_epoch`,
   for a one-line timeline, is the epoch of the run's event before it, else 0.)
7. Runs (experiment.own_runs, in file order; file order is time order). When
   no run starts at an epoch before the previous ones ended, the runs are one
   timeline and one backward walk. When they overlap (restarts), each run is
   drawn on its own ("run 2: conv1a, conv1b"): the last run backwards from the
   file; every earlier run FORWARD from an unknown start, because the file does
   not hold its end values -- a change with an `old` applies to the layers at
   that value (or not yet known), one without to every layer not frozen at 0;
   layers no change of that run names are not drawn (nothing logs their rate).
   A run starts at epoch 0, at the epoch its heading restarts from ("restart
   from 31"), or, when all its epochs come after every earlier run's, where
   the latest earlier run stopped (it resumes that run). The runs considered
   are those with epsW changes and always the last run (the file describes its
   end), so in #170 the last run ("restart normal 170 ..."), which changes
   nothing, is the one walked from the file.
8. An event epoch earlier than the one before it in the same run (a typo:
   "epoch 67 ... epoch 66" in layer-params-110.cfg) is drawn at the earlier
   event's epoch, with a note.
9. (Drawing, webapp/curves.py.) Layers with identical series (same points,
   same events) share one Series, named by their names compressed
   ("conv1a, conv1b"; "conv3a–fc1000 (11 layers)", `compress_names`).

`epsw_history(experiment)` returns an `LrHistory`: the tracks (rule 1), the runs
of the reconstruction (rule 7: one when the runs form one timeline), for every
track one `TrackRun` per run (its start value, its steps, whether a change of
that run touched it), the notes (each naming file:line where it has one) and
the file:line of every change found contradicted (rules 4, 4b).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .source import SourceSpan

if TYPE_CHECKING:  # for type hints only: catalog imports much more
    from .catalog import Experiment

__all__ = [
    "epsw_history", "LrHistory", "Track", "TrackHistory", "TrackRun", "HistoryRun", "Step", "HistoryNote",
    "layer_matches", "compress_names", "same_rate",
]


def same_rate(a: float | None, b: float | None) -> bool:
    """Two learning rates as the log writes them are the same (0.00063245555 vs its float)."""
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-15)


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _where(span: SourceSpan) -> str:
    return f"{span.path}:{span.line}"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _epsw_changes(entry) -> list:
    return [c for c in entry.changes if c.quantity == "epsw"]


# --- Records ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Track:
    """One learning rate followed through the log (rule 1): a layer, or one input of a
    layer whose inputs differ. input_index: None when the track stands for all the
    layer's inputs (`inputs`, those with an epsW); span: the epsW value in the file."""

    name: str
    layer: str
    input_index: int | None
    inputs: tuple[int, ...]
    file_value: float
    span: SourceSpan

    def to_json(self) -> dict:
        return {"name": self.name, "layer": self.layer, "input": self.input_index, "inputs": list(self.inputs),
                "file_value": self.file_value, **self.span.to_json()}


@dataclass(frozen=True, slots=True)
class Step:
    """From this log entry on, the track's rate is `value`. epoch: where it is drawn (rule
    8 applied; None: the entry has no epoch, rule 6); effective_epoch: where it takes
    effect on one timeline (its epoch, else the run's previous event's, else 0)."""

    epoch: float | None
    effective_epoch: float
    value: float
    span: SourceSpan
    text: str

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "effective_epoch": self.effective_epoch, "value": self.value,
                **self.span.to_json(), "text": self.text}


@dataclass(frozen=True, slots=True)
class TrackRun:
    """One track in one run of the reconstruction. start: the value before the first step
    (None: unknown, rule 3); touched: a change of this run named the track; end: the
    value at the run's end where known apart from the steps (the file's, last run only)."""

    start: float | None
    steps: tuple[Step, ...]
    touched: bool
    end: float | None

    def to_json(self) -> dict:
        return {"start": self.start, "steps": [s.to_json() for s in self.steps], "touched": self.touched,
                "end": self.end}


@dataclass(frozen=True, slots=True)
class HistoryRun:
    """A run of the reconstruction (rule 7): one logbook run, or several walked as one
    timeline. name: "run 2" (its position among the experiment's own runs), "" for one
    timeline; title: the run's heading; direction: "backward" (from the params file) or
    "forward" (from an unknown start); from_file: the params file holds its end."""

    name: str
    title: str | None
    runs: tuple[int, ...]
    first_epoch: float
    last_epoch: float
    direction: str
    from_file: bool
    span: SourceSpan

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "runs": list(self.runs), "first_epoch": self.first_epoch,
                "last_epoch": self.last_epoch, "direction": self.direction, "from_file": self.from_file,
                **self.span.to_json()}


@dataclass(frozen=True, slots=True)
class TrackHistory:
    """A track and its `TrackRun` in every run of the reconstruction (same order)."""

    track: Track
    runs: tuple[TrackRun, ...]

    @property
    def final(self) -> TrackRun | None:
        """The run the params file ends (walked backwards from it); None without runs."""
        return self.runs[-1] if self.runs else None

    def to_json(self) -> dict:
        return {"track": self.track.to_json(), "runs": [r.to_json() for r in self.runs]}


@dataclass(frozen=True, slots=True)
class HistoryNote:
    """Something a reader of the history must know; span: the log line it is about, if one."""

    span: SourceSpan | None
    text: str

    def to_json(self) -> dict:
        return {**(self.span.to_json() if self.span else {"file": None, "line": None}), "text": self.text}


@dataclass(frozen=True, slots=True)
class LrHistory:
    """epsW of an experiment over its runs. events: the log's epsW events of its own runs,
    file order; overlap: the runs restart at earlier epochs (rule 7)."""

    experiment: str
    params_file: str
    tracks: tuple[TrackHistory, ...]
    runs: tuple[HistoryRun, ...]
    overlap: bool
    events: tuple[SourceSpan, ...]
    notes: tuple[HistoryNote, ...]
    contradictions: tuple[SourceSpan, ...]

    def to_json(self) -> dict:
        return {"experiment": self.experiment, "params_file": self.params_file,
                "tracks": [t.to_json() for t in self.tracks], "runs": [r.to_json() for r in self.runs],
                "overlap": self.overlap, "events": [s.to_json() for s in self.events],
                "notes": [n.to_json() for n in self.notes],
                "contradictions": [s.to_json() for s in self.contradictions]}


# --- Layers (rules 1, 2) ---------------------------------------------------------------

def _tracks(experiment: Experiment) -> list[Track]:
    tracks: list[Track] = []
    for layer in experiment.params.layers:
        rates = [i.epsW for i in layer.inputs]
        if not rates or all(r is None for r in rates):
            continue
        try:
            span = layer.value_span("epsW")
        except KeyError:
            span = layer.span
        known = [r for r in rates if r is not None]
        if all(same_rate(r, known[0]) for r in known):
            inputs = tuple(i for i, r in enumerate(rates) if r is not None)
            tracks.append(Track(layer.name, layer.name, None, inputs, float(known[0]), span))
        else:
            for index, rate in enumerate(rates):
                if rate is not None:
                    tracks.append(Track(f"{layer.name} (input {index + 1})", layer.name, index, (index,),
                                        float(rate), span))
    return tracks


def layer_matches(written: str, layer_name: str) -> bool:
    """Whether "conv1" (as the log writes it) names `layer_name` by prefix: conv1a yes,
    conv10 no (the text must not run on into a longer number); "fc" names fc1000."""
    if not layer_name.startswith(written) or layer_name == written:
        return layer_name == written
    rest = layer_name[len(written):]
    return not (written[-1:].isdigit() and rest[0].isdigit())


def _named(written_names: tuple[str, ...], tracks: list[Track]) -> list[Track]:
    chosen: list[Track] = []
    for written in written_names:
        exact = [t for t in tracks if t.layer == written]
        chosen += exact or [t for t in tracks if layer_matches(written, t.layer)]
    return list(dict.fromkeys(chosen))


def compress_names(names: list[str], order: list[str]) -> str:
    """"conv1a, conv1b" for a few; "conv1a–conv2b, fc1000 (5 layers)": runs of three or more
    neighbours (in `order`, the params file's) shortened to first–last."""
    position = {name: i for i, name in enumerate(order)}
    ordered = sorted(names, key=lambda n: (position.get(n, len(order)), n))
    if len(ordered) <= 3:
        return ", ".join(ordered)
    pieces, start = [], 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or position.get(ordered[i], -10) != position.get(ordered[i - 1], -20) + 1:
            chunk = ordered[start:i]
            pieces.append(f"{chunk[0]}–{chunk[-1]}" if len(chunk) >= 3 else ", ".join(chunk))
            start = i
    return f"{', '.join(pieces)} ({len(ordered)} layers)"


# --- The walks (rules 2-5, 4b) ---------------------------------------------------------

_UNKNOWN = object()  # forward walks: the track's value before anything named it


@dataclass
class _Work:
    """A `TrackRun` while it is being built."""

    start: float | None = None
    steps: list[Step] = field(default_factory=list)
    touched: bool = False
    end: float | None = None

    def frozen(self) -> TrackRun:
        return TrackRun(self.start, tuple(self.steps), self.touched, self.end)


# An epsW event of a run: (entry, the epoch it is drawn at or None, its effective epoch).
_Event = tuple[Any, "float | None", float]


def _targets(change, entry, tracks: list[Track], state: dict, backward: bool) -> tuple[list[Track], str]:
    """The tracks a change applies to, and how they were chosen ("named" or "value")."""
    if change.layers:
        return _named(change.layers, tracks), "named"
    if change.scope == "everywhere":
        return list(tracks), "named"
    if change.scope == "elsewhere":
        others = {t for c in _epsw_changes(entry) if c is not change for t in _named(c.layers, tracks)}
        return [t for t in tracks if t not in others], "named"
    if change.scope == "conv layers":
        return [t for t in tracks if t.layer.startswith("conv")], "named"
    if backward:
        new = _number(change.new)
        return [t for t in tracks if state[t] is not None and same_rate(state[t], new)], "value"
    old = _number(change.old)
    if old is None:  # "set epsw to 0.0015874011": every layer not frozen at 0 ("conv1/2 still 0")
        return [t for t in tracks if state[t] is _UNKNOWN or (state[t] is not None and state[t] != 0)], "value"
    return [t for t in tracks if state[t] is _UNKNOWN or same_rate(state[t], old)], "value"


def _step(entry, x: float | None, at: float, value: float) -> Step:
    return Step(x, at, value, entry.span, _one_line(entry.text))


class _Walker:
    """The walks of one experiment and the notes they leave. Notes about several tracks
    ("... conv1a–conv2b (4 layers) ...") are collected and written out in `notes()`."""

    def __init__(self, tracks: list[Track]):
        self.tracks = tracks
        self._notes: list[tuple[SourceSpan | None, object]] = []
        self._layer_notes: dict[tuple[str, str], list[str]] = {}
        self.contradictions: list[SourceSpan] = []

    def note(self, span: SourceSpan | None, text: str) -> None:
        self._notes.append((span, text))

    def layer_note(self, span: SourceSpan | None, head: str, track: Track, tail: str) -> None:
        """A note about several tracks: one line "head <tracks> tail", names compressed."""
        key = (head, tail)
        if key not in self._layer_notes:
            self._layer_notes[key] = []
            self._notes.append((span, key))
        self._layer_notes[key].append(track.name)

    def notes(self) -> tuple[HistoryNote, ...]:
        order = [t.name for t in self.tracks]
        out: dict[str, HistoryNote] = {}
        for span, note in self._notes:
            text = (f"{note[0]}{compress_names(self._layer_notes[note], order)}{note[1]}"
                    if isinstance(note, tuple) else note)
            out.setdefault(text, HistoryNote(span, text))
        return tuple(out.values())

    def backward(self, events: list[_Event], state: dict) -> dict[Track, _Work]:
        """Undo `events` (file order) from `state` (the values after them); `state` ends
        as the values before them (None: unknown). Rule 4b: where a change with neither
        layers nor scope matches no layer, that event and all before it are replayed
        forward instead, and joined to the walk so far."""
        runs = {t: _Work() for t in self.tracks}
        for position in range(len(events) - 1, -1, -1):
            entry, x, at = events[position]
            span, where = entry.span, _where(entry.span)
            for change in reversed(_epsw_changes(entry)):  # rule 5
                new, old = _number(change.new), _number(change.old)
                targets, how = _targets(change, entry, self.tracks, state, backward=True)
                said = change.text.strip()
                if not targets and how == "value":
                    self.note(span, f"{where}: “{said}”: no layer holds {_fmt(new)} after it, so the params file "
                              "is not the state after this change (reset or not edited); this change and those "
                              "before it are replayed forward from the first one")
                    self.contradictions.append(span)
                    return self._join(self.forward(events[:position + 1]), runs, state)
                if not targets:
                    self.note(span, f"{where}: “{said}” names no weight layer of the params file")
                    self.contradictions.append(span)
                    continue
                for track in targets:
                    current = state[track]
                    if current is None:
                        if how != "named":
                            continue  # unknown: a change chosen by value cannot be said to apply
                        current = new  # a change naming the layer tells its value again (rule 3)
                    if not same_rate(current, new):  # rule 4: the later value (the file) wins
                        self.layer_note(span, f"{where}: “{said}”, but ", track,
                                        f" hold {_fmt(current)} afterwards (params file or a "
                                        f"later change); kept {_fmt(current)}")
                        self.contradictions.append(span)
                    runs[track].steps.insert(0, _step(entry, x, at, current))
                    runs[track].touched = True
                    state[track] = old
                    if old is None:
                        self.layer_note(span, f"{where}: “{said}” does not say the rate before it; "
                                        "earlier values of ", track, " are unknown unless earlier changes give them")
        for track in self.tracks:
            runs[track].start = state[track]
        return runs

    def _join(self, earlier: dict[Track, _Work], later: dict[Track, _Work], state: dict) -> dict[Track, _Work]:
        """Forward-replayed earlier changes followed by the backward-walked later ones;
        `state` holds, per track, the value the later ones start from."""
        joined = {}
        for track in self.tracks:
            first, second = earlier[track], later[track]
            expected = state[track]
            after_first = first.steps[-1].value if first.steps else None
            if after_first is not None and expected is not None and not same_rate(after_first, expected):
                later_where = _where(second.steps[0].span) if second.steps else "the params file"
                self.layer_note(None, "the log's changes leave ", track, f" at {_fmt(after_first)}, but "
                                f"{later_where} starts from {_fmt(expected)}")
            start = first.start if first.touched else expected
            joined[track] = _Work(start, first.steps + second.steps, first.touched or second.touched)
        for track in self.tracks:
            state[track] = joined[track].start
        return joined

    def forward(self, events: list[_Event]) -> dict[Track, _Work]:
        """Replay `events` of a run whose start is unknown (an earlier, restarted run; rule 7)."""
        state: dict = {t: _UNKNOWN for t in self.tracks}
        runs = {t: _Work() for t in self.tracks}
        for entry, x, at in events:
            span, where = entry.span, _where(entry.span)
            for change in _epsw_changes(entry):
                new, old = _number(change.new), _number(change.old)
                targets, _ = _targets(change, entry, self.tracks, state, backward=False)
                said = change.text.strip()
                if not targets:
                    self.note(span, f"{where}: “{said}” applies to no weight layer")
                    self.contradictions.append(span)
                    continue
                for track in targets:
                    current = state[track]
                    if current is _UNKNOWN:
                        runs[track].start = old
                        if old is None:
                            self.layer_note(span, f"{where}: “{said}” does not say the rate before it; "
                                            "earlier values of ", track, " are unknown unless earlier changes give them")
                    elif old is not None and current is not None and not same_rate(current, old):
                        self.layer_note(span, f"{where}: “{said}”, but ", track, f" were at {_fmt(current)} before it")
                        self.contradictions.append(span)
                    if new is None:
                        continue
                    runs[track].steps.append(_step(entry, x, at, new))
                    runs[track].touched = True
                    state[track] = new
        return runs


# --- Runs (rules 6-8) ------------------------------------------------------------------

def _run_events(experiment: Experiment, run, walker: _Walker) -> list[_Event]:
    """The run's epsW events in file order with the epoch each is drawn at (rules 6, 8) and
    the epoch it takes effect on one timeline."""
    out: list[_Event] = []
    last_x: float | None = None
    for index in run.entries:
        entry = experiment.logbook.entries[index]
        if entry.kind != "event" or not _epsw_changes(entry):
            continue
        x = entry.epoch
        where = _where(entry.span)
        if x is None:
            walker.note(entry.span, f"{where}: “{_one_line(entry.text)}” has no epoch ({entry.epoch_text or 'none'}): "
                        "its change is applied to the values but not drawn")
        elif last_x is not None and x < last_x:
            walker.note(entry.span, f"{where}: epoch {_fmt(x)} comes after epoch {_fmt(last_x)} in the log; "
                        f"drawn at {_fmt(last_x)}")
            x = last_x
        if x is not None:
            last_x = x
        # An undated change happened after the event before it: on one timeline it holds from there.
        at = float(x) if x is not None else (float(last_x) if last_x is not None else 0.0)
        out.append((entry, x, at))
    return out


def _run_first_epoch(experiment: Experiment, run) -> float | None:
    epochs = [experiment.logbook.entries[i].epoch for i in run.entries
              if experiment.logbook.entries[i].epoch is not None]
    return min(epochs) if epochs else None


def _run_from_epoch(experiment: Experiment, run) -> float | None:
    """The epoch a heading or status says the run restarts from ("restart from 31")."""
    for index in run.entries:
        entry = experiment.logbook.entries[index]
        if entry.kind in ("heading", "status") and getattr(entry, "from_epoch", None) is not None:
            return entry.from_epoch
    return None


def _run_end(run, events: list[_Event]) -> float:
    xs = [x for _, x, _ in events if x is not None]
    return max([run.last_epoch or 0.0] + xs)


def epsw_history(experiment: Experiment) -> LrHistory:
    """The epsW history of `experiment` (see the module docstring for the rules)."""
    tracks = _tracks(experiment)
    walker = _Walker(tracks)
    runs = list(experiment.own_runs)
    per_run = [(run, _run_events(experiment, run, walker)) for run in runs]
    with_events = [(run, events) for run, events in per_run if events]
    # The runs with changes, and always the last run: the params file describes its end.
    drawn = list(with_events)
    if per_run and (not drawn or drawn[-1][0] is not runs[-1]):
        drawn.append(per_run[-1])

    # Do the drawn runs overlap in epochs (restarts)?
    overlap, latest_end = False, None
    for run, _ in drawn:
        first = _run_first_epoch(experiment, run)
        if latest_end is not None and first is not None and first < latest_end:
            overlap = True
        if run.last_epoch is not None:
            latest_end = run.last_epoch if latest_end is None else max(latest_end, run.last_epoch)

    history_runs: list[HistoryRun] = []
    walks: list[dict[Track, _Work]] = []
    if not drawn:
        pass
    elif not overlap:
        events = [ev for _, evs in drawn for ev in evs]
        walk = walker.backward(events, {t: t.file_value for t in tracks})
        for track in tracks:
            walk[track].end = track.file_value
        x_end = max(_run_end(run, evs) for run, evs in drawn)
        history_runs.append(HistoryRun("", None, tuple(run.index for run, _ in drawn), 0.0, x_end, "backward",
                                       True, drawn[0][0].span))
        walks.append(walk)
        if len(drawn) > 1:
            walker.note(None, f"{len(drawn)} runs with learning-rate changes, one after the other: "
                        "drawn as one timeline")
    else:
        names = {run.index: f"run {position + 1}" for position, run in enumerate(runs)}
        walker.note(None, "the runs overlap in epochs (restarts): each run is drawn on its own; file order is "
                    f"time order, so the params file's values are those at the end of {names[drawn[-1][0].index]}; "
                    "earlier runs are replayed forward from their first logged change")
        ends: list[float] = []
        for position, (run, events) in enumerate(drawn):
            is_last = position == len(drawn) - 1
            if is_last:
                walk = walker.backward(events, {t: t.file_value for t in tracks})
                for track in tracks:
                    walk[track].end = track.file_value
            else:
                walk = walker.forward(events)
            from_epoch = _run_from_epoch(experiment, run)
            first = _run_first_epoch(experiment, run)
            x_start = 0.0
            if from_epoch is not None:
                x_start = from_epoch
            elif ends and first is not None and first >= max(ends):
                x_start = max(ends)  # it resumes the latest earlier run
            x_end = _run_end(run, events)
            ends.append(x_end)
            label = names[run.index] + (f" ({run.label})" if run.label else "")
            if not is_last and any(not w.touched for w in walk.values()):
                walker.note(run.span, f"{label}: layers no change of this run names are not drawn "
                            "(their rate is not logged)")
            history_runs.append(HistoryRun(names[run.index], run.label, (run.index,), x_start, x_end,
                                           "backward" if is_last else "forward", is_last, run.span))
            walks.append(walk)

    return LrHistory(
        experiment=experiment.id,
        params_file=experiment.params_file,
        tracks=tuple(TrackHistory(t, tuple(w[t].frozen() for w in walks)) for t in tracks),
        runs=tuple(history_runs),
        overlap=overlap,
        events=tuple(entry.span for _, evs in per_run for entry, _, _ in evs),
        notes=walker.notes(),
        contradictions=tuple(dict.fromkeys(walker.contradictions)),
    )
