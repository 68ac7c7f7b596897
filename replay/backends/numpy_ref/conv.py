"""conv and local layers of the 2012 cuda-convnet, forward and backward (SEMANTICS.md §3.4, §3.5).

Layout (SEMANTICS §2), N = cases, the case index fastest in every matrix:
- an input x is (C·S·S, N), viewed as (C, S, S, N);
- an output y is (F·M, N), viewed as (F, Mx, Mx, N), with M = Mx² and module m = my·Mx + mx;
- conv weights are (Cf·fs·fs, F), row (c·fs + u)·fs + v;
- local weights are (M·Cf·fs·fs, F), row ((m·Cf + c)·fs + u)·fs + v;
- biases are (F, 1) when shared (conv only) and (F·M, 1), row f·M + m, when unshared (conv and local).

Geometry, as the 2012 kernels compute it (cudaconv2 filter_acts.cu, read in cc1's src/cudaconv2 and cc2's
cudaconv3): module (my, mx) reads image rows my·stride − padding + u and columns mx·stride − padding + v
(the kernels' `paddingStart + moduleIdx·moduleStride`, paddingStart = −padding), and every read outside
[0, S)² is 0. Mx = 1 + ⌈(2·padding + S − fs)/stride⌉ (layer.py: LocalLayerParser.parse); when the division
is inexact the last row/column of modules reaches past the padded border, and those reads are 0 too.

Groups: filter f belongs to group g = f // (F/groups). Without randSparse group g sees image channels
g·Cf ... g·Cf + Cf − 1. With randSparse (`conns`, SEMANTICS §3.4) it sees image channel conns[g·Cf + c] as its
filter channel c (cc1 filter_acts.cu: filterActs_YxX_sparse_random, `colorIndices += blockGroupIdx ·
numFilterColors`); `conns` is what layer.py's gen_rand_conns (or initCFunc) made: `overSample` random
permutations of range(C) concatenated, overSample = groups·Cf/C.

A layer with several inputs calls these functions once per input, with that input's own geometry and
weights, and SUMS the results (outputs, and weight gradients stay per input); the bias is added once
(src/layer.cu: ConvLayer::fpropActs adds it when scaleTargets == 0, i.e. with the first input). The caller
does that summing; nothing here knows about other inputs.

Signs: every backward function returns the derivative of the cost (PyTorch's sign); the 2012 code stores the
negative. Weight and bias gradients are the 1/N-normalised ones (SEMANTICS §4.2; src/layer.cu:
ConvLayer::bpropWeights passes scaleWGrad = 1/numCases); input gradients are not divided by N.

Implementation: im2col (one strided slice per filter tap) and matrix products. Works in float32 and float64;
the result has the dtype NumPy's promotion gives the operands. Inputs are never modified.

Speed (the reference must still train a net in reasonable time on a CPU):
- the forward's im2col columns can be handed to the weight gradient: pass the same dict as `saved=` to
  conv_forward (which stores (x, columns) in it as "patches") and to conv_backward_weights (which pops that
  entry, and recomputes the columns if it is missing or was made from another x);
- the same dict keeps this layer input's large scratch arrays (the im2col columns, the padded image) from
  one call to the next, so a training loop that passes one dict per layer input every minibatch writes
  into the same memory each time instead of a fresh 100 MB array whose first touch page-faults (that costs
  about as much as the im2col itself). A scratch array is overwritten by the next call that gets the same
  dict; it is never returned: every array these functions return is new and belongs to the caller;
- the data gradient is one matrix product per filter tap (W_tap (Cf, Fg) @ dy (Fg, M·N)) added straight
  into the padded image through that tap's strided view, instead of one product into a (Cf·fs·fs, M·N)
  column buffer followed by col2im: the same sums in the same order, without the large buffer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "add_conv_bias",
    "conv_backward_data",
    "conv_backward_weights",
    "conv_bias_grad",
    "conv_forward",
    "conv_to_local_biases",
    "conv_to_local_weights",
    "local_backward_data",
    "local_backward_weights",
    "local_forward",
    "modules_x_for",
]


def modules_x_for(image_size: int, filter_size: int, padding: int, stride: int) -> int:
    """Modules per side, 1 + ⌈(2·padding + S − fs)/stride⌉ (layer.py: LocalLayerParser.parse)."""
    return 1 + -(-(2 * padding + image_size - filter_size) // stride)


@dataclass(frozen=True, slots=True)
class _Geometry:
    channels: int          # C, image channels
    image_size: int        # S
    filter_size: int       # fs
    padding: int           # p (the kernels start at −p)
    stride: int            # s
    modules_x: int         # Mx
    groups: int
    filter_channels: int   # Cf
    channel_index: np.ndarray  # (groups, Cf): image channel seen by group g as its filter channel c

    @property
    def modules(self) -> int:
        return self.modules_x * self.modules_x

    @property
    def taps(self) -> int:
        """Rows of a per-module filter, Cf·fs·fs."""
        return self.filter_channels * self.filter_size * self.filter_size

    @property
    def pad_after(self) -> int:
        """Zeros needed below/right of the image so that every module's read lies in the padded array.

        (Mx−1)·s + fs ≥ 2p + S always holds with the ceil rule, so this is ≥ p."""
        return (self.modules_x - 1) * self.stride + self.filter_size - self.image_size - self.padding


def _geometry(*, rows: int, channels: int, filter_size: int, padding: int, stride: int, groups: int,
              filter_channels: int | None, modules_x: int, conns) -> _Geometry:
    if channels < 1 or filter_size < 1 or stride < 1 or padding < 0 or groups < 1:
        raise ValueError("need channels, filter_size, stride, groups >= 1 and padding >= 0")
    if rows % channels:
        raise ValueError(f"{rows} input rows are not {channels} channels of square images")
    side = math.isqrt(rows // channels)
    if channels * side * side != rows:
        raise ValueError(f"{rows} input rows are not {channels} channels of square images")
    if stride > filter_size:  # cudaconv2 _filterActs & co: assert(moduleStride <= filterSize)
        raise ValueError(f"stride {stride} > filter_size {filter_size}: the 2012 kernels refuse it")
    if filter_size > 2 * padding + side:
        raise ValueError(f"filter_size {filter_size} exceeds image size {side} + 2 * padding {padding}")
    expected = modules_x_for(side, filter_size, padding, stride)
    if modules_x != expected:
        raise ValueError(f"modules_x is {modules_x}, but 1 + ceil((2*{padding} + {side} - {filter_size})/{stride})"
                         f" = {expected} (layer.py: LocalLayerParser.parse)")
    if conns is None:
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        cf = channels // groups
        if filter_channels is not None and filter_channels != cf:
            raise ValueError(f"filter_channels {filter_channels} != channels/groups {cf} without conns "
                             "(only randSparse inputs choose their own filter channels)")
        index = np.arange(channels).reshape(groups, cf)
    else:
        cf = channels // groups if filter_channels is None else filter_channels
        index = np.asarray(conns, dtype=np.int64).reshape(-1)
        if index.size != groups * cf:
            raise ValueError(f"conns has {index.size} entries; randSparse needs groups*filter_channels = "
                             f"{groups * cf}")
        if index.min(initial=0) < 0 or index.max(initial=0) >= channels:
            raise ValueError(f"conns must hold channel indices in 0..{channels - 1}")
        index = index.reshape(groups, cf)
    return _Geometry(channels, side, filter_size, padding, stride, modules_x, groups, cf, index)


def _filters_of(dy: np.ndarray, x: np.ndarray, geo: _Geometry) -> tuple[int, int]:
    """(F, F per group) of an output gradient dy (F·M, N) for the input x (…, N)."""
    if dy.shape[0] % geo.modules or dy.shape[1] != x.shape[1]:
        raise ValueError(f"dy {dy.shape} does not match M = {geo.modules} modules and N = {x.shape[1]} cases")
    filters = dy.shape[0] // geo.modules
    return filters, _check_filters(filters, geo)


def _check_filters(filters: int, geo: _Geometry) -> int:
    if filters % geo.groups:
        raise ValueError(f"{filters} filters do not split into {geo.groups} groups")
    return filters // geo.groups


def _phase_rows(geo: _Geometry) -> int:
    """Y = ⌈(p + S + pad_after)/s⌉: rows (and columns) per stride phase of the padded image."""
    return -(-(geo.padding + geo.image_size + geo.pad_after) // geo.stride)


def _scratch(saved: dict | None, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array for this call's own use: the one `saved` keeps under `name` when its shape and
    dtype fit, else a new one, which `saved` then keeps for the next call (module docstring: Speed)."""
    if saved is None:
        return np.empty(shape, dtype=dtype)
    buffer = saved.get(name)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = saved[name] = np.empty(shape, dtype=dtype)
    return buffer


