"""A replayed network: the plan's layers run forward and backward on logical GPUs.

Every tensor lives on the logical GPU its layer names (`gpu=`). An activation read by a layer
on another GPU, and the gradient going back, cross only through `Transfers.copy`, which
counts copies and bytes per batch (SEMANTICS.md §6: each layer's output is copied once to
each other GPU that reads it). The NumPy reference keeps every "GPU" in host memory; the copy
is still a real copy, so a layer can never read another GPU's buffer by accident. On the CUDA
backend the same role is played by replay/backends/cuda/devices.py `LogicalGpus` (same counting
API): each logical GPU's tensors live on its device, its work runs `with transfers.on(gpu)` (its
stream and memory pool), and copies between GPUs are device-to-device, ordered by events.

Layer by layer the rules are the backend's (replay/backends/numpy_ref): this module only wires
them — which function, with which of the layer's settings (layer file) and parameters (params
file), in what order, and where gradients add up ("the first consumer writes, the rest add",
SEMANTICS.md §3).
"""
from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from archive.catalog import Experiment
from archive.source import ArchiveError

from .backends import get_backend
# Rules, not array operations: the same for every backend (replay/backend.py).
from .backends.numpy_ref import costs as cost_ops
from .backends.numpy_ref import dense as dense_ops
from .backends.numpy_ref.norm import SIZE_BUG_MIN_SIZE
from .plan import PlanLayer, ReplayPlan

# The 2012 bugs a replay reproduces unless asked to fix them (SEMANTICS.md §9).
FIXABLE = {
    "norm-size-gradient": "rnorm/cnorm with size >= 6 overwrite other consumers' gradients (conv_util.cu: "
                          "convResponseNormUndo)",
    "supereps-variance": "superEps divides by sqrt(G2 - G + superEps), G where G^2 was meant "
                         "(src/weights.cu: superMomUpdate)",
    "crossent2-sign": "cost.crossent2's gradient has the wrong sign for the 0 targets "
                      "(src/layer_kernels.cu: crossEntGrad2)",
    # replayed_bugs names it only where href's input also takes a gradient from another layer on its GPU.
    "href-overwrite": "href's backward overwrites the gradient other layers on its GPU already sent to its "
                      "input (src/layer.cu: HorizontalReflectionLayer::bpropActs ignores scaleTargets); never "
                      "hit by the release, whose only href layers (layers-126) read data and nails0, which "
                      "take no gradient",
}

# layer.py: WeightLayerParser.call_init_func reads `module.function(arg1,arg2,...)`.
_INIT_FUNCTION = re.compile(r"^([^.]+)\.([^()]+?)\s*(?:\(([^,]+(?:,[^,]+)*)\))?$")


class ReplayError(Exception):
    """A configuration the replay cannot run; the message names the layer and its file:line."""


@dataclass
class Transfers:
    """Copies between logical GPUs in the current batch: forward and backward, counted."""

    copies: int = 0
    bytes: int = 0
    per_batch: list[tuple[int, int]] = field(default_factory=list)

    def on(self, gpu: int | None):
        return nullcontext()  # every "GPU" is host memory: nothing to switch (devices.LogicalGpus.on)

    def start_batch(self) -> None:
        self.copies = self.bytes = 0

    def copy(self, array: np.ndarray, source: int | None, target: int | None) -> np.ndarray:
        if source is None or target is None or source == target or source < 0:
            return array  # host data (the data layer) is copied to each GPU anyway; not GPU-to-GPU traffic
        self.copies += 1
        self.bytes += array.nbytes
        return array.copy()

    def end_batch(self) -> None:
        self.per_batch.append((self.copies, self.bytes))
        self.copies = self.bytes = 0


@dataclass(frozen=True, slots=True)
class Costs:
    """What the cost layers returned for one minibatch, as the original's sums (SEMANTICS.md §8)."""

    cases: int
    values: dict[str, tuple[float, ...]]  # cost layer -> (Σ NLL, top-1 errors, top-k errors) for logreg


def _per_input(value, index: int):
    if isinstance(value, (list, tuple)):
        return value[index] if index < len(value) else value[-1]
    return value


