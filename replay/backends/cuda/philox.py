"""Philox4x32-10 in NumPy: the bit-exact mirror of the generator in kernels/dense.cu.

Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC 2011). Counter-based: the
four 32-bit words for counter (c0, c1, c2, c3) and key (k0, k1) depend on nothing else, so a CUDA kernel
can draw element i's number in any thread and any launch geometry, and this mirror reproduces it.

How the CUDA backend uses it (dense.cu):
- a seed is two uint32 key words drawn from the caller's numpy.random.Generator (`draw_key`);
- element i of an array takes word i mod 4 of counter (i // 4, 0, stream, 0);
- a uniform on (0, 1] (curand_uniform's range) is ((word >> 8) + 1)·2⁻²⁴, exact in float32;
- dropout (stream 0): mask = [u < keep]; nrelu noise (stream 1): Box-Muller on the word pairs.
The masks therefore differ from the NumPy backend's (which draws with rng.random), with the same keep
probability and the same no-rescale rule.
"""
from __future__ import annotations

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF

STREAM_DROPOUT = 0
STREAM_NRELU = 1


def draw_key(rng: np.random.Generator) -> tuple[int, int]:
    """Two uint32 key words from `rng` (one call to rng.integers)."""
    k = rng.integers(0, 1 << 32, size=2, dtype=np.uint64)
    return int(k[0]), int(k[1])


def philox4x32_10(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """counters: (M, 4) unsigned ints -> (M, 4) uint32 words, ten rounds with the Weyl key schedule."""
    c = np.asarray(counters, dtype=np.uint64) & MASK32
    c0, c1, c2, c3 = (c[:, j].copy() for j in range(4))
    k0, k1 = key[0] & MASK32, key[1] & MASK32
    for r in range(10):
        if r > 0:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0 = np.uint64(M0) * c0  # < 2^64: the full 32x32 product
        p1 = np.uint64(M1) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(MASK32)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(MASK32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def words(n: int, key: tuple[int, int], stream: int) -> np.ndarray:
    """The n words of elements 0..n−1: element i is word i mod 4 of counter (i // 4, 0, stream, 0)."""
    groups = -(-n // 4)
    counters = np.zeros((groups, 4), dtype=np.uint64)
    counters[:, 0] = np.arange(groups, dtype=np.uint64)
    counters[:, 2] = stream
    return philox4x32_10(counters, key).reshape(-1)[:n]


def uniform(w: np.ndarray) -> np.ndarray:
    """Words -> float32 uniforms on (0, 1]: ((w >> 8) + 1)·2⁻²⁴ (exact)."""
    return (((w >> np.uint32(8)).astype(np.float32) + np.float32(1)) * np.float32(2.0 ** -24)).astype(np.float32)


def dropout_mask(shape, keep: float, key: tuple[int, int]) -> np.ndarray:
    """The float32 0/1 mask dropout_forward_kernel draws for an array of `shape` (C order)."""
    n = int(np.prod(shape))
    u = uniform(words(n, key, STREAM_DROPOUT))
    return (u < np.float32(keep)).astype(np.float32).reshape(shape)


def normal(shape, key: tuple[int, int]) -> np.ndarray:
    """The standard normals neuron_forward_kernel draws for nrelu (float64 here; the kernel's float32
    logf/cosf/sinf agree within a few ulps): words (w0, w1) of counter g give elements 4g, 4g+1 as
    r·cos θ, r·sin θ with r = √(−2 ln u(w0)), θ = 2π·u(w1); (w2, w3) give 4g+2, 4g+3."""
    n = int(np.prod(shape))
    groups = -(-n // 4)
    u = uniform(words(4 * groups, key, STREAM_NRELU)).astype(np.float64).reshape(groups, 2, 2)
    radius = np.sqrt(-2.0 * np.log(u[:, :, 0]))
    angle = 2.0 * np.pi * u[:, :, 1]
    z = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=2)  # (groups, pair, cos/sin)
    return z.reshape(-1)[:n].reshape(shape)
