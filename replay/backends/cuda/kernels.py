"""The shared kernel launcher of the CUDA backend.

`launch(like, kernel, grid, block, args)` runs the `extern "C" __global__` kernel named `kernel`, found in
one of the .cu files of replay/backends/cuda/kernels/, in the world of the array `like`:
- a CuPy array: the file is compiled with NVRTC through `cupy.RawModule` (options OPTIONS) and launched on
  the GPU;
- a NumPy array: the same file runs on the CPU through our emulator (replay/backends/cuda/emulator), which
  compiles it with g++ against a header mapping the CUDA built-ins.
Either way the module has cupy's calling style, `module.get_function(name)(grid, block, args,
shared_mem=0)`, so the backend code above it is the same in CI and on a GPU. Each file is loaded at most
once per process and world, and each kernel looked up once (both cached).

Several devices (CuPy 14.2, cupy/_core/raw.pyx): `RawModule.get_function` returns a `RawKernel` that picks
the device at every call — `RawKernel._kernel` looks the Function up in a per-device list indexed by
`runtime.getDevice()`, loading the module on a new device through `_get_raw_module`, which is memoized per
device (`cupy._util.memoize(for_each_device=True)`; the cubin comes from CuPy's disk cache after the first
compile). So one cached RawKernel per kernel launches on whatever device is current (LogicalGpus.on), and
it launches on that device's current stream (cupy/cuda/function.pyx `_get_stream`: stream None -> the
current stream). get_function itself is not cheap (a new RawKernel, a memo look-up and a
cuModuleGetFunction each time), hence the per-kernel cache.

Calling convention (cupy/_core/_scalar.pyx `CScalar`: a Python int is passed as an int64, a Python float
as a double, a NumPy scalar as its own dtype): scalars as np.int32 / np.float32, arrays C-contiguous
float32 (int32 where the kernel says int*) — CuPy passes an array's data pointer and ignores its strides
(RawKernel docstring), so a non-contiguous view would be read as if it were contiguous. The emulator
refuses anything else, so CI checks the convention. `launch` also refuses grids and blocks that CUDA
would refuse (cudaLaunchKernel limits, and a block over the kernel's __launch_bounds__) so that CI catches
them too.

CuPy is never imported at module import time; only `launch` with a CuPy array (or `xp_of`) touches it.
"""
from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"

# The production NVRTC options: C++17, IEEE float (no --use_fast_math: results must match the NumPy
# reference within ~1e-5 relative). Used by cupy.RawModule and by the NVRTC compile check in CI.
OPTIONS: tuple[str, ...] = ("-std=c++17",)

# What CuPy 14.2 adds to OPTIONS when RawModule compiles (cupy/_core/core.pyx assemble_cupy_compiler_options:
# its include directories, and --std=c++17 only where no -std is given; cupy/cuda/compiler.py
# _compile_with_cache_cuda: -ftz=true; _compile_using_nvrtc_no_warning: -arch=sm_XX of the current device
# and --device-as-default-execution-space). Our sources include no header, so the include paths do not
# matter; the CI compile check adds these two so that the sources are checked as CuPy builds them.
# -ftz=true comes after our options and NVRTC takes the last of a repeated option, so it cannot be undone
# here: on the GPU, float32 denormal results (below 1.2e-38) are flushed to zero; NumPy and the emulator
# keep them.
CUPY_ADDED_OPTIONS: tuple[str, ...] = ("-ftz=true", "--device-as-default-execution-space")

# ALEXNET_NVRTC_LINEINFO=1 adds -lineinfo (no effect on the code generated), so that compute-sanitizer and
# ncu name the .cu line of a finding rather than a SASS offset; bench/gpu_verify.sh's sanitize phase sets it.
LINEINFO_ENV = "ALEXNET_NVRTC_LINEINFO"


def gpu_options() -> tuple[str, ...]:
    """The options RawModule gets: OPTIONS, plus -lineinfo where LINEINFO_ENV asks for it."""
    wanted = os.environ.get(LINEINFO_ENV, "").strip().lower() in ("1", "true", "yes")
    return (*OPTIONS, "-lineinfo") if wanted else OPTIONS

# Threads per block for the flat elementwise kernels: a multiple of 32. Grids are capped (the kernels
# loop grid-stride), which keeps the emulator's sequential blocks few and the GPU's launches legal.
BLOCK = 256
MAX_GRID = 4096

