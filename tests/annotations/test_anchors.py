"""Anchors: spelling (parse_anchor, str round trip) and resolution against the real release."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.anchors import (Anchor, AnchorError, anchors_for_experiment, file_lines, parse_anchor,
                                 resolve)


def release_line(archive_root, path: str, line: int) -> str:
    return (archive_root / path).read_text(encoding="utf-8", errors="replace").split("\n")[line - 1].rstrip("\r")


@pytest.mark.parametrize("text, kind, fields", [
    ("120", "experiment", {"experiment": "120"}),
    ("120-4gpu-auto2", "experiment", {"experiment": "120-4gpu-auto2"}),
    ("147.save", "experiment", {"experiment": "147.save"}),
    ("cifar-18pct-noisylr", "experiment", {"experiment": "cifar-18pct-noisylr"}),
    ("120/conv1a", "layer", {"experiment": "120", "layer": "conv1a"}),
    ("120/conv1a/epsW", "key", {"experiment": "120", "layer": "conv1a", "key": "epsW"}),
    ("layers/layer-params-120.cfg:167", "line", {"path": "layers/layer-params-120.cfg", "line": 167}),
    ("deviceQuery.txt:7", "line", {"path": "deviceQuery.txt", "line": 7}),
])
def test_parse_and_round_trip(text, kind, fields):
    anchor = parse_anchor(text)
    assert anchor.kind == kind
    for name, value in fields.items():
        assert getattr(anchor, name) == value
    assert str(anchor) == text
    assert parse_anchor(str(anchor)) == anchor


def test_surrounding_space_is_ignored():
    assert str(parse_anchor("  120/conv1a \n")) == "120/conv1a"


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("   ", "empty"),
    ("120/conv1a/epsW/extra", "at most 3"),
    ("120//epsW", "empty part"),
    ("/conv1a", "empty part"),
    ("12 0", "experiment id"),
    ("120/conv 1a", "layer name"),
    ("120/conv1a/eps-W", "key name"),
    ("layers/layer-params-120.cfg:", "path:line"),
    ("layers/layer-params-120.cfg:x", "path:line"),
    ("layers/layer-params-120.cfg:0", "from 1"),
    ("../secret.cfg:1", "relative"),
    ("/etc/passwd:1", "relative"),
    ("layers/./x.cfg:1", "relative"),
    ("a:b:3", "path:line"),
    ("x" * 400, "longer"),
])
def test_malformed_anchors_say_why(text, words):
    with pytest.raises(AnchorError, match=words):
        parse_anchor(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_anchor_error(text):
    try:
        anchor = parse_anchor(text)
    except AnchorError:
        return
    assert parse_anchor(str(anchor)) == anchor


def test_anchor_error_is_a_value_error():
    assert issubclass(AnchorError, ValueError)


def test_experiment_lands_on_its_params_file(release):
    resolved = resolve("120", release)
    assert (resolved.span.path, resolved.span.line) == ("layers/layer-params-120.cfg", 1)
    assert resolved.to_json()["file"] == "layers/layer-params-120.cfg"


def test_layer_lands_on_its_definition_and_names_its_params_block(release, archive_root):
    resolved = resolve("120/conv1a", release)
    assert resolved.span.path == "layers/layers-120.cfg"
    assert resolved.text == "[conv1a]" == release_line(archive_root, "layers/layers-120.cfg", resolved.span.line)
    assert {span.path for span in resolved.spans} == {"layers/layers-120.cfg", "layers/layer-params-120.cfg"}


def test_layer_found_only_in_the_params_file(release):
    # layer-params-107.cfg names a definition file (#101) the release does not contain.
    assert release.experiments["107"].layers_file is None
    resolved = resolve("107/conv1a", release)
    assert resolved.span.path == "layers/layer-params-107.cfg"


def test_key_is_case_insensitive_and_reports_the_2012_spelling(release, archive_root):
    resolved = resolve("120/conv1a/EPSW", release)
    assert str(resolved.canonical) == "120/conv1a/epsW"
    assert resolved.span.path == "layers/layer-params-120.cfg"
    line = release_line(archive_root, resolved.span.path, resolved.span.line)
    assert line.lower().startswith("epsw=") and resolved.text == line


def test_layers_file_key(release, archive_root):
    resolved = resolve("120/conv1a/filtersize", release)
    assert str(resolved.canonical) == "120/conv1a/filterSize"
    assert resolved.span.path == "layers/layers-120.cfg"
    assert release_line(archive_root, resolved.span.path, resolved.span.line) == "filterSize=11"


def test_file_line(release, archive_root):
    resolved = resolve("layers/layer-params-120.cfg:167", release)
    assert resolved.text == release_line(archive_root, "layers/layer-params-120.cfg", 167)
    assert resolved.text.startswith("# epoch 26")
    assert resolve("deviceQuery.txt:7", release).text == 'Device 0: "Tesla S2050"'


def test_last_line_resolves_and_the_next_does_not(release, archive_root):
    path = "layers/layer-params-120.cfg"
    count = len((archive_root / path).read_text(encoding="utf-8").rstrip("\n").split("\n"))
    assert len(file_lines(release, path)) == count
    resolve(f"{path}:{count}", release)
    with pytest.raises(AnchorError, match=f"has {count} lines"):
        resolve(f"{path}:{count + 1}", release)


@pytest.mark.parametrize("text, words", [
    ("999", "no experiment '999'"),
    ("120-2013", "no experiment"),
    ("120/conv9a", "no layer 'conv9a'"),
    ("120/CONV1A", "no layer"),  # section names are case-sensitive, keys are not
    ("120/conv1a/epsQ", "no key 'epsQ'"),
    ("120/conv1a/minDiv", "no key"),
    ("layers/layer-params-999.cfg:1", "no file"),
    ("deviceQuery.txt:10000", "has 143 lines"),
])
def test_missing_places_are_refused(release, text, words):
    with pytest.raises(AnchorError, match=words):
        resolve(text, release)


def test_unknown_experiment_suggests_near_ids(release):
    with pytest.raises(AnchorError, match="did you mean"):
        resolve("1200", release)


def test_is_within():
    key = parse_anchor("120/conv1a/epsW")
    assert key.is_within(parse_anchor("120"))
    assert key.is_within(parse_anchor("120/conv1a"))
    assert key.is_within(parse_anchor("120/conv1a/EPSW"))
    assert not key.is_within(parse_anchor("120-2012"))
    assert not key.is_within(parse_anchor("120/conv1b"))
    assert not parse_anchor("120").is_within(key)
    line = parse_anchor("layers/layer-params-120.cfg:167")
    assert line.is_within(line) and not line.is_within(parse_anchor("120"))


def test_every_anchor_an_experiment_offers_resolves(release):
    experiment = release.experiments["120"]
    anchors = anchors_for_experiment(experiment)
    # Every layer of both files, and every key written for it.
    assert Anchor("key", experiment="120", layer="conv1a", key="epsW") in anchors
    assert len(anchors) > 300
    for anchor in anchors:
        assert resolve(anchor, release).span.line >= 1
