"""Run the project's CUDA kernel sources on the CPU, with cupy's calling style (tests without a GPU).

    from replay.backends.cuda.emulator import load_module
    module = load_module("replay/backends/cuda/kernels/dense.cu")          # a path, or the source text
    kernel = module.get_function("fc_forward")                             # an `extern "C" __global__` kernel
    kernel((grid_x, grid_y), (16, 16), (x, w, y, np.int32(n), np.float32(scale)), shared_mem=0)

`load_module(path_or_source, *, name=None, defines=None, strict=True, shuffle=None, sanitize=None) -> EmulatedModule`
  Compiles the unchanged .cu source with g++ (`-std=c++20 -O2 -fPIC -shared -pthread`) against cuda_emu.h, which
  maps the CUDA built-ins onto the C++ standard library (see that header and shared/design/CUDA-ON-CPU.md §2).
  - path_or_source: a path (str or os.PathLike) to a .cu file, or the source text itself (any str containing a
    newline is taken as source). `name` is the file name errors report for source text (default "<source>.cu").
  - defines: {"NAME": value} (value None for a bare -DNAME) or an iterable of "NAME=VALUE" strings.
  - strict (default True): after a launch, raise EmulatorError if the kernel did something undefined that the
    emulator detects (a warp shuffle reading an absent / exited / out-of-mask lane, __trap()).
  - shuffle: an int seed to run the blocks of every launch in a random (seeded) order instead of 0, 1, 2, ...,
    to expose dependence on block order. Without it the environment variable ALEXNET_EMU_SHUFFLE=<seed> is
    read at each launch. `module.shuffle` may be changed after loading.
  - sanitize: None, "thread" or "address": build with `-O1 -g -fno-omit-frame-pointer -fsanitize=thread`
    (ThreadSanitizer: data races, e.g. a missing __syncthreads) or `-fsanitize=address -fsanitize-recover=address`
    (AddressSanitizer: out-of-bounds reads and writes of NumPy buffers, of __shared__ arrays and of the dynamic
    shared memory past `shared_mem`), a separate cache entry. When None, the environment variable
    ALEXNET_EMU_SANITIZE (thread / address / empty) decides, so that every module of a process loads
    sanitized (replay/backends/cuda/kernels.py needs no change). A sanitized library only loads into a process
    started with the sanitizer's runtime preloaded (LD_PRELOAD=$(g++ -print-file-name=libtsan.so) or
    libasan.so with ASAN_OPTIONS=detect_leaks=0); anywhere else EmulatorError says so instead of crashing.
    Use the runner `python -m replay.backends.cuda.emulator.sanitize thread|address`, which sets that up.
  The shared library is cached under $ALEXNET_EMU_CACHE, else $XDG_CACHE_HOME/alexnet-archive/cuda-emu (else
  ~/.cache/...), else a per-user temporary directory, keyed by the hash of the source, the header, the defines,
  the flags (sanitized builds are `<key>.tsan.so` / `<key>.asan.so`) and the compiler; writing goes through a
  temporary file and a rename, so processes may compile at once.
  A compile error raises EmulatorCompileError, whose message is g++'s, naming the real file:line (the loader
  puts `#line 1 "<path>"` in front of the source).

`EmulatedModule.get_function(name) -> EmulatedKernel`, called like cupy.RawKernel:
    kernel(grid, block, args, shared_mem=0, stream=None)
  - grid, block: an int or a tuple of 1 to 3 ints (block: at most 1024 threads).
  - args: a tuple with one entry per kernel parameter:
      pointer parameters  -> a C-contiguous numpy.ndarray of the pointee's dtype (float* / const float* ->
                             float32, int* -> int32, unsigned* -> uint32, double* -> float64, ...; float2/float4*
                             -> float32; void* or a struct pointer -> any dtype), or None for a null pointer;
      scalar parameters   -> a NumPy scalar of exactly the parameter's type: np.int32 for int, np.uint32 for
                             unsigned, np.int64 for long long, np.float32 for float, np.float64 for double.
    Anything else (a Python int or float — cupy passes a Python float as a double —, an int64 for an int, a
    float64 for a float, a non-contiguous array, a float64 array for a float*) raises TypeError naming the
    kernel, the parameter and what was passed. Kernel signatures are read from the source after preprocessing.
  - shared_mem: bytes of dynamic shared memory for `extern __shared__ T name[];` (at most 227 KiB), filled
    with 0xFF bytes at the start of every block so that reading it uninitialised shows (NaN for float).
  Launches run one at a time; block threads are OS threads; blocks run one after another. Static __shared__
  variables persist across launches and blocks (initialise them in the kernel).

`EmulatedModule` attributes: kernels ({name: KernelSignature}), source_path, library_path, from_cache (True when
the library came from the cache rather than a compile in this call), strict, shuffle, sanitize.

Errors: EmulatorError (a launch problem, or undefined behaviour caught in strict mode) and
EmulatorCompileError(EmulatorError) (g++ failed; .log has its full output).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "HEADER",
    "EmulatedKernel",
    "EmulatedModule",
    "EmulatorCompileError",
    "EmulatorError",
    "KernelParam",
    "KernelSignature",
    "cache_dir",
    "load_module",
    "resolve_sanitize",
    "sanitizer_runtime",
]

HEADER = Path(__file__).with_name("cuda_emu.h")
COMPILER = os.environ.get("ALEXNET_EMU_CXX", "g++")
FLAGS = ("-std=c++20", "-O2", "-fPIC", "-shared", "-pthread")
# Sanitized builds: -O1 -g so that reports name the .cu file:line (the loader's #line) with usable frames.
SANITIZE_FLAGS = {
    "thread": ("-std=c++20", "-O1", "-g", "-fno-omit-frame-pointer", "-fPIC", "-shared", "-pthread",
               "-fsanitize=thread"),
    "address": ("-std=c++20", "-O1", "-g", "-fno-omit-frame-pointer", "-fPIC", "-shared", "-pthread",
                "-fsanitize=address", "-fsanitize-recover=address"),
}
SANITIZE_ENV = "ALEXNET_EMU_SANITIZE"
_SANITIZER_TAGS = {"thread": "tsan", "address": "asan"}
_SANITIZER_INIT = {"thread": "__tsan_init", "address": "__asan_init"}
_LOADER_VERSION = "1"  # bump when the generated translation unit changes shape


class EmulatorError(RuntimeError):
    """A launch the emulator refuses or a kernel's undefined behaviour it caught (strict mode)."""


