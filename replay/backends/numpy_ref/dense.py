"""Dense layers of the 2012 cuda-convnet: fc, neuron, softmax, hs (dropout), concat, eltsum, eltmax, treefc.

Layout (SEMANTICS.md §2): every activation is a (features, N) array, one column per case. fc weights are
(in_i, out) per input and fc biases (1, out); treefc weights are (in, #tree nodes).

Sign (ours, not the original's): every backward function returns the DERIVATIVE of the cost. The 2012 code
stores negative derivatives ("descent directions") and adds them in the update, so its buffers are the
negation of what these functions return. Activation gradients are per-case sums (not divided by N); weight
and bias gradients are divided by N, the number of columns of the minibatch (`FCLayer::bpropWeights`).

Nothing here modifies its inputs; outputs keep the input dtype (float32 for replay, float64 for checks).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------------------
# fc (src/layer.cu: FCLayer)
# --------------------------------------------------------------------------------------------------


def fc_forward(xs: Sequence[np.ndarray], ws: Sequence[np.ndarray], b: np.ndarray) -> np.ndarray:
    """y = Σ_i W_iᵀ x_i + bᵀ.

    xs[i]: (in_i, N); ws[i]: (in_i, out); b: (1, out) -> y: (out, N).
    The bias is added once, with the first input (`FCLayer::fpropActs` adds it when scaleTargets == 0).
    """
    if len(xs) != len(ws) or not xs:
        raise ValueError(f"fc: {len(xs)} inputs but {len(ws)} weight matrices")
    y = ws[0].T @ xs[0]
    for x, w in zip(xs[1:], ws[1:]):
        y = y + w.T @ x
    return y + b.reshape(-1, 1)


def fc_backward_data(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx_i = W_i dy.  dy: (out, N); w: (in_i, out) -> (in_i, N).  (`FCLayer::bpropActs`)"""
    return w @ dy


