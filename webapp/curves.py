"""The training curves of one experiment, from the archive's records, as `Chart`s.

Learning-rate schedule (`lr_schedule_chart`): the weight learning rate epsW of
every weight layer against the epoch, reconstructed from the params file and
the log's hand-made changes ("epoch 26: set epsw to 0.001 from 0.01").

Rules of the reconstruction (checked against the release, tests/webapp/test_curves.py):

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
5. Changes of one event are undone in reverse order ("set epsw to 0.00008
   everywhere, set epsw to 0 from 0.00008 on conv1" in #170-4gpu).
6. Events without an epoch ("epoch 4x:", "300 batches:") still change the
   values (else every earlier step would look contradictory) but are not drawn:
   a note says where they are.
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
   the latest earlier run stopped (it resumes that run).
8. An event epoch earlier than the one before it in the same run (a typo:
   "epoch 67 ... epoch 66" in layer-params-110.cfg) is drawn at the earlier
   event's epoch, with a note.
9. Layers with identical series (same points, same events) share one Series,
   named by their names compressed ("conv1a, conv1b"; "conv3a–fc1000 (11 layers)").

Results (`results_chart`, `cost_chart`): the logged error rates (percent) and
logprob costs as points, at the result's epoch, else at its run's last epoch.

Every point carries the log line as label and its file line as href
("/files/<params_file>#L<line>", a canonical site path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .charts import Chart, Point, Series, sanitize_id

__all__ = ["lr_schedule_chart", "reconstruct_lr", "LrReconstruction", "results_chart", "cost_chart", "experiment_charts", "overlay",
           "compress_names", "layer_matches"]

_TOLERANCE = 1e-9


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-15)


def _file_href(experiment, line: int) -> str:
    return f"/files/{experiment.params_file}#L{line}"


def _where(experiment, line: int) -> str:
    return f"{experiment.params_file}:{line}"


def _event_label(entry) -> str:
    return " ".join(part.strip() for part in entry.text.splitlines() if part.strip())


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}"


# --- Layers ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Track:
    """One drawn learning rate: a layer, or one input of a layer whose inputs differ."""

    name: str
    layer: str
    input_index: int | None
    file_value: float
    file_line: int


def _tracks(experiment) -> list[_Track]:
    tracks: list[_Track] = []
    for layer in experiment.params.layers:
        rates = [i.epsW for i in layer.inputs]
        if not rates or all(r is None for r in rates):
            continue
        try:
            line = layer.value_span("epsW").line
        except KeyError:
            line = layer.span.line
        known = [r for r in rates if r is not None]
        if all(_same(r, known[0]) for r in known):
            tracks.append(_Track(layer.name, layer.name, None, float(known[0]), line))
        else:
            for index, rate in enumerate(rates):
                if rate is not None:
                    tracks.append(_Track(f"{layer.name} (input {index + 1})", layer.name, index, float(rate), line))
    return tracks


def layer_matches(written: str, layer_name: str) -> bool:
    """Whether "conv1" (as the log writes it) names `layer_name` by prefix: conv1a yes,
    conv10 no (the text must not run on into a longer number); "fc" names fc1000."""
    if not layer_name.startswith(written) or layer_name == written:
        return layer_name == written
    rest = layer_name[len(written):]
    return not (written[-1:].isdigit() and rest[0].isdigit())


def _named(written_names: tuple[str, ...], tracks: list[_Track]) -> list[_Track]:
    chosen: list[_Track] = []
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


# --- Reconstruction ----------------------------------------------------------------

_UNKNOWN = object()  # forward walks: the layer's value before anything named it


@dataclass
class _Step:
    x: float | None  # None: the event has no epoch (applied, not drawn)
    value: float     # the value from this event on
    entry: object


@dataclass
class _TrackRun:
    """One track in one run: the value at the run's start (None: unknown), the changes."""

    start: float | None = None
    steps: list[_Step] = field(default_factory=list)
    touched: bool = False
    end: float | None = None  # the value at the end when known apart from the steps (the file's)


