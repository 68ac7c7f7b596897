"""One benchmark per kernel of the CUDA backend (llm.c style), against PyTorch, at the 2012 shapes of a net.

    python3 bench/cuda_kernels.py [--net 120] [--batch 128] [--warmup 3] [--iters 20] [--rounds 5]
                                  [--only SUBSTRING] [--check-cases 8] [--json FILE] [--archive PATH]
    python3 bench/cuda_kernels.py --smoke [--emulate]

--smoke: the cheapest end-to-end check of every kernel, the first thing to run on a new GPU machine (no
torch, no release files, no timing; seconds): every backend op on tiny shapes, compiled by cupy.RawModule
and launched once, against the NumPy reference; one line per op with the kernels it launched, then every
kernel of kernels/*.cu that no op launched. Exit 0 when all agree; without a GPU it says so and exits 0.
--emulate runs the same list through the CPU emulator (what CI does: tests/cuda/test_cupy_smoke.py).

The cases come from the net's replay plan (default #120: 224×224, two towers; one case per distinct shape,
named after the first layer that has it, tower a before tower b): for every conv layer and input, the
forward, the data gradient (marked * where a training step does not compute it: conv1 reads the data) and
the weight gradient (with the layer's partialSum), the bias add and bias gradient; every pooling,
cmrnorm, cnorm, blur, nailbed and href layer forward and backward; the neurons of each distinct size; fc
forward, data and weight gradients (CuPy matmul = cuBLAS on both sides); softmax forward, the fused
softmax+logreg gradient and the logreg cost (which reads its sums back to the host); dropout (hs) forward
and backward; and the momentum-SGD update of the largest weight matrix.

Correctness gate, before any timing: each of our kernels is run on the full batch and compared with the
NumPy reference (replay/backends/numpy_ref, replay/update.py) on a slice of --check-cases cases: ops whose
outputs are per case are compared on those columns of the full-batch result; reductions over the cases
(weight and bias gradients, the cost) are run again on the slice. max |ours − ref| / max |ref| must be
<= 1e-4 (dropout: the mask is 0/1, y = x·mask, and the kept fraction is keep ± 0.01 — Philox draws differ
from NumPy's). A failure stops the run (exit 1) unless --keep-going. PyTorch's full-batch result is then
compared with ours (rel. 1e-3, informative: it shows the PyTorch equivalent computes the same thing).

PyTorch equivalents (strict FP32: TF32 off for matmul and cuDNN, float32_matmul_precision 'highest';
cudnn.benchmark on): conv forward F.conv2d on the input already padded by the 2012 module rule (the pad is
not timed), data / weight gradient aten.convolution_backward with the one output asked for; bias add
in place; fc addmm / mm; relu and threshold_backward; pooling, the norms, blur, nailbed and href as
replay/torch_graph.py computes them (its forward; backward by autograd.grad with the graph kept); softmax;
softmax+logreg gradient as autograd of cross_entropy(sum); the cost as NLL + argmax errors with .item();
dropout as torch_graph's (rand_like, compare, multiply); the update as torch.optim.SGD(fused=True).

Timing: --warmup calls, then --rounds runs of --iters back-to-back calls between two CUDA events (cupy
events for ours, torch events for PyTorch); the median of the rounds' per-call times. Printed: ms of each,
TFLOP/s for the GEMM-like ops (FLOPs from the geometry) and GB/s for the others (bytes of the inputs read
plus the outputs written, once each), and the speed ratio PyTorch ms / our ms (> 1: ours faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gpu_common as common
import numpy as np


@dataclass
class Case:
    name: str
    op: str
    layer: str
    inputs: dict                     # host arrays, full batch
    batched: tuple[str, ...]         # inputs whose columns are the cases
    ours: Callable                   # (backend, device inputs) -> output
    reference: Callable              # (host inputs) -> output
    per_case: bool                   # the output's columns are the cases
    torch: Callable | None = None    # (torch, host inputs, device, model) -> (fn, result in our layout or None)
    flops: int | None = None         # full batch, GEMM-like ops
    in_training: bool = True
    check: Callable | None = None    # custom gate: (ours output, host inputs) -> error (<= rtol passes)
    rtol: float = 1e-4
    reads: tuple[str, ...] | None = None  # the inputs the op reads (GB/s); default all
    results: dict = field(default_factory=dict)


# --- helpers -----------------------------------------------------------------------------------------

def as_arrays(out) -> list[np.ndarray]:
    """An op's output as a list of host arrays (tuples and lists flattened, floats as 0-d arrays)."""
    if isinstance(out, (tuple, list)):
        return [a for item in out if item is not None for a in as_arrays(item)]
    if isinstance(out, (float, int)):
        return [np.asarray(out, dtype=np.float64)]
    return [common.to_numpy(out)]


def rel_error(got, want) -> float:
    """max |got − want| / max |want| over the outputs (0/0 = 0)."""
    worst = 0.0
    got, want = as_arrays(got), as_arrays(want)
    if len(got) != len(want):
        return float("inf")
    for g, w in zip(got, want):
        if g.shape != w.shape:
            return float("inf")
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        diff = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
        worst = max(worst, diff / scale if scale else diff)
    return worst


def slice_cases(inputs: dict, batched, k: int) -> dict:
    return {name: (np.ascontiguousarray(v[:, :k]) if name in batched else v) for name, v in inputs.items()}


def first_columns(out, k: int):
    return [a[:, :k] if a.ndim == 2 else a for a in as_arrays(out)]


def nbytes(arrays) -> int:
    return sum(a.nbytes for a in as_arrays(arrays))


def _nchw(torch, x, channels, device):
    from replay.layout import to_nchw

    return torch.from_numpy(to_nchw(x, channels)).to(device)


def _rows(torch, x, device):
    return torch.from_numpy(np.ascontiguousarray(x.T)).to(device)


def _from_nchw(t):
    from replay.layout import from_nchw

    return from_nchw(t.detach().cpu().numpy())


def _autograd_backward(torch, forward, x, dy):
    """(fn, result): the time of autograd.grad of forward(x) at dy, the graph built once and kept."""
    x = x.detach().requires_grad_(True)
    y = forward(x)
    dy = dy.reshape(y.shape)

    def fn():
        return torch.autograd.grad(y, x, dy, retain_graph=True)[0]
    return fn, lambda: fn()


# --- the cases -----------------------------------------------------------------------------------------

