"""Shared pieces of the GPU benchmarks (bench/replay_gpu.py, bench/cuda_kernels.py).

Importable without CuPy and without a GPU: CuPy and torch are imported inside the functions that need
them. The pure parts (FLOP accounting, the FP32 peak formula, the table and ratio formatting, the timing
proxy around a backend, the timing loop) are unit-tested on the CPU (tests/cuda/test_bench_scripts.py).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NO_GPU_MESSAGE = "needs a CUDA GPU with CuPy; see README (Speed)"


class NoGpu(SystemExit):
    """Raised (an exit with a message, no traceback) where CuPy, a device or torch's CUDA is missing."""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def require_gpu(*, need_torch: bool = True):
    """(cupy, torch) on a machine with a CUDA device, else a NoGpu exit naming what is missing."""
    try:
        import cupy
    except ImportError as error:
        raise NoGpu(f"{Path(sys.argv[0]).name}: {NO_GPU_MESSAGE} (cannot import cupy: {error})") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except RuntimeError as error:  # cupy's CUDARuntimeError (a RuntimeError) without a driver
        raise NoGpu(f"{Path(sys.argv[0]).name}: {NO_GPU_MESSAGE} (no CUDA device: {error})") from None
    if count < 1:
        raise NoGpu(f"{Path(sys.argv[0]).name}: {NO_GPU_MESSAGE} (no CUDA device)")
    torch = None
    if need_torch:
        try:
            import torch
        except ImportError:
            raise NoGpu(f"{Path(sys.argv[0]).name}: the PyTorch comparison needs torch with CUDA "
                        "(pip install torch)") from None
        if not torch.cuda.is_available():
            raise NoGpu(f"{Path(sys.argv[0]).name}: torch {torch.__version__} sees no CUDA device "
                        "(a CPU-only build?); install a CUDA build of torch")
    if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
        progress("warning: CUPY_TF32 is set: CuPy's matmuls (our fc layers) run in TF32, not strict FP32")
    return cupy, torch


def load_plan(net: str, archive: str | None = None):
    """(experiment, plan) of one experiment of the release, found as bench/replay_cpu.py finds it."""
    from archive import load_archive
    from archive.locate import resolve_archive_path
    from replay.plan import build_plan

    beside = REPO.parent / "shared" / "AlexNet-Source-Code"
    if archive is None and not os.environ.get("ALEXNET_ARCHIVE") and beside.is_dir():
        archive = str(beside)  # where the tests find it (tests/conftest.py)
    experiment = load_archive(resolve_archive_path(archive)).experiment(net)
    return experiment, build_plan(experiment)


# --- FLOPs ---------------------------------------------------------------------------------------

WEIGHT_LAYERS = ("conv", "local", "fc")


def weight_flops_per_image(plan) -> int:
    """Forward FLOPs per image of the conv/local/fc layers (a multiply-add = 2), from the plan."""
    return sum(int(layer.flops) for layer in plan.layers if layer.type in WEIGHT_LAYERS)


def needs_data_grad(plan, layer, index: int) -> bool:
    """Whether a training step computes the gradient of `layer`'s input `index` (replay/network.py:
    backward skips data layers and producers that consume no gradient)."""
    producer = plan.layer(layer.inputs[index])
    return producer.type != "data" and producer.grad_consumer


def _input_flops(layer, index: int, plan) -> int:
    """Forward FLOPs of one input of a weight layer, per image."""
    d = layer.derived
    if layer.type == "fc":
        return 2 * layer.outputs * plan.layer(layer.inputs[index]).outputs
    return 2 * d["filters"] * d["modules"] * d["weightsPerFilter"][index]


