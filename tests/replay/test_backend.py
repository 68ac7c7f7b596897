"""The backend interface: the reference provides every operation, and backends come by name."""
from __future__ import annotations

import pytest

from replay.backend import OPERATIONS, assemble
from replay.backends import get_backend


def test_the_reference_provides_every_operation():
    backend = get_backend("numpy")
    assert backend.name == "numpy"
    assert all(callable(getattr(backend, op)) for op in OPERATIONS)
    assert get_backend("numpy") is backend  # assembled once


def test_a_backend_missing_an_operation_is_refused():
    import types

    partial = types.SimpleNamespace(conv_forward=lambda *a, **k: None)
    with pytest.raises(ImportError, match="lacks conv_backward_data"):
        assemble("partial", partial)
    with pytest.raises(ValueError, match="no backend 'opencl'"):
        get_backend("opencl")
