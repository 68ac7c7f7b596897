"""Backends by name: "numpy" (the 2012 reference, CPU) and, later, "cuda" (CuPy kernels).

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
    raise ValueError(f"no backend {name!r} (available: numpy)")
