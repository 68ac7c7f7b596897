"""The NVRTC binding (replay/backends/cuda/nvrtc.py) on the toy kernels. No GPU needed; skipped only where
libnvrtc is absent outside CI (see conftest.nvrtc)."""
from __future__ import annotations

from pathlib import Path

import pytest

KERNELS_FOR_TESTS = Path(__file__).resolve().parent / "kernels_for_tests"

TOY_KERNELS = sorted(p for p in KERNELS_FOR_TESTS.glob("*.cu") if p.stem != "broken")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("path", TOY_KERNELS, ids=lambda p: p.stem)
def test_toy_kernels_compile_to_cubin(nvrtc, path, arch):
    cubin = nvrtc.compile_file(path, options=("-std=c++17", "-Werror=all-warnings"), arch=arch)
    assert cubin[:4] == b"\x7fELF"


def test_ptx_names_the_target_and_the_kernels(nvrtc):
    path = KERNELS_FOR_TESTS / "matmul_tiled.cu"
    ptx = nvrtc.compile_source(path.read_text(), "matmul_tiled.cu", arch="sm_80", cubin=False).decode()
    assert ".target sm_80" in ptx and ".entry matmul_tiled(" in ptx


def test_broken_kernel_error_names_file_and_line(nvrtc):
    path = KERNELS_FOR_TESTS / "broken.cu"
    with pytest.raises(nvrtc.CompileError) as caught:
        nvrtc.compile_file(path, arch="sm_90")
    error = caught.value
    assert error.errors and error.errors[0][:2] == (str(path), 5)
    assert f"{path}:5: error:" in str(error) and "no_such_function" in str(error)


def test_math_h_macros_are_not_predefined(nvrtc):
    """NVRTC, unlike nvcc and the emulator, has no <math.h>: an unguarded INFINITY fails (why kernels guard it)."""
    source = 'extern "C" __global__ void k(float* x) {\n    x[0] = INFINITY;\n}\n'
    with pytest.raises(nvrtc.CompileError, match=r"k\.cu:2: error: identifier \"INFINITY\" is undefined"):
        nvrtc.compile_source(source, "k.cu")


def test_version_and_library(nvrtc):
    assert nvrtc.version() >= (12, 0)
    assert "nvrtc" in nvrtc.library_path()


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_kernel_of_the_backend_compiles_with_the_production_options(nvrtc, arch):
    """Every .cu file of replay/backends/cuda/kernels (a new one is covered without a new test), with
    the options RawModule gets, warnings as errors: NVRTC rejects code nvcc accepts."""
    from replay.backends.cuda import kernels

    files = kernels.sources()
    assert len(files) >= 6
    for path in files:
        cubin = nvrtc.compile_source(path.read_text(encoding="utf-8"), path.name,
                                     options=(*kernels.OPTIONS, "-Werror=all-warnings"), arch=arch)
        assert cubin[:4] == b"\x7fELF", path.name
