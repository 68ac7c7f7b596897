"""The semantic diff, on real experiments and on small hand-written files."""
from __future__ import annotations

import pytest

from archive.cfgfile import parse_cfg
from archive.compare import Side, diff_sides, unified
from archive.layers import parse_layers
from archive.params import parse_params


@pytest.fixture(scope="module")
def archive(release):
    return release


def side(archive, eid):
    e = archive.experiment(eid)
    return Side(e.id, e.layers, e.params, e.logbook)


def test_120_vs_131_reports_rnorm1_moved_over_conv1(archive):
    result = diff_sides(side(archive, "120"), side(archive, "131"))
    assert not result.same
    moved = {d.name: (d.moved_from, d.moved_to) for d in result.layers if d.moved_to is not None}
    assert moved == {"rnorm1a": (("pool1a",), ("conv1a",)), "rnorm1b": (("pool1b",), ("conv1b",))}
    assert "rnorm1a moved: over pool1a → over conv1a" in result.summary
    # The layers around it were only rewired.
    conv2a = next(d for d in result.layers if d.name == "conv2a")
    assert conv2a.moved_to is None and conv2a.changes[0].new == ("nails0", "pool1a")
    # 131 moved fc1000 and the cost to gpu 0 and lowered epsB tenfold.
    fc1000 = next(d for d in result.layers if d.name == "fc1000")
    assert [(c.key, c.old, c.new) for c in fc1000.changes] == [("gpu", 1, 0)]
    assert str(fc1000.changes[0].new_span) == "layers/layers-131.cfg:313"
    conv3a = next(d for d in result.params if d.name == "conv3a")
    assert [(c.key, c.old, c.new) for c in conv3a.changes] == [("epsB", 0.02, 0.002)]
    assert {d.status for d in result.layers} == {"changed", "same"}
    assert any(l.op == "+" and "puts rnorm1 right over conv1" in l.text for l in result.log)


def test_an_experiment_equals_itself(archive):
    result = diff_sides(side(archive, "120"), side(archive, "120"))
    assert result.same and not result.log and result.to_json()["layers"] == []


def test_runs_sharing_a_definition_file_differ_only_in_params_and_log(archive):
    result = diff_sides(side(archive, "169"), side(archive, "170"))
    assert all(d.status == "same" for d in result.layers)
    changed = [d for d in result.params if d.status == "changed"]
    assert changed   # 170 decays the learning rate to 0.00004 instead of 0.00002


def test_per_input_values_added_and_removed_layers():
    a = parse_cfg("[data]\ntype=data\ndataIdx=0\n\n[c]\ntype=fc\ninputs=data,data\noutputs=10\n"
                  "initW=0.01,0.02\ngpu=0\n\n[old]\ntype=fc\ninputs=c\noutputs=3\ninitW=0.1\n", "a.cfg")
    b = parse_cfg("[data]\ntype=data\ndataIdx=0\n\n[c]\ntype=fc\ninputs=data,data\noutputs=10\n"
                  "initW=0.01,0.05\ngpu=0\n\n[new]\ntype=fc\ninputs=c\noutputs=3\ninitW=0.1\n", "b.cfg")
    result = diff_sides(Side("a", parse_layers(a, {0: 8})), Side("b", parse_layers(b, {0: 8})))
    by_name = {d.name: d for d in result.layers}
    assert by_name["old"].status == "removed" and by_name["new"].status == "added"
    (change,) = by_name["c"].changes
    assert (change.label, change.old, change.new) == ("initW[1]", 0.02, 0.05)
    assert (change.old_span.path, change.old_span.line, change.new_span.line) == ("a.cfg", 9, 9)


def test_schedules_compare_in_their_normal_form():
    a = parse_params(parse_cfg("[fc]\nepsW=0.01\nschedW=dexp[tgtFactor=250,noiseStdev=0,numSteps=4]\n", "a.cfg"))
    b = parse_params(parse_cfg("[fc]\nepsW=0.01\nschedW=dexp[250,0,4]\n", "b.cfg"))
    c = parse_params(parse_cfg("[fc]\nepsW=0.01\nschedW=dexp[500,0,4]\n", "c.cfg"))
    assert diff_sides(Side("a", params=a), Side("b", params=b)).same
    (d,) = [d for d in diff_sides(Side("a", params=a), Side("c", params=c)).params if d.status == "changed"]
    (change,) = d.changes
    assert change.key == "schedW" and change.to_json()["new"] == "dexp[tgtFactor=500,noiseStdev=0,numSteps=4]"


def test_unified_format_is_a_real_unified_diff(archive):
    a = Side("120", files=(("layers/layers-120.cfg", archive.cfg["layers/layers-120.cfg"].render()),))
    b = Side("131", files=(("layers/layers-131.cfg", archive.cfg["layers/layers-131.cfg"].render()),))
    text = unified(a, b)
    assert text.startswith("--- layers/layers-120.cfg\n+++ layers/layers-131.cfg\n@@ ")
    assert "+inputs=conv1a\n" in text
