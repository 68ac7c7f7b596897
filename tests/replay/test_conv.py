"""replay/backends/numpy_ref/conv.py against PyTorch (float32), a naive loop over the 2012 formula, and
central finite differences (float64).

The torch oracle for the 2012 geometry: torch pads symmetrically and floors the output size, the 2012 code
starts module 0 at −padding and uses Mx = 1 + ceil((2p + S − fs)/s). So the oracle pads the NCHW input
explicitly with p zeros on the top/left and (Mx − 1)·s + fs − S − p zeros on the bottom/right, then runs
conv2d without padding. randSparse: gather the image channels conns[g·Cf + c] first, then a grouped conv.
Local layers: torch unfold of the same padded input, then one weight block per module.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tf
from gradcheck import assert_close, numeric_grad

from replay.backends.numpy_ref import conv
from replay.layout import conv_weights_from_torch, conv_weights_to_torch, from_nchw, to_nchw

# name: (channels, image_size, filter_size, padding, stride, groups, filters, cases, sparse filter_channels)
CASES = {
    "plain-n1": (3, 9, 3, 0, 1, 1, 4, 1, None),
    "alexnet-conv1-like": (3, 24, 11, 0, 4, 1, 8, 3, None),     # (24−11)/4 inexact: 5 modules, torch 4
    "pad2-groups2": (4, 8, 5, 2, 1, 2, 8, 3, None),
    "pad1-stride2-inexact-groups2": (8, 8, 3, 1, 2, 2, 6, 3, None),  # Mx = 5, last module past the border
    "stride4-pad2-module-in-padding": (2, 10, 5, 2, 4, 1, 4, 2, None),  # last modules read only zeros
    "groups3-odd-channels": (6, 7, 3, 1, 1, 3, 6, 2, None),
    "randsparse-oversample2": (8, 7, 3, 1, 2, 4, 8, 3, 4),     # groups·Cf/C = 2: every channel used twice
    "randsparse-oversample1": (8, 6, 3, 0, 1, 2, 4, 1, 4),
}


def make_case(name, dtype=np.float32, seed=0):
    c, s, fs, p, st, groups, filters, n, sparse_cf = CASES[name]
    rng = np.random.default_rng(seed)
    mx = conv.modules_x_for(s, fs, p, st)
    cf = c // groups if sparse_cf is None else sparse_cf
    conns = None
    if sparse_cf is not None:  # as layer.py gen_rand_conns: overSample permutations of range(C)
        over = groups * cf // c
        conns = np.concatenate([rng.permutation(c) for _ in range(over)])
    kw = dict(channels=c, filter_size=fs, padding=p, stride=st, groups=groups, modules_x=mx, conns=conns,
              filter_channels=None if sparse_cf is None else cf)
    x = rng.standard_normal((c * s * s, n)).astype(dtype)
    w = (0.3 * rng.standard_normal((cf * fs * fs, filters))).astype(dtype)
    return kw, x, w, s, cf, rng


def torch_padded(x_t, kw, s):
    """NCHW input gathered (randSparse) and zero-padded to the 2012 module grid."""
    if kw["conns"] is not None:
        x_t = x_t[:, torch.as_tensor(kw["conns"])]
    p, st, fs, mx = kw["padding"], kw["stride"], kw["filter_size"], kw["modules_x"]
    after = (mx - 1) * st + fs - s - p
    assert after >= p
    return tf.pad(x_t, (p, after, p, after))


def torch_conv(x_t, w_t, kw, s):
    return tf.conv2d(torch_padded(x_t, kw, s), w_t, stride=kw["stride"], groups=kw["groups"])


def torch_local(x_t, wl_t, kw, s, cf):
    """wl_t (M, Cf·fs·fs, F): module m's filters. -> (N, F, Mx, Mx)."""
    fs, mx, groups = kw["filter_size"], kw["modules_x"], kw["groups"]
    cols = tf.unfold(torch_padded(x_t, kw, s), fs, stride=kw["stride"])  # (N, groups·Cf·fs², M), rows (c,u,v)
    k = cf * fs * fs
    fg = wl_t.shape[2] // groups
    outs = [torch.einsum("nkm,mkf->nfm", cols[:, g * k:(g + 1) * k], wl_t[:, :, g * fg:(g + 1) * fg])
            for g in range(groups)]
    y = torch.cat(outs, dim=1)
    return y.reshape(y.shape[0], y.shape[1], mx, mx)


