"""Fixtures of the CUDA tests (no GPU needed unless marked `gpu`).

- `gpu` marker (declared in pyproject.toml): skipped unless CuPy is importable and sees a device.
- `nvrtc` fixture: the NVRTC binding; skipped where libnvrtc is absent, but FAILS when CI=true, so that CI
  (which installs the `test` extra, with nvidia-cuda-nvrtc) cannot skip the compile checks silently.
- `emu_cache`: a fresh, empty emulator cache directory for tests that look at caching."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

KERNELS_FOR_TESTS = Path(__file__).resolve().parent / "kernels_for_tests"


def _gpu_available() -> bool:
    try:
        import cupy  # only here: the project never imports cupy at import time
    except ImportError:
        return False
    try:
        return bool(cupy.is_available())
    except RuntimeError:  # CUDA runtime errors where there is no driver
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None and not _gpu_available():
        pytest.skip("needs a CUDA GPU and CuPy")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def nvrtc():
    from replay.backends.cuda import nvrtc as binding

    if not binding.available():
        message = "libnvrtc not found: pip install nvidia-cuda-nvrtc (the `test` extra)"
        if in_ci():
            pytest.fail(message + " — CI must not skip the NVRTC compile checks")
        pytest.skip(message)
    return binding


@pytest.fixture
def emu_cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "emu-cache"
    monkeypatch.setenv("ALEXNET_EMU_CACHE", str(directory))
    return directory


@pytest.fixture(scope="session")
def toy_kernel():
    """toy_kernel("matmul_tiled") -> the path of tests/cuda/kernels_for_tests/matmul_tiled.cu"""
    return lambda stem: KERNELS_FOR_TESTS / f"{stem}.cu"