def _phases(x: np.ndarray, geo: _Geometry, saved: dict | None = None) -> np.ndarray:
    """The image inside the zero border the modules read, split by stride phase: (C·S·S, N) ->
    (C, s, s, Y, Y, N), [c, a, b, i, j, n] = padded pixel (i·s + a, j·s + b) of image c, case n.

    Why: module (my, mx) reads padded pixel (my·s + u, mx·s + v) at tap (u, v), i.e. phase (u mod s, v mod s)
    at (my + u div s, mx + v div s). So in this layout every tap reads a block whose rows are contiguous runs
    of Mx·N numbers (a plain stride-s slice of the padded image gives runs of only N), which makes im2col of
    a strided layer (conv1: stride 4) a few times faster. For s = 1 it is the padded image itself."""
    n = x.shape[1]
    c, s, p, st = geo.channels, geo.image_size, geo.padding, geo.stride
    images = x.reshape(c, s, s, n)
    side = _phase_rows(geo) * st
    if side == s and p == 0:
        padded = images  # every read lies in the image (so s = 1): no copy
    else:
        padded = _scratch(saved, "padded", (c, side, side, n), x.dtype)
        # A reused buffer holds the last image: clear only the frame around the image, then copy it in.
        padded[:, :p] = 0
        padded[:, p + s:] = 0
        padded[:, p:p + s, :p] = 0
        padded[:, p:p + s, p + s:] = 0
        padded[:, p:p + s, p:p + s, :] = images
    rows = side // st
    phases = padded.reshape(c, rows, st, rows, st, n).transpose(0, 2, 4, 1, 3, 5)
    if st == 1:
        return phases  # one phase: the transpose only moves axes of length 1, still contiguous
    out = _scratch(saved, "phases", phases.shape, x.dtype)
    np.copyto(out, phases)
    return out


