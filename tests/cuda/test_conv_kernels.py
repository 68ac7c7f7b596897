"""kernels/conv.cu through the CPU emulator (NumPy arrays) against the NumPy reference, on small shapes.

Every shape is compared with replay/backends/numpy_ref/conv.py evaluated in float64 on the same float32
inputs; the error is max |got − want| / max |want| per array, which must stay below 1e-4 (float32 sums of
a few hundred terms). The shapes cover padding, stride with a past-the-border last module, an 11×11
stride-4 filter, groups, randSparse with overSample 2, filter/channel counts over one 64-wide tile, N = 1,
and partialSum runs.

Every GEMM variant (cuda_conv.VARIANTS: tile64, tile128) runs every shape, forced through
ALEXNET_CONV_VARIANT; a recorder around the launcher checks that the forced kernel is the one that ran.
"""
from __future__ import annotations

import numpy as np
import pytest

from replay.backends.cuda import conv as cuda_conv
from replay.backends.numpy_ref import conv as ref

RTOL = 1e-4
VARIANT_NAMES = sorted(cuda_conv.VARIANT_TILE)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float32
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def assert_close(got, want, rtol=RTOL):
    error = relative_error(got, want)
    assert error <= rtol, f"relative error {error:.3g} > {rtol}"


# (channels, image_size, filter_size, padding, stride, filters, groups, cases, conns overSample or 0)
SHAPES = {
    "3x3-pad1": (3, 9, 3, 1, 1, 8, 1, 5, 0),
    "5x5-stride2-groups2": (8, 12, 5, 2, 2, 16, 2, 6, 0),  # Mx = 1 + ceil(11/2) = 7 reaches past the border
    "11x11-stride4": (3, 27, 11, 0, 4, 8, 1, 5, 0),
    "randsparse": (4, 10, 3, 1, 1, 8, 4, 5, 2),  # 4 groups of Cf = 2 channels, conns = 2 permutations
    "wide-tiles-n1": (66, 7, 3, 1, 1, 70, 1, 1, 0),  # filters and channels over one 64 tile
    # Over one 128 tile: 130 filters and 129 channels (a 2- and a 1-wide second tile), K = 129·1·1 and
    # fs²·Fg = 130 not multiples of the 8 or 16 chunk, M·N = 9·3 columns, padding with a 1×1 filter.
    "wide-128": (129, 3, 1, 1, 1, 130, 1, 3, 0),
}


def make_case(name: str, seed: int = 0, local: bool = False):
    channels, size, fs, padding, stride, filters, groups, cases, over = SHAPES[name]
    rng = np.random.default_rng(seed)
    mx = ref.modules_x_for(size, fs, padding, stride)
    conns = None
    cf = channels // groups
    if over:
        cf = over * channels // groups
        conns = np.concatenate([rng.permutation(channels) for _ in range(over)]).astype(np.int32)
    kw = {"channels": channels, "filter_size": fs, "padding": padding, "stride": stride, "groups": groups,
              "filter_channels": cf, "modules_x": mx, "conns": conns}
    taps = cf * fs * fs
    rows = mx * mx * taps if local else taps
    x = rng.standard_normal((channels * size * size, cases)).astype(np.float32)
    w = rng.standard_normal((rows, filters)).astype(np.float32)
    dy = rng.standard_normal((filters * mx * mx, cases)).astype(np.float32)
    return x, w, dy, kw, size


def f64(a):
    return a.astype(np.float64)


@pytest.fixture
def launches(monkeypatch):
    """The kernel names launched through replay/backends/cuda/conv.py during the test, in order."""
    names: list[str] = []
    real = cuda_conv.launch

    def record(like, kernel, *args, **kwargs):
        names.append(kernel)
        return real(like, kernel, *args, **kwargs)

    monkeypatch.setattr(cuda_conv, "launch", record)
    return names


def force(monkeypatch, variant: str) -> None:
    monkeypatch.setenv(cuda_conv.VARIANT_ENV, variant)


