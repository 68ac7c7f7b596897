"""Response and contrast normalisation: cmrnorm (across maps), rnorm (within a map), cnorm (contrast).

Layout as cuda-convnet (SEMANTICS.md §2): x, y, denoms are (C·S·S, N), viewed as (C, S, S, N).

`scale` is the value written in the layer-params file. The 2012 parser divides it before the kernels see it
(layer.py: NormLayerParser.add_params): α = scale/size for cmrnorm, α = scale/size² for rnorm and cnorm.
A checkpoint's layer dict holds the divided value; pass the undivided one here.

Windows (cc1 conv_util.cu: kFCNorm, kCNorm_*, kCNorm2; the C expression `-size/2` is −⌊size/2⌋):
- across maps, map f sums maps [f − ⌊size/2⌋, f − ⌊size/2⌋ + size) ∩ [0, C): for even size one more map
  below f than above (size 4: f−2..f+1). blocked: maps [⌊f/size⌋·size, +size) ∩ [0, C).
- within a map, pixel (y, x) sums the same rectangle rule on rows and on columns, clipped to the image.
Clipped windows keep the constant divisor (α does not change at the border).

Denominators (the stored `denoms`): d = k + α·Σ_window v², then y = x·d^(−β), β = pow, where
- cmrnorm: v = x, k = min_div (the params key minDiv, default 1; cc2 kFCNorm puts it where cc1 has 1);
- rnorm:   v = x, k = 1 (convResponseNorm has no minDiv argument in the release's call);
- cnorm:   v = x − mean of x over the same clipped window, k = 1, and the numerator is the raw x.

Backward (cc1 kRNormUndoPrelims + kFRNormUndo / kRNormUndo / kRNormUndo2), with t = −2αβ·dy·y/d:
    dx_p = dy_p·d_p^(−β) + v_p·Σ_{q : p ∈ window(q)} t_q
which is the exact derivative for cmrnorm and rnorm (min_div drops out: it is inside d). For cnorm, v is the
mean difference and the mean's own dependence on x is ignored (convContrastNormUndo passes meanDiffs as the
"inputs" of convResponseNormUndo), as in 2012; include_mean_grad=True gives the exact gradient instead.
The backward functions return d(cost)/dx (PyTorch's sign); the formula is linear in dy, so it is the same
formula the original applies to its negative gradients.

The size >= 6 bug (cc1 and cc2 conv_util.cu: convResponseNormUndo): for rnorm and cnorm with size >= 6
(and C % 4 == 0) the kernel's "add" template flag is inverted, so when another consumer has already written
the input's gradient (scaleTargets = 1) it is overwritten instead of added to. rnorm_backward and
cnorm_backward take that earlier gradient as prev_grad and return the buffer's new content: by default what
2012 computed (fix_size_bug=False), or prev_grad + dx with fix_size_bug=True. No archived rnorm/cnorm has
size >= 6 (they use 3 and 5), so replays of the archive are unaffected either way.
"""
from __future__ import annotations

import numpy as np

from replay.backends.numpy_ref.pool import pool_backward, pool_forward
from replay.layout import as_images

# cc1 conv_util.cu: convResponseNormUndo takes the kRNormUndo2 path with the inverted "add" flag here.
SIZE_BUG_MIN_SIZE = 6


def _window_sum(a: np.ndarray, axis: int, size: int, before: int) -> np.ndarray:
    """out[i] = Σ a[j] over j in [i − before, i − before + size) ∩ [0, n) along `axis` (zero padding).

    One in-place add of a shifted slice per window tap, in tap order; the taps that would read the zero
    padding are skipped (adding 0 changes nothing), so no padded copy is made."""
    n = a.shape[axis]
    out = np.zeros_like(a)
    for offset in range(size):
        shift = offset - before  # out[i] += a[i + shift] where 0 <= i + shift < n
        lo, hi = max(0, -shift), min(n, n - shift)
        if lo >= hi:
            continue
        target = out[(slice(None),) * axis + (slice(lo, hi),)]
        np.add(target, a[(slice(None),) * axis + (slice(lo + shift, hi + shift),)], out=target)
    return out