def _tap_view(phases: np.ndarray, geo: _Geometry, u: int, v: int) -> np.ndarray:
    """The (C, Mx, Mx, N) view of _phases' layout that filter tap (u, v) reads across the modules
    (distinct modules read distinct pixels)."""
    st, mx = geo.stride, geo.modules_x
    i, j = u // st, v // st
    return phases[:, u % st, v % st, i:i + mx, j:j + mx, :]


def _patches(x: np.ndarray, geo: _Geometry, saved: dict | None = None) -> np.ndarray:
    """im2col: (C·S·S, N) -> (C, fs, fs, M, N); [c, u, v, m, n] = image c at the pixel tap (u, v) of module m
    reads (0 outside the image). Written into saved's scratch when given (module docstring: Speed)."""
    n = x.shape[1]
    c, fs, mx = geo.channels, geo.filter_size, geo.modules_x
    phases = _phases(x, geo, saved)
    out = _scratch(saved, "columns", (c, fs, fs, mx, mx, n), x.dtype)
    for u in range(fs):
        for v in range(fs):
            out[:, u, v] = _tap_view(phases, geo, u, v)
    return out.reshape(c, fs, fs, geo.modules, n)


def _save_patches(saved: dict | None, x: np.ndarray, patches: np.ndarray) -> None:
    """Keep the forward's columns for the weight gradient of the same pass (see the module docstring)."""
    if saved is not None:
        saved["patches"] = (x, patches)


