"""replay/backends/cuda/dense.py through the CPU emulator (NumPy arrays) against the NumPy reference
(replay/backends/numpy_ref: dense, costs, preprocess) and replay/update.py, on small ragged shapes.

Tolerance: 1e-5 relative (plus a tiny absolute floor for values near 0) in float32: the kernels use
CUDA's expf/logf/tanhf and their own summation order. NaN/inf must appear exactly where the reference has
them. Dropout masks and nrelu noise come from Philox (replay/backends/cuda/philox.py is the mirror).
"""
from __future__ import annotations

import numpy as np
import pytest

from replay import update as ref_update
from replay.backends.cuda import dense, kernels, philox
from replay.backends.numpy_ref import costs as ref_costs
from replay.backends.numpy_ref import dense as ref
from replay.backends.numpy_ref import preprocess as ref_pre

RTOL, ATOL = 1e-5, 1e-6
D, N = 37, 13  # ragged on purpose: neither is a multiple of 4 or 32


def rand(*shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def close(got, want, rtol=RTOL, atol=ATOL):
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def max_rel(got, want):
    ok = np.isfinite(want)
    return float(np.max(np.abs(got[ok] - want[ok]) / np.maximum(np.abs(want[ok]), 1e-6), initial=0.0))


# ---------------------------------------------------------------------------------------------- launcher

def test_every_kernel_is_found_in_exactly_one_file():
    index = kernels.kernel_index()
    for name in ("neuron_forward_kernel", "neuron_backward_kernel", "softmax_forward_kernel", "logreg_cost_kernel",
                 "dropout_forward_kernel", "row_mean_kernel", "copy_kernel", "blur_pass_kernel",
                 "nailbed_backward_kernel", "href_kernel", "sgd_update_kernel"):
        assert index[name].suffix == ".cu"
    with pytest.raises(KeyError, match="no .cu file"):
        kernels.function(np.zeros(1, np.float32), "no_such_kernel")


def test_production_options_are_ieee():
    assert "-std=c++17" in kernels.OPTIONS
    assert not any("fast" in o or "fmad=true" in o for o in kernels.OPTIONS)


def test_xp_of_numpy_does_not_need_cupy():
    assert kernels.xp_of(np.zeros(2)) is np
    assert not kernels.is_cupy(np.zeros(2))


def test_float64_is_refused():
    with pytest.raises(TypeError, match="float32"):
        dense.softmax_forward(np.zeros((3, 2)))


# ------------------------------------------------------------------------------------------------- neurons

NEURONS = [("ident", ()), ("relu", ()), ("logistic", ()), ("tanh", (1.7159, 0.6666)), ("brelu", (1.5,)),
           ("softrelu", ()), ("abs", ()), ("square", ()), ("sqrt", ()), ("linear", (-0.5, 0.25)), ("drelu", (0.7,))]


def neuron_input(seed=1):
    x = rand(D, N, scale=3.0, seed=seed)
    x[0, :6] = [0.0, -0.0, 4.0, 1.5, np.nan, -4.0]  # relu/abs at 0, softrelu's switch, brelu's bound, NaN
    x[1, :3] = [np.inf, -np.inf, 30.0]
    return x


@pytest.mark.parametrize("kind,params", NEURONS, ids=[k for k, _ in NEURONS])
def test_neuron_forward_and_backward_match_reference(kind, params):
    x = neuron_input()
    dy = rand(D, N, seed=2)
    dy[2, :2] = [np.nan, np.inf]
    with np.errstate(all="ignore"):
        y_ref = ref.neuron_forward(x, kind, params)
        y = dense.neuron_forward(x, kind, params)
        close(y, y_ref)
        dx_ref = ref.neuron_backward(x, y_ref, dy, kind, params)
        dx = dense.neuron_backward(x, y_ref, dy, kind, params)
        close(dx, dx_ref)
    assert np.array_equal(np.isnan(y), np.isnan(y_ref)) and np.array_equal(np.isnan(dx), np.isnan(dx_ref))


def test_nrelu_noise_is_the_philox_mirror():
    x = rand(D, N, seed=3)
    y = dense.neuron_forward(x, "nrelu", (), rng=np.random.default_rng(42))
    z = philox.normal(x.shape, philox.draw_key(np.random.default_rng(42)))
    r = np.maximum(x, 0).astype(np.float64)
    close(y, np.maximum(r + r * z, 0).astype(np.float32), rtol=1e-5, atol=1e-5)
    assert (y[x <= 0] == 0).all() and (y > 0).mean() > 0.3
    dy = rand(D, N, seed=4)
    close(dense.neuron_backward(x, y, dy, "nrelu"), ref.neuron_backward(x, y, dy, "nrelu"))
    with pytest.raises(ValueError, match="Generator"):
        dense.neuron_forward(x, "nrelu")


def test_philox_normals_have_unit_variance():
    z = philox.normal((64, 64), (7, 11))
    assert abs(z.mean()) < 0.06 and abs(z.std() - 1) < 0.04


def test_unknown_neuron_and_wrong_parameter_count_raise():
    with pytest.raises(ValueError):
        dense.neuron_forward(rand(2, 2), "abstanh")
    with pytest.raises(ValueError):
        dense.neuron_forward(rand(2, 2), "tanh", (1.0,))


# ------------------------------------------------------------------------------------------------- softmax

def test_softmax_forward_and_backward_match_reference():
    x = rand(D, N, scale=4.0, seed=5)
    x[:, 0] += 80.0  # a column that overflows exp without the max shift
    y = dense.softmax_forward(x)
    close(y, ref.softmax_forward(x))
    dy = rand(D, N, seed=6)
    close(dense.softmax_backward(y, dy), ref.softmax_backward(y, dy))


def test_softmax_propagates_nan_in_its_column_only():
    x = rand(5, 3, seed=7)
    x[2, 1] = np.nan
    y = dense.softmax_forward(x)
    with np.errstate(invalid="ignore"):
        close(y, ref.softmax_forward(x))
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()


# -------------------------------------------------------------------------------------------- cost.logreg

def softmax_probs(k, n, seed):
    return ref.softmax_forward(rand(k, n, scale=2.0, seed=seed))


def assert_cost_close(got, want):
    assert len(got) == 3
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1:], want[1:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("topk", [1, 5, 0])
def test_logreg_cost_matches_reference(topk):
    probs = softmax_probs(D, N, seed=8)
    labels = np.random.default_rng(9).integers(0, D, size=(1, N)).astype(np.float32)
    assert_cost_close(dense.logreg_cost(labels, probs, topk=topk), ref_costs.logreg_cost(labels, probs, topk=topk))
    # the network passes (N,) int64 labels
    assert_cost_close(dense.logreg_cost(labels.astype(np.int64).reshape(-1), probs, topk=topk),
                      ref_costs.logreg_cost(labels, probs, topk=topk))


def test_logreg_ties_share_the_credit():
    # column 0: the label ties two others for the max -> top-1 credit 1/3; column 1: label below a 3-way tie
    # for the max, top-5 -> all in; column 2: 4 bigger + label tied with 2 others for slot 5 -> 1/3 credit;
    # column 3: label alone at the top; column 4: all equal (K = 8 > 5) -> 5/8 top-5 credit.
    k = 8
    probs = np.full((k, 5), 0.01, dtype=np.float32)
    probs[[1, 4, 6], 0] = 0.3
    probs[[0, 2, 3], 1] = 0.3
    probs[5, 1] = 0.05
    probs[[0, 1, 2, 3], 2] = 0.2
    probs[[4, 5, 6], 2] = 0.05
    probs[3, 3] = 0.9
    probs[:, 4] = 0.125
    labels = np.array([[4, 5, 6, 3, 2]], dtype=np.float32)
    for topk in (1, 5):
        got, want = dense.logreg_cost(labels, probs, topk=topk), ref_costs.logreg_cost(labels, probs, topk=topk)
        assert_cost_close(got, want)
    _, top1, top5 = ref_costs.logreg_case_terms(labels, probs, topk=5)
    np.testing.assert_allclose(top1, [1 / 3, 0, 0, 1, 1 / 8])
    np.testing.assert_allclose(top5, [1, 1, 1 / 3, 1, 5 / 8])


def test_logreg_nonfinite_and_bad_labels():
    probs = softmax_probs(6, 4, seed=10)
    probs[2, 1] = 0.0
    labels = np.array([[0, 2, 1, 5]], dtype=np.float32)
    with pytest.raises(ref_costs.NonFiniteCostError):
        dense.logreg_cost(labels, probs)
    got = dense.logreg_cost(labels, probs, check_finite=False)
    want = ref_costs.logreg_cost(labels, probs, check_finite=False)
    assert got[0] == want[0] == np.inf and got[1:] == pytest.approx(want[1:])
    with pytest.raises(ValueError, match="labels"):
        dense.logreg_cost(np.array([[0, 6, 1, 1]], dtype=np.float32), probs)
    # a NaN probability: the max is NaN, so no top-1 credit; comparisons with NaN are all false
    probs[4, 3] = np.nan
    got = dense.logreg_cost(labels, probs, topk=2, check_finite=False)
    with np.errstate(all="ignore"):  # the reference's 1/num_max divides by 0 where the max is NaN
        want = ref_costs.logreg_cost(labels, probs, topk=2, check_finite=False)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_logreg_gradients_match_reference():
    probs = softmax_probs(D, N, seed=11)
    probs[3, :] = 0.0  # underflowed probabilities: 0/0 = NaN off the label, −inf on it
    labels = np.random.default_rng(12).integers(0, D, size=(1, N)).astype(np.float32)
    labels[0, 0] = 3
    with np.errstate(all="ignore"):
        close(dense.logreg_backward_probs(labels, probs, 0.7), ref_costs.logreg_backward_probs(labels, probs, 0.7))
    close(dense.softmax_logreg_backward(labels, probs, 0.7), ref_costs.softmax_logreg_backward(labels, probs, 0.7))


# ------------------------------------------------------------------------------------------------ dropout

@pytest.mark.parametrize("keep", [0.5, 0.8, 0.0, 1.0])
def test_dropout_mask_is_the_philox_mirror(keep):
    x = rand(D, N, seed=13)
    y, mask = dense.dropout_forward(x, keep=keep, enable=True, train=True, rng=np.random.default_rng(3))
    want = philox.dropout_mask(x.shape, keep, philox.draw_key(np.random.default_rng(3)))
    assert np.array_equal(mask, want)
    assert np.array_equal(y, x * want)  # no 1/keep rescaling
    dy = rand(D, N, seed=14)
    assert np.array_equal(dense.dropout_backward(dy, mask, keep=keep, enable=True, train=True), dy * mask)


def test_dropout_keep_rate_and_fresh_masks():
    rng = np.random.default_rng(5)
    x = np.ones((64, 64), dtype=np.float32)
    _, m1 = dense.dropout_forward(x, keep=0.5, enable=True, train=True, rng=rng)
    _, m2 = dense.dropout_forward(x, keep=0.5, enable=True, train=True, rng=rng)
    for m in (m1, m2):
        assert abs(m.mean() - 0.5) < 4 * 0.5 / 64  # 4 standard deviations of 4096 Bernoulli(0.5)
    assert (m1 != m2).mean() > 0.4  # each call draws a new key
    _, m3 = dense.dropout_forward(x, keep=0.9, enable=True, train=True, rng=rng)
    assert abs(m3.mean() - 0.9) < 4 * 0.3 / 64


@pytest.mark.parametrize("enable,train", [(True, False), (False, True), (False, False)])
def test_dropout_scales_by_keep_outside_training(enable, train):
    x, dy = rand(D, N, seed=15), rand(D, N, seed=16)
    y, mask = dense.dropout_forward(x, keep=0.6, enable=enable, train=train)
    y_ref, _ = ref.dropout_forward(x, keep=0.6, enable=enable, train=train)
    assert mask is None and np.array_equal(y, y_ref)
    assert np.array_equal(dense.dropout_backward(dy, None, keep=0.6, enable=enable, train=train),
                          ref.dropout_backward(dy, None, keep=0.6, enable=enable, train=train))


def test_dropout_does_not_depend_on_the_grid():
    x = rand(D, N, seed=17)
    key = np.uint32(123456789).view(np.int32), np.uint32(4000000000).view(np.int32)
    outs = []
    for grid, block in ((1, 32), (3, 64), (40, 32)):
        y, m = np.empty_like(x), np.empty_like(x)
        kernels.launch(x, "dropout_forward_kernel", (grid,), (block,), (x, y, m, np.int32(x.size), np.float32(0.5), *key))
        outs.append(m)
    assert all(np.array_equal(outs[0], m) for m in outs[1:])
    assert np.array_equal(outs[0], philox.dropout_mask(x.shape, 0.5, (123456789, 4000000000)))


def test_philox_known_answers():
    # Random123's kat_vectors for philox4x32 with 10 rounds
    ctr = np.array([[0, 0, 0, 0], [0xFFFFFFFF] * 4, [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]])
    keys = [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (0xA4093822, 0x299F31D0)]
    want = [[0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8], [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]]
    for c, k, w in zip(ctr, keys, want):
        assert philox.philox4x32_10(c[None], k)[0].tolist() == w


# ---------------------------------------------------------------------------------- concat, eltsum, eltmax

def test_concat_forward_and_backward():
    xs = [rand(d, N, seed=20 + d) for d in (5, 1, 31)]
    y = dense.concat_forward(xs)
    assert np.array_equal(y, ref.concat_forward(xs))
    dy = rand(37, N, seed=30)
    for got, want in zip(dense.concat_backward(dy, [5, 1, 31]), ref.concat_backward(dy, [5, 1, 31])):
        assert np.array_equal(got, want)
    with pytest.raises(ValueError):
        dense.concat_backward(dy, [5, 1])


def test_eltsum_forward_and_backward():
    xs = [rand(D, N, seed=s) for s in (31, 32, 33)]
    close(dense.eltsum_forward(xs), ref.eltsum_forward(xs))
    close(dense.eltsum_forward(xs, [0.5, -2.0, 1.25]), ref.eltsum_forward(xs, [0.5, -2.0, 1.25]))
    dy = rand(D, N, seed=34)
    for got, want in zip(dense.eltsum_backward(dy, [0.5, -2.0, 1.25]), ref.eltsum_backward(dy, [0.5, -2.0, 1.25])):
        close(got, want)


def test_eltmax_ties_and_nan():
    xs = [rand(D, N, seed=s) for s in (35, 36, 37)]
    xs[1][:4] = xs[0][:4]  # ties: both inputs get the full gradient
    xs[2][5, 5] = np.nan
    y = dense.eltmax_forward(xs)
    y_ref = ref.eltmax_forward(xs)
    close(y, y_ref)
    dy = rand(D, N, seed=38)
    for got, want in zip(dense.eltmax_backward(dy, xs, y), ref.eltmax_backward(dy, xs, y_ref)):
        assert np.array_equal(got, want)


# ---------------------------------------------------------------------------------------------- fc, bias

def test_fc_matches_reference():
    xs = [rand(d, N, seed=40 + d) for d in (37, 6)]
    ws = [rand(d, 11, seed=50 + d) for d in (37, 6)]
    b = rand(1, 11, seed=60)
    close(dense.fc_forward(xs, ws, b), ref.fc_forward(xs, ws, b))
    dy = rand(11, N, seed=61)
    close(dense.fc_backward_data(dy, ws[0]), ref.fc_backward_data(dy, ws[0]))
    close(dense.fc_backward_weights(xs[0], dy), ref.fc_backward_weights(xs[0], dy))


@pytest.mark.parametrize("rows,cols", [(11, 13), (3, 300), (70, 1)])
def test_fc_bias_grad_reduction(rows, cols):
    dy = rand(rows, cols, seed=62)
    close(dense.fc_bias_grad(dy), ref.fc_bias_grad(dy))


# ------------------------------------------------------------------------------------------ blur, nailbed

@pytest.mark.parametrize("filter_size,stdev", [(3, 1.0), (5, 0.8), (9, 2.0)])
def test_blur_matches_reference(filter_size, stdev):
    x = rand(3 * 9 * 9, 5, seed=70)
    close(dense.blur_forward(x, channels=3, filter_size=filter_size, stdev=stdev),
          ref_pre.blur_forward(x, channels=3, filter_size=filter_size, stdev=stdev))
    close(dense.blur_backward(x, channels=3, filter_size=filter_size, stdev=stdev),
          ref_pre.blur_backward(x, channels=3, filter_size=filter_size, stdev=stdev))


@pytest.mark.parametrize("size,stride", [(11, 2), (11, 3), (12, 4)])
def test_nailbed_matches_reference(size, stride):
    x = rand(2 * size * size, 3, seed=71)
    y = dense.nailbed_forward(x, channels=2, stride=stride)
    assert np.array_equal(y, ref_pre.nailbed_forward(x, channels=2, stride=stride))
    dx = dense.nailbed_backward(y, channels=2, stride=stride, img_size=size)
    assert np.array_equal(dx, ref_pre.nailbed_backward(y, channels=2, stride=stride, img_size=size))



@pytest.mark.parametrize("channels,size,cases", [(3, 7, 5), (1, 4, 33), (2, 9, 1)])
def test_href_matches_reference(channels, size, cases):
    # odd widths have a middle column that stays put; 33 cases are not a multiple of the warp
    x = rand(channels * size * size, cases, seed=72)
    y = dense.href_forward(x, channels=channels)
    assert np.array_equal(y, ref_pre.href_forward(x, channels=channels))
    dy, prev = rand(*x.shape, seed=73), rand(*x.shape, seed=74)
    mirrored = ref_pre.href_forward(dy, channels=channels)
    assert np.array_equal(dense.href_backward(dy, channels=channels), mirrored)
    # HorizontalReflectionLayer::bpropActs overwrites the earlier gradient; the fix adds to it
    assert np.array_equal(dense.href_backward(dy, channels=channels, prev_grad=prev), mirrored)
    fixed = dense.href_backward(dy, channels=channels, prev_grad=prev, fix_overwrite=True)
    assert np.array_equal(fixed, ref_pre.href_backward(dy, channels=channels, prev_grad=prev, fix_overwrite=True))
    assert np.array_equal(prev, rand(*x.shape, seed=74))  # the inputs are not modified


def test_href_refuses_what_the_2012_layer_refuses():
    with pytest.raises(ValueError, match="1 to 3 channels"):
        dense.href_forward(rand(4 * 9, 2), channels=4)
    with pytest.raises(ValueError, match="square"):
        dense.href_forward(rand(3 * 10, 2), channels=3)
    with pytest.raises(TypeError, match="float32"):
        dense.href_forward(rand(3 * 9, 2).astype(np.float64), channels=3)


# ------------------------------------------------------------------------------------------------- update

@pytest.mark.parametrize("kw", [dict(eps=0.01, mom=0.9, wc=0.0005), dict(eps=0.01, mom=0.9, wc=0.0005, eps_decay=0.013),
                                dict(eps=0.02, mom=0.0), dict(eps=0.0, mom=0.9, wc=0.1),
                                dict(eps=0.01, mom=0.9, wc=0.1, base_eps=0.0)])
def test_sgd_update_is_bit_identical_in_place(kw):
    w, v, g = rand(D, N, seed=80), rand(D, N, scale=0.01, seed=81), rand(D, N, seed=82)
    w_ref, v_ref = ref_update.sgd_update(w, v, g, **kw)
    dense.sgd_update(w, v, g, **kw)
    assert np.array_equal(w, w_ref) and np.array_equal(v, v_ref)


def test_sgd_update_refuses_copies():
    w = rand(4, 4)
    with pytest.raises(TypeError):
        dense.sgd_update(w.T, w.copy(), w.copy(), eps=0.1, mom=0.9)


# ----------------------------------------------------------------------------------- compile, block order

MY_SOURCES = ("dense.cu", "elementwise.cu", "preprocess.cu", "update.cu")


def test_results_do_not_depend_on_block_order(monkeypatch):
    monkeypatch.setenv("ALEXNET_EMU_SHUFFLE", "20121203")  # the emulator runs each launch's blocks shuffled
    dy = rand(70, 9, seed=90)
    close(dense.fc_bias_grad(dy), ref.fc_bias_grad(dy))  # 70 blocks, one per row
    x = rand(40, 300, seed=91)  # 3 blocks of columns
    close(dense.softmax_forward(x), ref.softmax_forward(x))
    img = rand(2 * 12 * 12, 20, seed=92)  # 23 blocks
    close(dense.blur_forward(img, channels=2, filter_size=5, stdev=1.0),
          ref_pre.blur_forward(img, channels=2, filter_size=5, stdev=1.0))
