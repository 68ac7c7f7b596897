"""NVRTC — the compiler cupy.RawModule uses — through ctypes, usable without a GPU or a driver.

    from replay.backends.cuda import nvrtc
    if nvrtc.available():
        cubin = nvrtc.compile_source(text, "dense.cu", options=("-std=c++17",), arch="sm_90")

`compile_source(source, name, *, options=(), arch="sm_90", cubin=True) -> bytes`
  CUBIN for `-arch=sm_XX` (runs ptxas too, so it catches more), or PTX (`cubin=False`, `-arch=compute_XX`).
  An `-arch`/`--gpu-architecture` in `options` wins over `arch`. Raises CompileError when NVRTC fails: its
  message lists the errors as "file:line: error: ..." (NVRTC writes "file(line): error: ..."); `.log` is the
  whole log, `.errors` the parsed (file, line, message) triples.
`compile_with_log(...) -> (bytes, log)` the same, also returning the log (warnings) of a successful compile.
`available() -> bool`, `library_path() -> str | None`, `version() -> (major, minor)`.
`kernel_resources(cubin) -> {kernel: KernelResources(registers, shared_bytes, frame_bytes)}` read from a CUBIN
  (an ELF file): what ptxas gave each kernel, without a GPU or cuobjdump.
Where the library is looked for: $ALEXNET_NVRTC (a path), the `nvidia-cuda-nvrtc` wheel (nvidia/cu13/lib,
nvidia/cuda_nvrtc/lib), then the system's loader path and /usr/local/cuda*/lib64.
Nothing here imports cupy; NVRTC does not pre-include <math.h>, which is why kernels guard INFINITY.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CompileError", "KernelResources", "NvrtcUnavailable", "available", "compile_source",
           "compile_with_log", "kernel_resources", "library_path", "version"]


class NvrtcUnavailable(RuntimeError):
    """libnvrtc could not be found or loaded."""


class CompileError(RuntimeError):
    """NVRTC rejected a source; str() lists the errors as file:line: message."""

    def __init__(self, name: str, log: str, errors: list[tuple[str, int, str]]):
        self.name = name
        self.log = log
        self.errors = errors
        lines = [f"{f}:{line}: error: {msg}" for f, line, msg in errors] or [log.strip() or "(empty log)"]
        super().__init__(f"NVRTC could not compile {name}:\n" + "\n".join(lines))


_LOG_LINE = re.compile(r"^(?P<file>.+?)\((?P<line>\d+)\): (?:catastrophic )?error: (?P<msg>.*)$", re.MULTILINE)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_path: str | None = None
_load_error: str | None = None


def _candidates() -> list[str]:
    found: list[str] = []
    if os.environ.get("ALEXNET_NVRTC"):
        found.append(os.environ["ALEXNET_NVRTC"])
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        for pattern in ("cu13/lib/libnvrtc.so.13", "cu13/lib/libnvrtc.so*", "cuda_nvrtc/lib/libnvrtc.so*",
                        "cu12/lib/libnvrtc.so*"):
            found.extend(sorted(glob.glob(os.path.join(root, pattern)), reverse=True))
    found += ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
    for cuda in sorted(glob.glob("/usr/local/cuda*/lib64"), reverse=True):
        found.extend(sorted(glob.glob(os.path.join(cuda, "libnvrtc.so*")), reverse=True))
    return [p for p in found if "builtins" not in os.path.basename(p) and not p.endswith(".alt.so")]


def _load() -> ctypes.CDLL:
    global _lib, _lib_path, _load_error
    with _lock:
        if _lib is not None:
            return _lib
        if _load_error is not None:
            raise NvrtcUnavailable(_load_error)
        tried = []
        for candidate in _candidates():
            try:
                lib = ctypes.CDLL(candidate)
            except OSError as error:
                tried.append(f"{candidate}: {error}")
                continue
            _declare(lib)
            _lib, _lib_path = lib, candidate
            return lib
        _load_error = ("libnvrtc not found (pip install nvidia-cuda-nvrtc, or set ALEXNET_NVRTC); tried:\n  "
                       + "\n  ".join(tried))
        raise NvrtcUnavailable(_load_error)


def _declare(lib: ctypes.CDLL) -> None:
    p, c = ctypes.c_void_p, ctypes.c_char_p
    size = ctypes.POINTER(ctypes.c_size_t)
    lib.nvrtcGetErrorString.restype = c
    lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
    lib.nvrtcVersion.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(p), c, c, ctypes.c_int, ctypes.POINTER(c), ctypes.POINTER(c)]
    lib.nvrtcCompileProgram.argtypes = [p, ctypes.c_int, ctypes.POINTER(c)]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(p)]
    for fn in ("nvrtcGetProgramLogSize", "nvrtcGetPTXSize", "nvrtcGetCUBINSize"):
        getattr(lib, fn).argtypes = [p, size]
    for fn in ("nvrtcGetProgramLog", "nvrtcGetPTX", "nvrtcGetCUBIN"):
        getattr(lib, fn).argtypes = [p, ctypes.c_char_p]


def available() -> bool:
    """Whether libnvrtc can be loaded here."""
    try:
        _load()
        return True
    except NvrtcUnavailable:
        return False


def library_path() -> str | None:
    return _lib_path if available() else None


def version() -> tuple[int, int]:
    lib = _load()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def _check(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(status).decode()} ({status})")


def _read(lib, prog, size_fn, get_fn) -> bytes:
    n = ctypes.c_size_t()
    _check(lib, getattr(lib, size_fn)(prog, ctypes.byref(n)), size_fn)
    buf = ctypes.create_string_buffer(n.value)
    _check(lib, getattr(lib, get_fn)(prog, buf), get_fn)
    return buf.raw[:n.value]


def compile_with_log(source: str, name: str, *, options=(), arch: str = "sm_90",
                     cubin: bool = True) -> tuple[bytes, str]:
    """Compile `source` (reported as `name`); returns (CUBIN or PTX bytes, NVRTC's log)."""
    lib = _load()
    options = [str(o) for o in options]
    if not any(o.startswith(("-arch", "--gpu-architecture")) for o in options):
        number = arch.split("_", 1)[-1]
        options.append(f"-arch={'sm' if cubin else 'compute'}_{number}")
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        argv = (ctypes.c_char_p * max(1, len(options)))(*[o.encode() for o in options])
        status = lib.nvrtcCompileProgram(prog, len(options), argv)
        log = _read(lib, prog, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog").rstrip(b"\0").decode(
            errors="replace")
        if status != 0:
            errors = [(m["file"], int(m["line"]), m["msg"].strip()) for m in _LOG_LINE.finditer(log)]
            raise CompileError(name, log, errors)
        if cubin:
            return _read(lib, prog, "nvrtcGetCUBINSize", "nvrtcGetCUBIN"), log
        return _read(lib, prog, "nvrtcGetPTXSize", "nvrtcGetPTX").rstrip(b"\0"), log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def compile_source(source: str, name: str, *, options=(), arch: str = "sm_90", cubin: bool = True) -> bytes:
    """CUBIN (or PTX with cubin=False) for `source`; raises CompileError naming file:line."""
    return compile_with_log(source, name, options=options, arch=arch, cubin=cubin)[0]


def compile_file(path: str | os.PathLike, *, options=(), arch: str = "sm_90", cubin: bool = True) -> bytes:
    """compile_source for a file; its directory is on the include path, errors name the path as given."""
    path = Path(path)
    options = [*options, f"-I{path.resolve().parent}"]
    return compile_source(path.read_text(encoding="utf-8"), str(path), options=options, arch=arch, cubin=cubin)


# --- what ptxas gave each kernel, read from the CUBIN ----------------------------------------------------------

@dataclass(frozen=True)
class KernelResources:
    registers: int      # per thread
    shared_bytes: int   # static shared memory: the kernel's .nv.shared section (on sm_90 with the 1 KiB reserved)
    frame_bytes: int    # local memory per thread (register spills, local arrays); 0 is what we want


# .nv.info attributes (EIATTR_*), as cuobjdump --dump-elf names them; each record is (format u8, attribute u8,
# then a u16 size and a payload for format 0x04 "SVAL"); the per-kernel ones hold (symbol index u32, value u32).
_EIATTR_FRAME_SIZE = 0x11
_EIATTR_REGCOUNT = 0x2F
_EIFMT_NVAL, _EIFMT_HVAL, _EIFMT_SVAL = 0x01, 0x03, 0x04


def _elf_sections(blob: bytes) -> dict[str, tuple[int, int, int]]:
    """{section name: (type, file offset, size)} of a little-endian 64-bit ELF file."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ValueError("not a little-endian 64-bit ELF file (a CUBIN)")
    (header_offset,) = struct.unpack_from("<Q", blob, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", blob, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", blob, header_offset + i * entry_size) for i in range(count)]
    names_offset = headers[names_index][4]

    def name(offset: int) -> str:
        start = names_offset + offset
        return blob[start:blob.index(b"\0", start)].decode()

    return {name(h[0]): (h[1], h[4], h[5]) for h in headers}


def _elf_symbol_names(blob: bytes, sections) -> list[str]:
    _, offset, size = sections[".symtab"]
    _, strings, _ = sections[".strtab"]
    names = []
    for entry in range(offset, offset + size, 24):
        (name_offset,) = struct.unpack_from("<I", blob, entry)
        start = strings + name_offset
        names.append(blob[start:blob.index(b"\0", start)].decode())
    return names


def kernel_resources(cubin: bytes) -> dict[str, KernelResources]:
    """{kernel: KernelResources} of every kernel (a `.text.<name>` section) of a CUBIN."""
    sections = _elf_sections(cubin)
    symbols = _elf_symbol_names(cubin, sections)
    values: dict[tuple[str, int], int] = {}
    _, position, size = sections[".nv.info"]
    end = position + size
    while position < end:
        form, attribute = cubin[position], cubin[position + 1]
        if form == _EIFMT_SVAL:
            (length,) = struct.unpack_from("<H", cubin, position + 2)
            if length == 8 and attribute in (_EIATTR_REGCOUNT, _EIATTR_FRAME_SIZE):
                symbol, value = struct.unpack_from("<II", cubin, position + 4)
                values[(symbols[symbol], attribute)] = value
            position += 4 + length
        elif form == _EIFMT_HVAL:
            position += 4
        elif form == _EIFMT_NVAL:
            position += 2
        else:
            raise ValueError(f"unknown .nv.info record format {form:#x} at offset {position}")
    resources = {}
    for section in sections:
        if section.startswith(".text."):
            kernel = section[len(".text."):]
            shared = sections.get(f".nv.shared.{kernel}")
            resources[kernel] = KernelResources(registers=values.get((kernel, _EIATTR_REGCOUNT), 0),
                                                shared_bytes=shared[2] if shared else 0,
                                                frame_bytes=values.get((kernel, _EIATTR_FRAME_SIZE), 0))
    return resources
