"""Dense layers, cost.logreg, blur/nailbed/href and the momentum update as CUDA kernels.

Same signatures and semantics as replay/backends/numpy_ref (dense.py, costs.py, preprocess.py) and
replay/update.py (sgd_update, here in place), checked against them kernel by kernel (tests/cuda). Arrays
are float32 in the cuda-convnet layout (features, N); the functions work on NumPy arrays (the kernels then
run in the CPU emulator) or CuPy arrays (the GPU), and return arrays of the same kind. Kernels: kernels/
dense.cu, elementwise.cu, preprocess.cu, update.cu. fc products go through xp.matmul (cuBLAS on a GPU, as
the original's NVMatrix::rightMult).

Differences from the NumPy backend, by design:
- float32 only (a float64 input raises TypeError; gradient checks use the NumPy backend);
- random numbers come from Philox4x32-10 (replay/backends/cuda/philox.py mirrors it), keyed by two words
  drawn from the caller's Generator with rng.integers: dropout masks and nrelu noise differ from the NumPy
  backend's draws, with the same distributions (mask = [u < keep], u on (0, 1], no 1/keep rescaling);
- transcendental functions are CUDA's expf/logf/tanhf (a few ulps from NumPy's).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..numpy_ref.costs import _finite_or_raise
from ..numpy_ref.dense import NEURON_PARAMS
from ..numpy_ref.preprocess import blur_filter, nailbed_geometry
from . import philox
from .kernels import BLOCK, grid_for, launch, xp_of

# Type codes of neuron_forward_kernel / neuron_backward_kernel (kernels/dense.cu NEURON_*).
NEURON_CODES: dict[str, int] = {
    "ident": 0, "relu": 1, "nrelu": 2, "logistic": 3, "tanh": 4, "brelu": 5, "softrelu": 6, "abs": 7,
    "square": 8, "sqrt": 9, "linear": 10, "drelu": 11,
}
assert set(NEURON_CODES) == set(NEURON_PARAMS)

COLUMN_BLOCK = 128  # one thread per case for the column kernels (softmax, logreg): N is 128 in 2012
ROW_BLOCK = 256  # row_mean_kernel: one block per row, a power of two


def _f32(a, name: str = "array"):
    """`a` as a C-contiguous float32 array of its own kind; other dtypes are refused, not converted."""
    if a.dtype != np.float32:
        raise TypeError(f"the CUDA backend works in float32; {name} is {a.dtype}")
    return xp_of(a).ascontiguousarray(a)


def _i32(v: int) -> np.int32:
    return np.int32(v)


def _flat(like, kernel: str, n: int, args) -> None:
    """Launch a flat grid-stride kernel over n items."""
    launch(like, kernel, (grid_for(n),), (BLOCK,), args)


def _key_args(rng: np.random.Generator) -> tuple[np.int32, np.int32]:
    """A Philox key drawn from `rng`, as the two int32 kernel arguments (bit patterns of the uint32 words)."""
    k0, k1 = philox.draw_key(rng)
    return np.uint32(k0).view(np.int32), np.uint32(k1).view(np.int32)


# --------------------------------------------------------------------------------------------------- fc

def fc_forward(xs: Sequence, ws: Sequence, b):
    """y = Σ_i W_iᵀ x_i + bᵀ. xs[i]: (in_i, N); ws[i]: (in_i, out); b: (1, out) -> (out, N)."""
    if len(xs) != len(ws) or not xs:
        raise ValueError(f"fc: {len(xs)} inputs but {len(ws)} weight matrices")
    xp = xp_of(xs[0])
    y = xp.matmul(_f32(ws[0], "w").T, _f32(xs[0], "x"))
    for x, w in zip(xs[1:], ws[1:]):
        y += xp.matmul(_f32(w, "w").T, _f32(x, "x"))
    y += _f32(b, "b").reshape(-1, 1)
    return y


def fc_backward_data(dy, w):
    """dx = W dy. dy: (out, N); w: (in, out) -> (in, N)."""
    return xp_of(dy).matmul(_f32(w, "w"), _f32(dy, "dy"))


def fc_backward_weights(x, dy):
    """G_W = (1/N)·x dyᵀ. x: (in, N); dy: (out, N) -> (in, out)."""
    grad = xp_of(x).matmul(_f32(x, "x"), _f32(dy, "dy").T)
    grad /= np.float32(x.shape[1])
    return grad


def fc_bias_grad(dy):
    """G_b = (1/N)·Σ_n dy[:, n] by a block reduction per row (row_mean_kernel). dy: (out, N) -> (1, out)."""
    dy = _f32(dy, "dy")
    rows, cols = dy.shape
    out = xp_of(dy).empty((1, rows), dtype=np.float32)
    launch(dy, "row_mean_kernel", (max(1, min(rows, 4096)),), (ROW_BLOCK,), (dy, out, _i32(rows), _i32(cols)))
    return out


# ------------------------------------------------------------------------------------------------ neuron

def _neuron_params(kind: str, params: Sequence[float]) -> tuple[np.float32, np.float32]:
    if kind not in NEURON_PARAMS:
        raise ValueError(f"unknown neuron type {kind!r}")
    if len(params) != len(NEURON_PARAMS[kind]):
        raise ValueError(f"neuron {kind} takes parameters {NEURON_PARAMS[kind]}, got {tuple(params)}")
    values = [float(p) for p in params] + [0.0, 0.0]
    return np.float32(values[0]), np.float32(values[1])


def neuron_forward(x, kind: str, params: Sequence[float] = (), rng: np.random.Generator | None = None):
    """y = f(x) elementwise (include/neuron.cuh). nrelu draws its noise from Philox keyed by `rng`
    (philox.normal mirrors it)."""
    a, b = _neuron_params(kind, params)
    x = _f32(x, "x")
    k0 = k1 = np.int32(0)
    if kind == "nrelu":
        if rng is None:
            raise ValueError("nrelu needs a numpy.random.Generator (its noise is drawn on every pass)")
        k0, k1 = _key_args(rng)
    y = xp_of(x).empty_like(x)
    n = x.size
    launch(x, "neuron_forward_kernel", (grid_for(-(-n // 4)),), (BLOCK,),
           (x, y, _i32(n), _i32(NEURON_CODES[kind]), a, b, k0, k1))
    return y


def neuron_backward(x, y, dy, kind: str, params: Sequence[float] = ()):
    """dx = f'(x)·dy in include/neuron.cuh's form (relu from y, abs sign(0) = −1, ...)."""
    a, b = _neuron_params(kind, params)
    x, y, dy = _f32(x, "x"), _f32(y, "y"), _f32(dy, "dy")
    dx = xp_of(dy).empty_like(dy)
    _flat(dy, "neuron_backward_kernel", dy.size, (x, y, dy, dx, _i32(dy.size), _i32(NEURON_CODES[kind]), a, b))
    return dx


# ----------------------------------------------------------------------------------------------- softmax

def _columns(like, kernel: str, cols: int, args) -> None:
    launch(like, kernel, (max(1, min(4096, -(-cols // COLUMN_BLOCK))),), (COLUMN_BLOCK,), args)


def softmax_forward(x):
    """Column-wise softmax over the K rows. x: (K, N) -> (K, N)."""
    x = _f32(x, "x")
    y = xp_of(x).empty_like(x)
    _columns(x, "softmax_forward_kernel", x.shape[1], (x, y, _i32(x.shape[0]), _i32(x.shape[1])))
    return y


def softmax_backward(y, dy):
    """dx_i = y_i·(dy_i − Σ_j y_j dy_j) per column (kSoftmaxGrad, our sign)."""
    y, dy = _f32(y, "y"), _f32(dy, "dy")
    dx = xp_of(dy).empty_like(dy)
    _columns(dy, "softmax_backward_kernel", dy.shape[1], (y, dy, dx, _i32(dy.shape[0]), _i32(dy.shape[1])))
    return dx


# ---------------------------------------------------------------------------------------------- logreg

def _labels(labels, num_classes: int, like):
    """(1, N) float or (N,) int labels -> (N,) int32 on the device of `like`, truncated as int(label)."""
    xp = xp_of(like)
    idx = xp.asarray(labels).reshape(-1).astype(np.int64)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(idx.min())}..{int(idx.max())}")
    return xp.ascontiguousarray(idx.astype(np.int32))


def logreg_cost(labels, probs, *, topk: int = 1, check_finite: bool = True) -> tuple[float, float, float]:
    """(−Σ_n log y_t, N − Σ top-1 credit, N − Σ top-k credit), raw sums, ties sharing credit
    (numpy_ref.costs.logreg_case_terms). One thread per case (logreg_cost_kernel), then sums in float64."""
    probs = _f32(probs, "probs")
    rows, cols = probs.shape
    xp = xp_of(probs)
    t = _labels(labels, rows, probs)
    terms = [xp.empty(cols, dtype=np.float32) for _ in range(3)]  # log y_t, top-1 credit, top-k credit
    _columns(probs, "logreg_cost_kernel", cols, (t, probs, *terms, _i32(rows), _i32(cols), _i32(topk)))
    sums = [float(term.astype(np.float64).sum()) for term in terms]
    nll = -float(sums[0])
    top1_err = cols - float(sums[1])
    topk_err = top1_err if topk == 1 else cols - float(sums[2])
    out = (nll, top1_err, topk_err)
    if check_finite:
        _finite_or_raise("cost.logreg", out)
    return out


def _per_label_gradient(kernel: str, labels, probs, coeff: float):
    """One value per element of probs from its case's label: the two logreg gradient kernels."""
    probs = _f32(probs, "probs")
    t = _labels(labels, probs.shape[0], probs)
    g = xp_of(probs).empty_like(probs)
    _flat(probs, kernel, probs.size, (t, probs, g, _i32(probs.shape[0]), _i32(probs.shape[1]), np.float32(coeff)))
    return g