def _epsw_changes(entry):
    return [c for c in entry.changes if c.quantity == "epsw"]


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _targets(change, entry, tracks, state, backward: bool) -> tuple[list[_Track], str]:
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
        return [t for t in tracks if state[t] is not None and _same(state[t], new)], "value"
    old = _number(change.old)
    if old is None:  # "set epsw to 0.0015874011": every layer not frozen at 0 ("conv1/2 still 0")
        return [t for t in tracks if state[t] is _UNKNOWN or (state[t] is not None and state[t] != 0)], "value"
    return [t for t in tracks if state[t] is _UNKNOWN or _same(state[t], old)], "value"


class _Walker:
    def __init__(self, experiment, tracks: list[_Track], notes: list[str]):
        self.experiment = experiment
        self.tracks = tracks
        self.notes = notes
        self.contradictions: list[str] = []
        self.layer_notes: dict[tuple[str, str], list[str]] = {}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def layer_note(self, head: str, track: _Track, tail: str) -> None:
        """A note about several layers: one line "head <layers> tail", layers compressed."""
        key = (head, tail)
        if key not in self.layer_notes:
            self.layer_notes[key] = []
            self.notes.append(key)  # type: ignore[arg-type]  # replaced in finish()
        self.layer_notes[key].append(track.name)

    def finish(self) -> list[str]:
        order = [t.name for t in self.tracks]
        return [f"{n[0]}{compress_names(self.layer_notes[n], order)}{n[1]}" if isinstance(n, tuple) else n
                for n in self.notes]

    def backward(self, events, state: dict) -> dict[_Track, _TrackRun]:
        """Undo `events` (file order) from `state` (the values after them); `state` ends
        as the values before them (None: unknown). Where a change with neither layers
        nor scope matches no layer, the file cannot be the end of these events (it was
        reset or not edited): that event and all before it are replayed forward instead
        (rule 4b), and the file's values are kept as the end, with a note."""
        runs = {t: _TrackRun() for t in self.tracks}
        for position in range(len(events) - 1, -1, -1):
            entry, x = events[position]
            for change in reversed(_epsw_changes(entry)):
                new, old = _number(change.new), _number(change.old)
                targets, how = _targets(change, entry, self.tracks, state, backward=True)
                where = _where(self.experiment, entry.span.line)
                if not targets and how == "value":
                    self.note(f"{where}: “{change.text.strip()}”: no layer holds {_fmt(new)} after it, so the "
                              "params file is not the state after this change (reset or not edited); this "
                              "change and those before it are replayed forward from the first one")
                    self.contradictions.append(where)
                    return self._join(self.forward(events[:position + 1]), runs, state)
                if not targets:
                    self.note(f"{where}: “{change.text.strip()}” names no weight layer of the params file")
                    self.contradictions.append(where)
                    continue
                for track in targets:
                    current = state[track]
                    if current is None:
                        if how != "named":
                            continue  # unknown: a change chosen by value cannot be said to apply
                        current = new  # a change naming the layer tells its value again (rule 3)
                    if not _same(current, new):
                        self.layer_note(f"{where}: “{change.text.strip()}”, but ", track,
                                        f" hold {_fmt(current)} afterwards (params file or a "
                                        f"later change); kept {_fmt(current)}")
                        self.contradictions.append(where)
                    runs[track].steps.insert(0, _Step(x, current, entry))
                    runs[track].touched = True
                    state[track] = old
                    if old is None:
                        self.layer_note(f"{where}: “{change.text.strip()}” does not say the rate before it; "
                                        "earlier values of ", track, " are unknown unless earlier changes give them")
        for track in self.tracks:
            runs[track].start = state[track]
        return runs

    def _join(self, earlier: dict[_Track, _TrackRun], later: dict[_Track, _TrackRun],
              state: dict) -> dict[_Track, _TrackRun]:
        """Forward-replayed earlier changes followed by the backward-walked later ones;
        `state` holds, per track, the value the later ones start from."""
        joined = {}
        for track in self.tracks:
            first, second = earlier[track], later[track]
            expected = state[track]
            after_first = first.steps[-1].value if first.steps else None
            if after_first is not None and expected is not None and not _same(after_first, expected):
                later_where = (_where(self.experiment, second.steps[0].entry.span.line) if second.steps
                               else "the params file")
                self.layer_note("the log's changes leave ", track, f" at {_fmt(after_first)}, but "
                                f"{later_where} starts from {_fmt(expected)}")
            start = first.start if first.touched else expected
            joined[track] = _TrackRun(start, first.steps + second.steps, first.touched or second.touched)
        for track in self.tracks:
            state[track] = joined[track].start
        return joined

    def forward(self, events) -> dict[_Track, _TrackRun]:
        """Replay `events` of a run whose start is unknown (an earlier, restarted run)."""
        state: dict = {t: _UNKNOWN for t in self.tracks}
        runs = {t: _TrackRun() for t in self.tracks}
        for entry, x in events:
            for change in _epsw_changes(entry):
                new, old = _number(change.new), _number(change.old)
                targets, how = _targets(change, entry, self.tracks, state, backward=False)
                where = _where(self.experiment, entry.span.line)
                if not targets:
                    self.note(f"{where}: “{change.text.strip()}” applies to no weight layer")
                    self.contradictions.append(where)
                    continue
                for track in targets:
                    current = state[track]
                    if current is _UNKNOWN:
                        runs[track].start = old
                        if old is None:
                            self.layer_note(f"{where}: “{change.text.strip()}” does not say the rate before it; "
                                            "earlier values of ", track, " are unknown unless earlier changes give them")
                    elif old is not None and current is not None and not _same(current, old):
                        self.layer_note(f"{where}: “{change.text.strip()}”, but ", track,
                                        f" were at {_fmt(current)} before it")
                        self.contradictions.append(where)
                    if new is None:
                        continue
                    runs[track].steps.append(_Step(x, new, entry))
                    runs[track].touched = True
                    state[track] = new
        return runs