def assert_ran(launches: list[str], op: str, variant: str) -> None:
    kernel = cuda_conv.VARIANTS[op][variant]
    assert kernel in launches, f"{kernel} was not launched: {launches}"
    others = set(cuda_conv.VARIANTS[op].values()) - {kernel}
    assert not others & set(launches), launches


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_forward_and_gradients(name, variant, monkeypatch, launches):
    force(monkeypatch, variant)
    x, w, dy, kw, size = make_case(name)
    assert_close(cuda_conv.conv_forward(x, w, **kw), ref.conv_forward(f64(x), f64(w), **kw))
    assert_ran(launches, "forward", variant)
    launches.clear()
    assert_close(cuda_conv.conv_backward_data(dy, w, image_size=size, **kw),
                 ref.conv_backward_data(f64(dy), f64(w), image_size=size, **kw))
    assert_ran(launches, "data", variant)
    launches.clear()
    assert_close(cuda_conv.conv_backward_weights(x, dy, **kw), ref.conv_backward_weights(f64(x), f64(dy), **kw))
    assert_ran(launches, "weights", variant)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("partial_sum", [1, 7, 49])
def test_conv_weight_partial_sums(partial_sum, variant, monkeypatch, launches):
    # 5x5-stride2-groups2 has M = 49 modules: 49 runs of 1, 7 runs of 7, one run of 49.
    force(monkeypatch, variant)
    x, _, dy, kw, _ = make_case("5x5-stride2-groups2", seed=1)
    got = cuda_conv.conv_backward_weights(x, dy, partial_sum=partial_sum, **kw)
    assert_close(got, ref.conv_backward_weights(f64(x), f64(dy), partial_sum=partial_sum, **kw))
    assert_ran(launches, "weights", variant)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize(("partial_sum", "per_block", "blocks"), [(1, 5, 10), (7, 3, 3), (7, 7, 1)])
def test_conv_weight_several_runs_per_block(partial_sum, per_block, blocks, variant, monkeypatch, launches):
    # Blocks adding several runs each, the last one fewer (49 = 9·5 + 4 runs; 7 = 2·3 + 1); with one block
    # of all 7 runs no sum_partials launch is left.
    force(monkeypatch, variant)
    monkeypatch.setattr(cuda_conv, "_runs_per_block", lambda parts, blocks_per_run, like: per_block)
    x, _, dy, kw, _ = make_case("5x5-stride2-groups2", seed=5)
    got = cuda_conv.conv_backward_weights(x, dy, partial_sum=partial_sum, **kw)
    assert_close(got, ref.conv_backward_weights(f64(x), f64(dy), partial_sum=partial_sum, **kw))
    assert_ran(launches, "weights", variant)
    assert launches.count("sum_partials_kernel") == (blocks > 1)