def build_cases(plan, experiment, batch: int, *, seed: int = 0) -> list[Case]:
    """Every distinct kernel call of a training step of `plan` at `batch` cases (see the module docstring)."""
    from replay.backends import get_backend
    from replay.network import Network
    from replay.update import sgd_update as ref_sgd_update

    ref = get_backend("numpy")
    net = Network(plan, experiment, rng=np.random.default_rng(seed), backend=ref)  # geometry, conns, weights
    rng = np.random.default_rng(seed + 1)
    cases: list[Case] = []
    seen: set = set()

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    def add(case: Case, signature) -> None:
        if signature in seen:
            return
        seen.add(signature)
        cases.append(case)

    for layer in plan.layers:
        t, s = layer.type, layer.settings
        if t in ("conv", "local"):
            _conv_cases(plan, net, layer, batch, normal, add)
        elif t == "fc":
            _fc_cases(plan, net, layer, batch, normal, add)
        elif t == "neuron":
            kind, params = _neuron(layer)
            rows = layer.outputs
            x = normal(rows, batch)
            y = ref.neuron_forward(x, kind, params, rng=np.random.default_rng(0))
            add(Case(f"{layer.name} fwd", "neuron_forward", layer.name, {"x": x}, ("x",),
                     lambda B, a, kind=kind, p=params: B.neuron_forward(a["x"], kind, p, rng=np.random.default_rng(0)),
                     lambda a, kind=kind, p=params: ref.neuron_forward(a["x"], kind, p, rng=np.random.default_rng(0)),
                     True, torch=_torch_relu_fwd if kind == "relu" else None), ("neuron_forward", kind, params, rows))
            add(Case(f"{layer.name} bwd", "neuron_backward", layer.name, {"x": x, "y": y, "dy": normal(rows, batch)},
                     ("x", "y", "dy"),
                     lambda B, a, kind=kind, p=params: B.neuron_backward(a["x"], a["y"], a["dy"], kind, p),
                     lambda a, kind=kind, p=params: ref.neuron_backward(a["x"], a["y"], a["dy"], kind, p),
                     True, torch=_torch_relu_bwd if kind == "relu" else None), ("neuron_backward", kind, params, rows))
        elif t == "pool":
            geo = net._pool_geometry(layer)
            channels = geo["channels"]
            x = normal(plan.layer(layer.inputs[0]).outputs, batch)
            y = ref.pool_forward(x, **geo)
            key = ("pool", tuple(sorted(geo.items())), x.shape)
            add(Case(f"{layer.name} fwd", "pool_forward", layer.name, {"x": x}, ("x",),
                     lambda B, a, g=geo: B.pool_forward(a["x"], **g), lambda a, g=geo: ref.pool_forward(a["x"], **g),
                     True, torch=_graph_fwd(layer.name, channels)), key + ("f",))
            add(Case(f"{layer.name} bwd", "pool_backward", layer.name, {"x": x, "y": y, "dy": normal(*y.shape)},
                     ("x", "y", "dy"),
                     lambda B, a, g=geo: B.pool_backward(a["x"], a["y"], a["dy"], **g),
                     lambda a, g=geo: ref.pool_backward(a["x"], a["y"], a["dy"], **g),
                     True, torch=_graph_bwd(layer.name, channels, channels)), key + ("b",))
        elif t in ("cmrnorm", "rnorm", "cnorm"):
            _norm_cases(plan, net, layer, batch, normal, add, ref)
        elif t == "softmax":
            rows = layer.outputs
            z = normal(rows, batch, scale=3.0)
            probs = ref.softmax_forward(z)
            labels = rng.integers(0, rows, size=batch).astype(np.int64)
            add(Case(f"{layer.name} fwd", "softmax_forward", layer.name, {"x": z}, ("x",),
                     lambda B, a: B.softmax_forward(a["x"]), lambda a: ref.softmax_forward(a["x"]), True,
                     torch=_torch_softmax), ("softmax", rows))
            labelled = {"labels": labels[None, :], "probs": probs, "z": z}
            add(Case(f"{layer.name}+cost bwd", "softmax_logreg_backward", layer.name, labelled, ("labels", "probs", "z"),
                     lambda B, a: B.softmax_logreg_backward(a["labels"].reshape(-1), a["probs"], 1.0),
                     lambda a: ref.softmax_logreg_backward(a["labels"].reshape(-1), a["probs"], 1.0), True,
                     torch=_torch_softmax_logreg, reads=("labels", "probs")), ("softmax_logreg", rows))
            add(Case("logreg cost", "logreg_cost", layer.name, labelled, ("labels", "probs", "z"),
                     lambda B, a: B.logreg_cost(a["labels"].reshape(-1), a["probs"], topk=1),
                     lambda a: ref.logreg_cost(a["labels"].reshape(-1), a["probs"], topk=1), False,
                     torch=_torch_logreg_cost, rtol=1e-5, reads=("labels", "probs")), ("logreg_cost", rows))
        elif t == "hs":
            keep = float(s["keep"])
            x = normal(layer.outputs, batch)
            mask = (rng.random(x.shape) < keep).astype(np.float32)
            add(Case(f"{layer.name} fwd", "dropout_forward", layer.name, {"x": x}, ("x",),
                     lambda B, a, keep=keep: B.dropout_forward(a["x"], keep=keep, enable=True, train=True,
                                                               rng=np.random.default_rng(7)),
                     lambda a, keep=keep: ref.dropout_forward(a["x"], keep=keep, enable=True, train=True,
                                                              rng=np.random.default_rng(7)),
                     True, torch=_torch_dropout(keep), check=_dropout_check(keep)), ("hs", keep, x.shape))
            add(Case(f"{layer.name} bwd", "dropout_backward", layer.name, {"dy": normal(*x.shape), "mask": mask},
                     ("dy", "mask"),
                     lambda B, a, keep=keep: B.dropout_backward(a["dy"], a["mask"], keep=keep, enable=True, train=True),
                     lambda a, keep=keep: ref.dropout_backward(a["dy"], a["mask"], keep=keep, enable=True, train=True),
                     True, torch=_torch_dropout_bwd), ("hs-b", keep, x.shape))
        elif t == "blur":
            kw = {"channels": s["channels"], "filter_size": s["filterSize"], "stdev": float(s["stdev"])}
            x = normal(layer.outputs, batch)
            add(Case(f"{layer.name} fwd", "blur_forward", layer.name, {"x": x}, ("x",),
                     lambda B, a, kw=kw: B.blur_forward(a["x"], **kw), lambda a, kw=kw: ref.blur_forward(a["x"], **kw),
                     True, torch=_graph_fwd(layer.name, kw["channels"])), ("blur", tuple(kw.items()), x.shape))
        elif t == "nailbed":
            kw = {"channels": s["channels"], "stride": s["stride"]}
            x = normal(plan.layer(layer.inputs[0]).outputs, batch)
            add(Case(f"{layer.name} fwd", "nailbed_forward", layer.name, {"x": x}, ("x",),
                     lambda B, a, kw=kw: B.nailbed_forward(a["x"], **kw),
                     lambda a, kw=kw: ref.nailbed_forward(a["x"], **kw),
                     True, torch=_graph_fwd(layer.name, kw["channels"])), ("nailbed", tuple(kw.items()), x.shape))
        elif t == "href":
            kw = {"channels": s["channels"]}
            x = normal(layer.outputs, batch)
            add(Case(f"{layer.name} fwd", "href_forward", layer.name, {"x": x}, ("x",),
                     lambda B, a, kw=kw: B.href_forward(a["x"], **kw), lambda a, kw=kw: ref.href_forward(a["x"], **kw),
                     True, torch=_graph_fwd(layer.name, kw["channels"])), ("href", tuple(kw.items()), x.shape))

    # the update of the largest weight matrix (replay/update.py's rule; the CUDA kernel works in place)
    param = max((p for p in plan.params if p.kind == "weights"), key=lambda p: p.shape[0] * p.shape[1])
    w = net.weights[param.key]
    upd = {"w": w, "v": normal(*w.shape, scale=1e-3), "grad": normal(*w.shape, scale=1e-2)}
    rule = {"eps": 0.01, "mom": 0.9, "wc": 0.0005}

    def ours_sgd(B, a):
        sgd = getattr(B, "sgd_update", None)
        if sgd is None:
            from replay.backends.cuda.dense import sgd_update as sgd
        sgd(a["w"], a["v"], a["grad"], **rule)
        return a["w"], a["v"]

    cases.append(Case(f"sgd update {param.key}", "sgd_update", param.layer, upd, (), ours_sgd,
                      lambda a: ref_sgd_update(a["w"], a["v"], a["grad"], **rule), False, torch=_torch_sgd(rule),
                      rtol=1e-6))
    return cases


