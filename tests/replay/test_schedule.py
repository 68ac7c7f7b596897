"""replay/schedule.py: ε(p) for every schedule form (SEMANTICS.md §5, hand-computed values with
their formulas), training progress, and the epsW timetables rebuilt from the log (checked against
#120's log, and against archive.lrhistory, the history the site's chart draws too)."""
from __future__ import annotations

import numpy as np
import pytest

from archive.params import parse_schedule
from replay.plan import build_plan
from replay.schedule import (
    epsw_timetables,
    layer_matches,
    rate_at,
    scheduled_rate,
    training_progress,
)

E0 = 0.01


def test_default_and_none_are_constant():
    assert scheduled_rate(None, E0, 0.7) == E0
    assert scheduled_rate(parse_schedule("default"), E0, 0.7) == E0


def test_linear():
    s = parse_schedule("linear[tgtFactor=10,noiseStdev=0]")
    # ε0·(1−p) + (ε0/T)·p = 0.01·0.7 + 0.001·0.3 = 0.0073
    assert scheduled_rate(s, E0, 0.3) == pytest.approx(0.0073, rel=1e-12)
    assert scheduled_rate(s, E0, 1.0) == pytest.approx(0.001, rel=1e-12)


def test_exp():
    s = parse_schedule("exp[tgtFactor=250,noiseStdev=0]")
    # ε0·T^(−p) = 0.01 / √250 = 0.01 / 15.811388 = 6.3245553e-4
    assert scheduled_rate(s, E0, 0.5) == pytest.approx(6.3245553e-4, rel=1e-7)
    assert scheduled_rate(s, E0, 1.0) == pytest.approx(E0 / 250, rel=1e-12)


def test_dexp_right_closed_intervals():
    s = parse_schedule("dexp[tgtFactor=250,noiseStdev=0,numSteps=4]")
    r = [E0, E0 / 250 ** (1 / 3), E0 / 250 ** (2 / 3), E0 / 250]  # ε0, ε0/6.30, ε0/39.7, ε0/250
    for p, i in [(0.0, 0), (0.25, 0), (0.26, 1), (0.5, 1), (0.75, 2), (0.76, 3), (1.0, 3)]:
        assert scheduled_rate(s, E0, p) == pytest.approx(r[i], rel=1e-12), p
    # the positional spelling of params 169-180 reads the same
    assert scheduled_rate(parse_schedule("dexp[250,0,4]"), E0, 0.6) == pytest.approx(r[2], rel=1e-12)


def test_dexp_one_step_and_bias_two_steps():
    one = parse_schedule("dexp[tgtFactor=10,noiseStdev=0,numSteps=1]")
    assert scheduled_rate(one, E0, 0.0) == pytest.approx(E0 / 10)  # n = 1: ε0/T from the start
    two = parse_schedule("dexp[10,2]")  # (tgtFactor, numSteps), as files 165-167 write it for biases
    assert scheduled_rate(two, 0.02, 0.5) == pytest.approx(0.02)
    assert scheduled_rate(two, 0.02, 0.51) == pytest.approx(0.002)


def test_jdexp_geometric_jump():
    s = parse_schedule("jdexp[tgtFactor=250,noiseStdev=0,numSteps=4]")
    # p = 0.45: interval 1 (mid 0.375), 0.2 < p < 0.9, p > mid -> √(r1·r0) = ε0·250^(−1/6)
    assert scheduled_rate(s, E0, 0.45) == pytest.approx(E0 * 250 ** (-1 / 6), rel=1e-12)
    assert scheduled_rate(s, E0, 0.3) == pytest.approx(E0 * 250 ** (-1 / 3), rel=1e-12)  # before mid: r1
    # p = 0.7: interval 2 (mid 0.625) -> √(r2·r1) = ε0·250^(−1/2)
    assert scheduled_rate(s, E0, 0.7) == pytest.approx(E0 * 250 ** (-1 / 2), rel=1e-12)
    # p = 0.95: interval 3 (mid 0.875) but p ≥ 0.9: no jump -> ε0/250
    assert scheduled_rate(s, E0, 0.95) == pytest.approx(E0 / 250, rel=1e-12)
    # p = 0.15: interval 0 never jumps
    assert scheduled_rate(s, E0, 0.15) == pytest.approx(E0)