def test_runs_per_block_keeps_the_grid_full():
    # Runs are merged only while the grid keeps WEIGHT_BLOCKS_PER_SM blocks on each (emulated: 132)
    # multiprocessor; e.g. #120's conv2 input 1 (243 runs of 3 modules; tile128: 7 tap tiles).
    like = np.zeros(1, np.float32)
    target = cuda_conv.WEIGHT_BLOCKS_PER_SM * cuda_conv.EMULATED_SMS
    for parts, blocks_per_run in [(243, 7), (243, 14), (1005, 1), (49, 4), (4, 600), (3, 2), (1, 1)]:
        per = cuda_conv._runs_per_block(parts, blocks_per_run, like)
        blocks = blocks_per_run * -(-parts // per)
        assert 1 <= per <= parts
        assert blocks >= min(target, parts * blocks_per_run), (parts, blocks_per_run, per)
        assert per == 1 or blocks < 2 * target  # and merged as far as that allows
    assert cuda_conv._runs_per_block(243, 7, like) > 1


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("name", ["3x3-pad1", "5x5-stride2-groups2", "randsparse"])
def test_local_forward_and_gradients(name, variant, monkeypatch, launches):
    force(monkeypatch, variant)
    x, w, dy, kw, size = make_case(name, seed=2, local=True)
    assert_close(cuda_conv.local_forward(x, w, **kw), ref.local_forward(f64(x), f64(w), **kw))
    assert_close(cuda_conv.local_backward_data(dy, w, image_size=size, **kw),
                 ref.local_backward_data(f64(dy), f64(w), image_size=size, **kw))
    assert_close(cuda_conv.local_backward_weights(x, dy, **kw),
                 ref.local_backward_weights(f64(x), f64(dy), **kw))
    assert_ran(launches, "forward", variant)
    assert_ran(launches, "weights", variant)


@pytest.mark.parametrize("shared", [True, False])
def test_bias_add_and_grad(shared):
    rng = np.random.default_rng(3)
    filters, modules, cases = 6, 25, 7
    y = rng.standard_normal((filters * modules, cases)).astype(np.float32)
    b = rng.standard_normal((filters if shared else filters * modules, 1)).astype(np.float32)
    got = cuda_conv.add_conv_bias(y, b, shared=shared, filters=filters)
    assert_close(got, ref.add_conv_bias(f64(y), f64(b), shared=shared, filters=filters), rtol=1e-7)
    inplace = y.copy()
    assert cuda_conv.add_conv_bias(inplace, b, shared=shared, filters=filters, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, got)
    assert_close(cuda_conv.conv_bias_grad(y, shared=shared, filters=filters),
                 ref.conv_bias_grad(f64(y), shared=shared, filters=filters))


def test_refuses_float64_and_bad_geometry():
    x, w, _, kw, _ = make_case("3x3-pad1")
    with pytest.raises(TypeError, match="float32"):
        cuda_conv.conv_forward(f64(x), f64(w), **kw)
    with pytest.raises(ValueError, match="modules_x"):
        cuda_conv.conv_forward(x, w, **{**kw, "modules_x": kw["modules_x"] + 1})


@pytest.mark.parametrize(("name", "variant"), [("wide-tiles-n1", "tile64"), ("randsparse", "tile64"),
                                               ("wide-128", "tile128"), ("randsparse", "tile128")])
def test_results_do_not_depend_on_block_order(name, variant, monkeypatch):
    # Every output element is written by one thread of one block, so a shuffled block order (the emulator's
    # ALEXNET_EMU_SHUFFLE, read at each launch) must give bit-identical results; partialSum runs several
    # to a block (3 + 3 + 1 of 7) included.
    force(monkeypatch, variant)
    monkeypatch.setattr(cuda_conv, "_runs_per_block", lambda parts, blocks_per_run, like: 3)
    x, w, dy, kw, size = make_case(name, seed=4)
    partial_sum = kw["modules_x"] ** 2 // 7 if kw["modules_x"] ** 2 % 7 == 0 else 1

    def run():
        return (cuda_conv.conv_forward(x, w, **kw), cuda_conv.conv_backward_data(dy, w, image_size=size, **kw),
                cuda_conv.conv_backward_weights(x, dy, partial_sum=partial_sum, **kw))

    in_order = run()
    monkeypatch.setenv("ALEXNET_EMU_SHUFFLE", "12345")
    for a, b in zip(in_order, run(), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------- selection


def test_emulator_rule_takes_tile128_for_more_than_64_rows(launches):
    x, w, dy, kw, size = make_case("wide-tiles-n1")  # Fg = 70, Cf = 66, K = 594: all over 64
    cuda_conv.conv_forward(x, w, **kw)
    cuda_conv.conv_backward_data(dy, w, image_size=size, **kw)
    cuda_conv.conv_backward_weights(x, dy, **kw)
    x, w, dy, kw, size = make_case("3x3-pad1")  # Fg = 8, Cf = 3, K = 27
    cuda_conv.conv_forward(x, w, **kw)
    cuda_conv.conv_backward_data(dy, w, image_size=size, **kw)
    cuda_conv.conv_backward_weights(x, dy, **kw)
    gemms = [name for name in launches if name.startswith("conv_") and "acts" in name]
    assert gemms == [cuda_conv.VARIANTS[op]["tile128"] for op in ("forward", "data", "weights")] + \
                    [cuda_conv.VARIANTS[op]["tile64"] for op in ("forward", "data", "weights")]


def test_forced_variant_that_cannot_run_a_shape_falls_back(monkeypatch, launches):
    # tile128's tap table must fit in TABLE_LIMIT bytes of shared memory; the weight kernel needs none.
    force(monkeypatch, "tile128")
    monkeypatch.setattr(cuda_conv, "TABLE_LIMIT", 8 * 26)  # K = 27 taps, fs²·Fg = 72: both too large
    x, w, dy, kw, size = make_case("3x3-pad1")
    assert_close(cuda_conv.conv_forward(x, w, **kw), ref.conv_forward(f64(x), f64(w), **kw))
    cuda_conv.conv_backward_data(dy, w, image_size=size, **kw)
    cuda_conv.conv_backward_weights(x, dy, **kw)
    assert [n for n in launches if "acts" in n] == [cuda_conv.VARIANTS["forward"]["tile64"],
                                                    cuda_conv.VARIANTS["data"]["tile64"],
                                                    cuda_conv.VARIANTS["weights"]["tile128"]]


def test_unknown_forced_variant_is_refused(monkeypatch):
    force(monkeypatch, "tile32")
    x, w, _, kw, _ = make_case("3x3-pad1")
    with pytest.raises(ValueError, match="ALEXNET_CONV_VARIANT"):
        cuda_conv.conv_forward(x, w, **kw)
