"""bench/gpu_verify.sh, rehearsed on the CPU: the script the scarce device calls run must not waste one.

Without a GPU its GPU steps are skipped by name and the phase passes; with GPU_VERIFY_REQUIRE_GPU=1 (as the
device calls set it) the same missing GPU fails the phase, so a device where CuPy cannot see the card
cannot pass silently. Each phase log ends with the line the device call's reader looks for."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_verify.sh"


def verify(phases: str, out: Path, archive_root: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ALEXNET_ARCHIVE": str(archive_root), "GPU_VERIFY_HAVE_GPU": "0",
                   "GPU_VERIFY_BUDGET_S": "240", **env}
    return subprocess.run(["bash", str(SCRIPT), phases, str(out)], capture_output=True, text=True,
                          timeout=300, check=False, env=environment)


def last_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n").rsplit("\n", 1)[-1]


def test_without_a_gpu_the_gpu_steps_are_skipped_by_name_and_the_phases_pass(tmp_path, archive_root):
    done = verify("smoke,tests", tmp_path, archive_root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert last_line(tmp_path / "smoke.log").startswith("smoke: PASS (")
    assert last_line(tmp_path / "tests.log").startswith("tests: PASS (")
    smoke = (tmp_path / "smoke.log").read_text(encoding="utf-8")
    assert "cli-replay-plan: ok" in smoke and "SKIPPED (no GPU)" in smoke
    tests = (tmp_path / "tests.log").read_text(encoding="utf-8")
    assert "gpu tests: " in tests and " 0 failed, 0 errors" in tests
    assert (tmp_path / "gpu-tests.xml").is_file()


def test_gpu_tests_that_skip_where_a_gpu_is_said_to_be_fail_the_phase(tmp_path, archive_root):
    """GPU_VERIFY_HAVE_GPU=1 here: pytest -m gpu skips every test (no CuPy), which on a GPU machine means
    the GPU path went untested, so the phase fails instead of passing quietly."""
    done = verify("tests", tmp_path, archive_root, GPU_VERIFY_HAVE_GPU="1")
    assert done.returncode == 1
    log = (tmp_path / "tests.log").read_text(encoding="utf-8")
    assert "skipped although a GPU is here" in log and last_line(tmp_path / "tests.log").startswith("tests: FAIL (")


def test_a_device_call_without_a_visible_gpu_fails(tmp_path, archive_root):
    done = verify("bench", tmp_path, archive_root, GPU_VERIFY_REQUIRE_GPU="1")
    assert done.returncode == 1
    log = (tmp_path / "bench.log").read_text(encoding="utf-8")
    assert "FAILED: no GPU visible to CuPy" in log and last_line(tmp_path / "bench.log").startswith("bench: FAIL (")


@pytest.mark.parametrize("phases", ["nonsense", "smoke,nonsense"])
def test_an_unknown_phase_is_refused_before_anything_runs(tmp_path, archive_root, phases):
    done = verify(phases, tmp_path / "out", archive_root)
    assert done.returncode == 2 and "unknown phase: nonsense" in done.stderr
    assert not (tmp_path / "out").exists()