def test_noise_is_half_normal_and_redrawn():
    s = parse_schedule("linear[tgtFactor=1,noiseStdev=1]")  # "noisylr": a constant rate, σ = 1
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    values = [scheduled_rate(s, E0, 0.5, rng) for _ in range(50)]
    # ε·(1 + σ·|z|): never below ε, each call a new draw
    expected = [E0 * (1 + abs(twin.standard_normal())) for _ in range(50)]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    assert min(values) >= E0 and len(set(values)) == 50
    assert scheduled_rate(s, E0, 0.5) == pytest.approx(E0)  # no generator: the deterministic part


def test_training_progress():
    # p = (k−1)/(E·B), k = B·(epoch−1) + position + 1: B = 10, E = 5, epoch 3, file 4 -> k = 25, p = 24/50
    assert training_progress(3, 4, 10, 5) == pytest.approx(0.48)
    assert training_progress(1, 0, 10, 5) == 0.0
    assert training_progress(9, 9, 10, 5) == 1.0  # clamped (epochs raised later lower p again)


def test_layer_matches():
    assert layer_matches("conv1", "conv1a") and layer_matches("fc", "fc1000")
    assert not layer_matches("conv1", "conv10") and layer_matches("conv1", "conv1")


def test_120_timetable_from_its_log(release):
    e = release.experiment("120")
    tables = epsw_timetables(e).tables
    conv1a = tables[("conv1a", 0)]
    assert [(s.epoch, s.value) for s in conv1a.steps] == [
        (0.0, 0.01), (26.0, 0.001), (47.0, 0.0001), (66.0, 0.00001), (72.0, 0.0)]
    assert [s.source for s in conv1a.steps[1:]] == [f"{e.params_file}:{n}" for n in (167, 168, 169, 171)]
    assert not conv1a.assumed
    fc = tables[("fc1000", 1)]
    assert [(s.epoch, s.value) for s in fc.steps] == [
        (0.0, 0.01), (26.0, 0.001), (47.0, 0.0001), (82.0, 0.00001)]
    assert fc.value_at(25.9) == 0.01 and fc.value_at(26) == 0.001 and fc.value_at(200) == 0.00001
    plan = build_plan(e)
    p = plan.param("conv1a", "weights", 0)
    assert rate_at(p, 50, 0.5) == 0.0001 and rate_at(p, 73, 0.7) == 0.0
    written = build_plan(e, as_written=True).param("conv1a", "weights", 0)
    assert [(s.epoch, s.value, s.source) for s in written.timetable.steps] == [(0.0, 0.0, f"{e.params_file}:2")]


# --- one history: the replay's timetables and the site's chart come from archive.lrhistory ---------

def test_timetables_follow_the_history_the_chart_draws(release):
    """For every experiment: each timetable is the history's last run (the one the params file
    ends) of its track, and the chart's points for that run are the same history's steps."""
    from archive.lrhistory import epsw_history
    from webapp.curves import lr_schedule_chart

    compared = 0
    for e in release.sorted_experiments():
        history = epsw_history(e)
        tables = epsw_timetables(e).tables
        assert set(tables) == {(th.track.layer, i) for th in history.tracks for i in th.track.inputs}
        drawn_steps = set()
        for th in history.tracks:
            final = th.final
            for i in th.track.inputs:
                table = tables[(th.track.layer, i)]
                if final is None:
                    assert [s.value for s in table.steps] == [th.track.file_value]
                    continue
                assert table.assumed == (final.start is None)
                # every step of the history holds in the timetable from its epoch on, unless a later
                # step of the same epoch overrides it (several changes at one epoch)
                steps = list(final.steps)
                for k, step in enumerate(steps):
                    if k + 1 < len(steps) and steps[k + 1].effective_epoch == step.effective_epoch:
                        continue
                    assert table.value_at(step.effective_epoch) == step.value, (e.id, th.track.name, step)
                    assert str(step.span) in {s.source for s in table.steps}
                    compared += 1
                if final.start is not None and not (steps and steps[0].effective_epoch == 0.0):
                    assert table.start == final.start  # (a change at epoch 0, "300 batches:", replaces it)
            if final is not None:
                drawn_steps |= {(s.epoch, s.value, s.span.line) for s in final.steps if s.epoch is not None}
        if not history.runs:
            continue
        last = history.runs[-1]
        chart = lr_schedule_chart(e)
        in_last = [s for s in chart.series if not last.name or s.name.startswith(f"{last.name}: ")]
        drawn = {(p.x, p.y, int(p.href.rsplit("#L", 1)[1])) for s in in_last for p in s.points
                 if p.href and not p.label.startswith("value in the params file")}
        assert drawn == drawn_steps, e.id
    assert compared > 1000