def naive_conv(x, w, kw, s, local=False):
    """The 2012 formula written out with loops (tiny cases only): module (my, mx) reads pixel
    (my·s − p + u, mx·s − p + v) of image channel chan(g, c); 0 outside the image."""
    c_all, fs, p, st, groups, mxs = (kw["channels"], kw["filter_size"], kw["padding"], kw["stride"],
                                     kw["groups"], kw["modules_x"])
    n = x.shape[1]
    img = x.reshape(c_all, s, s, n).astype(np.float64)
    filters = w.shape[1]
    fg = filters // groups
    k = w.shape[0] // (mxs * mxs) if local else w.shape[0]
    cf = k // (fs * fs)
    y = np.zeros((filters, mxs, mxs, n))
    for f in range(filters):
        g = f // fg
        for my in range(mxs):
            for mx in range(mxs):
                m = my * mxs + mx
                for c in range(cf):
                    chan = kw["conns"][g * cf + c] if kw["conns"] is not None else g * cf + c
                    for u in range(fs):
                        for v in range(fs):
                            iy, ix = my * st - p + u, mx * st - p + v
                            if 0 <= iy < s and 0 <= ix < s:
                                row = (c * fs + u) * fs + v + (m * k if local else 0)
                                y[f, my, mx] += w[row, f] * img[chan, iy, ix]
    return y.reshape(filters * mxs * mxs, n)


# ----------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", CASES)
def test_conv_forward_matches_torch(name):
    kw, x, w, s, cf, _ = make_case(name)
    y = conv.conv_forward(x, w, **kw)
    assert y.dtype == np.float32
    assert y.shape == (w.shape[1] * kw["modules_x"] ** 2, x.shape[1])
    want = torch_conv(torch.from_numpy(to_nchw(x, kw["channels"])),
                      torch.from_numpy(conv_weights_to_torch(w, cf, kw["filter_size"])), kw, s)
    assert_close(y, from_nchw(want.numpy()), rtol=1e-4, atol=1e-4, what=name)


@pytest.mark.parametrize("name", ["plain-n1", "pad1-stride2-inexact-groups2", "stride4-pad2-module-in-padding",
                                  "randsparse-oversample2"])
def test_conv_and_local_forward_match_the_2012_formula_written_as_loops(name):
    kw, x, w, s, _, rng = make_case(name, np.float64)
    assert_close(conv.conv_forward(x, w, **kw), naive_conv(x, w, kw, s), rtol=1e-12, atol=1e-12, what=name)
    m = kw["modules_x"] ** 2
    wl = rng.standard_normal((m * w.shape[0], w.shape[1]))
    assert_close(conv.local_forward(x, wl, **kw), naive_conv(x, wl, kw, s, local=True), rtol=1e-12,
                 atol=1e-12, what=name)


def test_alexnet_conv1_rule_gives_the_extra_module():
    # SEMANTICS §9 trap 1: 224 -> 55 for fs=11, s=4, where torch's floor gives 54.
    assert conv.modules_x_for(224, 11, 0, 4) == 55
    assert conv.modules_x_for(24, 11, 0, 4) == 5
    assert conv.modules_x_for(27, 5, 2, 1) == 27  # exact division: same as torch


def test_module_entirely_in_the_padding_reads_zeros():
    kw, x, w, s, _, _ = make_case("stride4-pad2-module-in-padding", np.float64)
    mx = kw["modules_x"]
    assert mx == 4 and (mx - 1) * kw["stride"] - kw["padding"] >= s  # the last row/column starts past S
    y = conv.conv_forward(x, w, **kw).reshape(w.shape[1], mx, mx, x.shape[1])
    assert np.all(y[:, -1] == 0) and np.all(y[:, :, -1] == 0)
    assert np.any(y[:, 0, 0] != 0)


@pytest.mark.parametrize("name", CASES)
def test_local_forward_matches_torch_unfold(name):
    kw, x, w, s, cf, rng = make_case(name)
    m = kw["modules_x"] ** 2
    wl = (0.3 * rng.standard_normal((m * w.shape[0], w.shape[1]))).astype(np.float32)
    y = conv.local_forward(x, wl, **kw)
    want = torch_local(torch.from_numpy(to_nchw(x, kw["channels"])),
                       torch.from_numpy(wl.reshape(m, -1, w.shape[1])), kw, s, cf)
    assert y.dtype == np.float32
    assert_close(y, from_nchw(want.numpy()), rtol=1e-4, atol=1e-4, what=name)


