"""The CPU stand-in for compute-sanitizer (replay/backends/cuda/emulator/sanitize.py): ThreadSanitizer and
AddressSanitizer builds of the emulated kernels, run by `python -m replay.backends.cuda.emulator.sanitize`.

- the toy kernels of kernels_for_tests/ (a missing __syncthreads, a read one past a NumPy buffer) must be
  reported with their .cu lines, and their fixed twins must run clean;
- a fast subset of the production kernels (the conv GEMM with shared-memory tiles, the row-sum reduction,
  the shared-memory + warp-shuffle fc bias reduction) must run clean under both, on every run;
- the full production sweep (every kernel of replay/backends/cuda/kernels/*.cu, ≈30–40 s under TSan and
  ≈20 s under ASan on 2 cores) only with ALEXNET_SANITIZE_ALL=1:
      ALEXNET_SANITIZE_ALL=1 python -m pytest tests/cuda/test_sanitizers.py
  or directly:  python -m replay.backends.cuda.emulator.sanitize            (both; `thread` / `address` alone)

Skipped (with the reason) where g++ or its libtsan.so / libasan.so is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KERNELS_FOR_TESTS = Path(__file__).resolve().parent / "kernels_for_tests"
TOY_CASES = KERNELS_FOR_TESTS / "sanitizer_cases.py"
FAST_SUBSET = r"conv\.forward\[5x5-stride2-groups2\]|conv\.bias\+bias_grad\[shared\]|dense\.fc_bias_grad"


def _runtime(sanitizer: str) -> str | None:
    if shutil.which(os.environ.get("ALEXNET_EMU_CXX", "g++")) is None:
        return None
    from replay.backends.cuda.emulator import sanitizer_runtime

    path = sanitizer_runtime(sanitizer)
    return path if os.path.isabs(path) else None


def _need(*sanitizers: str) -> None:
    missing = [s for s in sanitizers if _runtime(s) is None]
    if missing:
        libs = ", ".join({"thread": "libtsan.so", "address": "libasan.so"}[s] for s in missing)
        pytest.skip(f"sanitizer runtime missing: `g++ -print-file-name=...` finds no {libs} "
                    "(install the libtsan/libasan package matching g++)")


def run_sanitizer(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ALEXNET_EMU_SANITIZE", None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "replay.backends.cuda.emulator.sanitize", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _section(output: str, sanitizer: str) -> str:
    """The part of the runner's output for one sanitizer."""
    start = output.index(f"== {sanitizer} sanitizer")
    end = output.find("\n== ", start + 1)
    return output[start:] if end < 0 else output[start:end]


def _kernel_line(section: str, kernel: str) -> str:
    lines = section.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(kernel):
            block = [line]
            for follow in lines[i + 1:]:
                if follow.startswith("      "):
                    block.append(follow)
                else:
                    break
            return "\n".join(block)
    raise AssertionError(f"{kernel} not in\n{section}")


# ----------------------------------------------------------------------------------------- in process


def test_sanitized_module_refuses_a_process_without_the_runtime(tmp_path, monkeypatch):
    from replay.backends.cuda.emulator import (
        EmulatorError,
        load_module,
        resolve_sanitize,
    )

    monkeypatch.setenv("ALEXNET_EMU_CACHE", str(tmp_path))
    with pytest.raises(EmulatorError, match="LD_PRELOAD=.*sanitize thread"):
        load_module(KERNELS_FOR_TESTS / "race_missing_sync.cu", sanitize="thread")
    monkeypatch.setenv("ALEXNET_EMU_SANITIZE", "address")
    assert resolve_sanitize() == "address"
    with pytest.raises(EmulatorError, match="ASAN_OPTIONS=detect_leaks=0"):
        load_module(KERNELS_FOR_TESTS / "race_missing_sync.cu")  # the environment asks for it
    monkeypatch.setenv("ALEXNET_EMU_SANITIZE", "")
    assert resolve_sanitize() is None
    with pytest.raises(ValueError, match="sanitize"):
        resolve_sanitize("memory")
    assert not list(tmp_path.glob("*.so"))  # refused before compiling anything


def test_runner_lists_cases_covering_every_production_kernel_file():
    result = run_sanitizer("--list")
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    for prefix in ("conv.forward", "conv.backward_data", "conv.backward_weights[partialSum", "local.",
                   "pool.", "norm.cmrnorm", "norm.rnorm", "norm.cnorm", "dense.neurons", "dense.softmax",
                   "dense.dropout", "dense.blur", "dense.sgd_update", "dense.fc_bias_grad"):
        assert any(n.startswith(prefix) for n in names), prefix


# ------------------------------------------------------------------------------------------ the toys


def test_tsan_names_the_lines_of_a_missing_syncthreads():
    _need("thread")
    result = run_sanitizer("thread", "--cases", str(TOY_CASES), "-k", "toy.race")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    report = _kernel_line(out, "race_missing_sync.cu:rotate_without_sync")
    assert "REPORT  ThreadSanitizer: data race" in report, out
    # The write (line 9) and the unsynchronised read (line 11) of the shared tile, whichever came first.
    assert "race_missing_sync.cu:9 in rotate_without_sync" in report, report
    assert "race_missing_sync.cu:11 in rotate_without_sync" in report, report
    assert "rotate_without_sync::tile" in report
    assert "OK" in _kernel_line(out, "race_missing_sync.cu:rotate_with_sync"), out  # the fixed twin is clean


def test_asan_names_the_line_of_an_out_of_bounds_read():
    _need("address")
    result = run_sanitizer("address", "--cases", str(TOY_CASES), "-k", "toy.oob")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    report = _kernel_line(out, "read_out_of_bounds.cu:pair_sum_past_end")
    assert "REPORT  AddressSanitizer: heap-buffer-overflow" in report, out
    assert "READ of size 4" in report and "read_out_of_bounds.cu:7 in pair_sum_past_end" in report, report
    assert "0 bytes to the right of 400-byte region" in report  # x[100] of a 100-float NumPy array
    assert "OK" in _kernel_line(out, "read_out_of_bounds.cu:pair_sum_in_bounds"), out


def test_fixed_toys_are_clean_under_both():
    _need("thread", "address")
    result = run_sanitizer("all", "--cases", str(TOY_CASES), "-k", "fixed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: clean" in result.stdout


# ------------------------------------------------------------------------------------ production


def test_production_subset_is_clean_under_both():
    _need("thread", "address")
    result = run_sanitizer("all", "-k", FAST_SUBSET)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for sanitizer in ("thread", "address"):
        section = _section(out, sanitizer)
        for kernel in ("conv.cu:conv_filter_acts_kernel", "conv.cu:add_row_bias_kernel",
                       "conv.cu:row_sums_kernel", "dense.cu:row_mean_kernel"):
            assert "OK" in _kernel_line(section, kernel), section
    assert "RESULT: clean" in out


@pytest.mark.skipif(os.environ.get("ALEXNET_SANITIZE_ALL", "") not in ("1", "true", "yes"),
                    reason="the full sweep takes ≈1 min on 2 cores: ALEXNET_SANITIZE_ALL=1 runs it "
                           "(or: python -m replay.backends.cuda.emulator.sanitize)")
def test_every_production_kernel_is_clean_under_both():
    _need("thread", "address")
    from replay.backends.cuda.kernels import kernel_index

    result = run_sanitizer("all")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for sanitizer in ("thread", "address"):
        section = _section(out, sanitizer)
        for name, path in kernel_index().items():
            assert "OK" in _kernel_line(section, f"{path.name}:{name}"), section
        assert f"{len(kernel_index())} kernels run" in section
    assert "RESULT: clean" in out