def _neuron(layer):
    from replay.backends.numpy_ref.dense import parse_neuron

    return parse_neuron(layer.neuron or layer.settings.get("neuron"))


def _conv_cases(plan, net, layer, batch, normal, add) -> None:
    local = layer.type == "local"
    prefix = "local" if local else "conv"
    d = layer.derived
    filters, modules = d["filters"], d["modules"]
    for i, source in enumerate(layer.inputs):
        geo = net._conv_geometry(layer, i)
        w = net.weights[net.param_key(layer.name, "weights", i)]
        x = normal(plan.layer(source).outputs, batch, scale=1.0)
        dy = normal(filters * modules, batch)
        flops = 2 * filters * modules * d["weightsPerFilter"][i] * batch
        tag = f"{layer.name}[{i}]" if len(layer.inputs) > 1 else layer.name
        key = (prefix, tuple((k, v if not hasattr(v, "tolist") else tuple(v.tolist())) for k, v in geo.items()), w.shape)
        partial = int(layer.settings.get("partialSum", 0)) if not local else None
        extra = {} if local else {"partial_sum": partial}
        a = {"x": x, "w": w, "dy": dy}
        torch_ok = not local and geo["conns"] is None
        add(Case(f"{tag} fwd", f"{prefix}_forward", layer.name, a, ("x", "dy"),
                 lambda B, a, g=geo, op=f"{prefix}_forward": getattr(B, op)(a["x"], a["w"], **g),
                 lambda a, g=geo, op=f"{prefix}_forward": getattr(net.ops, op)(a["x"], a["w"], **g),
                 True, torch=_torch_conv("fwd", geo, d["imgSize"][i]) if torch_ok else None, flops=flops),
            key + ("fwd",))
        add(Case(f"{tag} bwd-data" + ("" if common.needs_data_grad(plan, layer, i) else " *"),
                 f"{prefix}_backward_data", layer.name, a, ("x", "dy"),
                 lambda B, a, g=geo, s=d["imgSize"][i], op=f"{prefix}_backward_data":
                     getattr(B, op)(a["dy"], a["w"], image_size=s, **g),
                 lambda a, g=geo, s=d["imgSize"][i], op=f"{prefix}_backward_data":
                     getattr(net.ops, op)(a["dy"], a["w"], image_size=s, **g),
                 True, torch=_torch_conv("data", geo, d["imgSize"][i]) if torch_ok else None, flops=flops,
                 in_training=common.needs_data_grad(plan, layer, i)), key + ("data",))
        add(Case(f"{tag} bwd-weights" + (f" (partialSum {partial})" if partial else ""),
                 f"{prefix}_backward_weights", layer.name, a, ("x", "dy"),
                 lambda B, a, g=geo, e=extra, op=f"{prefix}_backward_weights": getattr(B, op)(a["x"], a["dy"], **e, **g),
                 lambda a, g=geo, e=extra, op=f"{prefix}_backward_weights":
                     getattr(net.ops, op)(a["x"], a["dy"], **e, **g),
                 False, torch=_torch_conv("weights", geo, d["imgSize"][i]) if torch_ok else None, flops=flops),
            key + ("weights", partial))
    shared = layer.type == "conv" and bool(layer.settings.get("sharedBiases", True))
    b = net.weights[net.param_key(layer.name, "biases", None)]
    y = normal(filters * modules, batch)
    kw = {"shared": shared, "filters": filters}
    add(Case(f"{layer.name} bias add", "add_conv_bias", layer.name, {"y": y, "b": b}, ("y",),
             lambda B, a, kw=kw: B.add_conv_bias(a["y"], a["b"], **kw),
             lambda a, kw=kw: net.ops.add_conv_bias(a["y"], a["b"], **kw), True,
             torch=_torch_bias_add(filters, modules) if shared else None), ("bias", tuple(kw.items()), y.shape))
    add(Case(f"{layer.name} bias grad", "conv_bias_grad", layer.name, {"dy": y}, ("dy",),
             lambda B, a, kw=kw: B.conv_bias_grad(a["dy"], **kw), lambda a, kw=kw: net.ops.conv_bias_grad(a["dy"], **kw),
             False, torch=_torch_bias_grad(filters) if shared else None), ("bias-grad", tuple(kw.items()), y.shape))


