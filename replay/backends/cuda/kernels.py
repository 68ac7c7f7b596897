"""The shared kernel launcher of the CUDA backend.

`launch(like, kernel, grid, block, args)` runs the `extern "C" __global__` kernel named `kernel`, found in
one of the .cu files of replay/backends/cuda/kernels/, in the world of the array `like`:
- a CuPy array: the file is compiled with NVRTC through `cupy.RawModule` (options OPTIONS) and launched on
  the GPU;
- a NumPy array: the same file runs on the CPU through our emulator (replay/backends/cuda/emulator), which
  compiles it with g++ against a header mapping the CUDA built-ins.
Either way the module has cupy's calling style, `module.get_function(name)(grid, block, args,
shared_mem=0)`, so the backend code above it is the same in CI and on a GPU. Each file is loaded at most
once per process and world (cached).

Calling convention (docs/notes: cupy passes a Python float as a double): scalars as np.int32 / np.float32,
arrays C-contiguous float32 (int32 where the kernel says int*).

CuPy is never imported at module import time; only `launch` with a CuPy array (or `xp_of`) touches it.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"

# The production NVRTC options: C++17, IEEE float (no --use_fast_math: results must match the NumPy
# reference within ~1e-5 relative). Used by cupy.RawModule and by the NVRTC compile check in CI.
OPTIONS: tuple[str, ...] = ("-std=c++17",)

# Threads per block for the flat elementwise kernels: a multiple of 32. Grids are capped (the kernels
# loop grid-stride), which keeps the emulator's sequential blocks few and the GPU's launches legal.
BLOCK = 256
MAX_GRID = 4096

_KERNEL_DECL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(')
_lock = threading.Lock()


def sources() -> list[Path]:
    """Every .cu file of the backend, sorted by name."""
    return sorted(KERNEL_DIR.glob("*.cu"))


@lru_cache(maxsize=None)
def kernel_index() -> dict[str, Path]:
    """{kernel name: the .cu file that defines it}, from one scan of the sources. A name defined twice is
    an error (the launcher could not tell which one is meant)."""
    index: dict[str, Path] = {}
    for path in sources():
        for name in _KERNEL_DECL.findall(path.read_text(encoding="utf-8")):
            if name in index:
                raise RuntimeError(f"kernel {name!r} is defined in both {index[name].name} and {path.name}")
            index[name] = path
    return index


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


def module_for(path: Path, world: str):
    """The loaded module of one .cu file: world 'cupy' (cupy.RawModule) or 'emulator' (CPU). Cached."""
    key = (world, path)
    with _lock:
        module = _modules.get(key)
        if module is None:
            if world == "cupy":
                import cupy

                module = cupy.RawModule(code=path.read_text(encoding="utf-8"), options=OPTIONS)
            else:
                from .emulator import load_module

                module = load_module(path)
            _modules[key] = module
    return module


def function(like, kernel: str):
    """The launchable kernel `kernel` in the world of the array `like`."""
    try:
        path = kernel_index()[kernel]
    except KeyError:
        raise KeyError(f"no .cu file in {KERNEL_DIR} defines a kernel {kernel!r}") from None
    return module_for(path, "cupy" if is_cupy(like) else "emulator").get_function(kernel)


def launch(like, kernel: str, grid, block, args, shared_mem: int = 0) -> None:
    """Launch `kernel` with cupy's conventions (grid and block as tuples or ints) in the world of `like`."""
    grid = grid if isinstance(grid, tuple) else (int(grid),)
    block = block if isinstance(block, tuple) else (int(block),)
    function(like, kernel)(grid, block, tuple(args), shared_mem=shared_mem)


def grid_for(n: int, block: int = BLOCK) -> int:
    """Blocks for `n` work items at `block` threads each, at least 1 and at most MAX_GRID (grid-stride)."""
    return max(1, min(MAX_GRID, -(-int(n) // block)))