def _run_events(experiment, run, notes: list[str]) -> list[tuple[object, float | None]]:
    """The run's epsw events in file order with the epoch each is drawn at."""
    out: list[tuple[object, float | None]] = []
    last_x: float | None = None
    for index in run.entries:
        entry = experiment.logbook.entries[index]
        if entry.kind != "event" or not _epsw_changes(entry):
            continue
        x = entry.epoch
        where = _where(experiment, entry.span.line)
        if x is None:
            notes.append(f"{where}: “{_event_label(entry)}” has no epoch ({entry.epoch_text or 'none'}): "
                         "its change is applied to the values but not drawn")
        elif last_x is not None and x < last_x:
            notes.append(f"{where}: epoch {_fmt(x)} comes after epoch {_fmt(last_x)} in the log; "
                         f"drawn at {_fmt(last_x)}")
            x = last_x
        if x is not None:
            last_x = x
        out.append((entry, x))
    return out


def _run_first_epoch(experiment, run) -> float | None:
    epochs = [experiment.logbook.entries[i].epoch for i in run.entries
              if experiment.logbook.entries[i].epoch is not None]
    return min(epochs) if epochs else None


def _run_from_epoch(experiment, run) -> float | None:
    for index in run.entries:
        entry = experiment.logbook.entries[index]
        if entry.kind in ("heading", "status") and getattr(entry, "from_epoch", None) is not None:
            return entry.from_epoch
    return None