def _fc_cases(plan, net, layer, batch, normal, add) -> None:
    ws = [net.weights[net.param_key(layer.name, "weights", i)] for i in range(len(layer.inputs))]
    b = net.weights[net.param_key(layer.name, "biases", None)]
    xs = [normal(w.shape[0], batch) for w in ws]
    dy = normal(layer.outputs, batch)
    inputs = {f"x{i}": x for i, x in enumerate(xs)} | {f"w{i}": w for i, w in enumerate(ws)} | {"b": b, "dy": dy}
    batched = tuple(f"x{i}" for i in range(len(xs))) + ("dy",)
    n = len(xs)
    shapes = tuple(w.shape for w in ws)
    total = sum(2 * w.shape[0] * w.shape[1] * batch for w in ws)
    add(Case(f"{layer.name} fwd", "fc_forward", layer.name, inputs, batched,
             lambda B, a: B.fc_forward([a[f"x{i}"] for i in range(n)], [a[f"w{i}"] for i in range(n)], a["b"]),
             lambda a: net.ops.fc_forward([a[f"x{i}"] for i in range(n)], [a[f"w{i}"] for i in range(n)], a["b"]),
             True, torch=_torch_fc_fwd(n), flops=total), ("fc", shapes))
    for i, w in enumerate(ws):
        f = 2 * w.shape[0] * w.shape[1] * batch
        tag = f"{layer.name}[{i}]" if n > 1 else layer.name
        add(Case(f"{tag} bwd-data", "fc_backward_data", layer.name, inputs, batched,
                 lambda B, a, i=i: B.fc_backward_data(a["dy"], a[f"w{i}"]),
                 lambda a, i=i: net.ops.fc_backward_data(a["dy"], a[f"w{i}"]), True, torch=_torch_fc_data(i), flops=f,
                 in_training=common.needs_data_grad(plan, layer, i)), ("fc-data", w.shape))
        add(Case(f"{tag} bwd-weights", "fc_backward_weights", layer.name, inputs, batched,
                 lambda B, a, i=i: B.fc_backward_weights(a[f"x{i}"], a["dy"]),
                 lambda a, i=i: net.ops.fc_backward_weights(a[f"x{i}"], a["dy"]), False, torch=_torch_fc_weights(i),
                 flops=f), ("fc-weights", w.shape))
    add(Case(f"{layer.name} bias grad", "fc_bias_grad", layer.name, {"dy": dy}, ("dy",),
             lambda B, a: B.fc_bias_grad(a["dy"]), lambda a: net.ops.fc_bias_grad(a["dy"]), False,
             torch=_torch_fc_bias_grad), ("fc-bias", dy.shape))


def _norm_cases(plan, net, layer, batch, normal, add, ref) -> None:
    t, s = layer.type, layer.settings
    common_kw = {"channels": s["channels"], "size": s["size"], "scale": net._required(layer, "scale"),
                 "pow": net._required(layer, "pow")}
    fwd_kw = common_kw | {"min_div": float(net._params_value(layer, "minDiv", 1.0))} if t == "cmrnorm" else common_kw
    x = np.abs(normal(layer.outputs, batch, scale=10.0))
    forward = getattr(ref, f"{t}_forward")(x, **fwd_kw)
    dy = normal(*x.shape)
    key = (t, tuple(sorted(fwd_kw.items())), x.shape)
    channels = s["channels"]
    add(Case(f"{layer.name} fwd", f"{t}_forward", layer.name, {"x": x}, ("x",),
             lambda B, a, op=f"{t}_forward", kw=fwd_kw: getattr(B, op)(a["x"], **kw),
             lambda a, op=f"{t}_forward", kw=fwd_kw: getattr(ref, op)(a["x"], **kw),
             True, torch=_graph_fwd(layer.name, channels, first_only=True)), key + ("f",))
    if t == "cmrnorm":
        y, denoms = forward
        a = {"x": x, "y": y, "denoms": denoms, "dy": dy}
        ours = (lambda B, a, kw=fwd_kw: B.cmrnorm_backward(a["x"], a["y"], a["denoms"], a["dy"], **kw))
        want = (lambda a, kw=fwd_kw: ref.cmrnorm_backward(a["x"], a["y"], a["denoms"], a["dy"], **kw))
    elif t == "rnorm":
        y, denoms = forward
        a = {"x": x, "y": y, "denoms": denoms, "dy": dy}
        ours = (lambda B, a, kw=common_kw: B.rnorm_backward(a["x"], a["y"], a["denoms"], a["dy"], **kw))
        want = (lambda a, kw=common_kw: ref.rnorm_backward(a["x"], a["y"], a["denoms"], a["dy"], **kw))
    else:
        y, denoms, diffs = forward
        a = {"x": x, "diffs": diffs, "y": y, "denoms": denoms, "dy": dy}
        ours = (lambda B, a, kw=common_kw: B.cnorm_backward(a["diffs"], a["y"], a["denoms"], a["dy"], **kw))
        want = (lambda a, kw=common_kw: ref.cnorm_backward(a["diffs"], a["y"], a["denoms"], a["dy"], **kw))
    add(Case(f"{layer.name} bwd", f"{t}_backward", layer.name, a, tuple(a), ours, want, True,
             torch=_graph_bwd(layer.name, channels, channels), reads=tuple(n for n in a if n != "x" or t != "cnorm")),
        key + ("b",))


# --- PyTorch equivalents: (torch, host inputs, device, graph) -> (fn to time, () -> result in our layout) ---

def _torch_conv(which: str, geo: dict, image_size: int):
    def build(torch, a, device, graph):
        import torch.nn.functional as F

        from replay.layout import conv_weights_from_torch, conv_weights_to_torch

        fs, pad, stride, groups = geo["filter_size"], geo["padding"], geo["stride"], geo["groups"]
        mx, cf = geo["modules_x"], geo["filter_channels"]
        after = (mx - 1) * stride + fs - image_size - pad  # the 2012 module rule's border (conv.py)
        x = F.pad(_nchw(torch, a["x"], geo["channels"], device), (pad, after, pad, after)).contiguous()
        w = torch.from_numpy(conv_weights_to_torch(a["w"], cf, fs)).to(device)
        n = x.shape[0]
        dy = _nchw(torch, a["dy"], w.shape[0], device)
        args = (None, [stride, stride], [0, 0], [1, 1], False, [0, 0], groups)
        if which == "fwd":
            fn = lambda: F.conv2d(x, w, stride=stride, groups=groups)
            return fn, lambda: _from_nchw(fn())
        if which == "data":
            fn = lambda: torch.ops.aten.convolution_backward(dy, x, w, *args, [True, False, False])[0]
            return fn, lambda: _from_nchw(fn()[:, :, pad:pad + image_size, pad:pad + image_size])
        fn = lambda: torch.ops.aten.convolution_backward(dy, x, w, *args, [False, True, False])[1]
        return fn, lambda: conv_weights_from_torch(fn().cpu().numpy()) / n
    return build


def _torch_bias_add(filters, modules):
    def build(torch, a, device, graph):
        y = _nchw(torch, a["y"], filters, device)
        b = torch.from_numpy(a["b"].reshape(1, filters, 1, 1)).to(device)
        return (lambda: y.add_(b)), None  # in place, as ours (out=y in the network)
    return build


def _torch_bias_grad(filters):
    def build(torch, a, device, graph):
        dy = _nchw(torch, a["dy"], filters, device)
        fn = lambda: dy.sum(dim=(0, 2, 3))
        return fn, lambda: (fn() / dy.shape[0]).cpu().numpy().reshape(-1, 1)
    return build


def _torch_fc_fwd(n):
    def build(torch, a, device, graph):
        xs = [_rows(torch, a[f"x{i}"], device) for i in range(n)]
        ws = [torch.from_numpy(a[f"w{i}"]).to(device) for i in range(n)]
        b = torch.from_numpy(a["b"].reshape(-1)).to(device)

        def fn():
            y = torch.addmm(b, xs[0], ws[0])
            for x, w in zip(xs[1:], ws[1:]):
                y = y.addmm_(x, w)
            return y
        return fn, lambda: fn().T.cpu().numpy()
    return build