@pytest.mark.parametrize("name", ["pad2-groups2", "randsparse-oversample2", "alexnet-conv1-like"])
def test_conv_to_local_makes_local_equal_conv(name):
    kw, x, w, _, _, rng = make_case(name)
    m = kw["modules_x"] ** 2
    b = rng.standard_normal((w.shape[1], 1)).astype(np.float32)
    wl = conv.conv_to_local_weights(w, m)
    assert wl.shape == (m * w.shape[0], w.shape[1])
    y_conv = conv.add_conv_bias(conv.conv_forward(x, w, **kw), b, shared=True, filters=w.shape[1])
    y_local = conv.add_conv_bias(conv.local_forward(x, wl, **kw), conv.conv_to_local_biases(b, m),
                                 shared=False, filters=w.shape[1])
    assert_close(y_local, y_conv, rtol=1e-5, atol=1e-5, what=name)


def test_two_inputs_sum_like_torch():
    # A layer with two inputs of different geometry and one bias (ConvLayer::fpropActs): the caller sums.
    rng = np.random.default_rng(3)
    ka = dict(channels=3, filter_size=3, padding=1, stride=2, groups=1)
    kb = dict(channels=4, filter_size=3, padding=1, stride=1, groups=2)
    mx = conv.modules_x_for(8, 3, 1, 2)
    assert mx == conv.modules_x_for(5, 3, 1, 1) == 5
    xa = rng.standard_normal((3 * 64, 2)).astype(np.float32)
    xb = rng.standard_normal((4 * 25, 2)).astype(np.float32)
    wa = rng.standard_normal((3 * 9, 4)).astype(np.float32)
    wb = rng.standard_normal((2 * 9, 4)).astype(np.float32)
    b = rng.standard_normal((4, 1)).astype(np.float32)
    y = conv.conv_forward(xa, wa, modules_x=mx, **ka) + conv.conv_forward(xb, wb, modules_x=mx, **kb)
    y = conv.add_conv_bias(y, b, shared=True, filters=4)
    ta = torch_conv(torch.from_numpy(to_nchw(xa, 3)), torch.from_numpy(conv_weights_to_torch(wa, 3, 3)),
                    dict(ka, modules_x=mx, conns=None), 8)
    tb = torch_conv(torch.from_numpy(to_nchw(xb, 4)), torch.from_numpy(conv_weights_to_torch(wb, 2, 3)),
                    dict(kb, modules_x=mx, conns=None), 5)
    want = ta + tb + torch.from_numpy(b.reshape(1, 4, 1, 1))
    assert_close(y, from_nchw(want.numpy()), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------- backward


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shared", [True, False])
def test_conv_backward_matches_torch_autograd(name, shared):
    kw, x, w, s, cf, rng = make_case(name)
    f, mx, n = w.shape[1], kw["modules_x"], x.shape[1]
    b = rng.standard_normal((f, 1) if shared else (f * mx * mx, 1)).astype(np.float32)
    dy = rng.standard_normal((f * mx * mx, n)).astype(np.float32)

    x_t = torch.tensor(to_nchw(x, kw["channels"]), requires_grad=True)
    w_t = torch.tensor(conv_weights_to_torch(w, cf, kw["filter_size"]), requires_grad=True)
    b_t = torch.tensor(b, requires_grad=True)
    y_t = torch_conv(x_t, w_t, kw, s) + (b_t.reshape(1, f, 1, 1) if shared else b_t.reshape(1, f, mx, mx))
    (y_t * torch.from_numpy(to_nchw(dy, f))).sum().backward()

    # the bias is part of the forward being differentiated, so check it adds as torch does
    y = conv.add_conv_bias(conv.conv_forward(x, w, **kw), b, shared=shared, filters=f)
    assert_close(y, from_nchw(y_t.detach().numpy()), rtol=1e-4, atol=1e-4, what="forward")
    dx = conv.conv_backward_data(dy, w, image_size=s, **kw)
    assert_close(dx, from_nchw(x_t.grad.numpy()), rtol=1e-4, atol=1e-4, what="dx")
    dw = conv.conv_backward_weights(x, dy, **kw)  # 1/N-normalised
    assert_close(dw, conv_weights_from_torch(w_t.grad.numpy()) / n, rtol=1e-4, atol=1e-4, what="dw")
    db = conv.conv_bias_grad(dy, shared=shared, filters=f)
    assert db.shape == b.shape
    assert_close(db, b_t.grad.numpy() / n, rtol=1e-4, atol=1e-4, what="db")


@pytest.mark.parametrize("name", CASES)
def test_local_backward_matches_torch_autograd(name):
    kw, x, w, s, cf, rng = make_case(name)
    f, mx, n = w.shape[1], kw["modules_x"], x.shape[1]
    m = mx * mx
    wl = (0.3 * rng.standard_normal((m * w.shape[0], f))).astype(np.float32)
    dy = rng.standard_normal((f * m, n)).astype(np.float32)
    x_t = torch.tensor(to_nchw(x, kw["channels"]), requires_grad=True)
    w_t = torch.tensor(wl.reshape(m, -1, f), requires_grad=True)
    (torch_local(x_t, w_t, kw, s, cf) * torch.from_numpy(to_nchw(dy, f))).sum().backward()

    dx = conv.local_backward_data(dy, wl, image_size=s, **kw)
    assert_close(dx, from_nchw(x_t.grad.numpy()), rtol=1e-4, atol=1e-4, what="dx")
    dw = conv.local_backward_weights(x, dy, **kw)
    assert_close(dw, w_t.grad.numpy().reshape(m * w.shape[0], f) / n, rtol=1e-4, atol=1e-4, what="dw")


@pytest.mark.parametrize("partial_sum", [0, 1, 5, 25])
def test_partial_sum_changes_only_rounding(partial_sum):
    kw, x, w, s, cf, rng = make_case("pad1-stride2-inexact-groups2")  # M = 25
    dy = rng.standard_normal((w.shape[1] * 25, x.shape[1])).astype(np.float32)
    w_t = torch.tensor(conv_weights_to_torch(w, cf, 3), requires_grad=True)
    (torch_conv(torch.from_numpy(to_nchw(x, kw["channels"])), w_t, kw, s)
     * torch.from_numpy(to_nchw(dy, w.shape[1]))).sum().backward()
    dw = conv.conv_backward_weights(x, dy, partial_sum=partial_sum, **kw)
    assert dw.dtype == np.float32
    assert_close(dw, conv_weights_from_torch(w_t.grad.numpy()) / x.shape[1], rtol=1e-4, atol=1e-4)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    assert_close(conv.conv_backward_weights(x64, dy64, partial_sum=partial_sum, **kw),
                 conv.conv_backward_weights(x64, dy64, partial_sum=0, **kw), rtol=1e-12, atol=1e-13)


def test_partial_sum_must_divide_the_modules():
    kw, x, w, _, _, _ = make_case("pad1-stride2-inexact-groups2")
    dy = np.zeros((w.shape[1] * 25, x.shape[1]), np.float32)
    with pytest.raises(ValueError, match="partial_sum"):
        conv.conv_backward_weights(x, dy, partial_sum=4, **kw)


# Tiny float64 cases for finite differences: (padding, stride, inexact border) and randSparse.
FD_CASES = {
    "pad1-stride2-inexact-groups2": dict(channels=4, size=6, fs=3, p=1, st=2, groups=2, filters=4, n=2,
                                         sparse=None),
    "randsparse-oversample2": dict(channels=4, size=5, fs=2, p=0, st=2, groups=4, filters=4, n=2, sparse=2),
}


def fd_case(name):
    d = FD_CASES[name]
    rng = np.random.default_rng(7)
    c, s, fs = d["channels"], d["size"], d["fs"]
    mx = conv.modules_x_for(s, fs, d["p"], d["st"])
    cf = c // d["groups"] if d["sparse"] is None else d["sparse"]
    conns = None
    if d["sparse"] is not None:
        conns = np.concatenate([rng.permutation(c) for _ in range(d["groups"] * cf // c)])
    kw = dict(channels=c, filter_size=fs, padding=d["p"], stride=d["st"], groups=d["groups"], modules_x=mx,
              conns=conns, filter_channels=None if conns is None else cf)
    x = rng.standard_normal((c * s * s, d["n"]))
    w = rng.standard_normal((cf * fs * fs, d["filters"]))
    g = rng.standard_normal((d["filters"] * mx * mx, d["n"]))
    return kw, x, w, g, s


@pytest.mark.parametrize("name", FD_CASES)
def test_conv_backward_matches_finite_differences(name):
    kw, x, w, g, s = fd_case(name)
    n, f = x.shape[1], w.shape[1]
    assert (kw["modules_x"] - 1) * kw["stride"] + kw["filter_size"] > s + 2 * kw["padding"] or kw["conns"] is not None
    b = np.random.default_rng(1).standard_normal((f, 1))

    def cost(x_, w_, b_):  # Σ y·g, the cost whose gradient dy = g
        y = conv.add_conv_bias(conv.conv_forward(x_, w_, **kw), b_, shared=True, filters=f)
        return float(np.sum(y * g))

    assert_close(conv.conv_backward_data(g, w, image_size=s, **kw),
                 numeric_grad(lambda v: cost(v, w, b), x), rtol=1e-6, atol=1e-8, what="dx")
    assert_close(conv.conv_backward_weights(x, g, partial_sum=kw["modules_x"], **kw) * n,
                 numeric_grad(lambda v: cost(x, v, b), w), rtol=1e-6, atol=1e-8, what="dw")
    assert_close(conv.conv_bias_grad(g, shared=True, filters=f) * n,
                 numeric_grad(lambda v: cost(x, w, v), b), rtol=1e-6, atol=1e-8, what="db")


@pytest.mark.parametrize("name", FD_CASES)
def test_local_backward_matches_finite_differences(name):
    kw, x, w, g, s = fd_case(name)
    n, f, m = x.shape[1], w.shape[1], kw["modules_x"] ** 2
    wl = np.random.default_rng(2).standard_normal((m * w.shape[0], f))
    b = np.random.default_rng(3).standard_normal((f * m, 1))

    def cost(x_, w_, b_):
        y = conv.add_conv_bias(conv.local_forward(x_, w_, **kw), b_, shared=False, filters=f)
        return float(np.sum(y * g))

    assert_close(conv.local_backward_data(g, wl, image_size=s, **kw),
                 numeric_grad(lambda v: cost(v, wl, b), x), rtol=1e-6, atol=1e-8, what="dx")
    assert_close(conv.local_backward_weights(x, g, **kw) * n,
                 numeric_grad(lambda v: cost(x, v, b), wl), rtol=1e-6, atol=1e-8, what="dw")
    assert_close(conv.conv_bias_grad(g, shared=False, filters=f) * n,
                 numeric_grad(lambda v: cost(x, wl, v), b), rtol=1e-6, atol=1e-8, what="db")


# ------------------------------------------------------------------------------------ contracts


def test_float64_in_float64_out_and_inputs_untouched():
    kw, x, w, s, _, rng = make_case("randsparse-oversample2", np.float64)
    dy = rng.standard_normal((w.shape[1] * kw["modules_x"] ** 2, x.shape[1]))
    copies = [a.copy() for a in (x, w, dy)]
    outs = [conv.conv_forward(x, w, **kw), conv.conv_backward_data(dy, w, image_size=s, **kw),
            conv.conv_backward_weights(x, dy, **kw), conv.conv_bias_grad(dy, shared=True, filters=w.shape[1])]
    assert all(o.dtype == np.float64 for o in outs)
    for before, after in zip(copies, (x, w, dy)):
        assert np.array_equal(before, after)


def test_bad_geometry_is_refused():
    kw, x, w, _, _, _ = make_case("alexnet-conv1-like")
    with pytest.raises(ValueError, match="modules_x"):
        conv.conv_forward(x, w, **dict(kw, modules_x=4))  # torch's floor rule is not the 2012 rule
    kw, x, w, _, _, _ = make_case("randsparse-oversample2")
    with pytest.raises(ValueError, match="conns"):
        conv.conv_forward(x, w, **dict(kw, conns=kw["conns"][:-1]))
    with pytest.raises(ValueError, match="conv weights"):
        conv.conv_forward(x, w[:-1], **kw)
    x = np.zeros((3 * 81, 1), np.float32)
    with pytest.raises(ValueError, match="stride"):  # the kernels assert moduleStride <= filterSize
        conv.conv_forward(x, np.zeros((3 * 4, 16), np.float32), channels=3, filter_size=2, padding=0,
                          stride=3, modules_x=conv.modules_x_for(9, 2, 0, 3))
