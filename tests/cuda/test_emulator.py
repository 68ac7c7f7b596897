"""The CPU emulation harness itself (replay/backends/cuda/emulator), on toy kernels in kernels_for_tests/."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from replay.backends.cuda.emulator import (
    EmulatorCompileError,
    EmulatorError,
    load_module,
)


@pytest.fixture(scope="module")
def matmul(toy_kernel):
    return load_module(toy_kernel("matmul_tiled"))


@pytest.fixture(scope="module")
def reduce_module(toy_kernel):
    return load_module(toy_kernel("block_reduce"))


@pytest.fixture(scope="module")
def warp_module(toy_kernel):
    return load_module(toy_kernel("warp_reduce"))


@pytest.fixture(scope="module")
def hist_module(toy_kernel):
    return load_module(toy_kernel("histogram"))


def run_matmul(module, a, b):
    m, k = a.shape
    n = b.shape[1]
    c = np.full((m, n), np.nan, np.float32)
    module.get_function("matmul_tiled")(((n + 15) // 16, (m + 15) // 16), (16, 16),
                                        (a, b, c, np.int32(m), np.int32(n), np.int32(k)))
    return c


@pytest.mark.parametrize("m,n,k", [(16, 16, 16), (37, 45, 29), (1, 33, 7), (50, 3, 64)])
def test_tiled_matmul_matches_numpy_on_ragged_sizes(matmul, m, n, k):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    np.testing.assert_allclose(run_matmul(matmul, a, b), a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block,grid", [(256, 3), (64, 1), (128, 7)])
def test_block_reduction_with_atomics(reduce_module, block, grid):
    x = np.random.default_rng(block).standard_normal(1000).astype(np.float32)
    out = np.zeros(1, np.float32)
    positives = np.zeros(1, np.int32)
    reduce_module.get_function("block_reduce_sum")(grid, block, (x, out, positives, np.int32(x.size)))
    np.testing.assert_allclose(out[0], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-4)
    assert positives[0] == (x > 0).sum()


def test_syncthreads_count_and_or(reduce_module):
    x = np.ones(96, np.float32)
    x[5] = -1.0          # block 0: 31 of 32 positive
    x[64:] = -1.0        # block 2: none positive
    result = np.zeros(9, np.int32)
    reduce_module.get_function("sync_predicates")(3, 32, (x, result, np.int32(x.size)))
    assert result.reshape(3, 3).tolist() == [[31, 0, 1], [32, 1, 1], [0, 0, 0]]


def test_missing_syncthreads_gives_wrong_results(reduce_module):
    """The block's threads are real threads: without __syncthreads the tree reduction races. Each run is a
    fresh set of 1024 OS threads, so at least one of several runs must come out wrong (20 of 20 in practice)."""
    x = np.ones(1024, np.float32)
    kernel = reduce_module.get_function("block_reduce_sum_racy")
    results = []
    for _ in range(6):
        out = np.zeros(1, np.float32)
        kernel(1, 1024, (x, out, np.int32(x.size)))
        results.append(float(out[0]))
    assert any(r != 1024.0 for r in results), results


def test_warp_shuffle_two_level_reduction(warp_module):
    rng = np.random.default_rng(3)
    for rows, cols, block in [(3, 100, 128), (2, 31, 32), (4, 64, 256)]:
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        row_max = np.zeros(rows, np.float32)
        row_sum = np.zeros(rows, np.float32)
        warp_module.get_function("row_max_sum")(rows, block, (x, row_max, row_sum, np.int32(cols)))
        np.testing.assert_array_equal(row_max, x.max(axis=1))
        np.testing.assert_allclose(row_sum, x.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_shuffle_up_width_and_votes(warp_module):
    x = np.random.default_rng(4).integers(-3, 5, 64).astype(np.int32)
    x[32:] = np.abs(x[32:]) + 1                      # warp 1: all positive
    scan, bcast = np.zeros(64, np.int32), np.zeros(64, np.int32)
    ballot, votes = np.zeros(2, np.uint32), np.zeros(4, np.int32)
    warp_module.get_function("warp_scan")(1, 64, (x, scan, bcast, ballot, votes))
    np.testing.assert_array_equal(scan, np.concatenate([np.cumsum(x[:32]), np.cumsum(x[32:])]))
    np.testing.assert_array_equal(bcast, np.repeat(x.reshape(8, 8)[:, 3], 8))
    expected_ballot = [sum(1 << i for i in range(32) if x[w * 32 + i] > 0) for w in range(2)]
    assert ballot.tolist() == expected_ballot
    assert votes.tolist() == [int((x[:32] > 0).any()), int((x[:32] > 0).all()), 1, 1]


def test_shuffle_reading_an_exited_lane_is_an_error_in_strict_mode(toy_kernel):
    x = np.arange(32, dtype=np.float32)
    y = np.zeros(32, np.float32)
    strict = load_module(toy_kernel("warp_reduce"))
    kernel = strict.get_function("shuffle_exited_lane")
    with pytest.raises(EmulatorError, match=r"shuffle_exited_lane.*read lane 20 \((exited|absent)"):
        kernel(1, 32, (x, y, np.int32(20)))
    kernel(1, 32, (x, y, np.int32(32)))              # every lane present: defined
    np.testing.assert_array_equal(y[:31], x[1:])
    lenient = load_module(toy_kernel("warp_reduce"), strict=False)
    lenient.get_function("shuffle_exited_lane")(1, 32, (x, y, np.int32(20)))  # poison, no exception
    assert np.isnan(y[19])


def test_dynamic_shared_memory_histogram(hist_module):
    bins = 50
    values = np.random.default_rng(5).integers(0, bins, 3000).astype(np.int32)
    counts = np.zeros(bins, np.uint32)
    hist_module.get_function("histogram")(4, 128, (values, counts, np.int32(values.size), np.int32(bins)),
                                          shared_mem=bins * 4)
    np.testing.assert_array_equal(counts, np.bincount(values, minlength=bins))


def test_dynamic_shared_memory_is_poisoned_at_each_block(hist_module):
    out = np.zeros((2, 40), np.float32)
    hist_module.get_function("read_uninitialised_shared")(2, 32, (out, np.int32(40)), shared_mem=40 * 4)
    assert np.isnan(out).all()
    assert (out.view(np.uint32) == 0xFFFFFFFF).all()


def test_scalar_parameters_arrive_intact(hist_module):
    out = np.zeros(10, np.float64)
    hist_module.get_function("scalar_kinds")(1, 1, (out, np.int32(-7), np.uint32(4000000000), np.int64(-2**40),
                                                    np.float32(1.5), np.float64(2.25), np.uint64(2**63)))
    assert out.tolist() == [-7, 4000000000, -2**40, 1.5, 2.25, 2.0**63, -7, 2.5, 13, 0.5]


def test_shuffled_block_order(hist_module, monkeypatch):
    """Order-independent kernels give the same result in any block order; the order really changes."""
    kernel = hist_module.get_function("record_block_order")

    def order():
        counter, slot = np.zeros(1, np.uint32), np.zeros(64, np.uint32)
        kernel(64, 32, (counter, slot))
        return slot.tolist()

    assert order() == list(range(64))
    monkeypatch.setenv("ALEXNET_EMU_SHUFFLE", "7")
    shuffled = order()
    assert shuffled != list(range(64)) and sorted(shuffled) == list(range(64))
    assert order() == shuffled                          # a seed gives one order
    values = np.random.default_rng(6).integers(0, 20, 500).astype(np.int32)
    counts = np.zeros(20, np.uint32)
    hist_module.get_function("histogram")(8, 32, (values, counts, np.int32(500), np.int32(20)), shared_mem=80)
    np.testing.assert_array_equal(counts, np.bincount(values, minlength=20))
    monkeypatch.delenv("ALEXNET_EMU_SHUFFLE")
    seeded = load_module(hist_module.source_path, shuffle=11)
    counter, slot = np.zeros(1, np.uint32), np.zeros(64, np.uint32)
    seeded.get_function("record_block_order")(64, 32, (counter, slot))
    assert sorted(slot.tolist()) == list(range(64)) and slot.tolist() != list(range(64))


# ---- argument checking -----------------------------------------------------------------------------------

@pytest.mark.parametrize("position,value,pattern", [
    (3, 5, r"matmul_tiled: parameter 3 `int m` expects np.int32.*Python int"),
    (3, np.int64(5), r"parameter 3 `int m` expects np.int32.*np.int64"),
    (4, 5.0, r"parameter 4 `int n` expects np.int32.*Python float"),
    (0, np.zeros((4, 4)), r"parameter 0 `const float\* __restrict a` expects a float32 array.*float64"),
    (0, np.zeros((4, 8), np.float32)[:, ::2], r"parameter 0 .* expects a C-contiguous array"),
    (2, [0.0] * 16, r"parameter 2 `float\* __restrict c` expects a NumPy array.*Python list"),
    (1, np.zeros((4, 4), np.int32), r"parameter 1 .* expects a float32 array.*int32"),
])
def test_argument_mismatches_are_refused(matmul, position, value, pattern):
    a = np.zeros((4, 4), np.float32)
    args = [a, a.copy(), a.copy(), np.int32(4), np.int32(4), np.int32(4)]
    args[position] = value
    with pytest.raises(TypeError, match=pattern):
        matmul.get_function("matmul_tiled")(1, (16, 16), tuple(args))


def test_float_parameter_refuses_python_float_and_float64(hist_module):
    out = np.zeros(10, np.float64)
    good = [out, np.int32(1), np.uint32(1), np.int64(1), np.float32(1), np.float64(1), np.uint64(1)]
    kernel = hist_module.get_function("scalar_kinds")
    for bad in (1.0, np.float64(1.0)):
        args = list(good)
        args[4] = bad
        with pytest.raises(TypeError, match=r"kernel scalar_kinds: parameter 4 `float d` expects np.float32"):
            kernel(1, 1, tuple(args))
    with pytest.raises(TypeError, match=r"takes 7 arguments"):
        kernel(1, 1, tuple(good[:6]))


def test_bad_launch_shapes(matmul):
    a = np.zeros((4, 4), np.float32)
    args = (a, a.copy(), a.copy(), np.int32(4), np.int32(4), np.int32(4))
    kernel = matmul.get_function("matmul_tiled")
    with pytest.raises(ValueError, match="1025 threads"):
        kernel(1, (1025,), args)
    with pytest.raises(TypeError, match="grid must be"):
        kernel((1, 2, 3, 4), 16, args)
    with pytest.raises(AttributeError, match="no extern \"C\" __global__ kernel 'nope'"):
        matmul.get_function("nope")


# ---- compiling -------------------------------------------------------------------------------------------

def test_compile_error_names_the_file_and_line(toy_kernel, emu_cache):
    path = toy_kernel("broken")
    with pytest.raises(EmulatorCompileError) as caught:
        load_module(path)
    assert f"{path}:5:" in str(caught.value)
    assert "no_such_function" in str(caught.value)


def test_compile_error_in_source_text_uses_the_given_name(emu_cache):
    source = "extern \"C\" __global__ void k(float* x) {\n    x[0] = 1.0f\n}\n"   # missing ';' on line 2
    with pytest.raises(EmulatorCompileError, match=r"my_kernel\.cu:2:"):
        load_module(source, name="my_kernel.cu")


def test_signatures_from_macros_defines_and_extern_c_blocks(emu_cache):
    source = textwrap.dedent("""\
        #define KERNEL(name) extern "C" __global__ void name(float* __restrict__ y, const float* x, SCALE_T s)
        KERNEL(scale) { y[threadIdx.x] = x[threadIdx.x] * s; }
        extern "C" {
        __global__ void __launch_bounds__(64) twice(float* y) { y[threadIdx.x] *= 2.0f; }
        }
        __global__ void mangled(float* y) {}
        """)
    module = load_module(source, defines={"SCALE_T": "double"})
    assert sorted(module.kernels) == ["scale", "twice"]
    assert [p.dtype for p in module.kernels["scale"].params] == ["float32", "float32", "float64"]
    x, y = np.arange(8, dtype=np.float32), np.zeros(8, np.float32)
    module.get_function("scale")(1, 8, (y, x, np.float64(0.5)))
    module.get_function("twice")(1, 8, (y,))
    np.testing.assert_array_equal(y, x)
    with pytest.raises(AttributeError, match="not extern"):
        module.get_function("mangled")


def test_cache_reuse(toy_kernel, emu_cache):
    first = load_module(toy_kernel("matmul_tiled"))
    assert not first.from_cache and first.library_path.parent == emu_cache
    stamp = first.library_path.stat().st_mtime_ns
    second = load_module(toy_kernel("matmul_tiled"))
    assert second.from_cache and second.library_path == first.library_path
    other_defines = load_module(toy_kernel("matmul_tiled"), defines=["UNUSED=1"])
    assert not other_defines.from_cache and other_defines.library_path != first.library_path
    # A fresh process finds it too, and nothing is rebuilt.
    code = ("from replay.backends.cuda.emulator import load_module; import sys; "
            "print(load_module(sys.argv[1]).from_cache)")
    out = subprocess.run([sys.executable, "-c", code, str(toy_kernel("matmul_tiled"))], capture_output=True,
                         text=True, env=dict(os.environ), cwd=os.getcwd(), check=True).stdout
    assert out.strip() == "True"
    assert first.library_path.stat().st_mtime_ns == stamp
    assert not [p for p in emu_cache.iterdir() if p.name.endswith(".tmp") or p.suffix == ".cpp"]


def test_two_processes_compiling_at_once(toy_kernel, emu_cache):
    code = ("from replay.backends.cuda.emulator import load_module; import sys, numpy as np; "
            "m = load_module(sys.argv[1]); o = np.zeros(1, np.float32); p = np.zeros(1, np.int32); "
            "m.get_function('block_reduce_sum')(1, 32, (np.ones(10, np.float32), o, p, np.int32(10))); "
            "print(o[0])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(toy_kernel("block_reduce"))], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs == ["10.0", "10.0"]
    assert len(list(emu_cache.glob("*.so"))) == 1