def _points(track_run: _TrackRun, x_start: float, x_end: float, end_label: str | None,
            end_href: str | None, experiment) -> tuple[Point, ...]:
    points: list[Point] = []
    if track_run.start is not None:
        points.append(Point(x_start, track_run.start, "value before the first logged change"
                            if track_run.steps else "no change logged", None))
    for step in track_run.steps:
        if step.x is None:
            continue
        points.append(Point(step.x, step.value, _event_label(step.entry),
                            _file_href(experiment, step.entry.span.line)))
    if points:
        last_value = points[-1].y
        # An undrawn (epoch-less) last change still sets the value the run ends with.
        if track_run.steps:
            last_value = track_run.steps[-1].value
        if track_run.end is not None:
            last_value = track_run.end
        last_x = max(x_end, points[-1].x)
        points.append(Point(last_x, last_value, end_label or "last logged epoch", end_href))
    return tuple(points)


@dataclass(frozen=True, slots=True)
class LrReconstruction:
    """The chart and the file:line of every change found contradicted (rule 4)."""

    chart: Chart
    contradictions: tuple[str, ...]


def lr_schedule_chart(experiment) -> Chart:
    """epsW per layer group against the epoch, y log scale, "step" series (see module doc)."""
    return reconstruct_lr(experiment).chart


def reconstruct_lr(experiment) -> LrReconstruction:
    """`lr_schedule_chart` with the list of contradictions it noted."""
    notes: list[str] = []
    tracks = _tracks(experiment)
    order = [t.name for t in tracks]
    walker = _Walker(experiment, tracks, notes)
    runs = list(experiment.own_runs)
    per_run = [(run, _run_events(experiment, run, notes)) for run in runs]
    with_events = [(run, events) for run, events in per_run if events]
    # The runs with changes, and always the last run: the params file describes its end.
    drawn = list(with_events)
    if per_run and (not drawn or drawn[-1][0] is not runs[-1]):
        drawn.append(per_run[-1])

    # Do the drawn runs overlap in epochs (restarts)?
    overlap, latest_end = False, None
    for run, events in drawn:
        first = _run_first_epoch(experiment, run)
        if latest_end is not None and first is not None and first < latest_end:
            overlap = True
        if run.last_epoch is not None:
            latest_end = run.last_epoch if latest_end is None else max(latest_end, run.last_epoch)

    def run_end(run, events) -> float:
        xs = [x for _, x in events if x is not None]
        return max([run.last_epoch or 0.0] + xs)

    segments: list[tuple[str, dict, float, float, bool]] = []  # (prefix, track runs, x0, x1, is_last)
    if not drawn:
        pass
    elif not overlap:
        events = [ev for _, evs in drawn for ev in evs]
        state = {t: t.file_value for t in tracks}
        track_runs = walker.backward(events, state)
        for track in tracks:
            track_runs[track].end = track.file_value
        x_end = max(run_end(run, evs) for run, evs in drawn)
        segments.append(("", track_runs, 0.0, x_end, True))
        if len(drawn) > 1:
            notes.append(f"{len(drawn)} runs with learning-rate changes, one after the other: drawn as one timeline")
    else:
        labels = {run.index: f"run {position + 1}" for position, run in enumerate(runs)}
        notes.append("the runs overlap in epochs (restarts): each run is drawn on its own; file order is "
                     f"time order, so the params file's values are those at the end of {labels[drawn[-1][0].index]}; "
                     "earlier runs are replayed forward from their first logged change")
        ends: list[float] = []
        for position, (run, events) in enumerate(drawn):
            is_last = position == len(drawn) - 1
            if is_last:
                track_runs = walker.backward(events, {t: t.file_value for t in tracks})
                for track in tracks:
                    track_runs[track].end = track.file_value
            else:
                track_runs = walker.forward(events)
            from_epoch = _run_from_epoch(experiment, run)
            first = _run_first_epoch(experiment, run)
            x_start = 0.0
            if from_epoch is not None:
                x_start = from_epoch
            elif ends and first is not None and first >= max(ends):
                x_start = max(ends)
            x_end = run_end(run, events)
            ends.append(x_end)
            label = labels[run.index] + (f" ({run.label})" if run.label else "")
            if not is_last and any(not tr.touched for tr in track_runs.values()):
                notes.append(f"{label}: layers no change of this run names are not drawn (their rate is not logged)")
            segments.append((labels[run.index] + ": ", track_runs, x_start, x_end, is_last))

    series: list[Series] = []
    for prefix, track_runs, x_start, x_end, is_last in segments:
        groups: dict[tuple, list[_Track]] = {}
        point_sets: dict[tuple, tuple[Point, ...]] = {}
        for track in tracks:
            track_run = track_runs[track]
            if not is_last and not track_run.touched:
                continue
            end_label = (f"value in the params file, line {track.file_line}" if is_last else "end of run")
            end_href = _file_href(experiment, track.file_line) if is_last else None
            points = _points(track_run, x_start, x_end, end_label, end_href, experiment)
            if not points:
                continue
            key = tuple((p.x, p.y, p.href if p is not points[-1] else None) for p in points)
            groups.setdefault(key, []).append(track)
            point_sets.setdefault(key, points)
        for key, members in groups.items():
            name = prefix + compress_names([t.name for t in members], order)
            points = point_sets[key]
            if is_last and len(members) > 1:
                last = points[-1]
                lines = sorted({t.file_line for t in members})
                label = "value in the params file, line" + ("s " if len(lines) > 1 else " ") + \
                    ", ".join(str(line) for line in lines)
                points = points[:-1] + (replace(last, label=label),)
            series.append(Series(name, points, "step", name))

    if tracks and not any(_epsw_changes(e) for run, evs in per_run for e, _ in evs):
        notes.append("the log records no change of epsW: the params file's values are drawn over the logged epochs")
    if not tracks:
        notes.append("the params file has no layer with epsW")
    if any(p.y <= 0 for s in series for p in s.points):
        notes.append("a learning rate of 0 (layer frozen) cannot sit on a log scale: drawn on the “0” row")
    chart = Chart(id=sanitize_id(f"lr-{experiment.id}"), title=f"#{experiment.id}: weight learning rate (epsW)",
                  x_label="epoch", y_label="epsW (log scale)", series=tuple(series), y_scale="log",
                  notes=tuple(dict.fromkeys(walker.finish())))
    return LrReconstruction(chart, tuple(dict.fromkeys(walker.contradictions)))