def op_flops_per_image(plan) -> dict[tuple[str, str], int]:
    """{(layer, backend op): FLOPs per image} of the GEMM-like ops of one training step: forward, weight
    gradient (every input of a gradient-consuming layer) and data gradient (inputs whose producer takes a
    gradient). Ops of different inputs of a layer add up under the same key."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    prefix = {"conv": "conv", "local": "local", "fc": "fc"}
    for layer in plan.layers:
        if layer.type not in WEIGHT_LAYERS:
            continue
        p = prefix[layer.type]
        for i in range(len(layer.inputs)):
            f = _input_flops(layer, i, plan)
            out[(layer.name, f"{p}_forward")] += f
            if layer.grad_consumer:
                out[(layer.name, f"{p}_backward_weights")] += f
                if needs_data_grad(plan, layer, i):
                    out[(layer.name, f"{p}_backward_data")] += f
    return dict(out)


def training_flops_per_image(plan) -> dict[str, int]:
    """conventional: 3 × the forward conv/local/fc FLOPs (forward + data gradient + weight gradient, the
    usual accounting); exact: the ops a step runs (op_flops_per_image: no data gradient of the data, so
    conv1's is left out). Neither counts pooling, normalisation, neurons or the update (~2% of the total)."""
    return {"forward": weight_flops_per_image(plan), "conventional": 3 * weight_flops_per_image(plan),
            "exact": sum(op_flops_per_image(plan).values())}


# --- the device's FP32 peak ------------------------------------------------------------------------

# FP32 FMA lanes per SM by compute capability (CUDA C Programming Guide, "Arithmetic Instructions":
# 32-bit floating-point add, multiply, multiply-add per clock per SM). sm_80 (A100) has 64; sm_86, 89, 90
# (H100/H200) and the Blackwells have 128.
FP32_LANES_PER_SM = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128,
                     (10, 0): 128, (10, 3): 128, (12, 0): 128}
# NVIDIA's data-sheet FP32 (non-tensor) peaks, TFLOP/s, to cross-check the formula at boost clock.
KNOWN_FP32_PEAK_TFLOPS = {"H100 SXM": 66.9, "H100 NVL": 60.0, "H100 PCIe": 51.2, "H200": 66.9, "GH200": 66.9,
                          "A100": 19.5}


def fp32_peak_flops(sm_count: int, clock_khz: float, major: int, minor: int) -> float:
    """SMs × clock × FP32 lanes per SM × 2 (an FMA is 2 FLOPs), FLOP/s. clock: the max (boost) SM clock
    in kHz as cudaDeviceProp.clockRate gives it. Lanes: FP32_LANES_PER_SM, 128 for unknown architectures."""
    lanes = FP32_LANES_PER_SM.get((major, minor), 128)
    return sm_count * clock_khz * 1e3 * lanes * 2


def known_peak_tflops(device_name: str) -> float | None:
    """The data-sheet FP32 peak of a device by its name (longest matching key), or None."""
    name = device_name.upper()
    hits = [key for key in KNOWN_FP32_PEAK_TFLOPS if all(part in name for part in key.upper().split())]
    return KNOWN_FP32_PEAK_TFLOPS[max(hits, key=len)] if hits else None


def device_info(cupy) -> dict:
    """Name, SMs, clock, compute capability, memory and the FP32 peak of the current device."""
    runtime = cupy.cuda.runtime
    device = cupy.cuda.Device()
    props = runtime.getDeviceProperties(device.id)

    def attribute(key: str, number: int):
        value = props.get(key)
        if value:
            return value
        try:  # CUDA 13 dropped clockRate & co. from cudaDeviceProp; the attributes remain
            return runtime.deviceGetAttribute(number, device.id)
        except RuntimeError:  # an attribute this runtime does not know
            return None

    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    sms, major, minor = props["multiProcessorCount"], props["major"], props["minor"]
    clock_khz = attribute("clockRate", 13)  # cudaDevAttrClockRate
    mem_khz = attribute("memoryClockRate", 36)  # cudaDevAttrMemoryClockRate
    bus_bits = attribute("memoryBusWidth", 37)  # cudaDevAttrGlobalMemoryBusWidth
    peak = fp32_peak_flops(sms, clock_khz, major, minor) if clock_khz else None
    known = known_peak_tflops(name)
    if peak is None and known:
        peak = known * 1e12
    return {"name": name, "sm_count": sms, "compute_capability": f"{major}.{minor}", "clock_khz": clock_khz,
            "fp32_lanes_per_sm": FP32_LANES_PER_SM.get((major, minor), 128),
            "fp32_peak_tflops": None if peak is None else peak / 1e12, "datasheet_fp32_tflops": known,
            "memory_bytes": props.get("totalGlobalMem"),
            # DDR: two transfers per memory clock
            "memory_peak_gbs": (2 * mem_khz * 1e3 * bus_bits / 8 / 1e9) if mem_khz and bus_bits else None,
            "peak_rule": "SM count × max SM clock × FP32 lanes per SM (128 on sm_86+/sm_90, 64 on sm_80) × 2"}