def _torch_fc_data(i):
    def build(torch, a, device, graph):
        dy, w = _rows(torch, a["dy"], device), torch.from_numpy(a[f"w{i}"]).to(device)
        fn = lambda: dy @ w.T
        return fn, lambda: fn().T.cpu().numpy()
    return build


def _torch_fc_weights(i):
    def build(torch, a, device, graph):
        x, dy = _rows(torch, a[f"x{i}"], device), _rows(torch, a["dy"], device)
        fn = lambda: x.T @ dy
        return fn, lambda: (fn() / x.shape[0]).cpu().numpy()
    return build


def _torch_fc_bias_grad(torch, a, device, graph):
    dy = _rows(torch, a["dy"], device)
    fn = lambda: dy.sum(dim=0)
    return fn, lambda: (fn() / dy.shape[0]).cpu().numpy().reshape(1, -1)


def _torch_relu_fwd(torch, a, device, graph):
    x = _rows(torch, a["x"], device)
    return (lambda: torch.relu(x)), lambda: torch.relu(x).T.cpu().numpy()


def _torch_relu_bwd(torch, a, device, graph):
    y, dy = _rows(torch, a["y"], device), _rows(torch, a["dy"], device)
    fn = lambda: torch.ops.aten.threshold_backward(dy, y, 0.0)
    return fn, lambda: fn().T.cpu().numpy()


def _spec(graph, layer: str) -> dict:
    return next(spec for spec in graph.specs if spec["layer"].name == layer)


def _graph_fwd(layer: str, channels: int, *, first_only: bool = False):
    """replay/torch_graph.py's forward of one layer (its _layer), on the NCHW input."""
    def build(torch, a, device, graph):
        spec = _spec(graph, layer)
        x = _nchw(torch, a["x"], channels, device)
        fn = lambda: graph._layer(spec, [x])
        return fn, lambda: _from_nchw(fn())
    return build


def _graph_bwd(layer: str, in_channels: int, out_channels: int):
    """autograd.grad of replay/torch_graph.py's forward of one layer at dy (cnorm: its 2012 gradient, the
    mean detached, as the graph does)."""
    def build(torch, a, device, graph):
        spec = _spec(graph, layer)
        x = _nchw(torch, a["x"], in_channels, device)
        dy = _nchw(torch, a["dy"], out_channels, device)
        fn, result = _autograd_backward(torch, lambda v: graph._layer(spec, [v]), x, dy)
        return fn, lambda: _from_nchw(result())
    return build


def _torch_softmax(torch, a, device, graph):
    x = _rows(torch, a["x"], device)
    fn = lambda: torch.softmax(x, dim=1)
    return fn, lambda: fn().T.cpu().numpy()


def _torch_softmax_logreg(torch, a, device, graph):
    import torch.nn.functional as F

    z = _rows(torch, a["z"], device)
    t = torch.from_numpy(a["labels"].reshape(-1)).to(device)
    fn, result = _autograd_backward(torch, lambda v: F.cross_entropy(v, t, reduction="sum"), z,
                                    torch.ones((), device=device))
    return fn, lambda: result().T.cpu().numpy()


def _torch_logreg_cost(torch, a, device, graph):
    p = _rows(torch, a["probs"], device)
    t = torch.from_numpy(a["labels"].reshape(-1)).to(device)
    rows = torch.arange(p.shape[0], device=device)

    def fn():
        return (-(p[rows, t].log().sum()).item(), float((p.argmax(dim=1) != t).sum().item()))
    return fn, lambda: fn() + (fn()[1],)


def _torch_dropout(keep):
    def build(torch, a, device, graph):
        x = _rows(torch, a["x"], device)

        def fn():  # replay/torch_graph.py: hs in training
            u = 1.0 - torch.rand_like(x)
            return x * (u < keep).to(x.dtype)
        return fn, None
    return build


def _torch_dropout_bwd(torch, a, device, graph):
    dy, mask = _rows(torch, a["dy"], device), _rows(torch, a["mask"], device)
    fn = lambda: dy * mask
    return fn, lambda: fn().T.cpu().numpy()


def _torch_sgd(rule):
    def build(torch, a, device, graph):
        w = torch.nn.Parameter(torch.from_numpy(a["w"].copy()).to(device))
        w.grad = torch.from_numpy(a["grad"]).to(device)
        kwargs = {"lr": rule["eps"], "momentum": rule["mom"], "weight_decay": rule["wc"]}
        try:
            opt = torch.optim.SGD([w], fused=True, **kwargs)
            opt.step()
        except (RuntimeError, TypeError, ValueError):  # fused not available for this device
            opt = torch.optim.SGD([w], foreach=True, **kwargs)
        return opt.step, None
    return build


def _dropout_check(keep):
    def check(out, a) -> float:
        y, mask = (common.to_numpy(v) for v in out)
        x = a["x"]
        if not np.isin(mask, (0.0, 1.0)).all() or not np.array_equal(y, x * mask):
            return float("inf")
        return abs(float(mask.mean()) - keep) / 0.01 * 1e-4  # <= 1e-4 when within ±0.01 of keep
    return check


# --- running -------------------------------------------------------------------------------------------

def gate(case: Case, backend, to_device, k: int) -> float:
    """Our kernel against the NumPy reference (see the module docstring). Returns the error."""
    device_inputs = {name: to_device(v.copy()) for name, v in case.inputs.items()}  # copies: sgd is in place
    out = case.ours(backend, device_inputs)
    if case.check is not None:
        return case.check(out, case.inputs)
    sliced = slice_cases(case.inputs, case.batched, k)
    want = case.reference(sliced)
    if case.per_case:
        return rel_error(first_columns(out, k), first_columns(want, k))
    return rel_error(case.ours(backend, {name: to_device(v.copy()) for name, v in sliced.items()}), want)


def run_case(case: Case, *, backend, to_device, ours_clock, torch, torch_device, torch_clock, graph, args) -> dict:
    r = case.results
    r["check_error"] = gate(case, backend, to_device, min(args.check_cases, args.batch))
    r["check_ok"] = r["check_error"] <= case.rtol
    if not r["check_ok"]:
        return r
    device_inputs = {name: to_device(v.copy()) for name, v in case.inputs.items()}
    out = case.ours(backend, device_inputs)
    ours_result = None if case.check or case.op == "sgd_update" else as_arrays(out)
    read = case.inputs if case.reads is None else {name: case.inputs[name] for name in case.reads}
    r["bytes"] = sum(v.nbytes for v in read.values()) + nbytes(out)
    r["ours_ms"] = statistics.median(common.time_calls(lambda: case.ours(backend, device_inputs), ours_clock,
                                                       warmup=args.warmup, iters=args.iters, rounds=args.rounds))
    if case.op in CONV_VARIANT_OPS and not args.no_variants:
        r["variant_ms"] = time_conv_variants(case, backend, device_inputs, ours_clock, args)
    if case.torch is not None and torch is not None:
        fn, result = case.torch(torch, case.inputs, torch_device, graph)
        if result is not None and ours_result is not None:
            theirs = as_arrays(result())  # the norms' torch forms give y only, ours (y, denoms, ...)
            r["torch_vs_ours_error"] = rel_error(theirs, ours_result[:len(theirs)])
        r["torch_ms"] = statistics.median(common.time_calls(fn, torch_clock, warmup=args.warmup, iters=args.iters,
                                                            rounds=args.rounds))
    return r