# --- Results -------------------------------------------------------------------------

def _placed_results(experiment) -> tuple[list[tuple[object, float]], list[object], int]:
    """(result entries with the x they are drawn at, results with no x, how many were placed
    at their run's last epoch)."""
    own = {run.index for run in experiment.own_runs}
    runs = {run.index: run for run in experiment.logbook.runs}
    placed, unplaced, at_run_end = [], [], 0
    for entry in experiment.logbook.entries:
        if entry.kind != "result" or entry.run not in own:
            continue
        if entry.epoch is not None:
            placed.append((entry, entry.epoch))
        elif runs[entry.run].last_epoch is not None:
            placed.append((entry, runs[entry.run].last_epoch))
            at_run_end += 1
        else:
            unplaced.append(entry)
    return placed, unplaced, at_run_end


def _result_label(entry) -> str:
    words = [w for w in (entry.label, entry.split, "multiview" if entry.multiview else None) if w]
    return (" · ".join(words) + ": " if words else "") + _event_label(entry)


def _result_notes(placed_count: int, unplaced: list, at_run_end: int, experiment) -> list[str]:
    notes = []
    if at_run_end:
        notes.append(f"{at_run_end} result{'s' if at_run_end != 1 else ''} without an epoch "
                     f"{'are' if at_run_end != 1 else 'is'} drawn at the last epoch of {'their' if at_run_end != 1 else 'its'} run")
    if unplaced:
        lines = ", ".join(str(e.span.line) for e in unplaced)
        notes.append(f"{len(unplaced)} result{'s' if len(unplaced) != 1 else ''} without an epoch "
                     f"{'are' if len(unplaced) != 1 else 'is'} in the results table (line{'s' if len(unplaced) != 1 else ''} {lines})")
    return notes