def fc_backward_weights(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """G_W = (1/N)·x dyᵀ.  x: (in, N); dy: (out, N) -> (in, out).  (`FCLayer::bpropWeights`, scaleGrad 1/N)"""
    grad = x @ dy.T
    grad /= x.shape[1]  # in place: the same division, without a second (in, out) array
    return grad


def fc_bias_grad(dy: np.ndarray) -> np.ndarray:
    """G_b = (1/N)·Σ_n dy[:, n].  dy: (out, N) -> (1, out).  (`FCLayer::bpropBiases`)"""
    return (dy.sum(axis=1) / dy.shape[1]).reshape(1, -1)


# --------------------------------------------------------------------------------------------------
# neuron (include/neuron.cuh, src/neuron.cu: Neuron::makeNeuron; layer.py: neuron_parsers)
# --------------------------------------------------------------------------------------------------

# The neuron types layer.py registers, with their positional parameter names. `abstanh` has a parser class
# in layer.py but is not registered in `neuron_parsers`, so the release rejects it; it is not here either.
NEURON_PARAMS: dict[str, tuple[str, ...]] = {
    "ident": (), "logistic": (), "abs": (), "relu": (), "nrelu": (), "softrelu": (), "square": (),
    "sqrt": (), "tanh": ("a", "b"), "brelu": ("a",), "linear": ("a", "b"), "drelu": ("a",),
}

# layer.py: ParamNeuronParser.parse. Only ASCII digits, '.', ',', '-' and whitespace may stand between
# the brackets, so exponents ("1e-3") are rejected. Python 2's \d is ASCII-only; re.ASCII keeps that.
_PARAM_NEURON = re.compile(r"^(\w+)\s*\[([\d,.\s\-]*)\]\s*$", re.ASCII)


def parse_neuron(spec: str) -> tuple[str, tuple[float, ...]]:
    """'tanh[1.7,0.66]' -> ('tanh', (1.7, 0.66)); 'relu' -> ('relu', ()).

    As layer.py's `neuron_parsers`: names without parameters must match exactly (case-sensitive, no
    brackets); names with parameters need exactly their number of comma-separated floats. Raises
    ValueError otherwise. (The release raises LayerParsingError for an unknown name or a wrong count, and
    crashes with an uncaught ValueError for a malformed number such as 'tanh[1,]' or 'tanh[1.2.3,1]',
    because `ParamNeuronParser.parse` only catches TypeError.)
    """
    if spec in NEURON_PARAMS and not NEURON_PARAMS[spec]:
        return spec, ()
    m = _PARAM_NEURON.match(spec)
    if m and NEURON_PARAMS.get(m.group(1)):
        kind, names = m.group(1), NEURON_PARAMS[m.group(1)]
        try:
            values = tuple(float(v.strip()) for v in m.group(2).split(","))
        except ValueError:
            raise ValueError(f"neuron {spec!r}: parameters must be plain floats") from None
        if len(values) == len(names):
            return kind, values
        raise ValueError(f"neuron {spec!r}: {kind} takes {len(names)} parameter(s) {list(names)}")
    raise ValueError(f"unknown neuron type {spec!r}; valid: "
                     + ", ".join(k + (f"[{','.join(p)}]" if p else "") for k, p in sorted(NEURON_PARAMS.items())))


def _check_neuron(kind: str, params: Sequence[float]) -> tuple[float, ...]:
    if kind not in NEURON_PARAMS:
        raise ValueError(f"unknown neuron type {kind!r}")
    if len(params) != len(NEURON_PARAMS[kind]):
        raise ValueError(f"neuron {kind} takes parameters {NEURON_PARAMS[kind]}, got {tuple(params)}")
    return tuple(float(p) for p in params)


def neuron_forward(x: np.ndarray, kind: str, params: Sequence[float] = (),
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """y = f(x) elementwise, f as in include/neuron.cuh. x: any shape -> same shape and dtype.

    The CUDA code uses fast intrinsics (__expf, __fdividef); these are the exact formulas, within ~1e-6
    relative of the GPU. nrelu draws z ~ N(0,1) from `rng` on EVERY pass, test included (the neuron does not
    know the pass type): y = max(0, r + r·z), r = max(0, x) (`NoisyReluNeuron::_activate`:
    addGaussianNoise(stdevs = outputs, var = false)).
    """
    p = _check_neuron(kind, params)
    dt = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if kind == "ident":
            return x.copy()
        if kind == "relu":
            return np.where(x < 0, dt(0), x)
        if kind == "nrelu":
            if rng is None:
                raise ValueError("nrelu needs a numpy.random.Generator (its noise is drawn on every pass)")
            r = np.where(x < 0, dt(0), x)
            noisy = r + r * rng.standard_normal(x.shape).astype(x.dtype)
            return np.where(noisy < 0, dt(0), noisy)
        if kind == "logistic":
            return dt(1) / (dt(1) + np.exp(-x))
        if kind == "tanh":  # a·(2/(1+e^(−2bx)) − 1) in the kernel = a·tanh(bx)
            a, b = p
            return dt(a) * np.tanh(dt(b) * x)
        if kind == "brelu":  # min(a, max(0, x)): x < 0 -> 0, x > a -> a
            (a,) = p
            return np.where(x < 0, dt(0), np.where(x > dt(a), dt(a), x))
        if kind == "softrelu":  # identity above 4 "for numerical stability": a jump of 0.018 at x = 4
            return np.where(x > 4, x, np.log(dt(1) + np.exp(np.minimum(x, dt(4)))))
        if kind == "abs":
            return np.abs(x)
        if kind == "square":
            return x * x
        if kind == "sqrt":  # sqrtf: NaN for x < 0
            return np.sqrt(x)
        if kind == "linear":
            a, b = p
            return dt(a) * x + dt(b)
        if kind == "drelu":  # x − a·tanh(x/a)
            (a,) = p
            return x - dt(a) * np.tanh(x / dt(a))
    raise AssertionError(kind)


def neuron_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, kind: str,
                    params: Sequence[float] = ()) -> np.ndarray:
    """dx = f'(x)·dy in the form include/neuron.cuh computes it (from y or from x, as each operator does).

    x: the neuron's input, y: its output (from neuron_forward; for nrelu the noisy output), dy: (same shape).
    Quirks kept: relu/nrelu use [y > 0]; brelu [0 < y < a]; abs uses sign(0) = −1; softrelu is exactly dy
    above x = 4; sqrt divides by 2y (inf/NaN at y = 0, as __fdividef).
    """
    p = _check_neuron(kind, params)
    dt = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if kind == "ident":
            return dy.copy()
        if kind in ("relu", "nrelu"):  # ReluGradientOperator on the outputs
            return dy * (y > 0)
        if kind == "logistic":
            return dy * y * (dt(1) - y)
        if kind == "tanh":  # b·(a − y²/a)
            a, b = p
            return dy * dt(b) * (dt(a) - y * y / dt(a))
        if kind == "brelu":
            (a,) = p
            return dy * ((y > 0) & (y < dt(a)))
        if kind == "softrelu":  # from the inputs: e^x/(1+e^x) below 4, 1 above
            e = np.exp(np.minimum(x, dt(4)))
            return np.where(x > 4, dy, dy * (e / (dt(1) + e)))
        if kind == "abs":  # AbsGradientOperator: x > 0 ? 1 : −1, so sign(0) = −1
            return dy * np.where(x > 0, dt(1), dt(-1))
        if kind == "square":
            return dy * dt(2) * x
        if kind == "sqrt":
            return dy / (dt(2) * y)
        if kind == "linear":
            return dt(p[0]) * dy
        if kind == "drelu":  # tanh²(x/a), from the inputs
            t = np.tanh(x / dt(p[0]))
            return dy * (t * t)
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------------
# softmax (src/layer.cu: SoftmaxLayer; src/layer_kernels.cu: kSoftmaxGrad)
# --------------------------------------------------------------------------------------------------


def softmax_forward(x: np.ndarray) -> np.ndarray:
    """Column-wise softmax over the features: y = exp(x − max) / Σ exp(x − max).  x: (K, N) -> (K, N)."""
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx_i = y_i·(dy_i − Σ_j y_j dy_j) per column.  y, dy: (K, N) -> (K, N).  (`kSoftmaxGrad`)

    The unfused path. When the softmax's only consumer is a cost.logreg on the same GPU the original never
    calls this: it uses the fused gradient (costs.softmax_logreg_backward). See costs.softmax_logreg_fused.
    """
    return y * (dy - (y * dy).sum(axis=0, keepdims=True))


# --------------------------------------------------------------------------------------------------
# hs = dropout (src/layer.cu: HiddenSexLayer)
# --------------------------------------------------------------------------------------------------


def dropout_forward(x: np.ndarray, *, keep: float, enable: bool, train: bool,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The 'hs' layer. x: (D, N) -> (y, mask).

    enable and train (PASS_TRAIN only): mask = [u < keep] with u uniform on (0, 1] per element (curand
    uniform, then `smallerThanScalar(keep)`), y = x·mask. NO 1/keep rescaling (not inverted dropout).
    Otherwise — test, multiview, gradient check, and training with enable = false — y = keep·x, mask None.
    """
    if enable and train:
        if rng is None:
            raise ValueError("hs with enable in a training pass needs a numpy.random.Generator")
        u = 1.0 - rng.random(x.shape)  # numpy draws [0, 1); curand_uniform draws (0, 1]
        mask = (u < keep).astype(x.dtype)
        return x * mask, mask
    return x * x.dtype.type(keep), None


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None, *, keep: float, enable: bool,
                     train: bool) -> np.ndarray:
    """dx = dy·mask when enable and train, else keep·dy (`HiddenSexLayer::bpropActs`)."""
    if enable and train:
        if mask is None:
            raise ValueError("hs backward of a training pass needs the forward's mask")
        return dy * mask
    return dy * dy.dtype.type(keep)


