"""The launcher's CuPy conventions, checked on the CPU (replay/backends/cuda/kernels.py; CuPy 14.2's rules are
cited there): grids and blocks become tuples of Python ints within CUDA's launch limits, kernels are looked
up once, every kernel compiles with the options CuPy adds to ours, and the GPU smoke list
(bench/cuda_kernels.py --smoke) passes in the emulator, so that a failure of it on a GPU points at the GPU."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from replay.backends.cuda import kernels

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("grid, block, want", [
    (7, 256, ((7,), (256,))),
    ((3, 2), (16, 16), ((3, 2), (16, 16))),
    ([np.int64(5), np.int32(2), 1], (np.int32(8), 4, 2), ((5, 2, 1), (8, 4, 2))),
    ((2 ** 31 - 1, 65535, 65535), (1, 1, 64), ((2 ** 31 - 1, 65535, 65535), (1, 1, 64))),
])
def test_launch_dims_are_tuples_of_python_ints(grid, block, want):
    got_grid, got_block, shared = kernels.launch_dims("k", grid, block)
    assert (got_grid, got_block) == want and shared == 0
    assert all(type(v) is int for v in got_grid + got_block)  # cupy's Function.__call__ takes tuples


@pytest.mark.parametrize("grid, block, shared, message", [
    ((1, 65536), 32, 0, r"grid \(1, 65536\): dimension y = 65536 is outside 1\.\.65535"),
    ((1, 1, 65536), 32, 0, "dimension z"),
    (2 ** 31, 32, 0, "dimension x"),
    (0, 32, 0, "dimension x = 0"),
    (1, (1, 1, 65), 0, r"block \(1, 1, 65\): dimension z = 65 is outside 1\.\.64"),
    (1, 1025, 0, "dimension x = 1025"),
    (1, (64, 32), 0, "2048 threads"),
    (1, 32, 48 * 1024 + 1, "max_dynamic_shared_size_bytes"),
    (1.0, 32, 0, "must be an int"),
    ((1, True), 32, 0, "must be an int"),
    ((1, 1, 1, 1), 32, 0, "must be an int or 1 to 3 ints"),
])
def test_launches_cuda_would_refuse_are_refused_here(grid, block, shared, message):
    with pytest.raises(ValueError, match=message):
        kernels.launch_dims("some_kernel", grid, block, shared)


def test_a_block_over_the_kernel_s_launch_bounds_is_refused():
    """conv.cu's GEMM kernels declare __launch_bounds__(256): ptxas fits their registers to 256 threads, so
    the GPU would refuse a bigger block. A kernel without bounds may have CUDA's 1024."""
    bounds = kernels.launch_bounds()
    assert bounds["conv_filter_acts_kernel"] == 256 and bounds["scale_kernel"] == 1024
    assert set(bounds) == set(kernels.kernel_index())
    kernels.launch_dims("conv_filter_acts_kernel", 1, (16, 16))
    with pytest.raises(ValueError, match=r"conv_filter_acts_kernel: block \(16, 32\) has 512 threads; its "
                                         r"__launch_bounds__ allow 256"):
        kernels.launch_dims("conv_filter_acts_kernel", 1, (16, 32))
    assert kernels.launch_dims("scale_kernel", 1, 1024)[1] == (1024,)


def test_a_refused_launch_never_reaches_the_kernel():
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="scale_kernel"):
        kernels.launch(x, "scale_kernel", (1, 70000), 32, (x, x, np.int32(4), np.float32(1.0)))


def test_a_kernel_is_looked_up_once_per_world():
    like = np.zeros(1, np.float32)
    first = kernels.function(like, "scale_kernel")
    assert kernels.function(like, "scale_kernel") is first
    assert kernels.function(like, "copy_kernel") is not first
    x, y = np.arange(8, dtype=np.float32), np.zeros(8, np.float32)
    kernels.launch(x, "scale_kernel", kernels.grid_for(8), kernels.BLOCK, (x, y, np.int32(8), np.float32(2.0)))
    assert np.array_equal(y, 2 * x)


def test_every_kernel_compiles_as_cupy_compiles_it(nvrtc):
    """OPTIONS plus what CuPy 14.2's RawModule adds (-ftz=true, --device-as-default-execution-space), for the
    H100 (sm_90), to PTX so that each kernel's entry can be looked for under its extern "C" name (the name
    RawModule.get_function asks cuModuleGetFunction for)."""
    options = (*kernels.OPTIONS, *kernels.CUPY_ADDED_OPTIONS, "-Werror=all-warnings")
    by_file: dict[Path, list[str]] = {}
    for name, path in kernels.kernel_index().items():
        by_file.setdefault(path, []).append(name)
    assert set(by_file) == set(kernels.sources())
    for path, names in by_file.items():
        ptx = nvrtc.compile_source(path.read_text(encoding="utf-8"), path.name, options=options, arch="sm_90",
                                   cubin=False).decode()
        for name in names:
            assert f".entry {name}(" in ptx, (path.name, name)
        cubin = nvrtc.compile_source(path.read_text(encoding="utf-8"), path.name, options=options, arch="sm_90")
        assert cubin[:4] == b"\x7fELF", path.name


def test_lineinfo_is_added_on_request_and_compiles(nvrtc, monkeypatch):
    """ALEXNET_NVRTC_LINEINFO=1 (bench/gpu_verify.sh's sanitize phase) adds -lineinfo for RawModule, which NVRTC
    accepts with the production options; without it the options are OPTIONS alone."""
    monkeypatch.delenv(kernels.LINEINFO_ENV, raising=False)
    assert kernels.gpu_options() == kernels.OPTIONS
    monkeypatch.setenv(kernels.LINEINFO_ENV, "1")
    options = kernels.gpu_options()
    assert options == (*kernels.OPTIONS, "-lineinfo")
    path = kernels.kernel_index()["sgd_update_kernel"]
    ptx = nvrtc.compile_source(path.read_text(encoding="utf-8"), path.name,
                               options=(*options, *kernels.CUPY_ADDED_OPTIONS), arch="sm_90", cubin=False).decode()
    assert ".loc" in ptx  # line records: what lets compute-sanitizer name the .cu line


def test_the_gpu_smoke_list_passes_in_the_emulator():
    sys.path.insert(0, str(BENCH))
    import io

    import cuda_kernels

    out = io.StringIO()
    problems = cuda_kernels.run_smoke(np.asarray, out=out)
    assert problems == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    assert len([line for line in lines if line.startswith("ok ")]) == len(cuda_kernels.smoke_cases())
    assert f"{len(kernels.kernel_index())} of {len(kernels.kernel_index())} kernels launched" in lines[-1]


def test_the_smoke_run_without_a_gpu_says_so_and_exits_0():
    try:
        import cupy

        if cupy.is_available():
            pytest.skip("a GPU is here")
    except (ImportError, RuntimeError):
        pass
    done = subprocess.run([sys.executable, str(BENCH / "cuda_kernels.py"), "--smoke"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "needs a CUDA GPU with CuPy" in done.stderr and "smoke test skipped" in done.stderr
    assert "Traceback" not in done.stderr