def logreg_backward_probs(labels, probs, coeff: float):
    """−coeff·[j = t]/y_j w.r.t. the softmax output (kLogregCostGrad negated; 0/0 = NaN kept)."""
    return _per_label_gradient("logreg_backward_probs_kernel", labels, probs, coeff)


def softmax_logreg_backward(labels, probs, coeff: float):
    """Fused softmax + logreg gradient w.r.t. the softmax input: coeff·(y − onehot(t))."""
    return _per_label_gradient("softmax_logreg_backward_kernel", labels, probs, coeff)


# ---------------------------------------------------------------------------------------------- dropout

def _scale(x, a: float):
    y = xp_of(x).empty_like(x)
    _flat(x, "scale_kernel", x.size, (x, y, _i32(x.size), np.float32(a)))
    return y


def dropout_forward(x, *, keep: float, enable: bool, train: bool, rng: np.random.Generator | None = None):
    """The 'hs' layer: (y, mask). enable and train: mask = [u < keep] from Philox (philox.dropout_mask with
    the key drawn from `rng`), y = x·mask, no rescaling. Otherwise y = keep·x, mask None."""
    x = _f32(x, "x")
    if enable and train:
        if rng is None:
            raise ValueError("hs with enable in a training pass needs a numpy.random.Generator")
        k0, k1 = _key_args(rng)
        xp = xp_of(x)
        y, mask = xp.empty_like(x), xp.empty_like(x)
        n = x.size
        launch(x, "dropout_forward_kernel", (grid_for(-(-n // 4)),), (BLOCK,),
               (x, y, mask, _i32(n), np.float32(keep), k0, k1))
        return y, mask
    return _scale(x, keep), None


def dropout_backward(dy, mask, *, keep: float, enable: bool, train: bool):
    """dx = dy·mask when enable and train, else keep·dy."""
    dy = _f32(dy, "dy")
    if enable and train:
        if mask is None:
            raise ValueError("hs backward of a training pass needs the forward's mask")
        mask = _f32(mask, "mask")
        dx = xp_of(dy).empty_like(dy)
        _flat(dy, "multiply_kernel", dy.size, (dy, mask, dx, _i32(dy.size)))
        return dx
    return _scale(dy, keep)


# ------------------------------------------------------------------------------ concat, eltsum, eltmax

def _copy(src, dst, n: int, src_offset: int, dst_offset: int) -> None:
    _flat(src, "copy_kernel", n, (src, dst, _i32(n), _i32(src_offset), _i32(dst_offset)))


def concat_forward(xs: Sequence):
    """Stack the inputs' rows in input order. xs[i]: (D_i, N) -> (Σ D_i, N)."""
    xs = [_f32(x, "x") for x in xs]
    cols = xs[0].shape[1]
    if any(x.shape[1] != cols for x in xs):
        raise ValueError("concat: inputs differ in their number of columns")
    y = xp_of(xs[0]).empty((sum(x.shape[0] for x in xs), cols), dtype=np.float32)
    offset = 0
    for x in xs:
        _copy(x, y, x.size, 0, offset)
        offset += x.size
    return y


def concat_backward(dy, sizes: Sequence[int]) -> list:
    """dx_i = the rows of dy at input i's offset. dy: (Σ D_i, N)."""
    dy = _f32(dy, "dy")
    if sum(sizes) != dy.shape[0]:
        raise ValueError(f"concat: sizes {list(sizes)} do not add up to {dy.shape[0]} rows")
    cols, out, offset = dy.shape[1], [], 0
    for d in sizes:
        dx = xp_of(dy).empty((d, cols), dtype=np.float32)
        _copy(dy, dx, d * cols, offset, 0)
        offset += d * cols
        out.append(dx)
    return out


def eltsum_forward(xs: Sequence, coeffs: Sequence[float] | None = None):
    """y = Σ_i c_i x_i (coeffs default all 1), accumulated in input order as the reference."""
    coeffs = [1.0] * len(xs) if coeffs is None else list(coeffs)
    if len(coeffs) != len(xs):
        raise ValueError(f"eltsum: {len(coeffs)} coeffs for {len(xs)} inputs")
    xs = [_f32(x, "x") for x in xs]
    y = _scale(xs[0], coeffs[0])
    for x, c in zip(xs[1:], coeffs[1:]):
        _flat(x, "add_scaled_kernel", x.size, (x, y, _i32(x.size), np.float32(c)))
    return y


def eltsum_backward(dy, coeffs: Sequence[float]) -> list:
    """dx_i = c_i·dy."""
    dy = _f32(dy, "dy")
    return [_scale(dy, c) for c in coeffs]


def eltmax_forward(xs: Sequence):
    """Elementwise max over at least 2 inputs (NaN propagates, as np.maximum)."""
    if len(xs) < 2:
        raise ValueError("eltmax needs at least 2 inputs")
    xs = [_f32(x, "x") for x in xs]
    y = xp_of(xs[0]).empty_like(xs[0])
    _flat(y, "maximum_kernel", y.size, (xs[0], xs[1], y, _i32(y.size)))
    for x in xs[2:]:
        _flat(y, "maximum_kernel", y.size, (y, x, y, _i32(y.size)))
    return y


def eltmax_backward(dy, xs: Sequence, y) -> list:
    """dx_i = dy·[x_i == y] (kEltwiseMaxGrad): every input tied for the max gets the full gradient."""
    dy, y = _f32(dy, "dy"), _f32(y, "y")
    out = []
    for x in xs:
        dx = xp_of(dy).empty_like(dy)
        _flat(dy, "eltmax_backward_kernel", dy.size, (dy, _f32(x, "x"), y, dx, _i32(dy.size)))
        out.append(dx)
    return out


# ---------------------------------------------------------------------------------- blur, nailbed, href

def _blur(x, channels: int, filter_size: int, stdev: float):
    x = _f32(x, "x")
    rows, cases = x.shape
    side = int(round((rows // channels) ** 0.5))
    if channels * side * side != rows:
        raise ValueError(f"{rows} rows are not {channels} square images")
    if filter_size > side:  # layer.py: "filter size must be smaller than image size"
        raise ValueError(f"filter_size={filter_size} exceeds the image size {side}")
    xp = xp_of(x)
    g = xp.asarray(blur_filter(filter_size, stdev))
    horizontal, out = xp.empty_like(x), xp.empty_like(x)
    geometry = (_i32(filter_size), _i32(channels), _i32(side), _i32(cases))
    _flat(x, "blur_pass_kernel", x.size, (x, horizontal, g, *geometry, _i32(1)))  # along x first
    _flat(x, "blur_pass_kernel", x.size, (horizontal, out, g, *geometry, _i32(0)))
    return out


def blur_forward(x, *, channels: int, filter_size: int, stdev: float):
    """Separable Gaussian blur, horizontal pass then vertical, zero padded: (C·S·S, N) -> (C·S·S, N)."""
    return _blur(x, channels, filter_size, stdev)


def blur_backward(dy, *, channels: int, filter_size: int, stdev: float):
    """The same two passes on dy (the exact adjoint: the filter is symmetric)."""
    return _blur(dy, channels, filter_size, stdev)


def nailbed_forward(x, *, channels: int, stride: int):
    """y[c, oy, ox] = x[c, start + oy·stride, start + ox·stride]: (C·S·S, N) -> (C·Ox·Ox, N)."""
    x = _f32(x, "x")
    rows, cases = x.shape
    side = int(round((rows // channels) ** 0.5))
    if channels * side * side != rows:
        raise ValueError(f"{rows} rows are not {channels} square images")
    outputs_x, start = nailbed_geometry(side, stride)
    y = xp_of(x).empty((channels * outputs_x * outputs_x, cases), dtype=np.float32)
    _flat(x, "nailbed_forward_kernel", y.size,
          (x, y, _i32(channels), _i32(side), _i32(cases), _i32(outputs_x), _i32(start), _i32(stride)))
    return y


def nailbed_backward(dy, *, channels: int, stride: int, img_size: int):
    """dx: dy at the sampled pixels, 0 elsewhere, (C·S·S, N) with S = img_size."""
    dy = _f32(dy, "dy")
    outputs_x, start = nailbed_geometry(img_size, stride)
    cases = dy.shape[1]
    if dy.shape[0] != channels * outputs_x * outputs_x:
        raise ValueError(f"dy has {dy.shape[0]} rows, expected {channels}·{outputs_x}²")
    dx = xp_of(dy).empty((channels * img_size * img_size, cases), dtype=np.float32)
    _flat(dy, "nailbed_backward_kernel", dx.size,
          (dy, dx, _i32(channels), _i32(img_size), _i32(cases), _i32(outputs_x), _i32(start), _i32(stride)))
    return dx


def _href(x, channels: int):
    if not 1 <= channels <= 3:  # layer.py: HorizontalReflectionLayerParser; convReflectHorizontal asserts
        raise ValueError(f"href takes 1 to 3 channels, got {channels}")
    rows, cases = x.shape
    side = round((rows // channels) ** 0.5)
    if channels * side * side != rows:
        raise ValueError(f"{rows} rows are not {channels} square images")
    y = xp_of(x).empty_like(x)
    _flat(x, "href_kernel", y.size, (x, y, _i32(channels), _i32(side), _i32(cases)))
    return y


def href_forward(x, *, channels: int):
    """y[c, y, x] = x[c, y, S − 1 − x] for every case: (C·S·S, N) -> (C·S·S, N) (cc2 conv_util.cu: kReflectH)."""
    return _href(_f32(x, "x"), channels)


def href_backward(dy, *, channels: int, prev_grad=None, fix_overwrite: bool = False):
    """The input's gradient buffer after this layer, as numpy_ref.preprocess.href_backward: the mirrored dy,
    which overwrites prev_grad (HorizontalReflectionLayer::bpropActs ignores scaleTargets) unless
    fix_overwrite, which gives prev_grad + mirrored dy."""
    dx = _href(_f32(dy, "dy"), channels)
    if prev_grad is not None and fix_overwrite:
        prev_grad = _f32(prev_grad, "prev_grad")
        if prev_grad.shape != dx.shape:
            raise ValueError(f"prev_grad is {prev_grad.shape}, the gradient {dx.shape}")
        _flat(dx, "add_scaled_kernel", dx.size, (prev_grad, dx, _i32(dx.size), np.float32(1.0)))  # dx += prev
    return dx


# --------------------------------------------------------------------------------------------- update

def sgd_update(w, v, grad, eps: float, mom: float, wc: float = 0.0, eps_decay: float | None = None,
               base_eps: float | None = None) -> None:
    """replay/update.py sgd_update IN PLACE on w and v (device arrays, float32, C-contiguous):

        V ← mom·V − eps·grad − (wc·eps_decay)·W  (the decay only when wc > 0);  W ← W + V

    Nothing happens when the base rate (base_eps, default eps) is <= 0. Bit-identical to the reference
    (sgd_update_kernel rounds every operation separately; wc·eps_decay is rounded once here, as NumPy does).
    """
    base = eps if base_eps is None else base_eps
    if not base > 0:
        return
    for name, a in (("w", w), ("v", v), ("grad", grad)):
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            raise TypeError(f"sgd_update updates in place: {name} must be C-contiguous float32")
    if not (w.shape == v.shape == grad.shape):
        raise ValueError(f"sgd_update: shapes {w.shape}, {v.shape}, {grad.shape} differ")
    rate = eps if eps_decay is None else eps_decay
    use_decay = wc > 0
    decay = np.float32(wc * rate) if use_decay else np.float32(0)
    _flat(w, "sgd_update_kernel", w.size,
          (w, v, grad, _i32(w.size), np.float32(eps), np.float32(mom), decay, _i32(int(use_decay))))
