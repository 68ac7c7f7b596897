"""replay/checkpoint.py: atomic checkpoints that refuse damage, and safetensors files."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from replay.checkpoint import (CheckpointError, load_checkpoint, read_safetensors, save_checkpoint,
                               write_safetensors)


def test_round_trip_keeps_arrays_and_generator_state(tmp_path):
    rng = np.random.default_rng(7)
    rng.normal(size=5)
    arrays = {"conv1a.w": rng.normal(size=(363, 48)).astype(np.float32), "conv1a.v": np.zeros((363, 48), np.float32)}
    state = {"epoch": 3, "batch": 17, "rng": rng.bit_generator.state}
    save_checkpoint(tmp_path / "run.ckpt", arrays, state)
    loaded, got = load_checkpoint(tmp_path / "run.ckpt")
    np.testing.assert_array_equal(loaded["conv1a.w"], arrays["conv1a.w"])
    assert got["epoch"] == 3 and got["batch"] == 17
    again = np.random.default_rng()
    again.bit_generator.state = got["rng"]
    assert np.array_equal(again.normal(size=4), rng.normal(size=4))  # the same draws continue
    assert list(tmp_path.iterdir()) == [tmp_path / "run.ckpt"]  # no temporary left behind


def test_truncated_or_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"w": np.ones((10, 10), np.float32)}, {"epoch": 1})
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="run.ckpt: damaged or truncated"):
        load_checkpoint(path)
    np.savez(tmp_path / "other.npz", w=np.ones(3))
    with pytest.raises(CheckpointError, match="not a replay checkpoint"):
        load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"w": np.ones(3, np.float32)}, {"epoch": 1})
    with pytest.raises(ValueError):
        save_checkpoint(path, {"__state__": np.ones(1)}, {"epoch": 2})
    assert load_checkpoint(path)[1]["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_safetensors_layout_and_torch_reads_it(tmp_path):
    tensors = {"features.0.weight": np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5),
               "features.0.bias": np.array([1.5, -2.0], dtype=np.float32)}
    path = tmp_path / "net.safetensors"
    write_safetensors(path, tensors, {"graph": "layers-120.cfg"})
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    assert header["__metadata__"] == {"graph": "layers-120.cfg"} and (8 + length) % 8 == 0
    back, meta = read_safetensors(path)
    np.testing.assert_array_equal(back["features.0.weight"], tensors["features.0.weight"])
    torch = pytest.importorskip("torch")
    # An independent reader: torch.frombuffer over the same bytes, at the offsets the header gives.
    start, end = header["features.0.bias"]["data_offsets"]
    bias = torch.frombuffer(bytearray(raw[8 + length + start:8 + length + end]), dtype=torch.float32)
    assert bias.tolist() == [1.5, -2.0]