class EmulatorCompileError(EmulatorError):
    """g++ could not build the kernel source; the message is g++'s, naming file:line."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log or message


# ---- kernel signatures -----------------------------------------------------------------------------------

# C type spellings -> NumPy dtypes. Pointers to vector types take arrays of their element type.
_SCALAR_TYPES = {
    "float": "float32", "double": "float64",
    "int": "int32", "signed": "int32", "signed int": "int32", "int32_t": "int32",
    "unsigned": "uint32", "unsigned int": "uint32", "uint32_t": "uint32",
    "long long": "int64", "long long int": "int64", "signed long long": "int64", "int64_t": "int64",
    "long": "int64", "long int": "int64", "ptrdiff_t": "int64",
    "unsigned long long": "uint64", "unsigned long long int": "uint64", "uint64_t": "uint64",
    "unsigned long": "uint64", "unsigned long int": "uint64", "size_t": "uint64",
    "short": "int16", "short int": "int16", "int16_t": "int16",
    "unsigned short": "uint16", "unsigned short int": "uint16", "uint16_t": "uint16",
    "char": "int8", "signed char": "int8", "int8_t": "int8",
    "unsigned char": "uint8", "uint8_t": "uint8", "bool": "bool",
}
_VECTOR_ELEMENTS = {f"{base}{n}": dtype for base, dtype in (
    ("float", "float32"), ("double", "float64"), ("int", "int32"), ("uint", "uint32"), ("char", "int8"),
    ("uchar", "uint8"), ("short", "int16"), ("ushort", "uint16"), ("longlong", "int64"),
    ("ulonglong", "uint64")) for n in (1, 2, 3, 4)}
_QUALIFIERS = {"const", "volatile", "__restrict", "__restrict__", "restrict", "struct", "class"}


@dataclass(frozen=True, slots=True)
class KernelParam:
    """One kernel parameter: its text, its name, and what the loader accepts for it."""
    text: str               # as written, e.g. "const float* __restrict__ x"
    name: str
    pointer: bool
    dtype: str | None       # NumPy dtype name of the scalar / pointee; None: any (void*, structs) / unsupported
    const: bool = False     # pointee is const

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class KernelSignature:
    name: str
    params: tuple[KernelParam, ...]
    line: int               # 1-based line of the kernel in the preprocessed text (for messages only)


_KERNEL_MARK = "__emu_kernel_mark__"
_SCAN_PRELUDE = f"""#define CUDA_EMULATOR 1
#define __global__ {_KERNEL_MARK}
#define __device__
#define __host__
#define __forceinline__
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n)
#define __shared__
#define __constant__
#define __managed__
"""


def _strip_comments(text: str) -> str:
    """Drop // and /* */ comments (keeping newlines) and blank string literals other than "C"."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            out.append("' '")
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            literal = text[i:j + 1]
            out.append(literal if literal == '"C"' else '""')
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for c in text:
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    if "".join(current).strip():
        parts.append("".join(current))
    return [p.strip() for p in parts]