class Network:
    def __init__(self, plan: ReplayPlan, experiment: Experiment, *, rng: np.random.Generator,
                 fixes: frozenset[str] = frozenset(), dtype=np.float32, backend=None,
                 init_source: dict[str, np.ndarray] | None = None, init_source_name: str = "", devices=None):
        unknown = set(fixes) - set(FIXABLE)
        if unknown:
            raise ReplayError(f"--fix {', '.join(sorted(unknown))}: not a known 2012 bug "
                              f"(known: {', '.join(sorted(FIXABLE))})")
        self.plan, self.experiment, self.fixes, self.dtype = plan, experiment, fixes, dtype
        self.ops = backend if backend is not None else get_backend("numpy")
        self.layers = {layer.name: layer for layer in plan.layers}
        self.order = [layer.name for layer in plan.layers]
        self.consumers: dict[str, list[str]] = {name: [] for name in self.order}
        for layer in plan.layers:
            for source in layer.inputs:
                self.consumers[source].append(layer.name)
        # The CUDA backend places tensors on logical GPUs (devices.LogicalGpus: cupy on a GPU, else the
        # emulator's host world); the NumPy reference counts copies in host memory (Transfers).
        self.on_cuda = getattr(self.ops, "name", "numpy") == "cuda"
        if devices is None and self.on_cuda:
            from .backends.cuda.devices import LogicalGpus, gpu_xp

            devices = LogicalGpus(plan.num_gpus, gpu_xp() or np)
        self.transfers = devices if devices is not None else Transfers()
        self._param_gpu = {param.key: param.gpu for param in plan.params}
        self.weights: dict[str, np.ndarray] = {}
        self.momentum: dict[str, np.ndarray] = {}
        self.conns: dict[str, np.ndarray] = {}
        # superEps layers keep running means of the gradient and its square (src/weights.cu).
        self.grad_avg: dict[str, np.ndarray] = {}
        self.grad2_avg: dict[str, np.ndarray] = {}
        # initWFunc/initBFunc layers copy weights from a checkpoint (initw.py); ours stands in for 2012's.
        self.init_source, self.init_source_name = init_source, init_source_name
        for layer in plan.layers:
            self._check_supported(layer)
        self._initialise(rng)
        if self.on_cuda:
            self.load_from_host(self.to_host())  # each tensor onto its layer's logical GPU
        self._acts: dict[str, np.ndarray] = {}
        self._cache: dict[str, object] = {}
        self.epoch: float | None = None  # set by the trainer: settings the log changed follow it
        # (conv/local layer, input index) -> the backend's `saved` dict for that input, kept from minibatch
        # to minibatch (see keep_im2col).
        self._workspaces: dict[tuple[str, int], dict] = {}
        self.grads: dict[str, np.ndarray] = {}

    # --- set-up ---------------------------------------------------------------------------

    def _where(self, layer: PlanLayer) -> str:
        return f"layer {layer.name!r} ({layer.source})"

    def _params_value(self, layer: PlanLayer, key: str, default=None):
        section = self.experiment.params.get(layer.split_from or layer.name)
        if section is None or key not in section.values:
            return default
        return section.values[key]

    def _required(self, layer: PlanLayer, key: str) -> float:
        value = self._params_value(layer, key)
        if value is None:
            raise ReplayError(f"{self._where(layer)}: {self.experiment.params_file} gives no {key!r} for it "
                              "(the 2012 parser refused this pair of files too)")
        return float(value)

    SUPPORTED = {"data", "conv", "local", "fc", "neuron", "pool", "cmrnorm", "rnorm", "cnorm", "softmax",
                 "cost.logreg", "hs", "blur", "nailbed", "href", "concat", "eltsum", "eltmax"}

    def _check_supported(self, layer: PlanLayer) -> None:
        # Layers that need input the replay's data (CIFAR batches, image folders, the synthetic set: one
        # class label per image) does not have: say which, and stop.
        flickr = ("Flickr multi-label targets (a 0/1 tag matrix per image, convdata_flickr.py), which no data "
                  "the replay reads provides (one class label per image)")
        needs = {"cost.crossent2": flickr, "cost.rflickr": flickr,
                 "treefc": "the class tree from the data's batches.meta (meta['tree'], layer.py: "
                           "TreeFCLayerParser), which no data the replay reads provides"}.get(layer.type)
        if layer.type == "cost.sum2":
            seen, todo = set(), list(layer.inputs)
            while todo:
                name = todo.pop()
                seen.add(name)
                todo += [i for i in self.layers[name].inputs if i not in seen]
            if any(self.layers[n].type == "data" and self.layers[n].derived.get("dataIdx", 0) != 0 for n in seen):
                needs = flickr + ": its input subtracts the labels data layer as a target vector"
        if needs:
            raise ReplayError(f"{self._where(layer)}: layer type {layer.type!r} needs {needs}; the replay stops here")
        if layer.type not in self.SUPPORTED:
            raise ReplayError(f"{self._where(layer)}: layer type {layer.type!r} is not replayed yet "
                              f"(replayed: {', '.join(sorted(self.SUPPORTED))})")
        # The params file must give what the layer needs, before any training starts.
        for key in {"cmrnorm": ("scale", "pow"), "rnorm": ("scale", "pow"), "cnorm": ("scale", "pow"),
                    "cost.logreg": ("coeff",), "hs": ("enable",)}.get(layer.type, ()):
            self._required(layer, key)
        for key in ("initCFunc", "weightSource"):
            if layer.settings.get(key):
                raise ReplayError(f"{self._where(layer)}: {key}={layer.settings[key]} needs a function or "
                                  "weights the release does not include (SEMANTICS.md §4.1); the replay stops here")
        for key in ("initWFunc", "initBFunc"):
            if layer.settings.get(key):
                self._init_function(layer, key)

    def _init_function(self, layer: PlanLayer, key: str) -> str:
        """The source layer an initWFunc/initBFunc copies from, or a ReplayError saying what the 2012
        function was and how to supply its weights. The release's functions are initw.py's
        makew(name, idx, shapes, params) -> src[params[0]]['weights'][idx] and makeb -> its biases,
        where src is the layers of one 2012 checkpoint hard-coded in initw.py: get_src."""
        text = str(layer.settings[key])
        match = _INIT_FUNCTION.match(text.strip())
        expected = {"initWFunc": "makew", "initBFunc": "makeb"}[key]
        if not match or match.group(1) != "initw" or match.group(2).strip() != expected or not match.group(3):
            raise ReplayError(f"{self._where(layer)}: {key}={text} calls a Python function of 2012 that the "
                              f"replay does not know (it knows initw.{expected}(LAYER), which copies LAYER from a "
                              "checkpoint, initw.py); the replay stops here")
        source = match.group(3).split(",")[0].strip()
        if self.init_source is None:
            parents = ", ".join(f"#{p}" for p in getattr(self.experiment, "parents", ()) or ())
            hint = f" (the log names {parents} as its parent)" if parents else ""
            raise ReplayError(f"{self._where(layer)}: {key}={text} starts from layer {source!r} of a trained "
                              "2012 net (the released initw.py loads /nobackup/kriz/tmp/ConvNet__2012-09-19_23.29.04)"
                              f", which the release does not include; start from a run of ours instead{hint}: "
                              "alexnet-archive replay ... --init-from RUN")
        return source

    def _initial_value(self, layer: PlanLayer, param, rows: int, cols: int) -> np.ndarray | None:
        """The weights an initWFunc/initBFunc supplies for `param`, shape-checked, or None."""
        key = "initWFunc" if param.kind == "weights" else "initBFunc"
        if not layer.settings.get(key):
            return None
        source = self._init_function(layer, key)
        wanted = f"{source}.weights[{param.input_index or 0}]" if param.kind == "weights" else f"{source}.biases"
        value = self.init_source.get(wanted)
        if value is None:
            raise ReplayError(f"{self._where(layer)}: {key} wants {wanted}, which {self.init_source_name} "
                              "does not hold")
        if value.shape != (rows, cols):
            raise ReplayError(f"{self._where(layer)}: {key} gives {wanted} of shape {value.shape} from "
                              f"{self.init_source_name}; {param.key} needs {(rows, cols)} (layer.py: make_weights)")
        return np.array(value, dtype=self.dtype)

    def _initialise(self, rng: np.random.Generator) -> None:
        """W = initW·randn, b = initB, momentum 0 (layer.py: WeightLayerParser.make_weights/make_biases),
        or what an initWFunc/initBFunc supplies (no random draw for those, as in make_weights)."""
        for param in self.plan.params:
            layer = self.layers[param.layer]
            rows, cols = param.shape
            if rows is None or cols is None:
                raise ReplayError(f"{self._where(layer)}: the shape of {param.key} is unknown")
            supplied = self._initial_value(layer, param, rows, cols)
            if param.super_eps > 0:
                self.grad_avg[param.key] = np.zeros((rows, cols), dtype=self.dtype)
                self.grad2_avg[param.key] = np.zeros((rows, cols), dtype=self.dtype)
            if supplied is not None:
                value = supplied
            elif param.kind == "weights":
                init = float(_per_input(layer.settings.get("initW", 0.01), param.input_index or 0))
                value = (init * rng.standard_normal((rows, cols))).astype(self.dtype)
            else:
                value = np.full((rows, cols), float(layer.settings.get("initB", 0.0)), dtype=self.dtype)
            self.weights[param.key] = value
            self.momentum[param.key] = np.zeros_like(value)
        for layer in self.plan.layers:
            if layer.type not in ("conv", "local"):
                continue
            for i in range(len(layer.inputs)):
                if _per_input(layer.settings.get("randSparse", False), i):
                    channels = layer.derived["channels"][i]
                    groups = _per_input(layer.settings.get("groups", 1), i)
                    over = layer.derived["overSample"][i]
                    # layer.py: gen_rand_conns: overSample random permutations of the channels, end to end.
                    conns = np.concatenate([rng.permutation(channels) for _ in range(over)])
                    self.conns[f"{layer.name}[{i}]"] = conns[: groups * layer.derived["filterChannels"][i]]

    def param_key(self, layer: str, kind: str, index: int | None = None) -> str:
        return self.plan.param(layer, kind, index).key

    # --- forward ----------------------------------------------------------------------------

    def forward(self, data: np.ndarray, labels: np.ndarray, *, train: bool, rng: np.random.Generator) -> Costs:
        """One minibatch: data (3·S·S, N), labels (1, N). Keeps what backward needs."""
        self._acts, self._cache = {}, {}
        self.transfers.start_batch()  # a batch's count starts with its forward pass
        cases = data.shape[1]
        values: dict[str, tuple[float, ...]] = {}
        for name in self.order:
            layer = self.layers[name]
            if layer.type == "data":
                self._acts[name] = (data if layer.derived.get("dataIdx", layer.settings.get("dataIdx")) == 0
                                    else labels).astype(self.dtype, copy=False)
                continue
            inputs = [self._input(source, layer) for source in layer.inputs]
            with self.transfers.on(layer.gpu):
                if layer.type == "cost.logreg":
                    labels_in, probs = inputs
                    topk = int(self._params_value(layer, "topk", 1) or 1)
                    values[name] = self.ops.logreg_cost(labels_in.astype(np.int64).reshape(-1), probs, topk=topk)
                    self._acts[name] = probs
                    continue
                self._acts[name] = self._forward_layer(layer, inputs, train, rng)
        return Costs(cases, values)

    def _input(self, source: str, layer: PlanLayer) -> np.ndarray:
        """The source's output on this layer's GPU: a counted copy the first time another GPU reads it."""
        producer = self.layers[source]
        key = f"{source}@{layer.gpu}"
        if key not in self._cache:
            self._cache[key] = self.transfers.copy(self._acts[source], producer.gpu, layer.gpu)
        return self._cache[key]

    def _conv_geometry(self, layer: PlanLayer, i: int) -> dict:
        d, s = layer.derived, layer.settings
        return dict(channels=d["channels"][i], filter_size=d["filterSize"][i],
                    padding=_per_input(s.get("padding", 0), i), stride=_per_input(s.get("stride", 1), i),
                    groups=_per_input(s.get("groups", 1), i), filter_channels=d["filterChannels"][i],
                    modules_x=d["modulesX"], conns=self.conns.get(f"{layer.name}[{i}]"))

    def _forward_layer(self, layer: PlanLayer, inputs: list[np.ndarray], train: bool, rng) -> np.ndarray:
        t, s, d = layer.type, layer.settings, layer.derived
        if t in ("conv", "local"):
            run = self.ops.conv_forward if t == "conv" else self.ops.local_forward
            y = None
            for i, x in enumerate(inputs):
                part = run(x, self.weights[self.param_key(layer.name, "weights", i)], **self._conv_geometry(layer, i),
                           saved=self._workspace(layer, i))
                if y is None:
                    y = part  # a new array of ours: later inputs and the bias are added into it in place
                else:
                    y += part
            shared = t == "conv" and bool(s.get("sharedBiases", True))
            return self.ops.add_conv_bias(y, self.weights[self.param_key(layer.name, "biases", None)],
                                          shared=shared, filters=d["filters"], out=y)
        if t == "fc":
            ws = [self.weights[self.param_key(layer.name, "weights", i)] for i in range(len(inputs))]
            return self.ops.fc_forward(inputs, ws, self.weights[self.param_key(layer.name, "biases", None)])
        if t == "neuron":
            kind, params = dense_ops.parse_neuron(layer.neuron or s.get("neuron"))
            return self.ops.neuron_forward(inputs[0], kind, params, rng=rng)
        if t == "pool":
            return self.ops.pool_forward(inputs[0], **self._pool_geometry(layer))
        if t in ("cmrnorm", "rnorm", "cnorm"):
            scale, power = self._required(layer, "scale"), self._required(layer, "pow")
            common = dict(channels=s["channels"], size=s["size"], scale=scale, pow=power)
            if t == "cmrnorm":
                y, denoms = self.ops.cmrnorm_forward(inputs[0], min_div=float(self._params_value(layer, "minDiv", 1.0)),
                                                     **common)
                self._cache[layer.name] = denoms
            elif t == "rnorm":
                y, denoms = self.ops.rnorm_forward(inputs[0], **common)
                self._cache[layer.name] = denoms
            else:
                y, denoms, diffs = self.ops.cnorm_forward(inputs[0], **common)
                self._cache[layer.name] = (denoms, diffs)
            return y
        if t == "softmax":
            return self.ops.softmax_forward(inputs[0])
        if t == "hs":
            # the log's "enabled dropout" (plan.dropout) where it has one, else the params file's enable=
            table = self.plan.dropout.get(layer.name)
            enable = bool(table.value_at(self.epoch) if table is not None and self.epoch is not None
                          else self._params_value(layer, "enable", True))
            y, mask = self.ops.dropout_forward(inputs[0], keep=float(s["keep"]), enable=enable, train=train, rng=rng)
            self._cache[layer.name] = (mask, enable, train)
            return y
        if t == "blur":
            return self.ops.blur_forward(inputs[0], channels=s["channels"], filter_size=s["filterSize"],
                                        stdev=float(s["stdev"]))
        if t == "nailbed":
            return self.ops.nailbed_forward(inputs[0], channels=s["channels"], stride=s["stride"])
        if t == "href":
            return self.ops.href_forward(inputs[0], channels=s["channels"])
        if t == "concat":
            return self.ops.concat_forward(inputs)
        if t == "eltsum":
            return self.ops.eltsum_forward(inputs, s.get("coeffs"))
        if t == "eltmax":
            return self.ops.eltmax_forward(inputs)
        raise ReplayError(f"{self._where(layer)}: no forward rule for {t!r}")

    # Each conv/local input gets one `saved` dict (numpy_ref/conv.py) for the life of the network: the
    # forward keeps its im2col columns there for the weight gradient of the same pass (which takes them
    # out), and the memory of the columns and of the other large scratch arrays (padded image, data
    # gradient sums) is reused by the next minibatch instead of being allocated afresh (a new 100 MB array
    # page-faults on first touch, which costs about as much as filling it). So the columns of every
    # conv/local input stay allocated between passes; the peak is what it was (a training pass has them all
    # alive when its backward starts). Set keep_im2col = False to compute the columns twice and keep
    # nothing (a lower peak, slower).
    keep_im2col = True

    def _workspace(self, layer: PlanLayer, index: int) -> dict | None:
        if not self.keep_im2col:
            return None
        return self._workspaces.setdefault((layer.name, index), {})

    def _pool_geometry(self, layer: PlanLayer) -> dict:
        s, d = layer.settings, layer.derived
        return dict(channels=s["channels"], size_x=s["sizeX"], stride=s["stride"], start=d.get("start", 0),
                    outputs_x=d.get("outputsX", 0), pool=s["pool"],
                    do_max=bool(self._params_value(layer, "doMax", False)))

    # --- backward ---------------------------------------------------------------------------

    def backward(self, labels: np.ndarray) -> None:
        """Gradients of the summed cost (× each cost layer's coeff): `self.grads[param key]` hold the
        1/N-normalised weight gradients (our sign: derivatives, SEMANTICS.md §0 and §4.2)."""
        # (layer, GPU) -> the sum of d(cost)/d(layer's output) from the layer's consumers on that GPU,
        # held on that GPU: the 2012 `_actsGrad[d]`, one buffer per device that reads the layer (layer.cu:
        # Layer::postInit). Consumers accumulate into it where they run (bpropActs with scaleTargets 1);
        # the layer pulls each other GPU's buffer once when its own backward starts (Layer::bprop), so a
        # layer read twice from one GPU (example-gc's fc16c) sends one gradient back, not two.
        pending: dict[tuple[str, int | None], np.ndarray] = {}
        fused: set[str] = set()
        self.grads = {}
        for name in reversed(self.order):
            layer = self.layers[name]
            if layer.type == "cost.logreg":
                with self.transfers.on(layer.gpu):
                    self._logreg_backward(layer, labels, pending, fused)
                continue
            if layer.type == "data" or name in fused or not layer.grad_consumer:
                continue
            dy = self._gather_grad(layer, pending)
            if dy is None:
                continue
            with self.transfers.on(layer.gpu):
                for index, source in enumerate(layer.inputs):
                    self._weight_grads(layer, index, dy)
                for index, source in enumerate(layer.inputs):
                    producer = self.layers[source]
                    if producer.type == "data" or not producer.grad_consumer:
                        continue
                    dx = self._input_grad(layer, index, dy, pending.get((source, layer.gpu)))
                    self._deposit(source, layer, dx, pending)
                if layer.type in ("conv", "local", "fc"):
                    self._bias_grad(layer, dy)
        self.transfers.end_batch()

    def _deposit(self, source: str, consumer: PlanLayer, dx: np.ndarray | None, pending: dict) -> None:
        """Add a consumer's contribution to `source`'s gradient buffer on the consumer's GPU."""
        if dx is None:
            return
        key = (source, consumer.gpu)
        with self.transfers.on(consumer.gpu):
            pending[key] = dx if key not in pending else pending[key] + dx

    def _gather_grad(self, layer: PlanLayer, pending: dict) -> np.ndarray | None:
        """d(cost)/d(layer's output) on its own GPU: its own GPU's buffer first, then each other GPU's
        buffer copied over (one counted copy per GPU) and added, as Layer::bprop sums them. (2012 went
        through the other GPUs in `_nextDeviceIDs` order, which Layer::addNext shuffles with rand(); we
        take them in GPU order, so a replay is reproducible.) None when no consumer sent anything."""
        total = pending.pop((layer.name, layer.gpu), None)
        for key in sorted((k for k in pending if k[0] == layer.name), key=lambda k: (k[1] is None, k[1])):
            remote = self.transfers.copy(pending.pop(key), key[1], layer.gpu)
            with self.transfers.on(layer.gpu):
                total = remote if total is None else total + remote
        return total

    def _logreg_backward(self, layer: PlanLayer, labels: np.ndarray, pending: dict, fused: set) -> None:
        coeff = float(self._params_value(layer, "coeff", 1.0))
        if coeff == 0:
            return  # CostLayer::bprop: a zero coeff sends nothing
        label_source, probs_source = layer.inputs
        probs_layer = self.layers[probs_source]
        int_labels = labels.astype(np.int64).reshape(-1)
        probs = self._acts[probs_source]
        if (probs_layer.type == "softmax" and cost_ops.softmax_logreg_fused(
                [self.layers[c].type for c in self.consumers[probs_source]], probs_layer.gpu == layer.gpu)):
            # SoftmaxLayer::bpropActs: the softmax and the cost together, straight to the softmax's input.
            fused.add(probs_source)
            dx = self.ops.softmax_logreg_backward(int_labels, probs, coeff)
            self._deposit(probs_layer.inputs[0], probs_layer, dx, pending)
            return
        dy = self.ops.logreg_backward_probs(int_labels, probs, coeff)
        self._deposit(probs_source, layer, dy, pending)

    def _input_grad(self, layer: PlanLayer, index: int, dy: np.ndarray, prev: np.ndarray | None):
        t, s, d = layer.type, layer.settings, layer.derived
        x = self._input(layer.inputs[index], layer)
        if t in ("conv", "local"):
            run = self.ops.conv_backward_data if t == "conv" else self.ops.local_backward_data
            return run(dy, self.weights[self.param_key(layer.name, "weights", index)],
                       image_size=d["imgSize"][index], **self._conv_geometry(layer, index),
                       saved=self._workspace(layer, index))
        if t == "fc":
            return self.ops.fc_backward_data(dy, self.weights[self.param_key(layer.name, "weights", index)])
        y = self._acts[layer.name]
        if t == "neuron":
            kind, params = dense_ops.parse_neuron(layer.neuron or s.get("neuron"))
            return self.ops.neuron_backward(x, y, dy, kind, params)
        if t == "pool":
            return self.ops.pool_backward(x, y, dy, **self._pool_geometry(layer))
        if t in ("cmrnorm", "rnorm", "cnorm"):
            scale, power = self._required(layer, "scale"), self._required(layer, "pow")
            common = dict(channels=s["channels"], size=s["size"], scale=scale, pow=power)
            fix = "norm-size-gradient" in self.fixes
            if t == "cmrnorm":
                return self.ops.cmrnorm_backward(x, y, self._cache[layer.name], dy,
                                                 min_div=float(self._params_value(layer, "minDiv", 1.0)), **common)
            if t == "rnorm":
                return self._replace(layer.inputs[index], self.ops.rnorm_backward(
                    x, y, self._cache[layer.name], dy, prev_grad=prev, fix_size_bug=fix, **common), prev)
            denoms, diffs = self._cache[layer.name]
            return self._replace(layer.inputs[index], self.ops.cnorm_backward(
                diffs, y, denoms, dy, prev_grad=prev, fix_size_bug=fix, **common), prev)
        if t == "softmax":
            return self.ops.softmax_backward(y, dy)
        if t == "hs":
            mask, enable, train = self._cache[layer.name]
            return self.ops.dropout_backward(dy, mask, keep=float(s["keep"]), enable=enable, train=train)
        if t == "blur":
            return self.ops.blur_backward(dy, channels=s["channels"], filter_size=s["filterSize"],
                                         stdev=float(s["stdev"]))
        if t == "nailbed":
            return self.ops.nailbed_backward(dy, channels=s["channels"], stride=s["stride"], img_size=d["imgSize"])
        if t == "href":  # like rnorm/cnorm: the whole buffer comes back, `prev` lost unless fixed
            return self._replace(layer.inputs[index], self.ops.href_backward(
                dy, channels=s["channels"], prev_grad=prev, fix_overwrite="href-overwrite" in self.fixes), prev)
        if t == "concat":
            sizes = [self._acts[source].shape[0] for source in layer.inputs]
            return self.ops.concat_backward(dy, sizes)[index]
        if t == "eltsum":
            return self.ops.eltsum_backward(dy, s.get("coeffs") or [1.0] * len(layer.inputs))[index]
        if t == "eltmax":
            xs = [self._input(source, layer) for source in layer.inputs]
            return self.ops.eltmax_backward(dy, xs, y)[index]
        raise ReplayError(f"{self._where(layer)}: no backward rule for {t!r}")

    def _replace(self, source: str, buffer: np.ndarray, prev: np.ndarray | None):
        """rnorm/cnorm and href return the whole gradient buffer of their input (with the size >= 6 bug or
        href's overwrite it may have dropped `prev`); turn it back into this layer's contribution."""
        return buffer if prev is None else buffer - prev

    def _weight_grads(self, layer: PlanLayer, index: int, dy: np.ndarray) -> None:
        if layer.type not in ("conv", "local", "fc"):
            return
        key = self.param_key(layer.name, "weights", index)
        x = self._input(layer.inputs[index], layer)
        if layer.type == "fc":
            self.grads[key] = self.ops.fc_backward_weights(x, dy)
        elif layer.type == "conv":
            self.grads[key] = self.ops.conv_backward_weights(x, dy, partial_sum=int(layer.settings.get("partialSum", 0)),
                                                             saved=self._workspace(layer, index),
                                                             **self._conv_geometry(layer, index))
        else:
            self.grads[key] = self.ops.local_backward_weights(x, dy, saved=self._workspace(layer, index),
                                                              **self._conv_geometry(layer, index))

    def _bias_grad(self, layer: PlanLayer, dy: np.ndarray) -> None:
        key = self.param_key(layer.name, "biases", None)
        if layer.type == "fc":
            self.grads[key] = self.ops.fc_bias_grad(dy)
        else:
            shared = layer.type == "conv" and bool(layer.settings.get("sharedBiases", True))
            self.grads[key] = self.ops.conv_bias_grad(dy, shared=shared, filters=layer.derived["filters"])

    # --- update -----------------------------------------------------------------------------

    def update(self, *, epoch: float, progress: float, rng=None) -> None:
        from .update import super_update_param, update_param

        for param in self.plan.params:
            grad = self.grads.get(param.key)
            if grad is None:
                continue
            layer = self.layers[param.layer]
            modules = layer.derived.get("modules") if layer.type == "local" else None
            if self.on_cuda and param.super_eps <= 0:
                with self.transfers.on(param.gpu):
                    self._cuda_update(param, grad, epoch=epoch, progress=progress, layer_type=layer.type,
                                      modules=modules, rng=rng)
                continue
            if param.super_eps > 0:
                (self.weights[param.key], self.momentum[param.key], self.grad_avg[param.key],
                 self.grad2_avg[param.key]) = super_update_param(
                    param, self.weights[param.key], self.momentum[param.key], grad, self.grad_avg[param.key],
                    self.grad2_avg[param.key], epoch=epoch, progress=progress, layer_type=layer.type,
                    modules=modules, rng=rng, fix="supereps-variance" in self.fixes)
                continue
            self.weights[param.key], self.momentum[param.key] = update_param(
                param, self.weights[param.key], self.momentum[param.key], grad, epoch=epoch, progress=progress,
                layer_type=layer.type, modules=modules, rng=rng)

    def _cuda_update(self, param, grad, *, epoch: float, progress: float, layer_type: str, modules, rng) -> None:
        """replay/update.py update_param on the CUDA backend: the same base rate, schedule draws (two when
        the schedule has noise and wc > 0: gradient and decay, as lr.cu) and constraints, with the momentum
        step done in place by the fused sgd_update kernel (backends/cuda/dense.py; bit-identical to
        update.sgd_update). The constraints (wball, wcNorm) stay array code in the tensor's array module."""
        from .backends.cuda.dense import sgd_update
        from .backends.cuda.kernels import xp_of
        from .schedule import scheduled_rate
        from .update import constrain_weights

        base = param.timetable.value_at(epoch)
        if not base > 0:
            return  # Weights::update: getBaseRate() > 0, else nothing at all
        w, v = self.weights[param.key], self.momentum[param.key]
        grad = xp_of(grad).ascontiguousarray(grad)  # the kernel updates from a flat float32 buffer
        mom = param.mom if param.mom is not None else 0.0
        eps = scheduled_rate(param.schedule, base, progress, rng)
        if param.kind == "biases":
            sgd_update(w, v, grad, eps=eps, mom=mom, wc=0.0, base_eps=base)  # biases: no decay (layer.cu)
            return
        eps_decay = scheduled_rate(param.schedule, base, progress, rng) if param.wc > 0 else eps
        sgd_update(w, v, grad, eps=eps, mom=mom, wc=param.wc, eps_decay=eps_decay, base_eps=base)
        constrained = {"conv": param.wball > 0 or param.wc_norm_max > 0, "fc": param.wball > 0,
                       "local": param.wball > 0}.get(layer_type, False)
        if constrained:  # otherwise constrain_weights would return a copy of w, unchanged
            self.weights[param.key] = constrain_weights(w, layer_type=layer_type, wball=param.wball,
                                                        fan_in=param.fan_in, wc_norm_min=param.wc_norm_min,
                                                        wc_norm_max=param.wc_norm_max, modules=modules)

    # --- state on the host (checkpoints) ----------------------------------------------------------

    def _state(self) -> dict[str, dict]:
        return {"weights": self.weights, "momentum": self.momentum, "conns": self.conns,
                "grad_avg": self.grad_avg, "grad2_avg": self.grad2_avg}

    def to_host(self) -> dict[str, dict[str, np.ndarray]]:
        """The state a checkpoint holds, by part (replay/checkpoint.py PARTS), as NumPy arrays on the host
        (the NumPy backend's own arrays, not copies; cupy.asnumpy on a GPU)."""
        from .backends.cuda.devices import as_numpy

        return {part: {key: as_numpy(value) for key, value in arrays.items()} for part, arrays in self._state().items()}

    def load_from_host(self, parts: dict[str, dict[str, np.ndarray]]) -> None:
        """Take the state from host arrays by part (as to_host gives them, or a checkpoint of either
        backend), each tensor onto its layer's logical GPU. A part or key the net has but `parts` lacks
        raises KeyError((part, key)). randSparse connections stay on the host (the kernels' geometry reads them)."""
        for part, target in self._state().items():
            for key in list(target):
                if key not in parts.get(part, {}):
                    raise KeyError((part, key))
                value = parts[part][key]
                if self.on_cuda and part != "conns":
                    value = self.transfers.to(self._param_gpu[key],
                                              np.ascontiguousarray(value, dtype=self.dtype))
                    if value is parts[part][key]:
                        value = value.copy()  # updated in place (sgd_update): never share the caller's array
                target[key] = value

    def bugs(self) -> list[tuple[str, str]]:
        return replayed_bugs(self.plan, self.fixes)

    def output(self, name: str) -> np.ndarray:
        return self._acts[name]