# Conv GEMMs come in variants (replay/backends/cuda/conv.py VARIANTS); "ours ms" above is the autotuned choice.
CONV_VARIANT_OPS = ("conv_forward", "conv_backward_data", "conv_backward_weights",
                    "local_forward", "local_backward_data", "local_backward_weights")


def time_conv_variants(case: Case, backend, device_inputs, ours_clock, args) -> dict:
    """{variant: median ms} with each variant forced (ALEXNET_CONV_VARIANT), so the autotuner's pick can be
    compared with the others in the same run. A shape a variant cannot run falls back to tile64 (conv.py)."""
    from replay.backends.cuda import conv as cuda_conv

    times = {}
    saved = os.environ.get(cuda_conv.VARIANT_ENV)
    try:
        for name in cuda_conv.VARIANT_TILE:
            os.environ[cuda_conv.VARIANT_ENV] = name
            times[name] = statistics.median(common.time_calls(lambda: case.ours(backend, device_inputs), ours_clock,
                                                              warmup=args.warmup, iters=args.iters,
                                                              rounds=args.rounds))
    finally:
        if saved is None:
            os.environ.pop(cuda_conv.VARIANT_ENV, None)
        else:
            os.environ[cuda_conv.VARIANT_ENV] = saved
    return times


def report(cases: list[Case], args, device: dict) -> list[dict]:
    peak = device.get("fp32_peak_tflops")
    rows, out = [], []
    for c in cases:
        r = c.results
        if not r:
            continue
        ours, theirs = r.get("ours_ms"), r.get("torch_ms")

        def rate(ms, c=c, r=r):
            if not ms:
                return None
            return c.flops / (ms / 1e3) / 1e12 if c.flops else r["bytes"] / (ms / 1e3) / 1e9
        unit = "TFLOP/s" if c.flops else "GB/s"
        pct = (100 * rate(ours) / peak) if c.flops and peak and ours else None
        err = r.get("torch_vs_ours_error")
        rows.append([c.name, c.op, "ok" if r["check_ok"] else f"FAIL {r['check_error']:.2g}", ours, theirs,
                     rate(ours), rate(theirs), unit, pct, common.format_ratio(common.speed_ratio(ours, theirs)),
                     None if err is None else f"{err:.1e}"])
        out.append({"name": c.name, "op": c.op, "layer": c.layer, "in_training": c.in_training, "flops": c.flops,
                    **r, "unit": unit, "ours_rate": rate(ours), "torch_rate": rate(theirs),
                    "percent_of_fp32_peak": pct})
    print(f"device: {device.get('name')}; FP32 peak {common.format_number(peak)} TFLOP/s ({device.get('peak_rule', '')})")
    print(f"#{args.net}, batch {args.batch}; ms = median of {args.rounds} rounds of {args.iters} calls after "
          f"{args.warmup} warm-up; PyTorch strict FP32; speed = PyTorch ms / ours (> 1: ours faster); "
          "* = not run by a training step")
    print(common.format_table(["case", "op", "gate", "ours ms", "torch ms", "ours", "torch", "unit", "% peak",
                               "speed", "torch≠ours"], rows, align="lllrrrrlrrr"))
    variant_rows = [[c.name, *(c.results["variant_ms"].get(v) for v in sorted(c.results["variant_ms"])),
                     c.results.get("ours_ms")] for c in cases if c.results.get("variant_ms")]
    if variant_rows:
        names = sorted(next(c.results["variant_ms"] for c in cases if c.results.get("variant_ms")))
        print("\nconv GEMM variants (ms, each forced; 'autotuned' is the choice the backend makes):")
        print(common.format_table(["case", *names, "autotuned"], variant_rows, align="l" + "r" * (len(names) + 1)))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Needs a CUDA GPU with CuPy and a CUDA build of torch (README: Speed).")
    p.add_argument("--net", default="120", help="experiment whose shapes to use (default 120)")
    p.add_argument("--batch", type=int, default=128, help="cases (default 128)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--iters", type=int, default=20, help="calls per timed round (default 20)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds; the median is reported (default 5)")
    p.add_argument("--only", default=None, help="only the cases whose name or op contains this text")
    p.add_argument("--check-cases", type=int, default=8, help="cases in the slice the gate compares (default 8)")
    p.add_argument("--keep-going", action="store_true", help="time the other kernels when one fails its gate")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--archive", default=None, help="the release (default: as the CLI finds it)")
    p.add_argument("--no-variants", action="store_true",
                   help="time conv GEMMs as autotuned only, not also with each variant forced")
    p.add_argument("--smoke", action="store_true",
                   help="compile and launch every kernel once on tiny shapes against NumPy; no torch, no timing")
    p.add_argument("--emulate", action="store_true", help="with --smoke: run in the CPU emulator instead")
    return p


