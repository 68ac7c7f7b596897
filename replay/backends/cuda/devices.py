"""Logical GPUs of a replay on the CUDA backend: where each layer's tensors live, and the copies between them.

The 2012 nets name a logical GPU per layer (`gpu=` in the layer file; #120 uses two). `LogicalGpus(count, xp)`
maps logical GPU k to a physical device — device k where the machine has more than k devices, else device 0,
so a two-GPU net also runs on one card — and gives each logical GPU its own `cupy.cuda.Stream` and its own
`cupy.cuda.MemoryPool`: work done `with gpus.on(k):` runs on k's device and stream and allocates from k's
pool, so two logical GPUs on one card still keep separate memory and separate queues, as two cards would.
(CuPy 14.2: the current stream is kept per thread and per device, cupy/cuda/stream.pyx `_ThreadLocal`, and
entering a Stream checks that it belongs to the current device, so `on` enters the Device first; the
allocator of `using_allocator` is thread-local and restored on exit, cupy/cuda/__init__.py; a MemoryPool
keeps one SingleDeviceMemoryPool per device and picks the current one at each malloc, cupy/cuda/memory.pyx.)

The streams are ordinary (blocking) streams, not `non_blocking=True`: CuPy's current stream outside any
`with stream:` is the legacy default stream (cupy/cuda/stream.pyx `get_default_stream` -> Stream.null), and
whatever runs there — `cupy.asnumpy`/`ndarray.get` of a result read after the pass (Network.to_host, the
trainer, the benchmarks), a test's comparison — must see the work queued on the logical GPUs' streams. The
legacy default stream waits for earlier work of blocking streams only; a non-blocking stream is unordered
with it, so such a read could see an array before the kernel that writes it has run. The logical GPUs'
own streams still overlap each other (blocking streams are ordered with the legacy stream alone).

An activation read by a layer on another logical GPU (and the gradient going back) crosses only through
`copy(array, source, target)` (SEMANTICS.md §6): the copy is queued on the target's stream after an event
recorded on the source's stream, so it starts when the source's work that produced it is done (the role of
cudaStreamWaitEvent in the original's multi-GPU code, src/layer.cu `Layer::fprop` copying to other
devices). Between physical devices it is `cudaMemcpyPeerAsync`; on one device a plain device copy. Copies
and bytes are counted per batch as replay/network.py's `Transfers` counts them (the site and the run store
read `per_batch`), and the time the target streams spent waiting for their sources is measured with
events (resolved once per batch in `end_batch`, so measuring costs no synchronisation in the middle of a
pass).

On the CPU (xp = numpy: the kernels run in the emulator) the same class works with one "host" world: `on`
does nothing, `to` returns the array, copies are `array.copy()` — still real copies, so a layer can never
read another GPU's buffer by accident — and the counts are kept the same way (waiting time 0).

CuPy is imported only when a LogicalGpus is made with xp = cupy (never at module import).
"""
from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext

import numpy as np

from .kernels import is_cupy

NO_POOL_ENV = "ALEXNET_CUDA_NO_POOL"


def is_cupy_module(xp) -> bool:
    return getattr(xp, "__name__", "") == "cupy"


