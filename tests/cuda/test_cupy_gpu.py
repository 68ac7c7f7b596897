"""What CuPy 14.2 does with our kernels and logical GPUs, on a real GPU (all marked `gpu`: skipped in CI).

Written against CuPy 14.2's source (cited in replay/backends/cuda/kernels.py and devices.py) without a GPU to
run them on: each test states the behaviour the backend relies on, so a failure names the assumption that
does not hold. Tests that need two physical devices skip on one."""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends.cuda import dense, kernels
from replay.backends.cuda.devices import LogicalGpus, as_numpy

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cupy():
    import cupy

    return cupy


def _devices(cupy) -> int:
    return cupy.cuda.runtime.getDeviceCount()


def test_every_kernel_file_compiles_and_every_kernel_is_found_through_raw_module(cupy):
    """cupy.RawModule with our OPTIONS on this device (CuPy adds its own options, see CUPY_ADDED_OPTIONS)."""
    for name, path in kernels.kernel_index().items():
        module = kernels.module_for(path, "cupy")
        kernel = module.get_function(name)
        assert kernel.num_regs > 0, name  # the Function was loaded on this device
        assert kernel.max_threads_per_block >= 256, name  # __launch_bounds__(256) kernels fit 256 threads


def test_scalars_arrive_as_32_bit_values(cupy):
    """np.float32 / np.int32 arguments are passed as 4-byte values (cupy/_core/_scalar.pyx CScalar)."""
    x = cupy.arange(1000, dtype=cupy.float32)
    y = cupy.zeros_like(x)
    kernels.launch(x, "scale_kernel", kernels.grid_for(999), kernels.BLOCK,
                   (x, y, np.int32(999), np.float32(0.5)))
    got = cupy.asnumpy(y)
    assert np.array_equal(got[:999], 0.5 * np.arange(999, dtype=np.float32)) and got[999] == 0


def test_a_launch_goes_to_the_current_stream(cupy):
    """RawKernel.__call__ with no stream launches on the current stream (cupy/cuda/function.pyx _get_stream):
    captured into a graph on a capturing stream, it has not run until the graph is launched."""
    x = cupy.arange(4096, dtype=cupy.float32)
    y = cupy.zeros_like(x)
    args = (x, y, np.int32(x.size), np.float32(3.0))
    kernels.launch(x, "scale_kernel", kernels.grid_for(x.size), kernels.BLOCK, args)  # loads the module
    y.fill(0)
    cupy.cuda.Device().synchronize()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        kernels.launch(x, "scale_kernel", kernels.grid_for(x.size), kernels.BLOCK, args)
        graph = stream.end_capture()
    cupy.cuda.Device().synchronize()
    assert not bool(y.any()), "the kernel ran outside the capturing (current) stream"
    graph.launch(stream)
    stream.synchronize()
    assert np.array_equal(cupy.asnumpy(y), 3.0 * np.arange(4096, dtype=np.float32))


def test_one_cached_kernel_launches_on_each_device(cupy):
    """RawModule.get_function's RawKernel picks the current device at each call (cupy/_core/raw.pyx
    RawKernel._kernel): the cached kernel runs on device 1 with device 1's arrays."""
    if _devices(cupy) < 2:
        pytest.skip("needs two CUDA devices")
    host = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    want = np.maximum(host, 0)
    functions = []
    for device in (0, 1, 0):
        with cupy.cuda.Device(device):
            x = cupy.asarray(host)
            y = dense.neuron_forward(x, "relu")
            assert y.device.id == device
            assert np.array_equal(cupy.asnumpy(y), want), device
            functions.append(kernels.function(x, "neuron_forward_kernel"))
    assert functions[0] is functions[1] is functions[2]


def test_two_logical_gpus_on_one_device_launch_on_their_own_stream_and_pool(cupy, monkeypatch):
    monkeypatch.setattr(cupy.cuda.runtime, "getDeviceCount", lambda: 1)  # as on a one-GPU machine
    gpus = LogicalGpus(2, cupy)
    assert gpus.devices == [0, 0]
    host = np.random.default_rng(1).standard_normal((256, 64)).astype(np.float32)
    outputs = []
    for k in (0, 1):
        before = [pool.used_bytes() for pool in gpus.pools]
        with gpus.on(k):
            assert cupy.cuda.get_current_stream() == gpus.streams[k]
            assert cupy.cuda.Device().id == gpus.devices[k]
            x = gpus.to(k, host)
            y = dense.neuron_forward(x, "relu")
        after = [pool.used_bytes() for pool in gpus.pools]
        # the input and the output, from k's own pool (both alive: a freed block leaves used_bytes at once)
        assert after[k] >= before[k] + 2 * host.nbytes
        assert after[1 - k] == before[1 - k]
        outputs.append((x, y))
    gpus.synchronize()
    for _, y in outputs:
        assert np.array_equal(as_numpy(y), np.maximum(host, 0))


def test_work_on_a_logical_gpu_is_seen_by_host_reads_outside_it(cupy):
    """A result read on the legacy default stream (cupy.asnumpy outside `on`) waits for the logical GPU's
    stream: the streams are blocking (devices.py docstring). Many queued additions make a race visible."""
    gpus = LogicalGpus(2, cupy)
    with gpus.on(1):
        a = cupy.zeros(1 << 22, dtype=cupy.float32)
        for _ in range(200):
            a += 1
    assert float(cupy.asnumpy(a).min()) == 200.0
    with gpus.on(0):
        b = cupy.zeros(1 << 22, dtype=cupy.float32)
        for _ in range(200):
            b += 1
        assert float(as_numpy(a).min()) == 200.0  # as_numpy synchronises the device first
    assert float(as_numpy(b).max()) == 200.0


def test_a_copy_between_logical_gpus_arrives_after_its_producer(cupy):
    """copy() orders the target after the source with an event (and, on two devices, copies peer to peer:
    runtime.memcpyPeerAsync(dst, dst_device, src, src_device, size, stream))."""
    gpus = LogicalGpus(2, cupy)
    with gpus.on(0):
        a = cupy.zeros(1 << 22, dtype=cupy.float32)
        for _ in range(100):
            a += 1  # still queued on logical GPU 0's stream when the copy is queued
    gpus.start_batch()
    b = gpus.copy(a, 0, 1)
    gpus.end_batch()
    assert b.device.id == gpus.devices[1]
    with gpus.on(1):
        total = float(b.sum())  # read on logical GPU 1's stream
    assert total == 100.0 * a.size
    assert gpus.per_batch[-1] == (1, a.nbytes) and gpus.wait_per_batch[-1] >= 0.0