def _parse_param(text: str) -> KernelParam:
    body = re.sub(r"\s+", " ", text.replace("*", " * ").replace("&", " & ")).strip()
    tokens = body.split(" ")
    name = ""
    if len(tokens) > 1 and re.fullmatch(r"[A-Za-z_]\w*", tokens[-1]) and tokens[-1] not in _QUALIFIERS:
        name = tokens.pop()
        if not [t for t in tokens if t not in _QUALIFIERS]:  # e.g. "float" alone: an unnamed parameter
            tokens.append(name)
            name = ""
    stars = tokens.count("*")
    pointer = stars > 0
    first_star = tokens.index("*") if pointer else len(tokens)
    base_tokens = [t for t in tokens[:first_star] if t not in _QUALIFIERS]
    const = pointer and "const" in tokens[:first_star]
    base = " ".join(base_tokens)
    base = re.sub(r"^(?:std|::)\s*::?\s*", "", base)
    if stars > 1:
        dtype = None  # pointer to pointer: not passable from NumPy
    elif base in _SCALAR_TYPES:
        dtype = _SCALAR_TYPES[base]
    elif pointer and base in _VECTOR_ELEMENTS:
        dtype = _VECTOR_ELEMENTS[base]
    else:
        dtype = None
    if "&" in tokens:
        dtype = None
    return KernelParam(text=text.strip(), name=name or "#0", pointer=pointer, dtype=dtype, const=const)


def _source_line(text: str, offset: int) -> int:
    """The source line of `offset` in g++ -E output, from the last `# N "file"` line marker before it."""
    marker = None
    for marker in re.finditer(r'^# (\d+) "[^"]*"[^\n]*\n', text[:offset], re.MULTILINE):
        pass
    if marker is None:
        return text.count("\n", 0, offset) + 1
    return int(marker.group(1)) + text.count("\n", marker.end(), offset)


_KERNEL_RE = re.compile(_KERNEL_MARK + r"\s+void\s+([A-Za-z_]\w*)\s*\(")