def gpu_xp():
    """cupy when it is importable and sees a CUDA device, else None (the kernels then run in the emulator)."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        return cupy if cupy.is_available() else None
    except RuntimeError:  # CUDA runtime errors where there is no driver (CUDARuntimeError)
        return None


def as_numpy(array):
    """`array` as a NumPy array on the host (cupy.asnumpy for a CuPy array; NumPy arrays as they are).

    A CuPy array is read after its whole device has finished its queued work: `ndarray.get` copies on the
    *current* stream (cupy/_core/core.pyx `get`), which need not be the stream that wrote the array (a
    read inside another logical GPU's `on`, or under per-thread default streams)."""
    if is_cupy(array):
        import cupy

        array.device.synchronize()
        return cupy.asnumpy(array)
    return np.asarray(array)


class LogicalGpus:
    """`count` logical GPUs in the array world `xp` (numpy: the CPU emulator; cupy: real devices)."""

    def __init__(self, count: int, xp=np):
        self.count = max(1, int(count))
        self.xp = xp
        self.on_device = is_cupy_module(xp)
        # The counts of the current batch, and one (copies, bytes) per finished batch: the API of
        # replay/network.py Transfers, which the store and the site read.
        self.copies = 0
        self.bytes = 0
        self.per_batch: list[tuple[int, int]] = []
        self.wait_seconds = 0.0  # time the target streams waited for their sources, this batch
        self.wait_per_batch: list[float] = []
        self._pending_waits: list = []  # (device, start, end): event pairs on target streams, resolved in end_batch
        if self.on_device:
            cuda = xp.cuda
            physical = cuda.runtime.getDeviceCount()
            self.devices = [k if k < physical else 0 for k in range(self.count)]
            self.streams, self.pools = [], []
            # ALEXNET_CUDA_NO_POOL=1: no memory pools at all, every array its own cudaMalloc, so that
            # compute-sanitizer's memcheck sees an overrun into a neighbour (inside a pool's chunk it
            # cannot). bench/gpu_verify.sh's sanitize phase sets it; it is slow, for checking only.
            no_pool = os.environ.get(NO_POOL_ENV, "").strip().lower() in ("1", "true", "yes")
            if no_pool:
                cuda.set_allocator(None)  # the default pool too (work outside `on`)
            for device in self.devices:
                with cuda.Device(device):
                    self.streams.append(cuda.Stream())  # blocking: see the module docstring
                    self.pools.append(None if no_pool else cuda.MemoryPool())
        else:
            self.devices = [0] * self.count  # one "host" world
            self.streams = self.pools = [None] * self.count

    def describe(self) -> str:
        if not self.on_device:
            return f"{self.count} logical GPU(s) in host memory (CPU emulator)"
        return ", ".join(f"logical GPU {k} → device {d}" for k, d in enumerate(self.devices))

    # --- placement ----------------------------------------------------------------------------

    def on(self, gpu: int | None):
        """A context in which work is done for logical GPU `gpu`: its device, its stream (kernel launches
        and cupy operations go there) and its memory pool. On the CPU, or for host data (gpu None), nothing."""
        if not self.on_device or gpu is None or gpu < 0:
            return nullcontext()
        return self._on_device(gpu)

    @contextmanager
    def _on_device(self, gpu: int):
        cuda = self.xp.cuda
        # None: cudaMalloc for every array (cupy/cuda/__init__.py using_allocator: "memory pool is disabled")
        malloc = None if self.pools[gpu] is None else self.pools[gpu].malloc
        with cuda.Device(self.devices[gpu]), self.streams[gpu], cuda.using_allocator(malloc):
            yield

    def to(self, gpu: int | None, array):
        """Host → logical GPU `gpu` (on the CPU: the array itself). A CuPy array already on that device is
        returned; one on another device is copied there (cupy.asarray would hand back the other device's
        array unchanged: cupy/_creation/from_data.py asarray copies only for a dtype or order change)."""
        if not self.on_device or gpu is None or gpu < 0:
            return array
        with self.on(gpu):
            if is_cupy(array) and array.device.id != self.devices[gpu]:
                return array.copy()  # ndarray.copy makes the copy on the current device
            return self.xp.asarray(array)

    def to_host(self, array) -> np.ndarray:
        return as_numpy(array)

    # --- copies between logical GPUs ------------------------------------------------------------

    def copy(self, array, source: int | None, target: int | None):
        """`array`, produced on logical GPU `source`, on logical GPU `target`. Host data (source None or
        < 0: the data layers) is placed on the target, not counted (it is copied to each GPU anyway; not
        GPU-to-GPU traffic); the same GPU returns the array itself; otherwise a counted copy."""
        if source is None or source < 0:
            return self.to(target, array)
        if target is None or source == target:
            return array
        self.copies += 1
        self.bytes += int(array.nbytes)
        if not self.on_device:
            return array.copy()
        return self._device_copy(array, source, target)

    def _device_copy(self, array, source: int, target: int):
        cuda = self.xp.cuda
        with self.on(source):
            array = self.xp.ascontiguousarray(array)
            ready = cuda.Event(disable_timing=True)
            ready.record(self.streams[source])  # the source's work up to here, this array included
        with self.on(target):
            out = self.xp.empty(array.shape, dtype=array.dtype)  # from the target's pool, on its device
            stream = self.streams[target]
            start, end = cuda.Event(), cuda.Event()
            start.record(stream)
            stream.wait_event(ready)
            end.record(stream)
            self._pending_waits.append((self.devices[target], start, end))
            src_device, dst_device = self.devices[source], self.devices[target]
            if src_device != dst_device:
                cuda.runtime.memcpyPeerAsync(out.data.ptr, dst_device, array.data.ptr, src_device, array.nbytes,
                                             stream.ptr)
            else:
                self.xp.copyto(out, array)  # queued on the target's (current) stream
            # The source block must not be overwritten before the copy has read it. CuPy's pool reuses a
            # freed block only on the stream it was allocated on (cupy/cuda/memory.pyx: a block is taken
            # from the arena of the current stream, SingleDeviceMemoryPool._malloc -> _arena(stream), and
            # goes back to that same arena when freed, free -> chunk.arena), here the source's, so make
            # the source stream wait for the copy before anything it runs next. (An event is recorded
            # on a stream of its own device: made here, under the target's device.)
            done = cuda.Event(disable_timing=True)
            done.record(stream)
        with cuda.Device(self.devices[source]):
            self.streams[source].wait_event(done)
        return out

    # --- per batch ------------------------------------------------------------------------------

    def start_batch(self) -> None:
        self.copies = self.bytes = 0
        self.wait_seconds = 0.0
        self._pending_waits = []

    def end_batch(self) -> None:
        """Close the batch: its (copies, bytes) go to per_batch; the waits measured by its event pairs
        (synchronising on their end events, once per batch) to wait_per_batch."""
        for device, start, end in self._pending_waits:
            with self.xp.cuda.Device(device):  # the events' own device (cudaEventElapsedTime on two cards)
                end.synchronize()
                self.wait_seconds += self.xp.cuda.get_elapsed_time(start, end) / 1000.0
        self._pending_waits = []
        self.per_batch.append((self.copies, self.bytes))
        self.wait_per_batch.append(self.wait_seconds)
        self.copies = self.bytes = 0
        self.wait_seconds = 0.0

    def synchronize(self) -> None:
        """Wait for every logical GPU's stream (before reading results on the host, or timing)."""
        if self.on_device:
            for k, stream in enumerate(self.streams):
                with self.xp.cuda.Device(self.devices[k]):
                    stream.synchronize()