def run(args, *, backend, to_device, ours_clock, torch, torch_device, torch_clock, device) -> int:
    from replay.torch_graph import build_torch_model

    experiment, plan = common.load_plan(args.net, args.archive)
    common.progress(f"building the cases of #{args.net} at batch {args.batch} ...")
    cases = build_cases(plan, experiment, args.batch)
    if args.only:
        cases = [c for c in cases if args.only in c.name or args.only in c.op]
    graph = None
    if torch is not None:
        graph = build_torch_model(plan, experiment)  # for its per-layer forms (zero weights; not used here)
        common.torch_specs_to(graph, torch_device)
    failed = []
    for case in cases:
        common.progress(f"  {case.name} ({case.op})")
        r = run_case(case, backend=backend, to_device=to_device, ours_clock=ours_clock, torch=torch,
                     torch_device=torch_device, torch_clock=torch_clock, graph=graph, args=args)
        if not r["check_ok"]:
            failed.append(case.name)
            common.progress(f"    GATE FAILED: error {r['check_error']:.3g} > {case.rtol}")
            if not args.keep_going:
                break
    rows = report(cases, args, device)
    if args.json:
        from replay.backends.cuda import conv as cuda_conv

        autotuned = [{"device": k[0], "op": k[1], "shape": k[2], "variant": v}
                     for k, v in cuda_conv.autotune_choices().items()]
        Path(args.json).write_text(json.dumps({"net": args.net, "batch": args.batch, "device": device,
                                               "cases": rows, "failed": failed, "conv_autotune": autotuned},
                                              indent=1, default=str),
                                   encoding="utf-8")
        common.progress(f"wrote {args.json}")
    if failed:
        print(f"correctness gate failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# --- --smoke: every kernel once, tiny shapes --------------------------------------------------------

SMOKE_RTOL = 1e-4


def smoke_cases(seed: int = 0) -> list[tuple[str, dict, Callable, Callable | None]]:
    """(name, host inputs, call(backend, inputs) -> output, check or None) for every backend op, on shapes
    small enough for the emulator. The same call runs on the NumPy reference (float64 inputs) unless a
    check(output, host inputs) -> error is given."""
    from replay.backends.numpy_ref.conv import modules_x_for
    from replay.backends.numpy_ref.pool import pool_outputs_x
    from replay.backends.numpy_ref.preprocess import nailbed_geometry

    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    n = 4  # cases
    c, size, fs, pad, stride, filters = 4, 8, 3, 1, 2, 8
    mx = modules_x_for(size, fs, pad, stride)
    geo = {"channels": c, "filter_size": fs, "padding": pad, "stride": stride, "groups": 2,
           "filter_channels": c // 2, "modules_x": mx, "conns": None}
    taps = (c // 2) * fs * fs
    x, dy_conv = normal(c * size * size, n), normal(filters * mx * mx, n)
    w_conv, w_local = normal(taps, filters), normal(mx * mx * taps, filters)
    ox = pool_outputs_x(size, 3, 0, 2)
    pool = {"channels": c, "size_x": 3, "stride": 2, "start": 0, "outputs_x": ox}
    xi = rng.integers(-3, 4, x.shape).astype(np.float32)  # ties in the max windows
    norm = {"channels": c, "size": 3, "scale": 0.001, "pow": 0.75}
    rows, classes = 16, 10
    labels = rng.integers(0, classes, n).astype(np.int64)
    z = normal(classes, n)
    probs = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
    nail_out, _ = nailbed_geometry(size, 2)
    x_href = normal(3 * 7 * 7, n)  # href takes 1 to 3 channels; an odd width has a middle column
    w_upd, v_upd, g_upd = normal(6, 5), normal(6, 5), normal(6, 5)

    def sgd(B, a):
        from replay.backends.cuda.dense import sgd_update as ours_sgd
        from replay.update import sgd_update as ref_sgd

        if not B.name.startswith("cuda"):
            return ref_sgd(a["w"].astype(np.float32), a["v"].astype(np.float32), a["g"].astype(np.float32),
                           eps=0.01, mom=0.9, wc=0.0005)
        ours_sgd(a["w"], a["v"], a["g"], eps=0.01, mom=0.9, wc=0.0005)
        return a["w"], a["v"]

    def norm_pass(kind):  # forward, then backward at dy: (y, dx)
        def run(B, a):
            if kind == "cnorm":
                y, denoms, diffs = B.cnorm_forward(a["x"], **norm)
                return y, B.cnorm_backward(diffs, y, denoms, a["dy"], **norm)
            y, denoms = getattr(B, f"{kind}_forward")(a["x"], **norm)
            return y, getattr(B, f"{kind}_backward")(a["x"], y, denoms, a["dy"], **norm)
        return run

    def softmax_pass(B, a):
        y = B.softmax_forward(a["z"])
        return y, B.softmax_backward(y, a["dy"])

    def eltmax_pass(B, a):
        y = B.eltmax_forward([a["a"], a["b"]])
        return (y, *B.eltmax_backward(a["dy"], [a["a"], a["b"]], y))

    def dropout_check(out, a) -> float:
        y, mask = (common.to_numpy(v) for v in out)
        ok = np.isin(mask, (0.0, 1.0)).all() and np.array_equal(y, a["x"] * mask)
        return 0.0 if ok else float("inf")

    conv_cases = [
        ("conv_forward", {"x": x, "w": w_conv}, lambda B, a: B.conv_forward(a["x"], a["w"], **geo), None),
        ("conv_backward_data", {"dy": dy_conv, "w": w_conv},
         lambda B, a: B.conv_backward_data(a["dy"], a["w"], image_size=size, **geo), None),
        ("conv_backward_weights", {"x": x, "dy": dy_conv},
         lambda B, a: B.conv_backward_weights(a["x"], a["dy"], partial_sum=mx, **geo), None),
        ("local_forward", {"x": x, "w": w_local}, lambda B, a: B.local_forward(a["x"], a["w"], **geo), None),
        ("local_backward_data", {"dy": dy_conv, "w": w_local},
         lambda B, a: B.local_backward_data(a["dy"], a["w"], image_size=size, **geo), None),
        ("local_backward_weights", {"x": x, "dy": dy_conv},
         lambda B, a: B.local_backward_weights(a["x"], a["dy"], **geo), None),
        ("add_conv_bias", {"y": dy_conv, "b": normal(filters, 1)},
         lambda B, a: B.add_conv_bias(a["y"], a["b"], shared=True, filters=filters), None),
        ("conv_bias_grad", {"dy": dy_conv}, lambda B, a: B.conv_bias_grad(a["dy"], shared=True, filters=filters),
         None),
    ]
    return [*_each_conv_variant(conv_cases), *[
        ("fc_forward", {"x": normal(rows, n), "w": normal(rows, classes), "b": normal(1, classes)},
         lambda B, a: B.fc_forward([a["x"]], [a["w"]], a["b"]), None),
        ("fc_bias_grad", {"dy": normal(rows, n)}, lambda B, a: B.fc_bias_grad(a["dy"]), None),
        ("neuron_forward relu", {"x": normal(rows, n)}, lambda B, a: B.neuron_forward(a["x"], "relu"), None),
        ("neuron_backward relu", {"x": normal(rows, n), "dy": normal(rows, n)},
         lambda B, a: B.neuron_backward(a["x"], B.neuron_forward(a["x"], "relu"), a["dy"], "relu"), None),
        ("pool_forward max", {"x": xi}, lambda B, a: B.pool_forward(a["x"], pool="max", **pool), None),
        ("pool_backward max", {"x": xi, "dy": normal(c * ox * ox, n)},
         lambda B, a: B.pool_backward(a["x"], B.pool_forward(a["x"], pool="max", **pool), a["dy"], pool="max",
                                      **pool), None),
        *[(f"{kind} forward+backward", {"x": x, "dy": normal(*x.shape)}, norm_pass(kind), None)
          for kind in ("cmrnorm", "rnorm", "cnorm")],
        ("softmax forward+backward", {"z": z, "dy": normal(classes, n)}, softmax_pass, None),
        ("logreg_cost", {"labels": labels, "probs": probs.astype(np.float32)},
         lambda B, a: B.logreg_cost(a["labels"], a["probs"], topk=2), None),
        ("logreg gradients", {"labels": labels, "probs": probs.astype(np.float32)},
         lambda B, a: (B.logreg_backward_probs(a["labels"], a["probs"], 1.0),
                       B.softmax_logreg_backward(a["labels"], a["probs"], 1.0)), None),
        ("dropout train", {"x": normal(rows, n), "dy": normal(rows, n)},
         lambda B, a: B.dropout_forward(a["x"], keep=0.5, enable=True, train=True, rng=np.random.default_rng(1)),
         dropout_check),
        ("dropout test + backward", {"x": normal(rows, n), "mask": (normal(rows, n) > 0).astype(np.float32)},
         lambda B, a: (B.dropout_forward(a["x"], keep=0.5, enable=True, train=False)[0],
                       B.dropout_backward(a["x"], a["mask"], keep=0.5, enable=True, train=True)), None),
        ("concat forward+backward", {"a": normal(3, n), "b": normal(5, n)},
         lambda B, a: (B.concat_forward([a["a"], a["b"]]), *B.concat_backward(B.concat_forward([a["a"], a["b"]]),
                                                                             [3, 5])), None),
        ("eltsum forward+backward", {"a": normal(rows, n), "b": normal(rows, n)},
         lambda B, a: (B.eltsum_forward([a["a"], a["b"]], [0.5, -2.0]),
                       *B.eltsum_backward(a["a"], [0.5, -2.0])), None),
        ("eltmax forward+backward", {"a": normal(rows, n), "b": normal(rows, n), "dy": normal(rows, n)},
         eltmax_pass, None),
        ("blur forward", {"x": x}, lambda B, a: B.blur_forward(a["x"], channels=c, filter_size=3, stdev=1.0), None),
        ("nailbed forward+backward", {"x": x, "dy": normal(c * nail_out * nail_out, n)},
         lambda B, a: (B.nailbed_forward(a["x"], channels=c, stride=2),
                       B.nailbed_backward(a["dy"], channels=c, stride=2, img_size=size)), None),
        ("href forward+backward", {"x": x_href, "dy": normal(*x_href.shape), "prev": normal(*x_href.shape)},
         lambda B, a: (B.href_forward(a["x"], channels=3), B.href_backward(a["dy"], channels=3, prev_grad=a["prev"]),
                       B.href_backward(a["dy"], channels=3, prev_grad=a["prev"], fix_overwrite=True)), None),
        ("sgd_update", {"w": w_upd, "v": v_upd, "g": g_upd}, sgd, None),
    ]]


def _each_conv_variant(cases):
    """The conv cases once per kernel variant of replay/backends/cuda/conv.py (VARIANT_ENV forces one; the
    NumPy reference ignores it), so that every variant's kernels are compiled and launched."""
    import os

    from replay.backends.cuda import conv as cuda_conv

    env = getattr(cuda_conv, "VARIANT_ENV", None)
    variants = sorted(getattr(cuda_conv, "VARIANT_TILE", {})) if env else []
    if not variants:
        return cases

    def forced(call, variant):
        def run(B, a):
            if not B.name.startswith("cuda"):
                return call(B, a)
            before = os.environ.get(env)
            os.environ[env] = variant
            try:
                return call(B, a)
            finally:
                if before is None:
                    os.environ.pop(env, None)
                else:
                    os.environ[env] = before
        return run

    return [(f"{name} {variant}", inputs, forced(call, variant), check)
            for variant in variants for name, inputs, call, check in cases]


def run_smoke(to_device, *, out=sys.stdout) -> int:
    """Run smoke_cases with our backend on arrays made by `to_device` (cupy.asarray: the GPU; np.asarray:
    the emulator). Prints one line per op and the kernels no op launched; returns the number of problems."""
    import time

    from replay.backends import get_backend
    from replay.backends.cuda import kernels

    ours, ref = get_backend("cuda"), get_backend("numpy")
    launched: list[str] = []
    original = kernels.function

    def recording(like, kernel):  # kernels.launch looks `function` up at each call
        launched.append(kernel)
        return original(like, kernel)

    kernels.function = recording
    problems, seen, cases = 0, set(), smoke_cases()
    try:
        for name, inputs, call, check in cases:
            launched.clear()
            started = time.perf_counter()
            try:
                got = call(ours, {k: to_device(v.copy()) for k, v in inputs.items()})
                got_host = as_arrays(got)  # reads back: the launches have run
                seconds = time.perf_counter() - started
                if check is not None:
                    error = check(got, inputs)
                else:
                    want = call(ref, {k: (v.astype(np.float64) if v.dtype == np.float32 else v.copy())
                                      for k, v in inputs.items()})
                    error = rel_error(got_host, want)
                status = "ok" if error <= SMOKE_RTOL else "FAIL"
                detail = f"err {error:.1e}"
            except Exception as caught:  # noqa: BLE001 — report every op, then fail
                status, seconds, detail = "ERROR", time.perf_counter() - started, f"{type(caught).__name__}: {caught}"
            files = sorted({kernels.kernel_index()[k].name for k in launched if k in kernels.kernel_index()})
            seen.update(launched)
            problems += status != "ok"
            where = ",".join(files) or "(no kernel: xp)"  # fc products are xp.matmul (cuBLAS on a GPU)
            print(f"{status:5s} {name:28s} {where:28s} {detail:12s} {seconds:6.2f} s  "
                  f"[{', '.join(dict.fromkeys(launched))}]", file=out, flush=True)
    finally:
        kernels.function = original
    missing = sorted(set(kernels.kernel_index()) - seen)
    for kernel in missing:
        print(f"NOT RUN  {kernels.kernel_index()[kernel].name}: {kernel} (no smoke case launches it)", file=out)
    print(f"smoke: {len(cases)} ops, {len(seen)} of {len(kernels.kernel_index())} kernels launched, "
          f"{problems} problem(s)", file=out, flush=True)
    return problems + len(missing)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.smoke:
        if args.emulate:
            return 1 if run_smoke(np.asarray) else 0
        try:
            cupy, _ = common.require_gpu(need_torch=False)
        except common.NoGpu as no_gpu:
            print(f"{no_gpu} — smoke test skipped (run with --emulate for the CPU emulator)", file=sys.stderr)
            return 0
        common.progress(f"smoke on {common.device_info(cupy)['name']} (CuPy {cupy.__version__})")
        return 1 if run_smoke(cupy.asarray) else 0
    cupy, torch = common.require_gpu()
    from replay.backends import get_backend

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = True
    return run(args, backend=get_backend("cuda"), to_device=cupy.asarray, ours_clock=common.CupyEventClock(cupy),
               torch=torch, torch_device="cuda", torch_clock=common.TorchEventClock(torch),
               device=common.device_info(cupy))


if __name__ == "__main__":
    sys.exit(main())
