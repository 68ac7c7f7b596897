"""archive.params against the real release, and against small malformed texts."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from archive.cfgfile import parse_cfg
from archive.params import (
    ParamSet, check_against, load_params, parse_params, parse_schedule, py2_bool_list,
    py2_boolean, schedule_rate,
)
from archive.source import ArchiveError, SourceSpan

SPAN = SourceSpan("t.cfg", 3)


def params_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("layer-params*") if p.is_file())


@pytest.fixture(scope="module")
def param_sets(archive_root: Path) -> dict[str, ParamSet]:
    return {p.relative_to(archive_root).as_posix(): load_params(p, display_path=p.relative_to(archive_root).as_posix())
            for p in params_files(archive_root)}


def parse(text: str, strict: bool = False) -> ParamSet:
    return parse_params(parse_cfg(text, "t.cfg"), strict=strict)


# ---- schedules ---------------------------------------------------------------

# Every distinct spelling of a schedule in the release (grep -rhoi 'sched[wb]\?\s*=.*'),
# with the canonical form, the form, and whether the release's ParamParser accepts it.
RELEASE_SPELLINGS = {
    "default": ("default", "named", True),
    "dexp[tgtFactor=250,noiseStdev=0,numSteps=4]": ("dexp[tgtFactor=250,noiseStdev=0,numSteps=4]", "named", True),
    "dexp[tgtFactor=10,noiseStdev=0,numSteps=2]": ("dexp[tgtFactor=10,noiseStdev=0,numSteps=2]", "named", True),
    "exp[tgtFactor=1000,noiseStdev=0]": ("exp[tgtFactor=1000,noiseStdev=0]", "named", True),
    "exp[tgtFactor=10,noiseStdev=0]": ("exp[tgtFactor=10,noiseStdev=0]", "named", True),
    "dexp[250,0,4]": ("dexp[tgtFactor=250,noiseStdev=0,numSteps=4]", "positional", False),
    "dexp[500,0,4]": ("dexp[tgtFactor=500,noiseStdev=0,numSteps=4]", "positional", False),
    "dexp[10,0,2]": ("dexp[tgtFactor=10,noiseStdev=0,numSteps=2]", "positional", False),
    "jdexp[250,0,4]": ("jdexp[tgtFactor=250,noiseStdev=0,numSteps=4]", "positional", False),
    "jdexp[500,0,4]": ("jdexp[tgtFactor=500,noiseStdev=0,numSteps=4]", "positional", False),
    # two values for dexp/jdexp: tgtFactor, numSteps
    "dexp[10,2]": ("dexp[tgtFactor=10,noiseStdev=0,numSteps=2]", "positional", False),
    "dexp[500,4]": ("dexp[tgtFactor=500,noiseStdev=0,numSteps=4]", "positional", False),
    "dexp[500,5]": ("dexp[tgtFactor=500,noiseStdev=0,numSteps=5]", "positional", False),
    "dexp[1000,3]": ("dexp[tgtFactor=1000,noiseStdev=0,numSteps=3]", "positional", False),
    "dexp[1000,4]": ("dexp[tgtFactor=1000,noiseStdev=0,numSteps=4]", "positional", False),
    "dexp[2000,4]": ("dexp[tgtFactor=2000,noiseStdev=0,numSteps=4]", "positional", False),
    "jdexp[1000,4]": ("jdexp[tgtFactor=1000,noiseStdev=0,numSteps=4]", "positional", False),
    # one value: tgtFactor
    "exp[1000]": ("exp[tgtFactor=1000,noiseStdev=0]", "positional", False),
    "exp[2000]": ("exp[tgtFactor=2000,noiseStdev=0]", "positional", False),
    "exp[4000]": ("exp[tgtFactor=4000,noiseStdev=0]", "positional", False),
    "exp[8000]": ("exp[tgtFactor=8000,noiseStdev=0]", "positional", False),
    "exp[20000]": ("exp[tgtFactor=20000,noiseStdev=0]", "positional", False),
    "linear[1000]": ("linear[tgtFactor=1000,noiseStdev=0]", "positional", False),
    # linear/exp with two: tgtFactor, noiseStdev (constant rate, sigma 1: "noisylr")
    "linear[1,1]": ("linear[tgtFactor=1,noiseStdev=1]", "positional", False),
}


@pytest.mark.parametrize("written", sorted(RELEASE_SPELLINGS))
def test_release_spelling_normalises(written):
    canonical, form, accepted = RELEASE_SPELLINGS[written]
    schedule = parse_schedule(written, SPAN)
    assert (schedule.canonical(), schedule.form, schedule.accepted_2012) == (canonical, form, accepted)
    assert schedule.written == written
    # The canonical form is itself the release's syntax, and reads back to the same values.
    again = parse_schedule(canonical, SPAN)
    assert again.accepted_2012 and again.form == "named"
    assert (again.kind, again.tgt_factor, again.noise_stdev, again.num_steps) == \
        (schedule.kind, schedule.tgt_factor, schedule.noise_stdev, schedule.num_steps)


def test_table_covers_every_spelling_in_the_release(param_sets):
    seen = set()
    for params in param_sets.values():
        for layer in params:
            for key in ("schedW", "schedB", "sched"):
                if key in layer.values:
                    seen.add(layer.values[key].written)
    assert seen == set(RELEASE_SPELLINGS)


@pytest.mark.parametrize("written, canonical, form, accepted", [
    ("DEXP[ TgtFactor = 250 , noiseStdev=0,NUMSTEPS=4 ]", "dexp[tgtFactor=250,noiseStdev=0,numSteps=4]", "named", True),
    ("  Default  ", "default", "named", True),
    ("default[]", "default", "named", True),  # the release's regex allows empty brackets
    ("exp [tgtFactor=1e3,noiseStdev=0.5]", "exp[tgtFactor=1000,noiseStdev=0.5]", "named", True),
    ("dexp", "dexp", "bare", False),  # ParamParser: no values -> rejected
    ("dexp[numSteps=4,tgtFactor=250,noiseStdev=0]", "dexp[tgtFactor=250,noiseStdev=0,numSteps=4]", "keyword", False),
    ("exp[tgtFactor=1000]", "exp[tgtFactor=1000,noiseStdev=0]", "keyword", False),
    ("tanh[2,0]", "tanh[tgtFactor=2,noiseStdev=0]", "positional", False),  # lr.cu only
    ("Linear[ 5 ]", "linear[tgtFactor=5,noiseStdev=0]", "positional", False),
])
def test_schedule_variants(written, canonical, form, accepted):
    schedule = parse_schedule(written, SPAN)
    assert (schedule.canonical(), schedule.form, schedule.accepted_2012) == (canonical, form, accepted)


@pytest.mark.parametrize("written", [
    "", "dexp[[", "foo[1]", "dexp[1000]", "default[1]", "dexp[1,,2]", "linear[1,2,3]",
    "dexp[tgtFactor=250,noiseStdev=0,numSteps=4.0]",  # int() fails in layer.py too
    "exp[tgtFactor=abc,noiseStdev=0]", "dexp[250,0,four]", "exp[1_000]", "dexp[250,noiseStdev=0,4]",
    "dexp[tgtFactor=1,tgtFactor=2,numSteps=3]",
])
def test_schedule_garbage_raises_with_location(written):
    with pytest.raises(ArchiveError) as error:
        parse_schedule(written, SPAN)
    assert str(error.value).startswith("t.cfg:3: ")
    assert error.value.rule == "params.schedule-syntax"


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_parse_schedule_raises_only_archive_error(text):
    try:
        schedule = parse_schedule(text, SPAN)
    except ArchiveError:
        return
    assert schedule.kind in ("default", "linear", "exp", "dexp", "jdexp", "tanh")
    if schedule.form != "bare":
        schedule_rate(schedule, 0.01, 0.5)


# ---- schedule_rate (src/lr.cu), values worked out by hand ---------------------

def rate(text, eps0, p):
    return schedule_rate(parse_schedule(text), eps0, p)


def test_rate_default_linear_exp():
    assert rate("default", 0.01, 0.7) == 0.01
    assert rate("linear[10]", 0.01, 0.5) == pytest.approx(0.0055)  # 0.01*0.5 + 0.001*0.5
    assert rate("linear[1,1]", 0.01, 0.9) == pytest.approx(0.01)  # tgtFactor 1: constant
    assert rate("exp[1000]", 0.01, 0.0) == pytest.approx(0.01)
    assert rate("exp[1000]", 0.01, 0.5) == pytest.approx(0.01 / math.sqrt(1000))
    assert rate("exp[1000]", 0.01, 1.0) == pytest.approx(0.00001)
    assert rate("exp[1000]", 0.0, 0.5) == 0.0  # ExpLRS: _pow = 1 when base is 0
    assert rate("exp[1000]", 1.0, 0.5) == 1.0  # pow(1, x) = 1: the C degenerate case


def test_rate_dexp_intervals_are_right_closed():
    s = "dexp[tgtFactor=250,noiseStdev=0,numSteps=4]"
    assert rate(s, 0.01, 0.0) == 0.01
    assert rate(s, 0.01, 0.25) == 0.01
    assert rate(s, 0.01, 0.26) == pytest.approx(0.01 / 6.2996052)  # 250^(1/3)
    assert rate(s, 0.01, 0.75) == pytest.approx(0.01 / 39.685026)  # 250^(2/3)
    assert rate(s, 0.01, 0.76) == pytest.approx(0.01 / 250)
    assert rate(s, 0.01, 1.0) == pytest.approx(0.01 / 250)
    assert rate("dexp[10,2]", 0.02, 0.5) == 0.02 and rate("dexp[10,2]", 0.02, 0.51) == pytest.approx(0.002)
    assert rate("dexp[10,1]", 0.02, 0.0) == pytest.approx(0.002)  # one step: base/tgt from the start


def test_rate_jdexp_jumps_to_the_geometric_mean():
    s = "jdexp[500,0,4]"
    assert rate(s, 0.01, 0.15) == 0.01
    assert rate(s, 0.01, 0.3) == pytest.approx(0.01 * 500 ** (-1 / 3))  # before the midpoint 0.375
    assert rate(s, 0.01, 0.4) == pytest.approx(0.01 * 500 ** (-1 / 6))  # sqrt(r1 * r0)
    assert rate(s, 0.01, 0.7) == pytest.approx(0.01 / math.sqrt(500))  # sqrt(r2 * r1)
    assert rate(s, 0.01, 0.8) == pytest.approx(0.01 / 500)  # 0.8 < midpoint 0.875
    assert rate(s, 0.01, 0.95) == pytest.approx(0.01 / 500)  # no jump at p >= 0.9


def test_rate_of_a_bare_schedule_is_an_archive_error():
    with pytest.raises(ArchiveError):
        rate("dexp", 0.01, 0.5)


# ---- the release -------------------------------------------------------------

def test_every_params_file_parses(param_sets):
    assert len(param_sets) == 107
    assert sum(len(p.layers) for p in param_sets.values()) == 3025  # 3055 blocks, 30 of them repeats
    for params in param_sets.values():
        assert params.to_json()["path"] == params.path


def test_repeated_sections(param_sets):
    repeated = {path: sorted(layer.name for layer in params if len(layer.spans) > 1)
                for path, params in param_sets.items() if any(len(layer.spans) > 1 for layer in params)}
    assert set(repeated) == {"layers/layer-params-154.cfg", "layers/layer-params-170-quant.cfg"}
    assert len(repeated["layers/layer-params-154.cfg"]) == 26  # the whole file written twice
    assert repeated["layers/layer-params-170-quant.cfg"] == ["hs1a", "hs1b", "hs2a", "hs2b"]
    hs = param_sets["layers/layer-params-170-quant.cfg"]["hs1a"]
    assert [s.line for s in hs.spans] == [155, 211]
    assert (hs.enable, hs.quantF, hs.quantB) == (True, "half", "half")  # merged over both blocks
    assert hs.value_span("quantf").line == 212


def test_files_per_schedule_kind(param_sets):
    read_keys, old_key = Counter(), Counter()
    for params in param_sets.values():
        kinds = {layer.values[k].kind for layer in params for k in ("schedW", "schedB") if k in layer.values}
        read_keys.update(kinds)
        old_key.update({layer.sched.kind for layer in params if layer.sched})
    # checked with grep -rliE '^sched[wb]\s*=\s*KIND' and '^sched\s*=\s*KIND'
    assert read_keys == {"dexp": 20, "jdexp": 3, "exp": 2, "linear": 2, "default": 1}
    assert old_key == {"exp": 5, "dexp": 3, "linear": 1, "jdexp": 1}


def test_sched_key_is_typed_and_reported_ignored(param_sets):
    params = param_sets["layers/layer-params-153.cfg"]
    conv = params["conv1a"]
    assert conv.sched.canonical() == "linear[tgtFactor=1000,noiseStdev=0]"
    assert conv.schedW is None and "sched" in conv.unknown_keys
    ignored = [f for f in params.findings if f.rule == "params.ignored-key"]
    assert ignored and all(f.severity == "info" for f in ignored)
    files = {path for path, p in param_sets.items() if any(layer.sched for layer in p)}
    assert files == {f"layers/layer-params-{n}.cfg" for n in (153, 154, 155, 156, 157, 158, 160, 161, 162, 163)}


def test_rejected_schedules_are_error_findings(param_sets):
    params = param_sets["layers-cifar/layer-params-18pct-noisylr.cfg"]
    rejected = [f for f in params.findings if f.rule == "params.schedule-rejected-2012"]
    assert len(rejected) == 4 and all(f.severity == "error" for f in rejected)
    assert "unable to parse learning rate schedule schedW=linear[1,1]" in rejected[0].message
    total = sum(1 for p in param_sets.values() for f in p.findings if f.rule == "params.schedule-rejected-2012")
    assert total == 429  # every positional schedW/schedB line, counted with grep


def test_typed_values_of_120(param_sets):
    params = param_sets["layers/layer-params-120.cfg"]
    assert params.names()[:3] == ("conv1a", "conv1b", "conv2a")
    conv = params["conv1a"]
    assert conv.span.line == 1 and conv.value_span("epsW").line == 2 and conv.value_span("EPSW").line == 2
    assert [i.to_json() for i in conv.inputs] == [{"epsW": 0.0, "momW": 0.9, "wc": 0.0005, "wball": 0.0}]
    assert (conv.epsB, conv.momB, conv.schedW, conv.unknown_keys) == (0.0, 0.9, None, ())
    assert len(params["conv2a"].inputs) == 2 and params["fc1000"].epsB == 0.02
    rnorm = params["rnorm1a"]
    assert (rnorm.scale, rnorm.pow, rnorm.minDiv, rnorm.value_span("pow").line) == (0.0001, 0.75, None, 139)
    logprob = params["logprob"]
    assert (logprob.coeff, logprob.topk, logprob.span.line) == (1.0, 5, 121)
    assert params["hs1a"].enable is True and params["hs1a"].value_span("enable").line == 126
    assert [f.rule for f in params.findings] == []


def test_check_against_a_layer_graph(archive_root: Path, param_sets):
    from archive.cfgfile import read_cfg
    layers = read_cfg(archive_root / "layers/layers-120.cfg", "layers/layers-120.cfg").merged()
    counts = {n: len((s.get("inputs") or "").split(",")) if s.get("inputs") else 0 for n, s in layers.items()}
    types = {n: s.get("type") for n, s in layers.items()}
    params = param_sets["layers/layer-params-120.cfg"]
    assert check_against(params, counts, types) == []
    # Drop a section and shorten a list: the release's objections come back.
    cut = parse("[conv1a]\nepsW=0.1,0.2\nepsB=0\nmomW=0.9\nmomB=0.9\nminDiv=2\n[ghost]\ncoeff=1\n")
    rules = sorted((f.rule, f.severity) for f in check_against(cut, {"conv1a": 1, "rnorm1": 1},
                                                               {"conv1a": "conv", "rnorm1": "rnorm"}))
    assert rules == [("params.key-not-read", "info"), ("params.list-length", "error"),
                     ("params.missing-section", "error"), ("params.no-such-layer", "warning")]


# ---- malformed input ---------------------------------------------------------

def test_bad_number_strict_and_lenient():
    text = "[conv1a]\nepsW=0.0x1\nepsB=0.02\n"
    with pytest.raises(ArchiveError) as error:
        parse(text, strict=True)
    assert str(error.value).startswith("t.cfg:2: ") and error.value.rule == "params.bad-value"
    layer = parse(text)["conv1a"]
    assert layer.values["epsW"] == "0.0x1" and layer.inputs == () and layer.epsB == 0.02


@pytest.mark.parametrize("line, rule", [
    ("topk=5.0", "params.bad-value"),  # getint
    ("enable=maybe", "params.bad-value"),  # getboolean
    ("momW=0.9,", "params.bad-value"),  # safe_get_list: an empty element
    ("coeff=1_0", "params.bad-value"),  # Python 2's float() had no underscores
    ("quantF=single", "params.bad-quant"),
    ("schedW=dexp[[", "params.schedule-syntax"),
])
def test_malformed_values_name_their_line(line, rule):
    text = f"[layer]\n# note\n{line}\n"
    with pytest.raises(ArchiveError) as error:
        parse(text, strict=True)
    assert str(error.value).startswith("t.cfg:3: ") and error.value.rule == rule
    findings = [f for f in parse(text).findings if f.rule == rule]
    assert len(findings) == 1 and findings[0].span.line == 3 and findings[0].severity == "error"


def test_cfg_problems_are_fatal_only_in_strict_mode():
    text = "[a]\nepsB=1\nthis is not a pair\n"
    with pytest.raises(ArchiveError, match=r"^t\.cfg:3: "):
        parse(text, strict=True)
    assert [f.rule for f in parse(text).findings] == ["cfg.invalid-line"]


def test_positional_schedules_read_in_strict_mode():
    layer = parse("[fc]\nschedW=dexp[250,0,4]\n", strict=True)["fc"]
    assert layer.schedW.canonical() == "dexp[tgtFactor=250,noiseStdev=0,numSteps=4]"


def test_booleans_follow_python2():
    assert [py2_boolean(w) for w in ("1", "YES", "true", "On", "0", "no", "False", "off")] == [True] * 4 + [False] * 4
    assert py2_bool_list("true, 1, yes, TRUE, on") == (True, True, False, True, False)
    layer = parse("[hs]\nenable=Yes\n[pool]\ndoMax=off\n")
    assert layer["hs"].enable is True and layer["pool"].doMax is False


def test_unknown_keys_are_kept_as_text():
    params = parse("[l]\nEpsB=0.5\nfoo = bar\n")
    layer = params["l"]
    assert layer.epsB == 0.5 and layer.values["foo"] == "bar" and layer.unknown_keys == ("foo",)
    assert [f.rule for f in params.findings] == ["params.unknown-key"]
    assert layer.to_json()["lines"] == {"epsB": 2, "foo": 3}


_PIECES = st.sampled_from(list("[]=:,;#% \n\tabcdeEpsWBx01.-_") + ["schedW", "epsW", "dexp", "enable", "quantF"])


@given(st.lists(_PIECES, max_size=40).map("".join))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_raises_only_archive_error(text):
    for strict in (False, True):
        try:
            parse(text, strict=strict).to_json()
        except ArchiveError:
            pass


def test_cuda_convnet2_rates_with_schedules_inside_are_read():
    # cuda-convnet2 (2014) folds the schedule into the rate: written here in our own words.
    text = ("[conv1]\nepsW=dexp[base=0.01;tgtFactor=250;numSteps=4],0.02\nepsB=dexp[base=0.02;tgtFactor=10;numSteps=2]\n"
            "momW=0.9,0.9\nmomB=0.9\nwc=0.0005,0.0005\nupdatePeriod=1\n")
    params = parse(text)
    conv1 = params["conv1"]
    assert [i.epsW for i in conv1.inputs] == [0.01, 0.02] and conv1.epsB == 0.02
    assert conv1.schedW.canonical() == "dexp[tgtFactor=250,noiseStdev=0,numSteps=4]"
    assert conv1.schedB.canonical() == "dexp[tgtFactor=10,noiseStdev=0,numSteps=2]"
    rules = {(f.rule, f.span.line) for f in params.findings}
    assert ("params.cc2-rate", 2) in rules and ("params.cc2-rate", 3) in rules
    assert "updatePeriod" in conv1.unknown_keys      # kept, reported, never dropped
    assert conv1.values["updatePeriod"] == "1"
    # Garbage inside brackets is still a bad value with its line.
    with pytest.raises(ArchiveError) as error:
        parse("[c]\nepsW=dexp[base=x;tgtFactor=1;numSteps=2]\n", strict=True)
    assert str(error.value).startswith("t.cfg:2: ")