# --- formatting ------------------------------------------------------------------------------------

def speed_ratio(ours_seconds: float | None, theirs_seconds: float | None) -> float | None:
    """How many times faster ours is (their time / our time; > 1: ours faster), None if either is missing."""
    if not ours_seconds or not theirs_seconds:
        return None
    return theirs_seconds / ours_seconds


def format_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def format_number(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def format_table(headers: list[str], rows: list[list], *, align: str | None = None) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned (or `align`, one
    character per column, 'l' or 'r'). Cells are formatted with format_number."""
    cells = [[format_number(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in cells])


# --- clocks and timing -----------------------------------------------------------------------------

class CpuClock:
    """perf_counter marks (the CPU tests' clock; on a GPU it would time launches, not kernels)."""

    def mark(self):
        return time.perf_counter()

    def elapsed_ms(self, start, end) -> float:
        return (end - start) * 1e3

    def synchronize(self) -> None:
        pass


class SyncedClock:
    """Marks that first wait for the whole device (every stream, `synchronize`), then read perf_counter.
    For whole training steps: our network runs each logical GPU on its own stream
    (replay/backends/cuda/devices.py), which events on another stream would not wait for."""

    def __init__(self, synchronize=lambda: None):
        self.synchronize = synchronize

    def mark(self):
        self.synchronize()
        return time.perf_counter()

    def elapsed_ms(self, start, end) -> float:
        return (end - start) * 1e3


class CupyEventClock:
    """cupy.cuda.Event marks on the current stream; elapsed times are read after synchronize()."""

    def __init__(self, cupy):
        self.cupy = cupy

    def mark(self):
        event = self.cupy.cuda.Event()
        event.record()
        return event

    def elapsed_ms(self, start, end) -> float:
        return self.cupy.cuda.get_elapsed_time(start, end)

    def synchronize(self) -> None:
        self.cupy.cuda.Device().synchronize()


class TorchEventClock:
    """torch.cuda.Event marks on torch's current stream."""

    def __init__(self, torch):
        self.torch = torch

    def mark(self):
        event = self.torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def elapsed_ms(self, start, end) -> float:
        return start.elapsed_time(end)

    def synchronize(self) -> None:
        self.torch.cuda.synchronize()


def time_calls(fn, clock, *, warmup: int, iters: int, rounds: int = 1) -> list[float]:
    """ms per call of fn(): `warmup` untimed calls, then `rounds` runs of `iters` back-to-back calls
    between two marks (llm.c style: the average over a run hides launch gaps between short kernels).
    Returns one value per round."""
    for _ in range(warmup):
        fn()
    clock.synchronize()
    out = []
    for _ in range(rounds):
        start = clock.mark()
        for _ in range(iters):
            fn()
        end = clock.mark()
        clock.synchronize()
        out.append(clock.elapsed_ms(start, end) / iters)
    return out


def time_steps(step, clock, *, warmup: int, iters: int) -> dict:
    """Per-step times of a training step: event pairs around each of `iters` steps after `warmup`, and the
    wall clock of all of them (host-side stalls included). ms."""
    for _ in range(warmup):
        step()
    clock.synchronize()
    marks = []
    wall = time.perf_counter()
    for _ in range(iters):
        start = clock.mark()
        step()
        marks.append((start, clock.mark()))
    clock.synchronize()
    wall = (time.perf_counter() - wall) * 1e3 / max(1, iters)
    times = [clock.elapsed_ms(a, b) for a, b in marks]
    return {"median_ms": statistics.median(times), "min_ms": min(times), "wall_ms_per_step": wall,
            "times_ms": times}


# --- the timing proxy around a backend ----------------------------------------------------------

class TimedBackend:
    """A backend that forwards every call to `backend` and, while `enabled`, marks the clock around each
    op call and records (layer, op, phase, start, end). Every operation of replay.backend.OPERATIONS is
    wrapped, and so is any other public callable the backend has (e.g. a CUDA sgd_update); other
    attributes are forwarded. `layer` and `phase` are set by whoever drives the network (label_layers
    sets `layer` from replay/network.py's per-layer methods)."""

    def __init__(self, backend, clock, *, enabled: bool = False):
        from replay.backend import OPERATIONS

        self._backend = backend
        self.name = getattr(backend, "name", "?")
        self.clock = clock
        self.enabled = enabled
        self.layer = "?"
        self.phase = "?"
        self.records: list[tuple[str, str, str, object, object]] = []
        names = set(OPERATIONS) | {n for n in dir(backend) if not n.startswith("_")
                                   and callable(getattr(backend, n, None))}
        self.wrapped = tuple(sorted(names))
        for op in self.wrapped:
            setattr(self, op, self._wrap(op, getattr(backend, op)))

    def _wrap(self, op: str, fn):
        def timed(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            start = self.clock.mark()
            result = fn(*args, **kwargs)
            self.records.append((self.layer, op, self.phase, start, self.clock.mark()))
            return result

        timed.__name__ = op
        timed.__wrapped__ = fn
        return timed

    def __getattr__(self, name):  # only called for attributes not set above
        return getattr(self._backend, name)

    def reset(self) -> None:
        self.records = []

    def summary(self) -> list[dict]:
        """[{layer, op, phase, calls, ms}] in first-call order, after synchronising the clock."""
        self.clock.synchronize()
        table: dict[tuple[str, str, str], dict] = {}
        for layer, op, phase, start, end in self.records:
            row = table.setdefault((layer, op, phase), {"layer": layer, "op": op, "phase": phase, "calls": 0,
                                                        "ms": 0.0})
            row["calls"] += 1
            row["ms"] += self.clock.elapsed_ms(start, end)
        return list(table.values())


_LABELLED_METHODS = ("_input", "_forward_layer", "_input_grad", "_weight_grads", "_bias_grad",
                     "_logreg_backward")


def label_layers(net, proxy: TimedBackend) -> list[str]:
    """Make `proxy.layer` follow the layer a Network is working on, by wrapping (on this instance only) the
    per-layer methods of replay/network.py that take the PlanLayer: every op call happens inside one of
    them (the forward's cost op right after `_input` of the cost layer). Returns the methods wrapped;
    methods that do not exist (network.py changed) are skipped and their ops keep the last label."""
    from replay.plan import PlanLayer

    done = []
    for name in _LABELLED_METHODS:
        method = getattr(net, name, None)
        if method is None:
            continue

        def labelled(*args, _method=method, **kwargs):
            for arg in args:
                if isinstance(arg, PlanLayer):
                    proxy.layer = arg.name
                    break
            return _method(*args, **kwargs)

        setattr(net, name, labelled)
        done.append(name)
    return done


def per_layer(records: list[dict]) -> dict[str, dict[str, float]]:
    """{layer: {phase: ms}} from TimedBackend.summary() rows, in first-seen order."""
    out: dict[str, dict[str, float]] = {}
    for row in records:
        out.setdefault(row["layer"], defaultdict(float))[row["phase"]] += row["ms"]
    return {k: dict(v) for k, v in out.items()}


def to_numpy(array):
    """A host copy of a NumPy or CuPy array."""
    import numpy as np

    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def torch_specs_to(model, device) -> None:
    """Move the tensors replay/torch_graph.py keeps in its layer specs (pooling regions, conns) to the
    device: otherwise each call copies them from the host (a synchronous copy inside the timed step)."""
    import torch

    for spec in model.specs:
        for key, value in list(spec.items()):
            if torch.is_tensor(value):
                spec[key] = value.to(device)
            elif key == "conns" and isinstance(value, dict):
                spec[key] = {i: v.to(device) for i, v in value.items()}