def _saved_patches(saved: dict | None, x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The columns conv_forward/local_forward kept for this very x, taken out of `saved` (they are good for
    one weight gradient: the next forward with this dict overwrites them); else im2col of x again."""
    source, patches = saved.pop("patches", (None, None)) if saved is not None else (None, None)
    expected = (geo.channels, geo.filter_size, geo.filter_size, geo.modules, x.shape[1])
    if source is x and patches.shape == expected and patches.dtype == x.dtype:
        return patches
    return _patches(x, geo, saved)


def _image_grad(tap_cols, dtype, n: int, geo: _Geometry, saved: dict | None = None) -> np.ndarray:
    """col2im, the adjoint of _patches, one filter tap at a time: tap_cols(g, u, v) gives group g's
    (Cf, M·N) columns for tap (u, v); each is added onto the pixels that tap read (its view of the padded
    image in _phases' layout; the modules of one tap hit distinct pixels, so += is exact), taps in (u, v)
    order. Returns (C·S·S, N) without the padding (the exact adjoint, SEMANTICS §3.4 bwd), a new array; the
    padded sums are scratch (saved's, when given)."""
    c, p, s, st, fs, mx = (geo.channels, geo.padding, geo.image_size, geo.stride, geo.filter_size,
                           geo.modules_x)
    rows = _phase_rows(geo)
    phases = _scratch(saved, "image_grad", (c, st, st, rows, rows, n), dtype)
    phases.fill(0)
    for g in range(geo.groups):
        for u in range(fs):
            for v in range(fs):
                cols = tap_cols(g, u, v).reshape(geo.filter_channels, mx, mx, n)
                _scatter_group_patches(_tap_view(phases, geo, u, v), cols, geo, g)
    padded = phases.transpose(0, 3, 1, 4, 2, 5).reshape(c, rows * st, rows * st, n)  # back to (C, y, x, N)
    return np.ascontiguousarray(padded[:, p:p + s, p:p + s, :]).reshape(c * s * s, n)


def _group_patches(patches: np.ndarray, geo: _Geometry, g: int) -> np.ndarray:
    """The (Cf, fs, fs, M, N) patches group g reads (its channels gathered, randSparse or contiguous)."""
    channels = geo.channel_index[g]
    if _contiguous(channels):  # groups without randSparse read a block of channels: a view, no copy
        return patches[channels[0]:channels[-1] + 1]
    return patches[channels]


def _contiguous(channels: np.ndarray) -> bool:
    return bool(np.all(np.diff(channels) == 1))


def _scatter_group_patches(target: np.ndarray, grad: np.ndarray, geo: _Geometry, g: int) -> None:
    """Adjoint of _group_patches: add group g's patch gradient onto its image channels. With randSparse and
    overSample > 1 several groups share a channel; their contributions add (cc1 img_acts.cu:
    img_acts_*_sparse_rand writes overSample copies that ConvLayer::bpropActs then sums)."""
    channels = geo.channel_index[g]
    if _contiguous(channels):  # distinct channels: a plain += is the same sum, without add.at's cost
        target[channels[0]:channels[-1] + 1] += grad
    else:
        np.add.at(target, channels, grad)


# ---------------------------------------------------------------------------------------------- conv


def conv_forward(x: np.ndarray, w: np.ndarray, *, channels: int, filter_size: int, padding: int, stride: int,
                 groups: int = 1, filter_channels: int | None = None, modules_x: int,
                 conns=None, saved: dict | None = None) -> np.ndarray:
    """One input's contribution to a conv layer's output, without bias.

    x (C·S·S, N), w (Cf·fs·fs, F) -> y (F·M, N):
    y[f, m, n] = Σ_{c,u,v} w[(c·fs+u)·fs+v, f] · X[chan(g(f), c), my·s − p + u, mx·s − p + v, n],
    cross-correlation (no flip), X = 0 outside [0, S)². chan(g, c) = g·Cf + c, or conns[g·Cf + c] with
    randSparse. Follows cudaconv2 convFilterActs / convFilterActsSparse (filter_acts.cu, read in cc1 and cc2;
    called by src/layer.cu: ConvLayer::fpropActs). Several inputs: the caller sums the per-input results.
    saved: a dict to keep this pass's im2col columns in, for conv_backward_weights, and to reuse scratch
    arrays from the last call with the same dict (module docstring: Speed).
    """
    geo = _geometry(rows=x.shape[0], channels=channels, filter_size=filter_size, padding=padding,
                    stride=stride, groups=groups, filter_channels=filter_channels, modules_x=modules_x,
                    conns=conns)
    fg = _check_filters(w.shape[1], geo)
    if w.shape[0] != geo.taps:
        raise ValueError(f"conv weights have {w.shape[0]} rows; expected Cf*fs*fs = {geo.taps}")
    n = x.shape[1]
    patches = _patches(x, geo, saved)
    _save_patches(saved, x, patches)
    dtype = np.result_type(x, w)
    y = np.empty((w.shape[1], geo.modules * n), dtype=dtype)
    for g in range(groups):
        cols = _group_patches(patches, geo, g).reshape(geo.taps, geo.modules * n)
        np.matmul(w[:, g * fg:(g + 1) * fg].T, cols, out=y[g * fg:(g + 1) * fg])
    return y.reshape(w.shape[1] * geo.modules, n)


def conv_backward_data(dy: np.ndarray, w: np.ndarray, *, channels: int, filter_size: int, padding: int,
                       stride: int, groups: int = 1, filter_channels: int | None = None, modules_x: int,
                       conns=None, image_size: int, saved: dict | None = None) -> np.ndarray:
    """d cost / d x for one input of a conv layer: the exact adjoint of conv_forward.

    dy (F·M, N), w (Cf·fs·fs, F) -> dx (C·S·S, N), S = image_size. Gradient that would land on the padding
    (or past the border) is dropped. Not divided by N. Follows cudaconv2 convImgActs / convImgActsSparse
    (img_acts.cu; src/layer.cu: ConvLayer::bpropActs). A consumer that is not the first to write the input's
    gradient adds to it: the caller sums. saved: a dict whose scratch arrays this call may reuse (module
    docstring: Speed); the result is always a new array.
    """
    geo = _geometry(rows=channels * image_size * image_size, channels=channels, filter_size=filter_size,
                    padding=padding, stride=stride, groups=groups, filter_channels=filter_channels,
                    modules_x=modules_x, conns=conns)
    fg = _check_filters(w.shape[1], geo)
    if w.shape[0] != geo.taps:
        raise ValueError(f"conv weights have {w.shape[0]} rows; expected Cf*fs*fs = {geo.taps}")
    if dy.shape[0] != w.shape[1] * geo.modules:
        raise ValueError(f"dy has {dy.shape[0]} rows; expected F*M = {w.shape[1] * geo.modules}")
    n = dy.shape[1]
    dtype = np.result_type(dy, w)
    grad = dy.reshape(w.shape[1], geo.modules * n)
    taps = w.reshape(geo.filter_channels, filter_size, filter_size, w.shape[1])  # row (c·fs + u)·fs + v
    buffer = _scratch(saved, "tap_columns", (geo.filter_channels, geo.modules * n), dtype)  # for every tap

    def tap_cols(g: int, u: int, v: int) -> np.ndarray:
        # (Cf, Fg) @ (Fg, M·N): what group g's filters send back through tap (u, v) of every module
        return np.matmul(taps[:, u, v, g * fg:(g + 1) * fg], grad[g * fg:(g + 1) * fg], out=buffer)

    return _image_grad(tap_cols, dtype, n, geo, saved)


def conv_backward_weights(x: np.ndarray, dy: np.ndarray, *, channels: int, filter_size: int, padding: int,
                          stride: int, groups: int = 1, filter_channels: int | None = None, modules_x: int,
                          conns=None, partial_sum: int = 0, saved: dict | None = None) -> np.ndarray:
    """(1/N)·d cost / d w for one input of a conv layer (SEMANTICS §3.4 bwd, §4.2).

    x (C·S·S, N), dy (F·M, N) -> dw (Cf·fs·fs, F), dw[k, f] = (1/N)·Σ_m Σ_n patch[k, m, n]·dy[f, m, n].

    partial_sum (the layer's partialSum) groups the sum over modules the way the 2012 code does
    (src/layer.cu: ConvLayer::bpropWeights; cc1 weight_acts.cu): for each run of partial_sum consecutive
    modules the kernel forms one partial sum over those modules and all cases and scales it by 1/N
    (scaleWGrad); the (M/partial_sum) partials are then added (NVMatrix::addSum over axis 0). 0 means one
    partial over all modules. Here each partial is one matrix product (BLAS picks the order inside it; the
    kernel loops modules then cases sequentially, which a vectorised product cannot reproduce), then scaled
    by 1/N, then the partials are summed in module order. Mathematically every partial_sum gives the same
    result; only float32 rounding differs.

    saved: the dict conv_forward filled for this x; its columns are used (and the entry removed) instead of
    recomputing them.
    """
    geo = _geometry(rows=x.shape[0], channels=channels, filter_size=filter_size, padding=padding,
                    stride=stride, groups=groups, filter_channels=filter_channels, modules_x=modules_x,
                    conns=conns)
    filters, fg = _filters_of(dy, x, geo)
    per = geo.modules if partial_sum == 0 else partial_sum
    if per < 0 or geo.modules % per:
        raise ValueError(f"partial_sum {partial_sum} does not divide the {geo.modules} modules "
                         "(layer.py: ConvLayerParser.parse)")
    parts = geo.modules // per
    n = x.shape[1]
    dtype = np.result_type(x, dy)
    scale = dtype.type(1.0 / n)  # float32(1/N) == the kernel's 1.0f / numCases
    patches = _saved_patches(saved, x, geo)
    grad = dy.reshape(filters, parts, per * n)
    dw = np.empty((geo.taps, filters), dtype=dtype)
    for g in range(groups):
        # (taps, M, N) -> (parts, taps, per·N): module runs of length `per`, cases fastest inside a run.
        cols = _group_patches(patches, geo, g).reshape(geo.taps, parts, per * n)
        dys = grad[g * fg:(g + 1) * fg]  # (Fg, parts, per·N)
        # One BLAS product per run of modules, on strided views (no copies), each scaled by 1/N as the
        # kernel scales its partial; the partials are then added in module order.
        total = (cols[:, 0, :] @ dys[:, 0, :].T) * scale
        for j in range(1, parts):
            total += (cols[:, j, :] @ dys[:, j, :].T) * scale
        dw[:, g * fg:(g + 1) * fg] = total
    return dw


def add_conv_bias(y: np.ndarray, b: np.ndarray, *, shared: bool, filters: int,
                  out: np.ndarray | None = None) -> np.ndarray:
    """y (F·M, N) plus the bias (src/layer.cu: ConvLayer::fpropActs, LocalUnsharedLayer::fpropActs).
    shared: b (F, 1), b[f] added to every module of filter f; unshared (sharedBiases=0, and every local
    layer): b (F·M, 1), b[f·M + m] added to module m. The result is a new array, or `out` (a contiguous
    array of y's shape and dtype, which may be y itself: a caller that owns y saves a copy)."""
    if y.shape[0] % filters:
        raise ValueError(f"{y.shape[0]} output rows are not {filters} filters of modules")
    if out is None:
        out = np.empty(y.shape, dtype=np.result_type(y, b))
    if shared:
        if b.shape != (filters, 1):
            raise ValueError(f"shared conv bias must be ({filters}, 1), got {b.shape}")
        np.add(y.reshape(filters, -1), b, out=out.reshape(filters, -1))
        return out
    if b.shape != (y.shape[0], 1):
        raise ValueError(f"unshared bias must be ({y.shape[0]}, 1), got {b.shape}")
    return np.add(y, b, out=out)


def conv_bias_grad(dy: np.ndarray, *, shared: bool, filters: int) -> np.ndarray:
    """(1/N)·d cost / d b (src/layer.cu: ConvLayer::bpropBiases, LocalUnsharedLayer::bpropBiases: addSum with
    scale 1/numCases). dy (F·M, N) -> (F, 1) summed over modules and cases if shared, else (F·M, 1) summed
    over cases."""
    if dy.shape[0] % filters:
        raise ValueError(f"{dy.shape[0]} gradient rows are not {filters} filters of modules")
    n = dy.shape[1]
    rows = dy.reshape(filters, -1) if shared else dy
    return rows.sum(axis=1, keepdims=True) * dy.dtype.type(1.0 / n)


# --------------------------------------------------------------------------------------------- local


def _local_weights(w: np.ndarray, geo: _Geometry) -> np.ndarray:
    """(M·Cf·fs·fs, F) -> the (M, Cf·fs·fs, F) view."""
    if w.shape[0] != geo.modules * geo.taps:
        raise ValueError(f"local weights have {w.shape[0]} rows; expected M*Cf*fs*fs = "
                         f"{geo.modules * geo.taps}")
    return w.reshape(geo.modules, geo.taps, w.shape[1])


def local_forward(x: np.ndarray, w: np.ndarray, *, channels: int, filter_size: int, padding: int, stride: int,
                  groups: int = 1, filter_channels: int | None = None, modules_x: int,
                  conns=None, saved: dict | None = None) -> np.ndarray:
    """One input's contribution to a local (unshared) layer's output, without bias.

    x (C·S·S, N), w (M·Cf·fs·fs, F) with row ((m·Cf + c)·fs + u)·fs + v -> y (F·M, N): as conv_forward, but
    module m uses its own filter block (cudaconv2 localFilterActs / localFilterActsSparse, the same kernels
    with conv=false, which offset the filters by moduleIdx·Cf·fs²·F; src/layer.cu:
    LocalUnsharedLayer::fpropActs). Several inputs: the caller sums; the bias (always unshared, (F·M, 1)) is
    added with add_conv_bias(..., shared=False). saved: as in conv_forward, for local_backward_weights.
    """
    geo = _geometry(rows=x.shape[0], channels=channels, filter_size=filter_size, padding=padding,
                    stride=stride, groups=groups, filter_channels=filter_channels, modules_x=modules_x,
                    conns=conns)
    fg = _check_filters(w.shape[1], geo)
    wm = _local_weights(w, geo)
    n = x.shape[1]
    patches = _patches(x, geo, saved)
    _save_patches(saved, x, patches)
    y = np.empty((w.shape[1], geo.modules, n), dtype=np.result_type(x, w))
    for g in range(groups):
        cols = _group_patches(patches, geo, g).reshape(geo.taps, geo.modules, n)
        # batched over modules: (M, Fg, taps) @ (M, taps, N) -> (M, Fg, N)
        out = np.matmul(wm[:, :, g * fg:(g + 1) * fg].transpose(0, 2, 1), cols.transpose(1, 0, 2))
        y[g * fg:(g + 1) * fg] = out.transpose(1, 0, 2)
    return y.reshape(w.shape[1] * geo.modules, n)


def local_backward_data(dy: np.ndarray, w: np.ndarray, *, channels: int, filter_size: int, padding: int,
                        stride: int, groups: int = 1, filter_channels: int | None = None, modules_x: int,
                        conns=None, image_size: int, saved: dict | None = None) -> np.ndarray:
    """d cost / d x for one input of a local layer, the exact adjoint of local_forward.

    dy (F·M, N), w (M·Cf·fs·fs, F) -> dx (C·S·S, N); padding contributions dropped; not divided by N
    (cudaconv2 localImgActs / localImgActsSparse; src/layer.cu: LocalUnsharedLayer::bpropActs).
    saved: as in conv_backward_data.
    """
    geo = _geometry(rows=channels * image_size * image_size, channels=channels, filter_size=filter_size,
                    padding=padding, stride=stride, groups=groups, filter_channels=filter_channels,
                    modules_x=modules_x, conns=conns)
    fg = _check_filters(w.shape[1], geo)
    wm = _local_weights(w, geo)
    if dy.shape[0] != w.shape[1] * geo.modules:
        raise ValueError(f"dy has {dy.shape[0]} rows; expected F*M = {w.shape[1] * geo.modules}")
    n = dy.shape[1]
    grad = dy.reshape(w.shape[1], geo.modules, n)
    dtype = np.result_type(dy, w)
    group_cols = None

    def tap_cols(g: int, u: int, v: int) -> np.ndarray:
        nonlocal group_cols
        if u == v == 0:  # once per group: (M, taps, Fg) @ (M, Fg, N) -> (M, taps, N) -> (Cf, fs, fs, M, N)
            out = np.matmul(wm[:, :, g * fg:(g + 1) * fg], grad[g * fg:(g + 1) * fg].transpose(1, 0, 2))
            group_cols = out.transpose(1, 0, 2).reshape(geo.filter_channels, filter_size, filter_size,
                                                        geo.modules, n)
        return group_cols[:, u, v]

    return _image_grad(tap_cols, dtype, n, geo, saved)


def local_backward_weights(x: np.ndarray, dy: np.ndarray, *, channels: int, filter_size: int, padding: int,
                           stride: int, groups: int = 1, filter_channels: int | None = None, modules_x: int,
                           conns=None, saved: dict | None = None) -> np.ndarray:
    """(1/N)·d cost / d w for one input of a local layer.

    x (C·S·S, N), dy (F·M, N) -> dw (M·Cf·fs·fs, F), dw[m, k, f] = (1/N)·Σ_n patch[k, m, n]·dy[f, m, n]
    (cudaconv2 localWeightActs; src/layer.cu: LocalUnsharedLayer::bpropWeights). The 2012 layer has
    useGrad=false and writes eps/N times this straight into the momentum buffer (SEMANTICS §4.3); the
    update rule, not this function, does that. saved: as in conv_backward_weights.
    """
    geo = _geometry(rows=x.shape[0], channels=channels, filter_size=filter_size, padding=padding,
                    stride=stride, groups=groups, filter_channels=filter_channels, modules_x=modules_x,
                    conns=conns)
    filters, fg = _filters_of(dy, x, geo)
    n = x.shape[1]
    dtype = np.result_type(x, dy)
    patches = _saved_patches(saved, x, geo)
    grad = dy.reshape(filters, geo.modules, n)
    dw = np.empty((geo.modules, geo.taps, filters), dtype=dtype)
    for g in range(groups):
        cols = _group_patches(patches, geo, g).reshape(geo.taps, geo.modules, n).transpose(1, 0, 2)
        # (M, taps, N) @ (M, N, Fg) -> (M, taps, Fg)
        dw[:, :, g * fg:(g + 1) * fg] = np.matmul(cols, grad[g * fg:(g + 1) * fg].transpose(1, 2, 0))
    dw *= dtype.type(1.0 / n)
    return dw.reshape(geo.modules * geo.taps, filters)


def conv_to_local_weights(w: np.ndarray, modules: int) -> np.ndarray:
    """Conv weights (Cf·fs·fs, F) -> local weights (M·Cf·fs·fs, F), every module a copy of the conv filter
    (layer.py: LocalLayerParser.conv_to_local, the --conv-to-local option). local_forward with the result
    equals conv_forward with w."""
    return np.tile(w, (modules, 1))


def conv_to_local_biases(b: np.ndarray, modules: int) -> np.ndarray:
    """Shared conv biases (F, 1) -> unshared (F·M, 1), row f·M + m = b[f] (layer.py:
    LocalLayerParser.conv_to_local repeats each bias M times; already-unshared biases are kept as they
    are there, so pass only shared ones here)."""
    return np.repeat(b, modules, axis=0)