# --------------------------------------------------------------------------------------------------
# concat, eltsum, eltmax (src/layer.cu: ConcatenationLayer, EltwiseSumLayer, EltwiseMaxLayer)
# --------------------------------------------------------------------------------------------------


def concat_forward(xs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack the inputs' feature rows in input order. xs[i]: (D_i, N) -> (Σ D_i, N)."""
    return np.concatenate(list(xs), axis=0)


def concat_backward(dy: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """dx_i = the rows of dy at input i's offset (layer.py `copyOffsets`). dy: (Σ D_i, N)."""
    if sum(sizes) != dy.shape[0]:
        raise ValueError(f"concat: sizes {list(sizes)} do not add up to {dy.shape[0]} rows")
    offsets = np.cumsum([0, *sizes])
    return [dy[offsets[i]:offsets[i + 1]].copy() for i in range(len(sizes))]


def eltsum_forward(xs: Sequence[np.ndarray], coeffs: Sequence[float] | None = None) -> np.ndarray:
    """y = Σ_i c_i x_i (coeffs default all 1, layer.py `EltwiseSumLayerParser`). xs[i]: (D, N)."""
    coeffs = [1.0] * len(xs) if coeffs is None else list(coeffs)
    if len(coeffs) != len(xs):
        raise ValueError(f"eltsum: {len(coeffs)} coeffs for {len(xs)} inputs")
    dt = xs[0].dtype.type
    y = xs[0] * dt(coeffs[0])
    for x, c in zip(xs[1:], coeffs[1:]):
        y = y + x * dt(c)
    return y


def eltsum_backward(dy: np.ndarray, coeffs: Sequence[float]) -> list[np.ndarray]:
    """dx_i = c_i·dy."""
    return [dy * dy.dtype.type(c) for c in coeffs]


def eltmax_forward(xs: Sequence[np.ndarray]) -> np.ndarray:
    """y = elementwise max over the inputs (at least 2, layer.py `EltwiseMaxLayerParser`). xs[i]: (D, N)."""
    if len(xs) < 2:
        raise ValueError("eltmax needs at least 2 inputs")
    y = xs[0]
    for x in xs[1:]:
        y = np.maximum(y, x)
    return y


def eltmax_backward(dy: np.ndarray, xs: Sequence[np.ndarray], y: np.ndarray) -> list[np.ndarray]:
    """dx_i = dy·[x_i == y] (`kEltwiseMaxGrad`): every input tied for the max gets the FULL gradient."""
    return [dy * (x == y) for x in xs]


# --------------------------------------------------------------------------------------------------
# treefc (src/layer.cu: TreeFCLayer; src/softmaxtree.cu: SoftmaxTree; src/weights.cu: TreeWeights)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SoftmaxTree:
    """The label tree of a treefc layer (layer.py `TreeFCLayerParser`: batches.meta['tree'], root
    all_wnids['gproot']).

    children[label] lists the labels of that node's children; every node is a column of the raw weight
    matrix. Leaves must be exactly the labels 0..L−1 (the original takes the first L columns as the leaf
    weights, `TreeWeights::copyToGPU`). `paths[a, n]` = 1 if node a lies on the path root → n (n included),
    so effective weights are W_raw @ paths. `sizes[n]` = number of leaves under n (1 for a leaf), the
    divisor of ε and wc in `kSoftmaxTreeUpdateWeights`.
    """

    root: int
    num_leaves: int
    paths: np.ndarray  # (num_nodes, num_nodes) 0/1 float64
    sizes: np.ndarray  # (num_nodes,) int

    @property
    def num_nodes(self) -> int:
        return self.paths.shape[0]

    @classmethod
    def build(cls, children: Sequence[Sequence[int]], root: int) -> SoftmaxTree:
        num_nodes = len(children)
        if not 0 <= root < num_nodes:
            raise ValueError(f"treefc: root {root} is not a node label (0..{num_nodes - 1})")
        parent = {root: -1}
        order = [root]  # parents before children
        for node in order:
            for c in children[node]:
                c = int(c)
                if not 0 <= c < num_nodes:
                    raise ValueError(f"treefc: node {node} has child {c}, not a node label")
                if c in parent:
                    raise ValueError(f"treefc: node {c} is reached twice (not a tree)")
                parent[c] = node
                order.append(c)
        if len(order) != num_nodes:
            missing = sorted(set(range(num_nodes)) - set(parent))[:5]
            raise ValueError(f"treefc: nodes {missing}... are not reachable from the root {root}")
        leaves = sorted(n for n in range(num_nodes) if len(children[n]) == 0)
        if leaves != list(range(len(leaves))):
            raise ValueError("treefc: the leaves must be exactly the labels 0..L-1")
        paths = np.zeros((num_nodes, num_nodes))
        for node in order:  # parent's column is complete before its children's
            if parent[node] >= 0:
                paths[:, node] = paths[:, parent[node]]
            paths[node, node] = 1.0
        sizes = paths[:, :len(leaves)].sum(axis=1).astype(int)
        return cls(root=root, num_leaves=len(leaves), paths=paths, sizes=sizes)


def treefc_effective_weights(w: np.ndarray, tree: SoftmaxTree) -> np.ndarray:
    """E[:, n] = Σ of the raw columns on the path root → n (`kSoftmaxTreeFwd`). w: (in, nodes) -> (in, nodes)."""
    return (w @ tree.paths.astype(w.dtype)).astype(w.dtype)


def treefc_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, tree: SoftmaxTree) -> np.ndarray:
    """An fc layer on the effective LEAF columns. x: (in, N); w: (in, nodes); b: (1, L) -> (L, N)."""
    return fc_forward([x], [treefc_effective_weights(w, tree)[:, :tree.num_leaves]], b)


def treefc_backward_data(dy: np.ndarray, w: np.ndarray, tree: SoftmaxTree) -> np.ndarray:
    """dx = E_leaves dy. dy: (L, N) -> (in, N)."""
    return fc_backward_data(dy, treefc_effective_weights(w, tree)[:, :tree.num_leaves])


def treefc_backward_weights(x: np.ndarray, dy: np.ndarray, tree: SoftmaxTree) -> np.ndarray:
    """Gradient w.r.t. the RAW weights, (1/N): the fc gradient of each leaf column, and for each inner node
    the sum of its children's (`kSoftmaxTreeBwd`, i.e. the sum over the leaves below it).
    x: (in, N); dy: (L, N) -> (in, nodes)."""
    g_leaves = fc_backward_weights(x, dy)
    return (g_leaves @ tree.paths[:, :tree.num_leaves].T.astype(x.dtype)).astype(x.dtype)