def _epoch_extent(experiment) -> tuple[float, ...]:
    """Result charts span epoch 0 to the last logged epoch, like the learning-rate chart."""
    return (0.0,) + ((float(experiment.last_epoch),) if experiment.last_epoch is not None else ())


def results_chart(experiment) -> Chart:
    """Top-1 and top-5 error (percent) against the epoch, as points."""
    placed, unplaced, at_run_end = _placed_results(experiment)
    series = []
    for name, attr in (("top-1 error", "top1"), ("top-5 error", "top5")):
        points = tuple(Point(x, round(getattr(e, attr) * 100, 6), _result_label(e),
                             _file_href(experiment, e.span.line))
                       for e, x in placed if getattr(e, attr) is not None)
        if points:
            series.append(Series(name, points, "points", name))
    return Chart(id=sanitize_id(f"results-{experiment.id}"), title=f"#{experiment.id}: error rates",
                 x_label="epoch", y_label="error (%)", series=tuple(series), y_scale="linear",
                 notes=tuple(_result_notes(len(placed), unplaced, at_run_end, experiment)),
                 x_extent=_epoch_extent(experiment))


def cost_chart(experiment) -> Chart:
    """The logprob cost (nats per case, logreg) against the epoch, as points."""
    placed, unplaced, at_run_end = _placed_results(experiment)
    points = tuple(Point(x, e.cost, _result_label(e), _file_href(experiment, e.span.line))
                   for e, x in placed if e.cost is not None)
    series = (Series("logprob cost", points, "points", "logprob cost"),) if points else ()
    return Chart(id=sanitize_id(f"cost-{experiment.id}"), title=f"#{experiment.id}: logprob cost",
                 x_label="epoch", y_label="cost (nats per case)", series=series, y_scale="linear",
                 notes=tuple(_result_notes(len(placed), unplaced, at_run_end, experiment)),
                 x_extent=_epoch_extent(experiment))


def experiment_charts(experiment) -> list[Chart]:
    """The charts of the experiment page, in display order: learning rate, errors, cost.
    A chart with no point is left out (the results table lists what cannot be drawn)."""
    charts = [lr_schedule_chart(experiment), results_chart(experiment), cost_chart(experiment)]
    return [c for c in charts if any(s.points for s in c.series)]


def overlay(charts: list[Chart], title: str) -> Chart:
    """One chart from the same-kind charts of several experiments (the compare page):
    series names and groups prefixed "#<id> ", notes too; log y if any is log."""
    if not charts:
        return Chart("compare", title, "epoch", "", ())
    kinds = {c.id.split("-", 1)[0] for c in charts}
    if len(kinds) > 1:
        raise ValueError(f"overlay needs charts of one kind, got {sorted(kinds)}")
    kind = kinds.pop()
    series, notes, ids = [], [], []
    for chart in charts:
        eid = chart.id.split("-", 1)[1] if "-" in chart.id else chart.id
        ids.append(eid)
        for s in chart.series:
            series.append(replace(s, name=f"#{eid} {s.name}", group=f"#{eid} {s.group or s.name}"))
        notes += [f"#{eid}: {n}" for n in chart.notes]
    first = charts[0]
    return Chart(id=sanitize_id(f"{kind}-compare-{'_'.join(ids)}"), title=title, x_label=first.x_label,
                 y_label=first.y_label, series=tuple(series),
                 y_scale="log" if any(c.y_scale == "log" for c in charts) else "linear", notes=tuple(notes),
                 x_extent=tuple(sorted({x for c in charts for x in c.x_extent})))