def test_170_follows_the_last_run(release):
    """#170's last run ("restart normal 170 ...") changes no epsW: the file's values hold
    throughout, not run 4's "set conv1 epsw to 0 from 0.1" walked back from the file."""
    e = release.experiment("170")
    tables = epsw_timetables(e)
    conv1a = tables.tables[("conv1a", 0)]
    assert [(s.epoch, s.value) for s in conv1a.steps] == [(0.0, e.params["conv1a"].inputs[0].epsW)]
    assert any("the timetables follow run 5" in n for n in tables.notes)


def _steps(table):
    return [(step.epoch, step.value) for step in table.steps]


def test_color_noise_follows_the_log(release, archive_root):
    # layer-params-98-16kinit.cfg: "epoch 44: ... set color noise to 0 from 0.1"
    plan = build_plan(release.experiment("98-16kinit"))
    assert _steps(plan.color_noise) == [(0.0, 0.1), (44.0, 0.0)] and not plan.color_noise.assumed
    line = int(plan.color_noise.steps[1].source.rsplit(":", 1)[1])  # the event's first line
    lines = (archive_root / "layers" / "layer-params-98-16kinit.cfg").read_text().splitlines()
    assert lines[line - 1].startswith("# epoch 44:") and "set color noise to 0 from 0.1" in lines[line]
    assert plan.color_noise.value_at(43) == pytest.approx(0.1) and plan.color_noise.value_at(44) == 0.0
    # as written: the value the log ends with, throughout
    assert _steps(build_plan(release.experiment("98-16kinit"), as_written=True).color_noise) == [(0.0, 0.0)]
    # #145 restarted; its last run starts "color noise put back to 0.1" and drops it at 124
    assert _steps(build_plan(release.experiment("145")).color_noise) == [(0.0, 0.1), (124.0, 0.0)]
    # a log that never mentions it: convnet.py's default 0, marked assumed
    cifar = build_plan(release.experiment("cifar-18pct-noisylr"))
    assert _steps(cifar.color_noise) == [(0.0, 0.0)] and cifar.color_noise.assumed
    assert not any(c.quantity == "color noise" for c in plan.other_changes)


def test_dropout_is_enabled_when_the_log_says(release):
    every = build_plan(release.experiment("96-16k"))  # "enabled dropout" (no layer named: all hs layers)
    hs = sorted(layer.name for layer in every.layers if layer.type == "hs")
    assert sorted(every.dropout) == hs and hs
    assert all(_steps(table) == [(0.0, 0.0), (6.0, 1.0)] for table in every.dropout.values())
    named = build_plan(release.experiment("109"))  # "enabled dropout on hs3a,hs3b" at epoch 26
    assert {name: _steps(t) for name, t in named.dropout.items()} == {"hs3a": [(0.0, 0.0), (26.0, 1.0)],
                                                                      "hs3b": [(0.0, 0.0), (26.0, 1.0)]}
    assert build_plan(release.experiment("109"), as_written=True).dropout == {}


def test_the_network_drops_out_from_the_logged_epoch(release):
    from replay.network import Network

    experiment = release.experiment("109")
    plan = build_plan(experiment)
    net = Network(plan, experiment, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3 * plan.input_size ** 2, 2)).astype(np.float32)
    labels = np.zeros((1, 2), dtype=np.float32)
    hs3a = plan.layer("hs3a")
    outputs = {}
    for epoch in (25, 26):
        net.epoch = epoch
        net.forward(x, labels, train=True, rng=np.random.default_rng(2))
        outputs[epoch] = (net.output(hs3a.inputs[0]).copy(), net.output("hs3a").copy())
    before_in, before_out = outputs[25]
    after_in, after_out = outputs[26]
    keep = np.float32(hs3a.settings["keep"])
    np.testing.assert_array_equal(before_out, before_in * keep)  # enable 0: scaled by keep, nothing dropped
    assert np.count_nonzero(after_out == 0) > np.count_nonzero(after_in == 0)  # enable 1: units dropped
