"""The lossless reader: byte-exact round trips on every file of the release, and
Python 2 ConfigParser's reading of the dialect (layer.py: MyConfigParser)."""
from __future__ import annotations

import pytest

from archive.cfgfile import (BLANK, COMMENT, CONTINUATION, ENTRY, SECTION, encode_text, parse_cfg,
                             read_cfg, read_text)
from archive.source import ArchiveError


def test_every_release_file_round_trips_byte_for_byte(archive_root, release_cfg_files):
    assert len(release_cfg_files) == 179  # 161 in layers/, 4 in layers-cifar/, 14 in example-layers/
    for path in release_cfg_files:
        relative = path.relative_to(archive_root).as_posix()
        parsed = read_cfg(path, relative)
        assert encode_text(parsed.render()) == path.read_bytes(), relative
        assert [line.number for line in parsed.lines] == list(range(1, len(parsed.lines) + 1))


def test_every_line_is_typed_and_sections_hold_their_keys(archive_root):
    parsed = read_cfg(archive_root / "layers" / "layer-params-120.cfg", "layers/layer-params-120.cfg")
    kinds = {line.kind for line in parsed.lines}
    assert kinds == {SECTION, ENTRY, COMMENT, BLANK}
    conv1a = parsed.merged()["conv1a"]
    assert conv1a.get("epsw") == "0.0000"        # keys are case-insensitive, as optionxform made them
    assert conv1a.entry("epsW").span.line == 2
    assert str(conv1a.entry("wc").span) == "layers/layer-params-120.cfg:6"
    comments = parsed.comment_lines()
    assert comments[0].number == 161
    assert comments[0].comment_text == " this is like #106 but with rnorm of size 5, also train on jpegs"


def test_repeated_sections_merge_with_later_keys_winning(archive_root):
    # layer-params-154.cfg holds its whole parameter set twice (SEMANTICS.md §1.1).
    parsed = read_cfg(archive_root / "layers" / "layer-params-154.cfg", "layers/layer-params-154.cfg")
    names = [s.name for s in parsed.sections]
    assert len(names) > len(set(names))
    merged = parsed.merged()
    assert set(merged) == set(names)
    twice = [name for name in merged if len(merged[name].spans) == 2]
    assert twice
    for name in twice:
        section = merged[name]
        for entry in section.entries.values():
            assert entry.span.line >= section.spans[0].line


def test_python2_dialect_rules():
    text = ("[a]\n"
            "type = conv\r\n"
            "Inputs: data ; an inline comment\n"
            "channels=3;not a comment\n"
            "neuron=relu\n"
            "   continued here\n"
            "# a comment\n"
            "; another\n"
            "rem also a comment\n"
            "\n"
            "[b] trailing text\n"
            "x=1\n"
            "[a]\n"
            "type=fc")
    parsed = parse_cfg(text, "t.cfg")
    assert parsed.render() == text
    assert [l.kind for l in parsed.lines] == [SECTION, ENTRY, ENTRY, ENTRY, ENTRY, CONTINUATION, COMMENT,
                                              COMMENT, COMMENT, BLANK, SECTION, ENTRY, SECTION, ENTRY]
    assert parsed.lines[1].newline == "\r\n" and parsed.lines[-1].newline == ""
    a = parsed.merged()["a"]
    assert a.get("inputs") == "data"                      # ' ;' starts an inline comment
    assert a.get("channels") == "3;not a comment"         # ';' without whitespace does not
    assert a.get("neuron") == "relu\ncontinued here"      # indented lines continue the value
    assert a.get("type") == "fc"                          # the repeated [a] wins
    assert [p.rule for p in parsed.problems] == ["cfg.text-after-section"]


@pytest.mark.parametrize("text, line, rule", [
    ("[conv1\ntype=conv\n", 1, "cfg.unclosed-section"),      # truncated section header
    ("[a]\ntype=conv\n[conv1", 3, "cfg.unclosed-section"),
    ("type=conv\n[a]\n", 1, "cfg.missing-section"),
    ("[a]\ntype=conv\nthis line has no separator\n", 3, "cfg.invalid-line"),
    ("[a]\nscale=50%\n", 2, "cfg.interpolation"),
])
def test_malformed_input_names_file_and_line(text, line, rule):
    parsed = parse_cfg(text, "bad.cfg")
    assert parsed.render() == text
    with pytest.raises(ArchiveError) as raised:
        parsed.check()
    assert raised.value.span.line == line and raised.value.rule == rule
    assert str(raised.value).startswith(f"bad.cfg:{line}: ")


def test_any_bytes_survive(tmp_path):
    raw = b"[a]\nx=caf\xc3\xa9\n# \xff\xfe not utf-8\r\n\rlast"
    path = tmp_path / "odd.cfg"
    path.write_bytes(raw)
    assert encode_text(read_cfg(path).render()) == raw
    assert encode_text(read_text(path)) == raw


def test_unreadable_file_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="cannot read file"):
        read_cfg(tmp_path / "missing.cfg")
