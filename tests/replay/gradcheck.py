"""Central finite differences for the replay backend's gradient checks (run them in float64)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numeric_grad(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, (f(x + eps·e_i) − f(x − eps·e_i)) / (2·eps) for every element i.

    f takes an array shaped like x and returns a scalar; it must not keep or modify its argument.
    x is copied to float64 first; the result is float64 and shaped like x."""
    point = np.array(x, dtype=np.float64, copy=True)
    flat = point.reshape(-1)
    grad = np.empty(flat.size, dtype=np.float64)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        above = float(f(point))
        flat[i] = saved - eps
        below = float(f(point))
        flat[i] = saved
        grad[i] = (above - below) / (2.0 * eps)
    return grad.reshape(point.shape)


def assert_close(actual, expected, *, rtol: float = 1e-6, atol: float = 1e-9, what: str = "") -> None:
    """|actual − expected| <= atol + rtol·|expected| elementwise, shapes equal; the message names `what`
    and the worst element."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
