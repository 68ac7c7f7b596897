"""cuda-convnet's memory layout and today's (SEMANTICS.md §2).

Activations are (features, N) matrices with the case index fastest; an image batch is the
same buffer viewed as (C, S, S, N). PyTorch works in NCHW with (out, in, kh, kw) filters.
These converters are what the oracle tests and the weight export use.
"""
from __future__ import annotations

import numpy as np


def as_images(x: np.ndarray, channels: int) -> np.ndarray:
    """(C·S·S, N) -> the (C, S, S, N) view of the same buffer."""
    features, cases = x.shape
    side = int(round((features // channels) ** 0.5))
    if channels * side * side != features:
        raise ValueError(f"{features} features are not {channels} square channels")
    return x.reshape(channels, side, side, cases)


def to_nchw(x: np.ndarray, channels: int) -> np.ndarray:
    """(C·S·S, N) -> (N, C, S, S)."""
    return np.ascontiguousarray(as_images(x, channels).transpose(3, 0, 1, 2))


def from_nchw(x: np.ndarray) -> np.ndarray:
    """(N, C, S, S) -> (C·S·S, N)."""
    n = x.shape[0]
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0).reshape(-1, n))


def conv_weights_to_torch(w: np.ndarray, filter_channels: int, filter_size: int) -> np.ndarray:
    """(Cf·fs·fs, F) with row (c·fs + u)·fs + v -> torch's (F, Cf, fs, fs)."""
    filters = w.shape[1]
    return np.ascontiguousarray(w.T.reshape(filters, filter_channels, filter_size, filter_size))


def conv_weights_from_torch(w: np.ndarray) -> np.ndarray:
    """torch's (F, Cf, fs, fs) -> cuda-convnet's (Cf·fs·fs, F)."""
    return np.ascontiguousarray(w.reshape(w.shape[0], -1).T)


def fc_weights_to_torch(w: np.ndarray) -> np.ndarray:
    """(in, out) -> torch Linear's (out, in)."""
    return np.ascontiguousarray(w.T)
