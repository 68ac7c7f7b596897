"""What ptxas gives each kernel, read from the CUBIN NVRTC builds (no GPU): the launches the backend makes
must get their shared memory and registers on the GPU, which the emulator cannot tell.

- Shared memory: a block gets 48 KiB without an opt-in (static + dynamic). On sm_90 the kernel's shared
  section also holds the 1 KiB the system keeps per block; the tap tables of the tile128 conv kernels are
  sized by conv.TABLE_LIMIT from what is left (replay/backends/cuda/conv.py).
- Registers: the launcher lets a block have up to the kernel's __launch_bounds__ threads (else 1024), so
  registers x that many threads must fit the 64 Ki registers a block can have.
- Local memory: none (no spills, no local arrays): the kernels are written to keep their tiles in registers.
"""
from __future__ import annotations

import re

import pytest

from replay.backends.cuda import conv, kernels

ARCHS = ("sm_80", "sm_90")
BLOCK_SHARED_LIMIT = 48 * 1024
BLOCK_REGISTERS = 64 * 1024
OPTIONS = (*kernels.OPTIONS, *kernels.CUPY_ADDED_OPTIONS)
# the kernels launched with dynamic shared memory, and the most they are given
DYNAMIC_SHARED = {conv.VARIANTS["forward"]["tile128"]: conv.TABLE_LIMIT,
                  conv.VARIANTS["data"]["tile128"]: conv.TABLE_LIMIT}


@pytest.fixture(scope="module", params=ARCHS)
def resources(request, nvrtc):
    """(arch, {kernel: KernelResources}) of every kernel of the backend."""
    found = {}
    for path in kernels.sources():
        cubin = nvrtc.compile_source(path.read_text(encoding="utf-8"), path.name, options=OPTIONS, arch=request.param)
        found.update(nvrtc.kernel_resources(cubin))
    return request.param, found


def test_every_kernel_is_in_the_cubins(resources):
    _, found = resources
    assert set(found) == set(kernels.kernel_index())
    assert all(r.registers > 0 for r in found.values())


def test_the_kernels_with_dynamic_shared_memory_are_the_tap_table_ones():
    declares = {name for name, path in kernels.kernel_index().items()
                if re.search(rf"{name}\s*\([^{{]*\)\s*{{[^}}]*?extern\s+__shared__", path.read_text(encoding="utf-8"))}
    assert declares == set(DYNAMIC_SHARED)


def test_static_and_dynamic_shared_memory_fit_a_block(resources):
    arch, found = resources
    for name, r in found.items():
        total = r.shared_bytes + DYNAMIC_SHARED.get(name, 0)
        assert total <= BLOCK_SHARED_LIMIT, (arch, name, r.shared_bytes, DYNAMIC_SHARED.get(name, 0))
    # the tile128 kernels' static shared memory is what TABLE_LIMIT was computed from
    for name in DYNAMIC_SHARED:
        assert found[name].shared_bytes <= conv._BIG_STATIC_SHARED + conv._RESERVED_SHARED, (arch, name)


def test_the_registers_of_the_largest_block_the_launcher_allows_fit(resources):
    arch, found = resources
    bounds = kernels.launch_bounds()
    for name, r in found.items():
        assert r.registers * bounds[name] <= BLOCK_REGISTERS, (arch, name, r.registers, bounds[name])


def test_no_kernel_uses_local_memory(resources):
    arch, found = resources
    assert {name: r.frame_bytes for name, r in found.items() if r.frame_bytes} == {}, arch


def test_the_reader_sees_shared_memory_registers_and_local_memory(nvrtc):
    """On a toy source: a 1 KiB shared array, and a local array indexed at run time (which lives in local
    memory, as a spill would) — so the checks above can fail."""
    source = r'''
extern "C" __global__ void uses_shared(float* out) {
    __shared__ float tile[256];
    tile[threadIdx.x] = out[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = tile[255 - threadIdx.x];
}
extern "C" __global__ void uses_local(float* out, int pick) {
    float scratch[64];
    for (int i = 0; i < 64; ++i) scratch[i] = out[i * blockDim.x + threadIdx.x];
    for (int i = 0; i < 64; ++i) scratch[(i * pick) & 63] += 1.0f;
    float sum = 0.0f;
    for (int i = 0; i < 64; ++i) sum += scratch[i] * i;
    out[threadIdx.x] = sum;
}
'''
    found = nvrtc.kernel_resources(nvrtc.compile_source(source, "toy.cu", options=OPTIONS, arch="sm_80"))
    assert set(found) == {"uses_shared", "uses_local"}
    assert found["uses_shared"].shared_bytes == 1024 and found["uses_shared"].frame_bytes == 0
    assert found["uses_local"].frame_bytes >= 256 and found["uses_local"].shared_bytes == 0
    assert all(r.registers > 0 for r in found.values())


def test_the_reader_refuses_what_is_not_a_cubin(nvrtc):
    ptx = nvrtc.compile_source('extern "C" __global__ void k() {}', "k.cu", arch="sm_80", cubin=False)
    with pytest.raises(ValueError, match="not a little-endian 64-bit ELF"):
        nvrtc.kernel_resources(ptx)
