"""archive/lrhistory.py: the epsW history of an experiment, against the release (#120 step by
step, counts over all 107 experiments, restarts, undated and mistyped epochs, rule 4b) and a
small hand-written params file for the rules on their own."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from archive.cfgfile import parse_cfg
from archive.logbook import parse_logbook
from archive.lrhistory import compress_names, epsw_history, layer_matches
from archive.params import parse_params


def _track(history, name):
    return next(th for th in history.tracks if th.track.name == name)


def test_120_conv1a_step_by_step(release, archive_root):
    e = release.experiment("120")
    history = epsw_history(e)
    assert len(history.runs) == 1
    run = history.runs[0]
    assert (run.name, run.direction, run.from_file, run.first_epoch) == ("", "backward", True, 0.0)
    conv1a = _track(history, "conv1a")
    assert conv1a.track.input_index is None and conv1a.track.file_value == 0.0
    assert conv1a.track.span.line == 2  # "epsW=0.0000" of [conv1a]
    final = conv1a.final
    assert final.start == 0.01 and final.end == 0.0 and final.touched
    assert [(s.epoch, s.value, s.span.line) for s in final.steps] == [
        (26.0, 0.001, 167), (47.0, 0.0001, 168), (66.0, 0.00001, 169), (72.0, 0.0, 171)]
    lines = (archive_root / e.params_file).read_text().splitlines()
    for step in final.steps:
        assert step.span.path == e.params_file
        assert step.text.startswith(f"epoch {step.epoch:g}: set epsw to ")
        assert lines[step.span.line - 1].lstrip("# ").startswith(step.text.split(" set color")[0])
    # Epoch 82's unscoped change (line 172) applies to the layers at its new value, not to conv1/2.
    fc = _track(history, "fc1000").final
    assert [(s.epoch, s.value, s.span.line) for s in fc.steps][-1] == (82.0, 0.00001, 172)
    assert history.contradictions == () and history.overlap is False
    assert [s.line for s in history.events] == [167, 168, 169, 171, 172]
    json.dumps(history.to_json())


def test_counts_over_the_release(release):
    # The numbers tests/webapp/test_curves.py pins (counted over the release when written): 68
    # experiments whose own runs log an epsW change, 10 contradicted changes in all.
    experiments = release.sorted_experiments()
    assert len(experiments) == 107
    histories = [epsw_history(e) for e in experiments]
    assert sum(1 for h in histories if h.events) == 68
    assert sum(len(h.contradictions) for h in histories) == 10
    for h in histories:
        for th in h.tracks:
            assert len(th.runs) == len(h.runs)
        if h.runs:  # the params file always ends the last run, walked backwards from it
            assert h.runs[-1].from_file and h.runs[-1].direction == "backward"
            assert all(r.direction == "forward" for r in h.runs[:-1])
        for note in h.notes:
            if note.span is not None:
                assert note.span.path == h.params_file


def test_contradiction_names_its_line(release):
    e = release.experiment("145-half")  # log: conv1 set to 0 at epoch 72; the file still has 0.00001
    history = epsw_history(e)
    line = next(ev.span.line for ev in e.events if ev.epoch == 72.0)
    assert [(s.path, s.line) for s in history.contradictions] == [(e.params_file, line)]
    assert _track(history, "conv1a").final.steps[-1].value == e.params["conv1a"].inputs[0].epsW
    assert any(n.span.line == line and "kept 1e-05" in n.text for n in history.notes if n.span)


def test_restarts_are_runs_of_their_own(release):
    history = epsw_history(release.experiment("106"))
    assert history.overlap
    assert [r.name for r in history.runs] == ["run 1", "run 2", "run 3"]
    assert [r.direction for r in history.runs] == ["forward", "forward", "backward"]
    for th in history.tracks:
        for run, track_run in zip(history.runs, th.runs):
            epochs = [s.epoch for s in track_run.steps if s.epoch is not None]
            assert epochs == sorted(epochs) and all(run.first_epoch <= x <= run.last_epoch for x in epochs)


def test_170_last_run_changes_nothing(release):
    e = release.experiment("170")
    history = epsw_history(e)
    assert [r.name for r in history.runs] == ["run 1", "run 2", "run 3", "run 4", "run 5"]
    conv1a = _track(history, "conv1a")
    assert conv1a.final.steps == () and conv1a.final.start == conv1a.track.file_value == 0.01
    assert [s.value for s in conv1a.runs[3].steps] == [0.0]  # run 4: "set conv1 epsw to 0 from 0.1"
    assert conv1a.runs[3].start == 0.1


def test_undated_change_is_applied_not_placed(release):
    e = release.experiment("132")  # "epoch 4x: set epsw to 0.0001 from 0.001"
    history = epsw_history(e)
    undated = [s for th in history.tracks for r in th.runs for s in r.steps if s.epoch is None]
    assert undated and {s.span.line for s in undated} == {174}
    assert {s.effective_epoch for s in undated} == {23.0}  # the epoch of the run's event before it
    assert any("has no epoch (4x)" in n.text for n in history.notes)


def test_mistyped_epoch_is_drawn_at_the_one_before(release):
    history = epsw_history(release.experiment("110"))  # "epoch 67 ... epoch 66" in the log
    steps = [s for th in history.tracks for s in th.final.steps if s.span.line == 145]
    assert steps and {s.epoch for s in steps} == {67.0}
    assert any("epoch 66 comes after epoch 67" in n.text for n in history.notes)


def test_file_not_the_state_after_a_change_replays_forward(release):
    e = release.experiment("137")  # rule 4b at line 205
    history = epsw_history(e)
    assert (e.params_file, 205) in [(s.path, s.line) for s in history.contradictions]
    assert any("replayed forward" in n.text and n.span.line == 205 for n in history.notes if n.span)


def _history_of(text: str):
    cfg = parse_cfg(text, "layer-params-test.cfg")
    logbook = parse_logbook(cfg)
    experiment = SimpleNamespace(id="test", params_file="layer-params-test.cfg", params=parse_params(cfg),
                                 logbook=logbook, own_runs=list(logbook.runs))
    return epsw_history(experiment)


def test_rules_on_a_small_file():
    history = _history_of(
        "[conv1]\nepsW=0.0000\n\n"
        "[fc10]\nepsW=0.001,0.002\n\n"
        "# epoch 10: set epsw to 0.001 from 0.01\n"     # line 7: by value (rule 2): conv1 only
        "# epoch 20: set epsw to 0 from 0.001 on conv1\n"  # line 8: named
        "# epoch 30: set epsw to 0.002 on fc10\n")       # line 9: no old (rule 3); input 1 holds 0.001 (rule 4)
    assert [th.track.name for th in history.tracks] == ["conv1", "fc10 (input 1)", "fc10 (input 2)"]
    conv1 = _track(history, "conv1").final
    assert conv1.start == 0.01 and [(s.epoch, s.value) for s in conv1.steps] == [(10.0, 0.001), (20.0, 0.0)]
    for name, value in (("fc10 (input 1)", 0.001), ("fc10 (input 2)", 0.002)):
        fc = _track(history, name).final
        assert fc.start is None and [(s.epoch, s.value) for s in fc.steps] == [(30.0, value)]
    assert [s.line for s in history.contradictions] == [9]
    texts = [n.text for n in history.notes]
    assert "layer-params-test.cfg:9: “set epsw to 0.002 on fc10” does not say the rate before it; earlier " \
           "values of fc10 (input 1), fc10 (input 2) are unknown unless earlier changes give them" in texts


def test_layer_name_rules():
    assert layer_matches("conv1", "conv1a") and layer_matches("conv1", "conv1")
    assert not layer_matches("conv1", "conv10") and layer_matches("fc", "fc1000")
    order = ["conv1a", "conv1b", "conv2a", "conv2b", "fc1000"]
    assert compress_names(order, order) == "conv1a–fc1000 (5 layers)"


def test_imports_only_the_standard_library():
    code = "import sys, archive.lrhistory; print('\\n'.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    base = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
                          capture_output=True, text=True, check=True).stdout.split()
    extra = {m.split(".")[0] for m in set(loaded) - set(base)} - set(sys.stdlib_module_names) - {"archive"}
    assert not extra, extra
