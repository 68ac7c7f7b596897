"""Checkpoints of a replay, and weights in today's exchange format.

A checkpoint holds everything a killed run needs to go on exactly where it stopped: the
weights and momentum buffers, the random generators' states and the position in the data.
It is one `.npz` file (arrays only, never pickles) written to a temporary name and renamed
over the old one, so a crash mid-write leaves the previous checkpoint whole.

`write_safetensors` writes weights in the safetensors layout (an 8-byte little-endian header
length, a JSON header, the raw little-endian bytes), so a replayed 2012 net loads into
PyTorch and friends without this package. The format is simple enough to write by hand,
which keeps it out of our dependencies.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "alexnet-archive replay checkpoint 1"
_STATE_KEY = "__state__"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file."""


def save_checkpoint(path: Path | str, arrays: dict[str, np.ndarray], state: dict) -> None:
    """Write atomically: a temporary file in the same folder, flushed to disk, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _STATE_KEY in arrays:
        raise ValueError(f"{_STATE_KEY!r} is reserved")
    header = json.dumps({"format": FORMAT, **state}, sort_keys=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays, **{_STATE_KEY: np.frombuffer(header.encode(), dtype=np.uint8)})
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path | str) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(f"{path}: damaged or truncated checkpoint ({error})") from None
    raw = arrays.pop(_STATE_KEY, None)
    if raw is None:
        raise CheckpointError(f"{path}: not a replay checkpoint (no state record)")
    try:
        state = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: damaged state record ({error})") from None
    if state.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path}: written by another program or version (expected {FORMAT!r})")
    return arrays, state


# What a replay's checkpoint holds, by part: arrays are stored as "<prefix><ParamTensor key>".
PARTS = {"weights": "w/", "momentum": "v/", "conns": "c/", "grad_avg": "g/", "grad2_avg": "g2/"}


def network_arrays(parts: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{"weights": {...}, "momentum": {...}, "conns": {...}} -> the flat arrays save_checkpoint takes."""
    return {PARTS[part] + key: value for part, arrays in parts.items() for key, value in arrays.items()}


def network_parts(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of network_arrays."""
    return {part: {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
            for part, prefix in PARTS.items()}


def load_run(path: Path | str, archive, experiment_id: str, *, as_written: bool = False):
    """(plan, parts, state) of a stored run's checkpoint: its network's arrays by part, with the plan
    they belong to (for drawing filters or exporting weights)."""
    from .plan import build_plan

    arrays, state = load_checkpoint(path)
    plan = build_plan(archive.experiment(experiment_id), as_written=as_written)
    return plan, network_parts(arrays), state


# --- safetensors ------------------------------------------------------------------------------

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.float16): "F16",
           np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}


def write_safetensors(path: Path | str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset, blobs = 0, []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {array.dtype} has no safetensors name here")
        blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the data on 8 bytes
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False) as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)
    os.replace(out.name, path)


def read_safetensors(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    names = {code: dtype for dtype, code in _DTYPES.items()}
    raw = Path(path).read_bytes()
    try:
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + length])
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not a safetensors file ({error})") from None
    metadata = header.pop("__metadata__", {})
    data = raw[8 + length:]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        if end > len(data):
            raise CheckpointError(f"{path}: tensor {name!r} runs past the end of the file (truncated?)")
        tensors[name] = np.frombuffer(data[start:end], dtype=names[info["dtype"]]).reshape(info["shape"]).copy()
    return tensors, metadata