_KERNEL_DECL = re.compile(
    r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\(\s*(\d+)[^)]*\)\s*)?(\w+)\s*\(')
_lock = threading.Lock()


def sources() -> list[Path]:
    """Every .cu file of the backend, sorted by name."""
    return sorted(KERNEL_DIR.glob("*.cu"))


@lru_cache(maxsize=None)
def _declarations() -> tuple[tuple[str, Path, int], ...]:
    """(kernel name, its .cu file, its __launch_bounds__ or 0) of every kernel, from one scan of the sources."""
    return tuple((name, path, int(bound or 0)) for path in sources()
                 for bound, name in _KERNEL_DECL.findall(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=None)
def kernel_index() -> dict[str, Path]:
    """{kernel name: the .cu file that defines it}. A name defined twice is an error (the launcher could
    not tell which one is meant)."""
    index: dict[str, Path] = {}
    for name, path, _ in _declarations():
        if name in index:
            raise RuntimeError(f"kernel {name!r} is defined in both {index[name].name} and {path.name}")
        index[name] = path
    return index


@lru_cache(maxsize=None)
def launch_bounds() -> dict[str, int]:
    """{kernel name: the most threads a block may have}: the kernel's `__launch_bounds__(N)`, else CUDA's 1024.
    ptxas fits the registers to N, so a bigger block would be refused on the GPU ("too many resources
    requested for launch"), which the emulator cannot see; `launch_dims` checks it."""
    return {name: bound or MAX_THREADS_PER_BLOCK for name, _, bound in _declarations()}


def is_cupy(array) -> bool:
    """Whether `array` is a CuPy array (decided by its type's module, so CuPy need not be imported)."""
    return type(array).__module__.split(".")[0] == "cupy"


def xp_of(array):
    """The array module of `array`: numpy, or cupy for a CuPy array."""
    if is_cupy(array):
        import cupy

        return cupy
    return np


_modules: dict[tuple[str, Path], object] = {}
_functions: dict[tuple[str, str], object] = {}

# CUDA's launch limits (CUDA C++ Programming Guide, "Compute Capabilities", table of technical
# specifications: the same for sm_50 .. sm_90): grid x < 2**31, grid y and z <= 65535; block x and y
# <= 1024, block z <= 64, at most 1024 threads a block. Dynamic shared memory above 48 KiB needs the
# kernel's max_dynamic_shared_size_bytes attribute raised first, which `launch` does not do.
MAX_GRID_DIMS = (2 ** 31 - 1, 65535, 65535)
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_THREADS_PER_BLOCK = 1024
MAX_DEFAULT_DYNAMIC_SHARED = 48 * 1024


def module_for(path: Path, world: str):
    """The loaded module of one .cu file: world 'cupy' (cupy.RawModule) or 'emulator' (CPU). Cached."""
    key = (world, path)
    with _lock:
        module = _modules.get(key)
        if module is None:
            if world == "cupy":
                import cupy

                module = cupy.RawModule(code=path.read_text(encoding="utf-8"), options=gpu_options())
            else:
                from .emulator import load_module

                module = load_module(path)
            _modules[key] = module
    return module


def function(like, kernel: str):
    """The launchable kernel `kernel` in the world of the array `like`, looked up once per world (a CuPy
    RawKernel chooses the current device at each call; see the module docstring)."""
    world = "cupy" if is_cupy(like) else "emulator"
    found = _functions.get((world, kernel))
    if found is None:
        try:
            path = kernel_index()[kernel]
        except KeyError:
            raise KeyError(f"no .cu file in {KERNEL_DIR} defines a kernel {kernel!r}") from None
        found = module_for(path, world).get_function(kernel)
        with _lock:
            found = _functions.setdefault((world, kernel), found)
    return found


def launch_dims(kernel: str, grid, block, shared_mem: int = 0) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(grid, block, shared_mem) as CuPy's launcher takes them — tuples of Python ints (cupy/cuda/function.pyx
    `Function.__call__` is typed `tuple grid, tuple block`: an int or a list there is a TypeError) — after
    checking them against CUDA's launch limits; ValueError naming the kernel otherwise."""
    def dims(value, what: str, limits) -> tuple[int, ...]:
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if not 1 <= len(values) <= 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                            for v in values):
            raise ValueError(f"{kernel}: {what} must be an int or 1 to 3 ints, not {value!r}")
        values = tuple(int(v) for v in values)
        for axis, (v, limit) in enumerate(zip(values, limits)):
            if not 1 <= v <= limit:
                raise ValueError(f"{kernel}: {what} {values}: dimension {'xyz'[axis]} = {v} is outside "
                                 f"1..{limit} (CUDA's launch limit)")
        return values

    grid = dims(grid, "grid", MAX_GRID_DIMS)
    block = dims(block, "block", MAX_BLOCK_DIMS)
    threads = int(np.prod(block))
    if threads > MAX_THREADS_PER_BLOCK:
        raise ValueError(f"{kernel}: block {block} has {threads} threads (CUDA allows {MAX_THREADS_PER_BLOCK})")
    bound = launch_bounds().get(kernel, MAX_THREADS_PER_BLOCK)
    if threads > bound:
        raise ValueError(f"{kernel}: block {block} has {threads} threads; its __launch_bounds__ allow {bound}")
    shared_mem = int(shared_mem)
    if not 0 <= shared_mem <= MAX_DEFAULT_DYNAMIC_SHARED:
        raise ValueError(f"{kernel}: shared_mem={shared_mem} bytes is outside 0..{MAX_DEFAULT_DYNAMIC_SHARED} "
                         "(more needs the kernel's max_dynamic_shared_size_bytes attribute raised)")
    return grid, block, shared_mem


def launch(like, kernel: str, grid, block, args, shared_mem: int = 0) -> None:
    """Launch `kernel` with cupy's conventions (grid and block as tuples or ints) in the world of `like`:
    on a GPU, on the current device and its current stream."""
    grid, block, shared_mem = launch_dims(kernel, grid, block, shared_mem)
    function(like, kernel)(grid, block, tuple(args), shared_mem=shared_mem)


def grid_for(n: int, block: int = BLOCK) -> int:
    """Blocks for `n` work items at `block` threads each, at least 1 and at most MAX_GRID (grid-stride)."""
    return max(1, min(MAX_GRID, -(-int(n) // block)))
