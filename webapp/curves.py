"""The training curves of one experiment, from the archive's records, as `Chart`s.

Learning-rate schedule (`lr_schedule_chart`): the weight learning rate epsW of
every weight layer against the epoch, drawn from `archive.lrhistory.epsw_history`,
which rebuilds it from the params file and the log's hand-made changes ("epoch 26:
set epsw to 0.001 from 0.01") -- rules 1-8 of the reconstruction are in that
module's docstring; the replay's timetables (replay/schedule.py) come from the same
history. Drawing: each run of the history is drawn on its own ("run 2: ..."; no
prefix when the runs form one timeline); in every run but the last, only the layers
a change of that run named. Rule 9: layers with identical series (same points, same
events) share one Series, named by their names compressed ("conv1a, conv1b";
"conv3a–fc1000 (11 layers)").

Results (`results_chart`, `cost_chart`): the logged error rates (percent) and
logprob costs as points, at the result's epoch, else at its run's last epoch.

Every point carries the log line as label and its file line as href
("/files/<params_file>#L<line>", a canonical site path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from archive.lrhistory import (HistoryRun, LrHistory, Track, TrackRun, compress_names, epsw_history,
                               layer_matches)

from .charts import Chart, Point, Series, sanitize_id

__all__ = ["lr_schedule_chart", "reconstruct_lr", "LrReconstruction", "results_chart", "cost_chart", "experiment_charts", "overlay",
           "compress_names", "layer_matches"]


def _file_href(experiment, line: int) -> str:
    return f"/files/{experiment.params_file}#L{line}"


def _event_label(entry) -> str:
    return " ".join(part.strip() for part in entry.text.splitlines() if part.strip())


# --- Learning rate -------------------------------------------------------------------

def _points(track_run: TrackRun, run: HistoryRun, end_label: str, end_href: str | None,
            experiment) -> tuple[Point, ...]:
    points: list[Point] = []
    if track_run.start is not None:
        points.append(Point(run.first_epoch, track_run.start, "value before the first logged change"
                            if track_run.steps else "no change logged", None))
    for step in track_run.steps:
        if step.epoch is None:
            continue  # rule 6: applied, not drawn
        points.append(Point(step.epoch, step.value, step.text, _file_href(experiment, step.span.line)))
    if points:
        last_value = points[-1].y
        # An undrawn (epoch-less) last change still sets the value the run ends with.
        if track_run.steps:
            last_value = track_run.steps[-1].value
        if track_run.end is not None:
            last_value = track_run.end
        last_x = max(run.last_epoch, points[-1].x)
        points.append(Point(last_x, last_value, end_label, end_href))
    return tuple(points)


def _run_series(history: LrHistory, position: int, experiment) -> list[Series]:
    """The series of one run of the history: tracks with the same points share one (rule 9)."""
    run = history.runs[position]
    order = [th.track.name for th in history.tracks]
    prefix = f"{run.name}: " if run.name else ""
    groups: dict[tuple, list[Track]] = {}
    point_sets: dict[tuple, tuple[Point, ...]] = {}
    for th in history.tracks:
        track_run = th.runs[position]
        if not run.from_file and not track_run.touched:
            continue  # nothing logs the rate of a layer no change of an earlier run names
        track = th.track
        end_label = f"value in the params file, line {track.span.line}" if run.from_file else "end of run"
        end_href = _file_href(experiment, track.span.line) if run.from_file else None
        points = _points(track_run, run, end_label, end_href, experiment)
        if not points:
            continue
        key = tuple((p.x, p.y, p.href if p is not points[-1] else None) for p in points)
        groups.setdefault(key, []).append(track)
        point_sets.setdefault(key, points)
    series = []
    for key, members in groups.items():
        name = prefix + compress_names([t.name for t in members], order)
        points = point_sets[key]
        if run.from_file and len(members) > 1:
            lines = sorted({t.span.line for t in members})
            label = "value in the params file, line" + ("s " if len(lines) > 1 else " ") + \
                ", ".join(str(line) for line in lines)
            points = points[:-1] + (replace(points[-1], label=label),)
        series.append(Series(name, points, "step", name))
    return series


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
    history = epsw_history(experiment)
    series = [s for position in range(len(history.runs)) for s in _run_series(history, position, experiment)]
    notes = [n.text for n in history.notes]
    if history.tracks and not history.events:
        notes.append("the log records no change of epsW: the params file's values are drawn over the logged epochs")
    if not history.tracks:
        notes.append("the params file has no layer with epsW")
    if any(p.y <= 0 for s in series for p in s.points):
        notes.append("a learning rate of 0 (layer frozen) cannot sit on a log scale: drawn on the “0” row")
    chart = Chart(id=sanitize_id(f"lr-{experiment.id}"), title=f"#{experiment.id}: weight learning rate (epsW)",
                  x_label="epoch", y_label="epsW (log scale)", series=tuple(series), y_scale="log",
                  notes=tuple(dict.fromkeys(notes)))
    return LrReconstruction(chart, tuple(f"{s.path}:{s.line}" for s in history.contradictions))


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


def experiment_charts(experiment, replays=()) -> list[Chart]:
    """The charts of the experiment page, in display order: learning rate, errors, cost.
    `replays`: stored runs of this experiment (replay/store.py: RunStore.run), whose train and
    test curves join the error and cost charts beside what 2012 logged.
    A chart with no point is left out (the results table lists what cannot be drawn)."""
    charts = [lr_schedule_chart(experiment), results_chart(experiment), cost_chart(experiment)]
    if replays:
        errors, costs = replay_series(replays)
        charts[1] = replace(charts[1], series=charts[1].series + errors)
        charts[2] = replace(charts[2], series=charts[2].series + costs)
    return [c for c in charts if any(s.points for s in c.series)]


MAX_TRAIN_POINTS = 150  # a run's per-minibatch train curve is averaged down to this many points


def _averaged(points: list[dict], key: str, scale: float) -> list[Point]:
    usable = [p for p in points if p.get(key) is not None and p.get("progress") is not None]
    size = max(1, math.ceil(len(usable) / MAX_TRAIN_POINTS))
    out = []
    for start in range(0, len(usable), size):
        group = usable[start:start + size]
        x = group[-1]["progress"]
        y = sum(p[key] for p in group) / len(group) * scale
        out.append(Point(x, y, f"average of {len(group)} minibatch{'es' if len(group) > 1 else ''}"))
    return out


def replay_series(replays) -> tuple[tuple[Series, ...], tuple[Series, ...]]:
    """(error series in percent, cost series) of stored replay runs: the training curve (dropout on,
    as the original's train costs) as a line, each test pass as a point."""
    errors: list[Series] = []
    costs: list[Series] = []
    for run in replays:
        name = f"replay {run['id']}"
        href = f"/runs/{run['id']}"
        train, tests = run.get("train", []), run.get("tests", [])
        if train:
            errors.append(Series(f"{name}: train top-1", tuple(_averaged(train, "top1", 100.0)), "line", name))
            costs.append(Series(f"{name}: train cost", tuple(_averaged(train, "cost", 1.0)), "line", name))
        if tests:
            for key, label in (("top1", "test top-1"), ("topk", "test top-k")):
                pts = tuple(Point(t["progress"], t[key] * 100.0, f"test pass of {t['cases']} images", href)
                            for t in tests if t.get(key) is not None and t.get("progress") is not None)
                if pts:
                    errors.append(Series(f"{name}: {label}", pts, "points", name))
            pts = tuple(Point(t["progress"], t["cost"], f"test pass of {t['cases']} images", href)
                        for t in tests if t.get("cost") is not None and t.get("progress") is not None)
            if pts:
                costs.append(Series(f"{name}: test cost", pts, "points", name))
    return tuple(errors), tuple(costs)


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
