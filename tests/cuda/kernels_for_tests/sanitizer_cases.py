"""Cases for `python -m replay.backends.cuda.emulator.sanitize ... --cases <this file>` (tests/cuda/test_sanitizers.py):
the deliberately broken toy kernels, and their fixed twins, which must run clean.

- race_missing_sync.cu: rotate_without_sync has no __syncthreads between the shared-memory write (line 9) and
  the neighbour's read (line 11): ThreadSanitizer must report a data race naming those lines.
- read_out_of_bounds.cu: pair_sum_past_end reads x[n] (line 7), one float past a NumPy buffer:
  AddressSanitizer must report a heap-buffer-overflow naming that line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from replay.backends.cuda.emulator import load_module

HERE = Path(__file__).resolve().parent


def _run(stem: str, kernel: str, n: int = 100, block: int = 64) -> np.ndarray:
    module = load_module(HERE / f"{stem}.cu")  # sanitized: the runner sets ALEXNET_EMU_SANITIZE
    x = np.arange(n, dtype=np.float32)
    y = np.empty_like(x)
    module.get_function(kernel)((-(-n // block),), (block,), (x, y, np.int32(n)))
    return y


CASES = {
    "toy.race": lambda: _run("race_missing_sync", "rotate_without_sync"),
    "toy.race_fixed": lambda: _run("race_missing_sync", "rotate_with_sync"),
    "toy.oob": lambda: _run("read_out_of_bounds", "pair_sum_past_end"),
    "toy.oob_fixed": lambda: _run("read_out_of_bounds", "pair_sum_in_bounds"),
}
