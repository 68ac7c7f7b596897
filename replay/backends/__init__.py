"""Backends by name: "numpy" (the 2012 reference, CPU) and "cuda" (our CUDA kernels: on cupy arrays
through cupy.RawModule, on NumPy arrays through the CPU emulator, replay/backends/cuda/emulator).

`get_backend(name)` imports a backend's module on first use and keeps it, so choosing the
NumPy backend never imports CuPy (tests/test_layering.py)."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def get_backend(name: str = "numpy"):
    if name == "numpy":
        from ..backend import assemble
        from .numpy_ref import conv, costs, dense, norm, pool, preprocess

        return assemble("numpy", conv, costs, dense, norm, pool, preprocess)
    if name == "cuda":
        from ..backend import assemble
        from .cuda import conv as cuda_conv
        from .cuda import dense as cuda_dense
        from .cuda import pool_norm as cuda_pool_norm

        return assemble("cuda", cuda_conv, cuda_dense, cuda_pool_norm)
    raise ValueError(f"no backend {name!r} (available: numpy, cuda)")
