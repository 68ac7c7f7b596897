"""replay/schedule.py: ε(p) for every schedule form (SEMANTICS.md §5, hand-computed values with
their formulas), training progress, and the epsW timetables rebuilt from the log (checked against
#120's log and against webapp/curves.py, whose rules the rebuild duplicates)."""
from __future__ import annotations

import math
import re

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


# --- the duplicated rules agree with webapp/curves.py ----------------------------------------

_COUNT = re.compile(r" \(\d+ layers\)$")


def _members(name: str, order: list[str]) -> list[str]:
    name = _COUNT.sub("", name.split(": ", 1)[-1])
    out = []
    for piece in name.split(", "):
        if "–" in piece:
            first, last = piece.split("–")
            out += order[order.index(first):order.index(last) + 1]
        else:
            out.append(piece)
    return out


def test_timetables_agree_with_the_site_curves(release):
    from webapp.curves import _tracks, reconstruct_lr

    compared = 0
    for e in release.sorted_experiments():
        result = epsw_timetables(e)
        if any("restart at earlier epochs" in n or "has no epoch" in n for n in result.notes):
            continue  # one timeline here, one per run there; undated changes placed vs not drawn
        chart = reconstruct_lr(e).chart
        order = [t.name for t in _tracks(e)]
        for series in chart.series:
            events = [p for p in series.points if p.href and "#L" in p.href
                      and not p.label.startswith(("value", "no change", "last logged", "end of run"))]
            last_at = {p.x: p.y for p in events}
            for track in _members(series.name, order):
                m = re.match(r"^(.*) \(input (\d+)\)$", track)
                keys = ([(m.group(1), int(m.group(2)) - 1)] if m
                        else [k for k in result.tables if k[0] == track])
                for key in keys:
                    for x, y in last_at.items():
                        assert math.isclose(result.tables[key].value_at(x), y, rel_tol=1e-9, abs_tol=1e-15), \
                            (e.id, key, x, y)
                        compared += 1
    assert compared > 1000
