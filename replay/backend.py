"""The backend interface: the array operations a replay is written against.

replay/network.py wires layers together using only these operations, so a backend is any
object that has them all: the NumPy reference (replay/backends/numpy_ref, which defines what
"2012 semantics" means) or, later, CUDA kernels checked against it. Layouts are cuda-convnet's
(SEMANTICS.md §2): activations (features, N); gradients are derivatives of the cost, weight and
bias gradients divided by N (§4.2). Keyword arguments are as in replay/backends/numpy_ref.

| operation                                   | forward / backward of          | 2012 source                      |
|---------------------------------------------|--------------------------------|----------------------------------|
| conv_forward, conv_backward_data/_weights   | conv (groups, padding, sparse) | filter_acts / img_acts / weight_acts |
| local_forward, local_backward_data/_weights | local (unshared filters)       | the same, per module             |
| add_conv_bias, conv_bias_grad               | conv/local biases              | ConvLayer::fpropActs, bpropBiases |
| fc_forward, fc_backward_data/_weights, fc_bias_grad | fc                     | FCLayer                          |
| neuron_forward, neuron_backward             | neurons (relu, logistic, …)    | include/neuron.cuh               |
| pool_forward, pool_backward                 | pool (max, avg, maxabs)        | conv_util.cu kLocalPool, …Undo   |
| cmrnorm_/rnorm_/cnorm_forward, _backward    | response/contrast norms        | conv_util.cu kFCNorm, kRNormUndo |
| softmax_forward, softmax_backward           | softmax                        | SoftmaxLayer                     |
| logreg_cost, logreg_backward_probs, softmax_logreg_backward | cost.logreg    | kLogregCost, kLogregSoftmaxGrad  |
| dropout_forward, dropout_backward           | hs                             | HiddenSexLayer                   |
| blur_/nailbed_forward, _backward            | blur, nailbed                  | kGaussianBlur, kBedOfNails       |
| href_forward, href_backward                 | href (horizontal reflection)   | cc2 conv_util.cu: kReflectH      |
| concat_, eltsum_, eltmax_forward/_backward  | concat, eltsum, eltmax         | layer.cu                         |

Optional speed-ups a backend may honour or ignore; the results must not depend on them:
- `saved=` (a dict, or None), one per layer input for the Network's life (replay/network.py): the
  conv/local forward, data gradient and weight gradient keep their scratch in it (im2col columns,
  padded images) to reuse it next minibatch, and the forward hands its columns to the weight
  gradient, which takes them (pop) instead of recomputing. No returned array lives in it.
- `add_conv_bias(..., out=)` may add in place.

Rules that are not array operations (which neuron a string names, when softmax and logreg fuse)
are shared by every backend and live beside the reference (numpy_ref.dense.parse_neuron,
numpy_ref.costs.softmax_logreg_fused).
"""
from __future__ import annotations

from types import SimpleNamespace

OPERATIONS = (
    "conv_forward", "conv_backward_data", "conv_backward_weights",
    "local_forward", "local_backward_data", "local_backward_weights",
    "add_conv_bias", "conv_bias_grad",
    "fc_forward", "fc_backward_data", "fc_backward_weights", "fc_bias_grad",
    "neuron_forward", "neuron_backward",
    "pool_forward", "pool_backward",
    "cmrnorm_forward", "cmrnorm_backward", "rnorm_forward", "rnorm_backward", "cnorm_forward", "cnorm_backward",
    "softmax_forward", "softmax_backward",
    "logreg_cost", "logreg_backward_probs", "softmax_logreg_backward",
    "dropout_forward", "dropout_backward",
    "blur_forward", "blur_backward", "nailbed_forward", "nailbed_backward", "href_forward", "href_backward",
    "concat_forward", "concat_backward", "eltsum_forward", "eltsum_backward", "eltmax_forward", "eltmax_backward",
)


def assemble(name: str, *modules) -> SimpleNamespace:
    """A backend from modules that define the operations (the first module defining one wins);
    it must define all of them."""
    ops = {}
    for module in modules:
        for op in OPERATIONS:
            if op not in ops and hasattr(module, op):
                ops[op] = getattr(module, op)
    missing = [op for op in OPERATIONS if op not in ops]
    if missing:
        raise ImportError(f"backend {name!r} lacks {', '.join(missing)}")
    return SimpleNamespace(name=name, **ops)