def replayed_bugs(plan: ReplayPlan, fixes=frozenset()) -> list[tuple[str, str]]:
    """The 2012 bugs a replay of `plan` reproduces unless --fix'ed: [(fix name, "layer 'x' (file:line): what")]."""
    found = []
    by_name = {layer.name: layer for layer in plan.layers}
    for layer in plan.layers:
        where = f"layer {layer.name!r} ({layer.source})"
        # conv_util.cu: convResponseNormUndo overwrites, for size >= 6 on channels % 4 == 0.
        if (layer.type in ("rnorm", "cnorm") and int(layer.settings.get("size", 0) or 0) >= SIZE_BUG_MIN_SIZE
                and int(layer.settings.get("channels", 0) or 0) % 4 == 0):
            found.append(("norm-size-gradient", where))
        # layer.cu: HorizontalReflectionLayer::bpropActs overwrites its input's gradient buffer on its GPU,
        # which matters only where another layer on that GPU also sends that input a gradient.
        source = by_name.get(layer.inputs[0]) if layer.type == "href" and layer.inputs else None
        if (source is not None and source.type != "data" and source.grad_consumer
                and any(other is not layer and source.name in other.inputs and other.gpu == layer.gpu
                        for other in plan.layers)):
            found.append(("href-overwrite", where))
        if layer.type == "cost.crossent2":
            found.append(("crossent2-sign", where))
        if any(p.super_eps > 0 for p in plan.params if p.layer == layer.name):
            found.append(("supereps-variance", where))
    return [(name, f"{where}: {FIXABLE[name]}") for name, where in found if name not in fixes]


def check_experiment(experiment: Experiment) -> None:
    if experiment.layers is None:
        raise ArchiveError(None, f"experiment #{experiment.id} has no layer-definition file to replay",
                           "replay.no-layers")
