"""The `alexnet-archive` command against the real release: every read command,
its JSON, its filters, and diff's exit status (0 same, 1 different, 2 error)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from webapp import cli
from webapp.cli import main


@pytest.fixture(autouse=True)
def _archive_env(monkeypatch, archive_root, release):
    monkeypatch.setenv("ALEXNET_ARCHIVE", str(archive_root))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # Read the release once for the whole module; loading itself is tested through
    # subprocesses below and in tests/archive/test_catalog.py.
    monkeypatch.setattr(cli, "_load", lambda args: release)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_experiment(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "107 of 107 experiments" in out
    row = next(line for line in out.splitlines() if line.startswith("120 "))
    assert "2012-07-22 04:40" in row and "gpu,guppy7" in row and "killed" in row and "17.24%" in row


def test_list_json_and_filters(capsys):
    code, out, _ = run(capsys, "list", "--json")
    everything = json.loads(out)
    assert code == 0 and len(everything) == 107
    assert {"id", "start", "hosts", "parents", "status", "top5", "layers_file"} <= set(everything[0])
    _, out, _ = run(capsys, "list", "--json", "--host", "guppy9", "--since", "2012-08-01", "--until", "2012-08-31")
    chosen = json.loads(out)
    assert chosen and all("guppy9" in e["hosts"] and "2012-08-01" <= e["start"] < "2012-09" for e in chosen)
    assert {"131-2009", "134"} <= {e["id"] for e in chosen}
    _, out, _ = run(capsys, "list", "--json", "--status", "on hold")
    assert {e["id"] for e in json.loads(out)} >= {"128", "134"}
    _, out, _ = run(capsys, "list", "--json", "--dataset", "full")
    assert {e["id"] for e in json.loads(out)} == {"120-2012-full", "126-2012-full", "127"}


def test_list_bad_date_is_a_clear_error(capsys):
    code, _, err = run(capsys, "list", "--since", "last summer")
    assert code == 2 and "--since 'last summer' is not a date" in err


def test_show(capsys):
    code, out, _ = run(capsys, "show", "120")
    assert code == 0
    assert "layers/layers-120.cfg  [same name]" in out
    assert "60,870,376" in out
    assert any(l.split()[:6] == ["conv1a", "conv", "0", "data", "55×55×32", "96800"] for l in out.splitlines())
    assert "epoch 26: set epsw to 0.001 from 0.01" in out
    assert "17.24%" in out


def test_show_json_for_every_experiment(capsys, archive_root):
    _, out, _ = run(capsys, "list", "--json")
    for summary in json.loads(out):
        code, out, _ = run(capsys, "show", summary["id"], "--json")
        data = json.loads(out)
        assert code == 0 and data["id"] == summary["id"]
        for run_ in data["runs"]:
            assert run_["start"] is None or run_["start"][4] == "-"
        for result in data["results"]:
            assert {"cost", "top1", "top5", "multiview", "line"} <= set(result)


def test_show_unknown_experiment(capsys):
    code, _, err = run(capsys, "show", "999")
    assert code == 2 and "no experiment '999'" in err


def test_log(capsys):
    code, out, _ = run(capsys, "log", "106")
    assert code == 0 and out.count("  run ") == 3
    code, out, _ = run(capsys, "log", "106", "--json")
    data = json.loads(out)
    assert len(data["runs"]) == 3 and data["entries"][0]["kind"] == "lineage"


def test_lineage(capsys):
    code, out, _ = run(capsys, "lineage", "133")
    assert code == 0
    assert "#131" in out and "#132" in out and "#106" in out and "#101 (not in the release)" in out
    code, out, _ = run(capsys, "lineage", "120", "--json")
    data = json.loads(out)
    assert data["ancestors"] == {"106": {"101": {}}} and "129" in data["descendants"]


def test_stats(capsys):
    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["experiments"] == 107
    log = stats["log"]
    assert log["comment_lines"] == log["typed_lines"] + log["note_lines"] == 1118
    assert stats["layers"]["by_type"]["conv"] == 752
    code, out, _ = run(capsys, "stats")
    assert "kept as notes" in out


def test_diff_exit_status_and_formats(capsys, archive_root):
    code, out, _ = run(capsys, "diff", "120", "131")
    assert code == 1 and "rnorm1a moved: over pool1a → over conv1a" in out and "\x1b[" not in out
    code, out, _ = run(capsys, "diff", "120", "131", "--color", "always")
    assert code == 1 and "\x1b[33m" in out
    code, out, _ = run(capsys, "diff", "120", "120")
    assert code == 0 and "no differences" in out
    code, out, _ = run(capsys, "diff", "120", "131", "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["same"] is False and data["layers"][0]["moved"] == {"from": ["pool1a"], "to": ["conv1a"]}
    code, out, _ = run(capsys, "diff", "120", "131", "--format", "unified")
    assert code == 1 and "+++ layers/layers-131.cfg" in out
    layers120 = str(archive_root / "layers" / "layers-120.cfg")
    code, out, _ = run(capsys, "diff", layers120, "131")
    assert code == 1 and "rnorm1a moved" in out
    code, _, err = run(capsys, "diff", "120", "no-such-file.cfg")
    assert code == 2 and "no-such-file.cfg" in err


def test_commands_in_a_fresh_process(archive_root):
    env = {**__import__("os").environ, "ALEXNET_ARCHIVE": str(archive_root)}
    result = subprocess.run([sys.executable, "-m", "webapp.cli", "diff", "120", "131", "--format", "json"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and json.loads(result.stdout)["a"] == "120"
    result = subprocess.run([sys.executable, "-m", "webapp.cli", "list", "--archive", str(archive_root)],
                            capture_output=True, text=True, env={k: v for k, v in env.items() if k != "ALEXNET_ARCHIVE"})
    assert result.returncode == 0 and "107 of 107 experiments" in result.stdout


def test_errors_never_show_a_traceback(tmp_path, archive_root):
    for argv in (["show", "nope"], ["list", "--archive", str(tmp_path)], ["diff", "1", "2"]):
        result = subprocess.run([sys.executable, "-m", "webapp.cli", *argv], capture_output=True, text=True)
        assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.startswith("alexnet-archive: ")