def parse_kernels(preprocessed: str) -> tuple[dict[str, KernelSignature], list[str]]:
    """The `extern "C"` __global__ kernels of preprocessed text (where __global__ became a marker), and the names
    of __global__ functions that are not extern "C" (not callable by name, as with cupy)."""
    text = _strip_comments(preprocessed)
    # Regions inside `extern "C" { ... }`.
    c_regions: list[tuple[int, int]] = []
    for m in re.finditer(r'extern\s+"C"\s*\{', text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        c_regions.append((m.end(), j))
    kernels: dict[str, KernelSignature] = {}
    mangled: list[str] = []
    for m in _KERNEL_RE.finditer(text):
        name = m.group(1)
        # The declaration's start: after the previous ';', '}' or '{' (or a preprocessor line).
        start = max(text.rfind(";", 0, m.start()), text.rfind("}", 0, m.start()), text.rfind("{", 0, m.start()),
                    text.rfind("\n#", 0, m.start()))
        head = text[start + 1:m.start()]
        is_c = re.search(r'extern\s+"C"', head) is not None or any(a <= m.start() < b for a, b in c_regions)
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        params_text = text[m.end():j - 1].strip()
        if params_text in ("", "void"):
            params: tuple[KernelParam, ...] = ()
        else:
            parsed = []
            for k, p in enumerate(_split_top_level(params_text)):
                param = _parse_param(p)
                if param.name == "#0":
                    param = KernelParam(param.text, f"#{k}", param.pointer, param.dtype, param.const)
                parsed.append(param)
            params = tuple(parsed)
        if not is_c:
            mangled.append(name)
            continue
        if name in kernels and kernels[name].params != params:
            raise EmulatorError(f"kernel {name} is declared twice with different parameters")
        kernels[name] = KernelSignature(name, params, _source_line(text, m.start()))
    return kernels, mangled


# ---- source preparation and the cache --------------------------------------------------------------------

_EXTERN_SHARED_RE = re.compile(
    r"extern\s+(?:__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*)?)|((?:__align__\s*\(\s*\d+\s*\)\s*)?)__shared__\s+)"
    r"(?:__align__\s*\(\s*\d+\s*\)\s*)?([A-Za-z_][\w\s:]*?)\s*([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def rewrite_extern_shared(source: str) -> str:
    """`extern __shared__ T name[];` -> a pointer onto the launch's dynamic shared buffer, on the same line."""
    def repl(m: re.Match) -> str:
        ctype = m.group(3).strip()
        newlines = m.group(0).count("\n")
        return (f"{ctype}* const {m.group(4)} = reinterpret_cast<{ctype}*>(emu::dynamic_shared);"
                + "\n" * newlines)
    return _EXTERN_SHARED_RE.sub(repl, source)


def cache_dir() -> Path:
    """Where compiled modules are kept (created if needed)."""
    candidates = []
    if os.environ.get("ALEXNET_EMU_CACHE"):
        candidates.append(Path(os.environ["ALEXNET_EMU_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or (str(Path.home() / ".cache") if Path.home().is_dir() else "")
    if xdg:
        candidates.append(Path(xdg) / "alexnet-archive" / "cuda-emu")
    candidates.append(Path(tempfile.gettempdir()) / f"alexnet-archive-cuda-emu-{os.getuid()}")
    for directory in candidates:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if os.access(directory, os.W_OK):
                return directory
        except OSError:
            continue
    raise EmulatorError(f"no writable cache directory among {', '.join(map(str, candidates))}")


_compiler_id_cache: dict[str, str] = {}


def _compiler_id() -> str:
    if COMPILER not in _compiler_id_cache:
        try:
            out = subprocess.run([COMPILER, "--version"], capture_output=True, text=True, check=True,
                                 env=_compiler_env()).stdout
        except (OSError, subprocess.CalledProcessError) as error:
            raise EmulatorCompileError(f"cannot run the C++ compiler {COMPILER!r}: {error}") from error
        _compiler_id_cache[COMPILER] = out.splitlines()[0] if out else COMPILER
    return _compiler_id_cache[COMPILER]


def _define_flags(defines) -> list[str]:
    if not defines:
        return []
    if isinstance(defines, Mapping):
        items = [k if v is None else f"{k}={v}" for k, v in defines.items()]
    else:
        items = [str(d) for d in defines]
    return [f"-D{item}" for item in items]


def _atomic_write(path: Path, data: bytes | str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _compiler_env() -> dict[str, str] | None:
    """The compiler's environment: ours without a preloaded sanitizer runtime (g++ is not built for it)."""
    if "LD_PRELOAD" not in os.environ:
        return None
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def _run_compiler(args: list[str], what: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, env=_compiler_env())
    if proc.returncode != 0:
        log = (proc.stderr or proc.stdout).strip()
        errors = [line for line in log.splitlines() if ": error:" in line or ": fatal error:" in line]
        summary = "\n".join(errors[:5]) if errors else log[-2000:]
        raise EmulatorCompileError(f"{what} failed:\n{summary}\n\n(full g++ output:)\n{log}", log)
    return proc.stdout


# ---- the module ------------------------------------------------------------------------------------------

class _LaunchConfig(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint32 * 3), ("block", ctypes.c_uint32 * 3), ("shared_mem", ctypes.c_uint64),
                ("order", ctypes.POINTER(ctypes.c_uint32))]


_MAX_DYNAMIC_SHARED = 232448
_python_lock = threading.Lock()


def _dims(value, what: str, kernel: str) -> tuple[int, int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        dims = (int(value),)
    elif isinstance(value, tuple | list) and 1 <= len(value) <= 3 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        dims = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{kernel}: {what} must be an int or a tuple of 1 to 3 ints, not {value!r}")
    dims = dims + (1,) * (3 - len(dims))
    if any(d < 1 or d >= 2 ** 31 for d in dims):
        raise ValueError(f"{kernel}: {what} {value!r} has a dimension outside 1 .. 2**31-1")
    return dims  # type: ignore[return-value]


def _describe_value(value) -> str:
    if isinstance(value, np.ndarray):
        layout = "C-contiguous" if value.flags.c_contiguous else "non-contiguous"
        return f"a {layout} {value.dtype} array of shape {value.shape}"
    if isinstance(value, np.generic):
        return f"np.{value.dtype}({value.item()!r})"
    return f"a Python {type(value).__name__} ({value!r})"


class EmulatedKernel:
    """One kernel of an EmulatedModule; call it like cupy.RawKernel: kernel(grid, block, args, shared_mem=0)."""

    def __init__(self, module: EmulatedModule, signature: KernelSignature):
        self.module = module
        self.signature = signature
        self.name = signature.name
        self._launch = getattr(module._lib, f"emu_launch__{self.name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(_LaunchConfig), ctypes.POINTER(ctypes.c_void_p)]

    def _pack(self, args) -> tuple[ctypes.Array, list]:
        params = self.signature.params
        if not isinstance(args, tuple | list):
            raise TypeError(f"{self.name}: args must be a tuple, not {type(args).__name__}")
        if len(args) != len(params):
            raise TypeError(f"{self.name}: takes {len(params)} arguments "
                            f"({', '.join(p.text for p in params)}), {len(args)} given")
        slots = (ctypes.c_uint64 * max(1, len(params)))()
        pointers = (ctypes.c_void_p * max(1, len(params)))()
        keep = [slots]
        base = ctypes.addressof(slots)
        for i, (param, value) in enumerate(zip(params, args)):
            problem = None
            if param.pointer:
                if value is None:
                    slots[i] = 0
                elif not isinstance(value, np.ndarray):
                    problem = "expects a NumPy array"
                elif not value.flags.c_contiguous:
                    problem = "expects a C-contiguous array (use np.ascontiguousarray)"
                elif param.dtype is not None and value.dtype != np.dtype(param.dtype):
                    problem = f"expects a {param.dtype} array"
                else:
                    slots[i] = value.ctypes.data
                    keep.append(value)
            else:
                if param.dtype is None:
                    problem = "has a type the emulator cannot pass"
                elif not isinstance(value, np.generic) or isinstance(value, np.ndarray) or value.dtype != np.dtype(param.dtype):
                    problem = f"expects np.{param.dtype}(...)"
                else:
                    raw = np.zeros(1, np.uint64)
                    raw.view(np.uint8)[:value.dtype.itemsize] = np.frombuffer(value.tobytes(), np.uint8)
                    slots[i] = int(raw[0])
            if problem:
                raise TypeError(f"kernel {self.name}: parameter {i} `{param.text}` {problem}, "
                                f"got {_describe_value(value)}")
            pointers[i] = base + 8 * i
        return pointers, keep

    def __call__(self, grid, block, args, shared_mem: int = 0, stream=None,
                 enable_cooperative_groups: bool = False):
        if enable_cooperative_groups:
            raise EmulatorError(f"{self.name}: cooperative launches are not emulated")
        grid3 = _dims(grid, "grid", self.name)
        block3 = _dims(block, "block", self.name)
        nthreads = block3[0] * block3[1] * block3[2]
        if nthreads > 1024:
            raise ValueError(f"{self.name}: a block of {block3} has {nthreads} threads (at most 1024)")
        shared_mem = int(shared_mem)
        if not 0 <= shared_mem <= _MAX_DYNAMIC_SHARED:
            raise ValueError(f"{self.name}: shared_mem={shared_mem} outside 0 .. {_MAX_DYNAMIC_SHARED} bytes")
        pointers, keep = self._pack(args)
        config = _LaunchConfig()
        config.grid[:] = grid3
        config.block[:] = block3
        config.shared_mem = shared_mem
        nblocks = grid3[0] * grid3[1] * grid3[2]
        seed = self.module.shuffle
        if seed is None and os.environ.get("ALEXNET_EMU_SHUFFLE", "").strip():
            seed = int(os.environ["ALEXNET_EMU_SHUFFLE"])
        if seed is not None:
            order = np.random.default_rng(seed).permutation(nblocks).astype(np.uint32)
            keep.append(order)
            config.order = order.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        with _python_lock:  # ctypes releases the GIL; launches of one process run one at a time
            status = self._launch(ctypes.byref(config), pointers)
            errors = self.module._lib.emu_error_count()
            first = ctypes.create_string_buffer(1024)
            self.module._lib.emu_first_error(first, 1024)
        del keep
        if status != 0:
            raise EmulatorError(f"{self.name}: the emulator refused the launch (status {status})")
        if errors and self.module.strict:
            raise EmulatorError(f"kernel {self.name}: {errors} undefined operation(s) in this launch; first: "
                                f"{first.value.decode(errors='replace')}")

    def __repr__(self) -> str:
        return f"<EmulatedKernel {self.name}({', '.join(p.text for p in self.signature.params)})>"


class EmulatedModule:
    """A compiled kernel file; see the module docstring. Use load_module() to make one."""

    def __init__(self, *, library_path: Path, source_path: str, kernels: dict[str, KernelSignature],
                 non_c_kernels: list[str], from_cache: bool, strict: bool, shuffle: int | None):
        self.library_path = library_path
        self.source_path = source_path
        self.kernels = kernels
        self.non_c_kernels = non_c_kernels
        self.from_cache = from_cache
        self.strict = strict
        self.shuffle = shuffle
        self.sanitize: str | None = None  # set by load_module: None, "thread" or "address"
        self._lib = ctypes.CDLL(str(library_path))
        self._lib.emu_error_count.restype = ctypes.c_long
        self._lib.emu_first_error.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._functions: dict[str, EmulatedKernel] = {}
        self._check_compiled_signatures()

    def _check_compiled_signatures(self) -> None:
        """Compare the parsed signatures with what the compiler saw (sizes, pointer-ness)."""
        for name, signature in self.kernels.items():
            describe = getattr(self._lib, f"emu_describe__{name}")
            sizes, pointers = (ctypes.c_int * 64)(), (ctypes.c_int * 64)()
            n = describe(sizes, pointers, 64)
            ok = n == len(signature.params) and all(
                bool(pointers[i]) == p.pointer and (p.pointer or p.dtype is None
                                                    or sizes[i] == np.dtype(p.dtype).itemsize)
                for i, p in enumerate(signature.params))
            if not ok:
                raise EmulatorError(f"{self.source_path}: the loader misread the parameters of kernel {name} "
                                    f"({', '.join(p.text for p in signature.params)}); compiler sees {n} params")

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self._functions:
            if name not in self.kernels:
                hint = (" (it is a __global__ function but not extern \"C\")" if name in self.non_c_kernels
                        else f"; kernels: {', '.join(sorted(self.kernels)) or 'none'}")
                raise AttributeError(f"{self.source_path}: no extern \"C\" __global__ kernel {name!r}{hint}")
            self._functions[name] = EmulatedKernel(self, self.kernels[name])
        return self._functions[name]

    def __repr__(self) -> str:
        return f"<EmulatedModule {self.source_path} kernels={sorted(self.kernels)}>"


def _signature_to_json(sig: KernelSignature) -> dict:
    return {"name": sig.name, "line": sig.line,
            "params": [[p.text, p.name, p.pointer, p.dtype, p.const] for p in sig.params]}


def _signature_from_json(data: dict) -> KernelSignature:
    return KernelSignature(data["name"], tuple(KernelParam(*p) for p in data["params"]), data["line"])


def resolve_sanitize(sanitize: str | None = None) -> str | None:
    """`sanitize`, or (when None) the environment's ALEXNET_EMU_SANITIZE, checked: None, "thread", "address"."""
    if sanitize is None:
        sanitize = os.environ.get(SANITIZE_ENV, "").strip().lower() or None
        if sanitize in ("0", "none", "off", "no"):
            sanitize = None
    if sanitize is not None and sanitize not in SANITIZE_FLAGS:
        raise ValueError(f"sanitize must be None, 'thread' or 'address', not {sanitize!r}")
    return sanitize


def sanitizer_runtime(sanitize: str) -> str:
    """The path of the sanitizer's runtime library (`g++ -print-file-name=libtsan.so` / libasan.so); the name
    alone (not a path) when the compiler does not have it."""
    lib = {"thread": "libtsan.so", "address": "libasan.so"}[sanitize]
    try:
        out = subprocess.run([COMPILER, f"-print-file-name={lib}"], capture_output=True, text=True, check=True,
                             env=_compiler_env()).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return lib
    return out if out and os.path.isabs(out) and os.path.exists(out) else lib


def _runtime_loaded(sanitize: str) -> bool:
    return hasattr(ctypes.CDLL(None), _SANITIZER_INIT[sanitize])


def load_module(path_or_source: str | os.PathLike, *, name: str | None = None,
                defines: Mapping[str, object] | Iterable[str] | None = None, strict: bool = True,
                shuffle: int | None = None, sanitize: str | None = None) -> EmulatedModule:
    """Compile (or fetch from the cache) a CUDA source for the CPU; see the module docstring."""
    sanitize = resolve_sanitize(sanitize)
    if sanitize is not None and not _runtime_loaded(sanitize):
        raise EmulatorError(
            f"sanitize={sanitize!r}: this process was not started with the sanitizer runtime preloaded "
            f"(LD_PRELOAD={sanitizer_runtime(sanitize)}"
            + (", ASAN_OPTIONS=detect_leaks=0" if sanitize == "address" else "")
            + "); run `python -m replay.backends.cuda.emulator.sanitize "
            f"{sanitize}` or unset {SANITIZE_ENV}")
    flags = SANITIZE_FLAGS[sanitize] if sanitize else FLAGS
    if isinstance(path_or_source, os.PathLike) or ("\n" not in path_or_source and
                                                   Path(path_or_source).is_file()):
        path = Path(path_or_source).resolve()
        source = path.read_text(encoding="utf-8")
        display = name or str(path)
        include_dir = str(path.parent)
    elif "\n" in path_or_source:
        source = path_or_source
        display = name or "<source>.cu"
        include_dir = None
    else:
        raise FileNotFoundError(f"no kernel file {path_or_source!r}")
    header_text = HEADER.read_text(encoding="utf-8")
    define_flags = _define_flags(defines)
    body = rewrite_extern_shared(source)
    quoted = display.replace("\\", "\\\\").replace('"', '\\"')
    include_flags = ["-I", str(HEADER.parent)] + (["-I", include_dir] if include_dir else [])
    key = hashlib.sha256("\0".join([_LOADER_VERSION, _compiler_id(), " ".join(flags), header_text, quoted,
                                    body, *define_flags, *include_flags]).encode()).hexdigest()[:24]
    directory = cache_dir()
    if sanitize:
        key = f"{key}.{_SANITIZER_TAGS[sanitize]}"
    library = directory / f"{key}.so"
    signatures_file = directory / f"{key}.json"
    from_cache = library.is_file() and signatures_file.is_file()
    if from_cache:
        saved = json.loads(signatures_file.read_text())
        kernels = {k: _signature_from_json(v) for k, v in saved["kernels"].items()}
        non_c = saved["non_c"]
    else:
        # 1. The kernels' signatures, read after preprocessing (kernels may come from macros).
        scan_unit = f'{_SCAN_PRELUDE}#line 1 "{quoted}"\n{body}\n'
        scan_path = _write_temp(directory, key, "scan.cpp", scan_unit)
        try:
            preprocessed = _run_compiler([COMPILER, "-std=c++20", "-E", "-x", "c++", *define_flags,
                                          *include_flags[2:], scan_path], f"preprocessing {display}")
        finally:
            os.unlink(scan_path)
        kernels, non_c = parse_kernels(preprocessed)
        # 2. The translation unit: header, the source under its own name, one launcher per kernel.
        wrappers = "".join(
            f'extern "C" int emu_launch__{k}(const emu::LaunchConfig* c, void** a) '
            f"{{ return emu::launch(&{k}, c, a); }}\n"
            f'extern "C" int emu_describe__{k}(int* s, int* p, int n) {{ return emu::describe(&{k}, s, p, n); }}\n'
            for k in kernels)
        unit = (f'#include "cuda_emu.h"\n#line 1 "{quoted}"\n{body}\n'
                f'#line 1 "<emulator launchers for {quoted}>"\n{wrappers}')
        unit_path = _write_temp(directory, key, "cpp", unit)
        fd, tmp_library = tempfile.mkstemp(dir=directory, prefix=f"{key}.", suffix=".so.tmp")
        os.close(fd)
        try:
            _run_compiler([COMPILER, *flags, *define_flags, *include_flags, "-o", tmp_library, unit_path],
                          f"compiling {display}")
            os.replace(tmp_library, library)
        finally:
            if os.path.exists(tmp_library):
                os.unlink(tmp_library)
            os.unlink(unit_path)
        _atomic_write(signatures_file, json.dumps({
            "source": display, "non_c": non_c,
            "kernels": {k: _signature_to_json(v) for k, v in kernels.items()}}))
    module = EmulatedModule(library_path=library, source_path=display, kernels=kernels, non_c_kernels=non_c,
                            from_cache=from_cache, strict=strict, shuffle=shuffle)
    module.sanitize = sanitize
    return module


def _write_temp(directory: Path, key: str, suffix: str, text: str) -> str:
    """A uniquely named file in the cache directory (two processes may build the same key at once)."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=f"{key}.", suffix=f".{suffix}")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path