def _block_sum(a: np.ndarray, size: int) -> np.ndarray:
    """out[f] = Σ a[g] over g in [⌊f/size⌋·size, ⌊f/size⌋·size + size) ∩ [0, C), along axis 0."""
    n = a.shape[0]
    blocks = -(-n // size)
    padded = np.pad(a, [(0, blocks * size - n)] + [(0, 0)] * (a.ndim - 1))
    sums = padded.reshape((blocks, size) + a.shape[1:]).sum(axis=1)
    return np.repeat(sums, size, axis=0)[:n]


def _cross_map_sum(a: np.ndarray, size: int, blocked: bool, *, adjoint: bool) -> np.ndarray:
    """Σ over the cross-map window of each map (adjoint=False), or over the maps whose window holds it."""
    if blocked:  # membership is symmetric in blocks
        return _block_sum(a, size)
    before = size - 1 - size // 2 if adjoint else size // 2  # kFRNormUndo: startF = f − size + size/2 + 1
    return _window_sum(a, 0, size, before)


def _spatial_sum(a: np.ndarray, size: int, *, adjoint: bool) -> np.ndarray:
    """Box sum over the clipped size×size window of every pixel of (C, S, S, N), or its transpose."""
    before = size - 1 - size // 2 if adjoint else size // 2  # kRNormUndo: startY = y + size/2 − size + 1
    return _window_sum(_window_sum(a, 1, size, before), 2, size, before)


# The element-wise steps below work in place on arrays they have just made: the same operations in the same
# order as the formulas in the docstrings (so the same float32 roundings), without a temporary per step.

def _denoms(window_sums: np.ndarray, alpha: float, k: float) -> np.ndarray:
    """k + α·window_sums, computed in the fresh window_sums array."""
    window_sums *= alpha
    window_sums += k
    return window_sums


def _normalised(images: np.ndarray, denoms: np.ndarray, pow: float) -> np.ndarray:
    """images·denoms^(−pow), a new array."""
    out = denoms ** (-pow)
    out *= images
    return out


def _undo(inputs: np.ndarray, y: np.ndarray, denoms: np.ndarray, dy: np.ndarray, coeff: float, pow: float,
          adjoint_sum) -> np.ndarray:
    """dy·d^(−pow) + inputs·adjoint_sum(coeff·dy·y/d), coeff = −2αβ (kRNormUndoPrelims, then kFRNormUndo /
    kRNormUndo), all (C, S, S, N)."""
    scratch = np.multiply(dy, coeff)
    scratch *= y
    scratch /= denoms
    dx = adjoint_sum(scratch)
    dx *= inputs
    direct = denoms ** (-pow)
    direct *= dy
    dx += direct
    return dx


def _gradient_buffer(dx: np.ndarray, prev_grad: np.ndarray | None, size: int, channels: int,
                     fix_size_bug: bool) -> np.ndarray:
    """What convResponseNormUndo leaves in the input's gradient buffer (see the module docstring)."""
    if prev_grad is None:  # scaleTargets = 0: the first writer; the inverted flag computes 0·old + dx
        return dx
    overwrites = size >= SIZE_BUG_MIN_SIZE and channels % 4 == 0 and not fix_size_bug
    return dx if overwrites else prev_grad + dx


# ---------------------------------------------------------------------------------------------- cmrnorm

def cmrnorm_forward(x: np.ndarray, *, channels: int, size: int, scale: float, pow: float,
                    min_div: float = 1.0, blocked: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cross-map response normalisation: (y, denoms), both (C·S·S, N).

    d_f = min_div + (scale/size)·Σ_{j in W(f)} x_j², y_f = x_f·d_f^(−pow), per pixel and case
    (layer.cu: CrossMapResponseNormLayer::fpropActs -> convResponseNormCrossMap; cc1 kFCNorm with cc2's
    minDiv). Equals torch.nn.functional.local_response_norm(x, size, alpha=scale, beta=pow, k=min_div)
    when not blocked: torch divides alpha by size too, and pads its channel window the same way."""
    images = as_images(x, channels)
    alpha = scale / size  # layer.py: NormLayerParser.add_params
    denoms = _denoms(_cross_map_sum(images * images, size, blocked, adjoint=False), alpha, min_div)
    y = _normalised(images, denoms, pow)
    return y.reshape(x.shape), denoms.reshape(x.shape)


def cmrnorm_backward(x: np.ndarray, y: np.ndarray, denoms: np.ndarray, dy: np.ndarray, *, channels: int,
                     size: int, scale: float, pow: float, min_div: float = 1.0,
                     blocked: bool = False) -> np.ndarray:
    """dx (C·S·S, N) (cc1 convResponseNormCrossMapUndo: kRNormUndoPrelims then kFRNormUndo).

    dx_f = dy_f·d_f^(−pow) − 2·(scale/size)·pow·x_f·Σ_{j : f in W(j)} dy_j·y_j/d_j. min_div is unused (it
    is inside denoms); it is accepted so that the forward's keyword arguments can be passed unchanged.
    The original overwrites y with the scratch term; nothing here is modified in place."""
    del min_div
    shape = as_images(x, channels).shape
    alpha = scale / size
    dx = _undo(x.reshape(shape), y.reshape(shape), denoms.reshape(shape), dy.reshape(shape), -2.0 * alpha * pow,
               pow, lambda scratch: _cross_map_sum(scratch, size, blocked, adjoint=True))
    return dx.reshape(x.shape)


# ------------------------------------------------------------------------------------------------ rnorm

def rnorm_forward(x: np.ndarray, *, channels: int, size: int, scale: float,
                  pow: float) -> tuple[np.ndarray, np.ndarray]:
    """Same-map response normalisation: (y, denoms), both (C·S·S, N).

    d = 1 + (scale/size²)·Σ x² over the clipped size×size window of the same map, y = x·d^(−pow)
    (layer.cu: ResponseNormLayer::fpropActs -> convResponseNorm = convContrastNorm(images, images, ...))."""
    images = as_images(x, channels)
    alpha = scale / (size * size)  # layer.py: NormLayerParser.add_params
    denoms = _denoms(_spatial_sum(images * images, size, adjoint=False), alpha, 1.0)
    y = _normalised(images, denoms, pow)
    return y.reshape(x.shape), denoms.reshape(x.shape)


def _spatial_undo(inputs: np.ndarray, y: np.ndarray, denoms: np.ndarray, dy: np.ndarray, channels: int,
                  size: int, scale: float, pow: float) -> np.ndarray:
    """cc1 convResponseNormUndo's maths, α = scale/size²:
    dy·d^(−pow) + inputs·Σ_{q ∋ p} (−2αβ·dy·y/d)_q."""
    shape = as_images(inputs, channels).shape
    alpha = scale / (size * size)
    dx = _undo(inputs.reshape(shape), y.reshape(shape), denoms.reshape(shape), dy.reshape(shape),
               -2.0 * alpha * pow, pow, lambda scratch: _spatial_sum(scratch, size, adjoint=True))
    return dx.reshape(inputs.shape)


def rnorm_backward(x: np.ndarray, y: np.ndarray, denoms: np.ndarray, dy: np.ndarray, *, channels: int,
                   size: int, scale: float, pow: float, prev_grad: np.ndarray | None = None,
                   fix_size_bug: bool = False) -> np.ndarray:
    """The input's gradient buffer after this layer's backward, (C·S·S, N).

    dx_p = dy_p·d_p^(−pow) − 2·(scale/size²)·pow·x_p·Σ_{q : p in window(q)} dy_q·y_q/d_q
    (layer.cu: ResponseNormLayer::bpropActs -> convResponseNormUndo; kRNormUndo, or kRNormUndo2 for
    size >= 6). prev_grad: what other consumers already wrote there (None: nothing, the result is dx).
    With a prev_grad and size >= 6 the 2012 code returns dx alone (the bug, module docstring) unless
    fix_size_bug."""
    dx = _spatial_undo(x, y, denoms, dy, channels, size, scale, pow)
    return _gradient_buffer(dx, prev_grad, size, channels, fix_size_bug)


# ------------------------------------------------------------------------------------------------ cnorm

def cnorm_forward(x: np.ndarray, *, channels: int, size: int, scale: float,
                  pow: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contrast normalisation: (y, denoms, mean_diffs), all (C·S·S, N) (layer.cu: ContrastNormLayer).

    μ = avg pool of x with window size, stride 1, start −⌊size/2⌋, outputsX = S (the clipped-window mean);
    m = x − μ; d = 1 + (scale/size²)·Σ m² over the same window; y = x·d^(−pow) — the raw x on top."""
    images = as_images(x, channels)
    side = images.shape[1]
    means = pool_forward(x, channels=channels, size_x=size, stride=1, start=-(size // 2), outputs_x=side,
                         pool="avg")
    mean_diffs = x - means  # _meanDiffs.add(images, -1, 1): −μ + x
    diffs = mean_diffs.reshape(images.shape)
    alpha = scale / (size * size)
    denoms = _denoms(_spatial_sum(diffs * diffs, size, adjoint=False), alpha, 1.0)
    y = _normalised(images, denoms, pow)
    return y.reshape(x.shape), denoms.reshape(x.shape), mean_diffs


def cnorm_backward(mean_diffs: np.ndarray, y: np.ndarray, denoms: np.ndarray, dy: np.ndarray, *,
                   channels: int, size: int, scale: float, pow: float, prev_grad: np.ndarray | None = None,
                   fix_size_bug: bool = False, include_mean_grad: bool = False) -> np.ndarray:
    """The input's gradient buffer after this layer's backward, (C·S·S, N).

    2012 (layer.cu: ContrastNormLayer::bpropActs -> convContrastNormUndo -> convResponseNormUndo with
    meanDiffs as its inputs): dx_p = dy_p·d_p^(−pow) − 2·(scale/size²)·pow·m_p·Σ_{q ∋ p} dy_q·y_q/d_q,
    i.e. μ treated as a constant. include_mean_grad=True adds the term through μ (not 2012 behaviour):
    the m-part g is replaced by g − avg_pool_backward(g). prev_grad / fix_size_bug as in rnorm_backward."""
    dx = _spatial_undo(mean_diffs, y, denoms, dy, channels, size, scale, pow)
    if include_mean_grad:
        shape = as_images(mean_diffs, channels).shape
        direct = dy.reshape(shape) * denoms.reshape(shape) ** (-pow)
        through_m = dx - direct.reshape(dx.shape)
        side = shape[1]
        dx = dx - pool_backward(mean_diffs, mean_diffs, through_m, channels=channels, size_x=size, stride=1,
                                start=-(size // 2), outputs_x=side, pool="avg")
    return _gradient_buffer(dx, prev_grad, size, channels, fix_size_bug)
