"""The replay plan of one archived experiment: what a 2012 run computed, where, with which
learning rates, and what it cost.

`build_plan(experiment)` turns the archive's records (the layer graph of archive/layers.py, the
params file of archive/params.py, the log of archive/logbook.py) into:

- the layers in dependency order, with every `neuron=` split off into its own layer `X_neuron`
  as layer.py does (`LayerParser.detach_neuron_layers`; archive/layers.py only records the name
  in `derived["neuronLayer"]`), and all consumers of X rewired to it;
- every parameter tensor with its cuda-convnet shape (SEMANTICS §2), logical GPU, and its
  epsW/momW/wc/wball (weights) or epsB/momB (biases), schedule, constraints and the file:line
  each value came from, plus the base rate per epoch (replay/schedule.py);
- the cross-GPU edges and the bytes copied between GPUs per batch (SEMANTICS §6);
- FLOPs per image and memory per logical GPU (rules below, `FLOP_RULES`, `MEMORY_RULE`).

The 2012 run order: convnet's threads run a layer once all its inputs have arrived (message
driven, `Layer::fprop`), so any topological order is a valid order on each GPU. The plan uses
the file order, with each `X_neuron` right after X, moved only as far as needed to come after
all its inputs (a file may name an input defined below it).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from archive.params import Schedule
from archive.source import ArchiveError, SourceSpan

from .schedule import Timetable, constant_timetable, epsw_timetables, logged_setting_timetables

__all__ = ["build_plan", "format_plan", "ReplayPlan", "PlanLayer", "ParamTensor", "CrossEdge",
           "Transfer", "GpuMemory", "LoggedChange", "FLOP_RULES", "MEMORY_RULE", "FLOAT_BYTES"]

FLOAT_BYTES = 4  # every activation, weight and gradient is float32 (NVMatrix)

FLOP_RULES = {
    "conv": "2 × multiply-adds: 2·F·M·Σ_i Cf_i·fs_i² (padding taps counted); bias adds not counted",
    "local": "2 × multiply-adds: 2·F·M·Σ_i Cf_i·fs_i²; bias adds not counted",
    "fc": "2 × multiply-adds: 2·out·Σ_i in_i; bias adds not counted",
    "treefc": "2 × multiply-adds of the leaf matrix: 2·in·out (the tree sums are not counted)",
    "pool": "outputs·sizeX² (one compare or add per window element; clipped windows counted whole)",
    "cmrnorm": "outputs·(2·size + 4) (square-add over the window, scale, pow, multiply)",
    "rnorm": "outputs·(2·size² + 4)",
    "cnorm": "outputs·(3·size² + 5) (rnorm plus the mean over the window)",
    "blur": "outputs·4·filterSize (two separable multiply-add passes)",
    "neuron": "outputs (one op per element)",
    "hs": "outputs (one multiply per element)",
    "eltsum": "outputs·inputs", "eltmax": "outputs·inputs",
    "softmax": "outputs·4 (max, exp, sum, divide)",
    "cost": "outputs of the probability input (one op per element)",
    "other": "0 (copies: data, nailbed, href, concat)",
}
MEMORY_RULE = (
    "float32. parameters: weights + biases. training: parameters × 2 (the momentum buffer 'Inc'), "
    "+ a gradient buffer for conv weights and all biases (useGrad; fc and local form the "
    "increment in place), + conv's partialSum scratch ((M/partialSum)·Cf·fs²·F, largest input). "
    "activations per case: every non-data layer on the GPU holds its output and its gradient "
    "(no buffer is shared, SEMANTICS §9 trap 26; cost layers hold none), every input from another "
    "GPU or the host holds a copy on this GPU, plus a gradient buffer when it is not a data layer.")


def _where(span: SourceSpan | None) -> str:
    return str(span) if span is not None else "?"


# --- records --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlanLayer:
    """One layer as the 2012 trainer built it (after `neuron=` was split off).

    gpu: logical GPU (None = host memory: data layers). outputs: values per case.
    split_from: X for a layer `X_neuron` made from X's `neuron=`. neuron: the activation of a
    neuron layer (None otherwise: X's own neuron moved to X_neuron). flops: per image, forward
    (FLOP_RULES). grad_consumer: Layer::isGradConsumer at the plan's starting rates (a weight
    layer with some base rate > 0, or a layer above one). source: file:line of its section.
    """

    name: str
    type: str
    inputs: tuple[str, ...]
    gpu: int | None
    outputs: int | None
    channels: int | None
    img_size: int | None
    neuron: str | None
    split_from: str | None
    params: int | None
    flops: int | None
    grad_consumer: bool
    source: str
    settings: dict = field(repr=False)
    derived: dict = field(repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "inputs": list(self.inputs), "gpu": self.gpu,
                "outputs": self.outputs, "channels": self.channels, "img_size": self.img_size,
                "neuron": self.neuron, "split_from": self.split_from, "params": self.params,
                "flops": self.flops, "grad_consumer": self.grad_consumer, "source": self.source}


@dataclass(frozen=True, slots=True)
class ParamTensor:
    """A weight matrix (one per input of a weight layer) or a bias vector.

    shape: cuda-convnet's (rows, cols), SEMANTICS §2 (None where unknown: a treefc's tree).
    eps: the params file's base rate (epsW[i] / epsB); timetable: the base rate per epoch
    (rebuilt from the log, or the file's throughout with as_written=True); schedule: schedW /
    schedB as the release reads it (None = default); mom, wc (0 for biases: no decay),
    wball (0 = off; threshold wball·fan_in), wc_norm_min/max (conv weights only; off unless
    max > 0). sources: key -> "file:line" or how the value was decided.
    """

    layer: str
    kind: str  # "weights" | "biases"
    input_index: int | None
    input_name: str | None
    shape: tuple[int | None, int | None]
    count: int | None
    gpu: int
    eps: float | None
    mom: float | None
    wc: float
    wball: float
    fan_in: int | None
    wc_norm_min: float
    wc_norm_max: float
    schedule: Schedule | None
    timetable: Timetable
    use_grad: bool
    sources: dict = field(repr=False)
    super_eps: float = 0.0  # > 0: the RMS-normalised update of src/weights.cu (unused in the release)

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.kind}" + (f"[{self.input_index}]" if self.input_index is not None else "")

    def to_json(self) -> dict:
        return {"key": self.key, "layer": self.layer, "kind": self.kind, "input_index": self.input_index,
                "input": self.input_name, "shape": list(self.shape), "count": self.count, "gpu": self.gpu,
                "eps": self.eps, "mom": self.mom, "wc": self.wc, "wball": self.wball, "fan_in": self.fan_in,
                "wc_norm_min": self.wc_norm_min, "wc_norm_max": self.wc_norm_max,
                "schedule": self.schedule.canonical() if self.schedule else "default",
                "timetable": self.timetable.to_json(), "use_grad": self.use_grad, "super_eps": self.super_eps,
                "sources": dict(self.sources)}


@dataclass(frozen=True, slots=True)
class CrossEdge:
    """A layer reading the output of a layer on another device (source_gpu None: a data layer
    in host memory)."""

    source: str
    target: str
    source_gpu: int | None
    target_gpu: int
    bytes_per_case: int

    def to_json(self) -> dict:
        return {"source": self.source, "target": self.target, "source_gpu": self.source_gpu,
                "target_gpu": self.target_gpu, "bytes_per_case": self.bytes_per_case}


@dataclass(frozen=True, slots=True)
class Transfer:
    """One copy per (producer, remote GPU) and batch (`Layer::fpropNext` copies once per distinct
    device, however many consumers it has there); backward: the gradient buffer on the remote
    GPU summed into the producer (`Layer::bprop`), only when the producer is a gradient consumer."""

    source: str
    from_gpu: int
    to_gpu: int
    bytes_per_case: int
    backward: bool

    def to_json(self) -> dict:
        return {"source": self.source, "from_gpu": self.from_gpu, "to_gpu": self.to_gpu,
                "bytes_per_case": self.bytes_per_case, "backward": self.backward}


@dataclass(frozen=True, slots=True)
class GpuMemory:
    """Memory of one logical GPU for a minibatch (MEMORY_RULE); None where a shape is unknown."""

    gpu: int
    layers: int
    params: int | None
    param_bytes: int | None
    training_param_bytes: int | None
    activation_bytes: int | None
    total_bytes: int | None
    minibatch: int

    def to_json(self) -> dict:
        return {"gpu": self.gpu, "layers": self.layers, "params": self.params, "param_bytes": self.param_bytes,
                "training_param_bytes": self.training_param_bytes, "activation_bytes": self.activation_bytes,
                "total_bytes": self.total_bytes, "minibatch": self.minibatch}


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """A change the log records that the plan does not apply (not epsW): color noise, wc,
    schedW, mini, epochs, dropout ... kind "event" (a dated change) or "init" (how a run started)."""

    kind: str
    epoch: float | None
    quantity: str | None
    text: str
    source: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "epoch": self.epoch, "quantity": self.quantity, "text": self.text,
                "source": self.source}


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    experiment: str
    params_file: str
    layers_file: str
    as_written: bool
    num_gpus: int
    input_size: int
    input_channels: int
    layers: tuple[PlanLayer, ...]
    params: tuple[ParamTensor, ...]
    edges: tuple[CrossEdge, ...]
    transfers: tuple[Transfer, ...]
    other_changes: tuple[LoggedChange, ...]
    notes: tuple[str, ...]
    # Settings the log changed by hand, over the epochs (schedule.logged_setting_timetables).
    color_noise: Timetable = field(default_factory=lambda: constant_timetable(0.0, "convnet.py", "default"))
    dropout: dict[str, Timetable] = field(default_factory=dict)  # hs layer -> its `enable`
    # per GPU: fixed (training) bytes and activation bytes per case, for memory()
    _gpu_fixed: tuple[tuple[int, int | None, int | None, int | None], ...] = field(repr=False, default=())
    _gpu_per_case: tuple[int | None, ...] = field(repr=False, default=())

    def layer(self, name: str) -> PlanLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def param(self, layer: str, kind: str = "weights", input_index: int | None = 0) -> ParamTensor:
        if kind == "biases":
            input_index = None
        for p in self.params:
            if p.layer == layer and p.kind == kind and p.input_index == input_index:
                return p
        raise KeyError((layer, kind, input_index))

    def total_params(self) -> int | None:
        counts = [layer.params for layer in self.layers]
        return None if any(c is None for c in counts) else sum(counts)

    def flops_per_image(self) -> int | None:
        values = [layer.flops for layer in self.layers]
        return None if any(v is None for v in values) else sum(values)

    def weight_flops_per_image(self) -> int | None:
        values = [layer.flops for layer in self.layers if layer.type in ("conv", "local", "fc", "treefc")]
        return None if any(v is None for v in values) else sum(values)

    def transfer_bytes(self, minibatch: int = 128) -> tuple[int, int]:
        """(forward, backward) bytes copied between GPUs for one minibatch (host copies of data
        layers not counted; float32, no quantF/quantB=half)."""
        fwd = sum(t.bytes_per_case for t in self.transfers) * minibatch
        bwd = sum(t.bytes_per_case for t in self.transfers if t.backward) * minibatch
        return fwd, bwd

    def memory(self, minibatch: int = 128) -> tuple[GpuMemory, ...]:
        out = []
        for (gpu, count, params, fixed), per_case in zip(self._gpu_fixed, self._gpu_per_case):
            training = fixed
            acts = None if per_case is None else per_case * minibatch
            param_bytes = None if params is None else params * FLOAT_BYTES
            total = None if training is None or acts is None else training + acts
            out.append(GpuMemory(gpu, count, params, param_bytes, training, acts, total, minibatch))
        return tuple(out)

    def to_json(self, minibatch: int = 128) -> dict:
        fwd, bwd = self.transfer_bytes(minibatch)
        return {
            "experiment": self.experiment, "params_file": self.params_file, "layers_file": self.layers_file,
            "as_written": self.as_written, "num_gpus": self.num_gpus,
            "input": {"size": self.input_size, "channels": self.input_channels},
            "layers": [layer.to_json() for layer in self.layers],
            "params": [p.to_json() for p in self.params],
            "edges": [e.to_json() for e in self.edges],
            "transfers": [t.to_json() for t in self.transfers],
            "other_changes": [c.to_json() for c in self.other_changes],
            "color_noise": self.color_noise.to_json(),
            "dropout": {name: table.to_json() for name, table in self.dropout.items()},
            "notes": list(self.notes),
            "totals": {"params": self.total_params(), "flops_per_image": self.flops_per_image(),
                       "weight_flops_per_image": self.weight_flops_per_image(), "minibatch": minibatch,
                       "transfer_bytes_forward": fwd, "transfer_bytes_backward": bwd,
                       "memory": [m.to_json() for m in self.memory(minibatch)]},
            "rules": {"flops": FLOP_RULES, "memory": MEMORY_RULE},
        }


# --- building ---------------------------------------------------------------------------------

@dataclass
class _Draft:
    name: str
    type: str
    inputs: tuple[str, ...]
    gpu: int | None
    outputs: int | None
    channels: int | None
    img_size: int | None
    neuron: str | None
    split_from: str | None
    params: int | None
    source: str
    settings: dict
    derived: dict
    order: tuple[int, int]


def _split_neurons(graph) -> list[_Draft]:
    """layer.py: detach_neuron_layers. X keeps its computation, X_neuron applies the activation on
    X's GPU (before any cross-GPU copy), and every consumer of X reads X_neuron instead."""
    drafts: list[_Draft] = []
    renamed: dict[str, str] = {}
    for index, layer in enumerate(graph.layers):
        detached = layer.derived.get("neuronLayer") if layer.type != "neuron" else None
        drafts.append(_Draft(layer.name, layer.type, layer.inputs, layer.gpu, layer.outputs, layer.channels,
                             layer.img_size, layer.neuron if layer.type == "neuron" else None, None,
                             layer.params, str(layer.span), dict(layer.settings), dict(layer.derived),
                             (index, 0)))
        if detached:
            renamed[layer.name] = detached
            drafts.append(_Draft(detached, "neuron", (layer.name,), layer.gpu, layer.outputs, layer.channels,
                                 layer.img_size, layer.neuron, layer.name, 0,
                                 _where(layer.setting_span("neuron")) if layer.setting_span("neuron") else str(layer.span),
                                 {"neuron": layer.neuron}, {}, (index, 1)))
    for draft in drafts:
        if draft.split_from is None:
            draft.inputs = tuple(renamed.get(name, name) for name in draft.inputs)
    return drafts


def _dependency_order(drafts: list[_Draft]) -> list[_Draft]:
    by_name = {d.name: d for d in drafts}
    waiting = {d.name: sum(1 for i in d.inputs if i in by_name) for d in drafts}
    users: dict[str, list[str]] = {d.name: [] for d in drafts}
    for d in drafts:
        for i in d.inputs:
            if i in users:
                users[i].append(d.name)
    ready = [(d.order, d.name) for d in drafts if waiting[d.name] == 0]
    heapq.heapify(ready)
    out: list[_Draft] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(by_name[name])
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (by_name[user].order, user))
    if len(out) != len(drafts):
        stuck = [d.name for d in drafts if d not in out]
        raise ArchiveError(None, f"the layers {', '.join(stuck)} form a cycle or read undefined layers; "
                           "no run order exists", "replay.no-order")
    return out


def _per_input(derived: dict, key: str, i: int):
    value = derived.get(key)
    if isinstance(value, (list, tuple)):
        return value[i] if i < len(value) else None
    return value


def _flops(draft: _Draft, by_name: dict[str, _Draft]) -> int | None:
    t, out, d, s = draft.type, draft.outputs, draft.derived, draft.settings
    ins = [by_name[i].outputs if i in by_name else None for i in draft.inputs]
    if t in ("conv", "local"):
        modules, filters = d.get("modules"), d.get("filters")
        per = d.get("weightsPerFilter")
        if modules is None or filters is None or not per or any(p is None for p in per):
            return None
        return 2 * filters * modules * sum(per)
    if t == "fc":
        if out is None or any(n is None for n in ins):
            return None
        return 2 * out * sum(ins)
    if t == "treefc":
        return None if out is None or ins[0] is None else 2 * out * ins[0]
    if t.startswith("cost."):
        return max((n for n in ins if n is not None), default=0)
    if out is None:
        return None
    if t == "pool":
        k = s.get("sizeX")
        return out * k * k if isinstance(k, int) else None
    if t == "cmrnorm":
        size = d.get("size")
        return out * (2 * size + 4) if isinstance(size, int) else None
    if t in ("rnorm", "cnorm"):
        size = d.get("size")
        if not isinstance(size, int):
            return None
        return out * (2 * size * size + 4) if t == "rnorm" else out * (3 * size * size + 5)
    if t == "blur":
        fs = s.get("filterSize")
        return out * 4 * fs if isinstance(fs, int) else None
    if t in ("neuron", "hs"):
        return out
    if t in ("eltsum", "eltmax"):
        return out * len(draft.inputs)
    if t == "softmax":
        return out * 4
    return 0


def _shapes(draft: _Draft, by_name: dict[str, _Draft]):
    """[(input index, input name, (rows, cols), fan_in)] of the weights, and the bias shape (SEMANTICS §2)."""
    d, t = draft.derived, draft.type
    weights = []
    if t in ("conv", "local"):
        filters, modules = d.get("filters"), d.get("modules")
        for i, name in enumerate(draft.inputs):
            per = _per_input(d, "weightsPerFilter", i)
            rows = None if per is None else (per if t == "conv" else (None if modules is None else modules * per))
            weights.append((i, name, (rows, filters), per))
        shared = draft.settings.get("sharedBiases", True) if t == "conv" else False
        if shared is True:
            bias = (filters, 1)
        else:
            bias = (None if filters is None or modules is None else filters * modules, 1)
    elif t == "fc":
        for i, name in enumerate(draft.inputs):
            rows = by_name[name].outputs if name in by_name else None
            weights.append((i, name, (rows, draft.outputs), rows))
        bias = (1, draft.outputs)
    elif t == "treefc":
        name = draft.inputs[0] if draft.inputs else None
        rows = by_name[name].outputs if name in by_name else None
        # (in, number of tree nodes): the tree is in batches.meta, not in the layer file.
        weights.append((0, name, (rows, None), rows))
        bias = (1, draft.outputs)
    else:
        return [], None
    return weights, bias


def _count(shape) -> int | None:
    rows, cols = shape
    return None if rows is None or cols is None else rows * cols


def _value(layer_params, key, index=None):
    """(value, "file:line") of a params key, or (None, None)."""
    if layer_params is None or key not in layer_params.values:
        return None, None
    value = layer_params.values[key]
    where = str(layer_params.value_span(key))
    if index is not None:
        if not isinstance(value, tuple) or index >= len(value):
            return None, where
        value = value[index]
    if isinstance(value, bool) or not isinstance(value, (int, float, Schedule)):
        return None, where
    return value, where


def _schedule(layer_params, key: str, layer_type: str):
    """(Schedule or None for default, source) as the release reads schedW/schedB."""
    if layer_type == "treefc":
        return None, "treefc has no schedule: a constant rate (layer.cu: TreeFCLayer)"
    value, where = _value(layer_params, key)
    if isinstance(value, Schedule):
        if value.tgt_factor is None and value.kind != "default":
            return None, f"{where} (a bare '{value.written}': the release refuses it; read as default)"
        if value.kind == "default":
            return None, where
        note = "" if value.accepted_2012 else f" (written '{value.written}', which the release refuses; read as {value.canonical()})"
        return value, f"{where}{note}"
    old, old_where = _value(layer_params, "sched")
    if old is not None:
        return None, f"default: 'sched=' at {old_where} is ignored by the release (schedW/schedB only)"
    return None, "default (no key; layer.py's default)"


def build_plan(experiment, *, as_written: bool = False, num_gpus: int | None = None) -> ReplayPlan:
    """The replay plan of an archive `Experiment` (see the module docstring).

    as_written: use the params file's rates throughout (the state at the end of the logged
    work) instead of the starting rates rebuilt from the log. num_gpus: the --num-gpus to run
    with (default: as many as the layer file uses); every gpu= must lie below it.
    ArchiveError if the experiment has no layer file or its layers cannot be ordered.
    """
    graph = experiment.layers
    span = SourceSpan(experiment.params_file, 1)
    if graph is None:
        raise ArchiveError(span, f"experiment {experiment.id!r} has no layer-definition file "
                           f"(pairing: {experiment.pairing}); there is nothing to replay", "replay.no-layers")
    notes: list[str] = []
    drafts = _dependency_order(_split_neurons(graph))
    by_name = {d.name: d for d in drafts}

    # Logical GPUs: data layers live in host memory (gpu -1); a layer that resolves to -1
    # (pre-multi-GPU files without gpu=, SEMANTICS §1.3) runs on GPU 0.
    defaulted = []
    for d in drafts:
        if d.type == "data":
            d.gpu = None
        elif d.gpu is None or d.gpu < 0:
            defaulted.append(d.name)
            d.gpu = 0
    if defaulted:
        notes.append(f"{len(defaulted)} layers resolve to no GPU (gpu -1: the file has no gpu=, which the "
                     "release refuses); placed on GPU 0")
    used = sorted({d.gpu for d in drafts if d.gpu is not None})
    needed = (used[-1] + 1) if used else 1
    if num_gpus is None:
        num_gpus = needed
    elif needed > num_gpus:
        bad = next(d for d in drafts if d.gpu is not None and d.gpu >= num_gpus)
        raise ArchiveError(SourceSpan(graph.path, 1), f"layer '{bad.name}' runs on GPU {bad.gpu}, but "
                           f"--num-gpus is {num_gpus}", "replay.gpu-range")

    # Rates: epsW per epoch rebuilt from the log (or the file's, as written).
    tables = epsw_timetables(experiment)
    if not as_written:
        notes.extend(tables.notes)
    params_by_name = {lp.name: lp for lp in experiment.params.layers}
    tensors: list[ParamTensor] = []
    start_rates: dict[str, list[float]] = {}
    for d in drafts:
        weights, bias = _shapes(d, by_name)
        if bias is None:
            continue
        lp = params_by_name.get(d.name)
        if lp is None:
            notes.append(f"layer '{d.name}' ({d.type}) has no section in {experiment.params_file}; its rates "
                         "are unknown (the release refuses this) and it is planned frozen")
        sched_w, sched_w_src = _schedule(lp, "schedW", d.type)
        sched_b, sched_b_src = _schedule(lp, "schedB", d.type)
        rates = start_rates.setdefault(d.name, [])
        sources_w = d.derived.get("weightSourceLayers") or []
        # One superEps per layer, for its weights and its biases alike (layer.cu: WeightLayer).
        super_eps, super_src = _value(lp, "superEps")
        super_eps = float(super_eps or 0.0)
        for i, name, shape, fan_in in weights:
            eps, eps_src = _value(lp, "epsW", i)
            mom, mom_src = _value(lp, "momW", i)
            wc, wc_src = _value(lp, "wc", i)
            wball, wball_src = _value(lp, "wball", i)
            lo, lo_src = _value(lp, "wcNormMin", i) if d.type == "conv" else (None, None)
            hi, hi_src = _value(lp, "wcNormMax", i) if d.type == "conv" else (None, None)
            table = tables.tables.get((d.name, i))
            if eps is None:
                table = constant_timetable(0.0, eps_src or "missing", "epsW missing: planned frozen")
            elif as_written or table is None:
                table = constant_timetable(float(eps), eps_src, "params file, as written")
            rates.append(table.start)
            shared = i < len(sources_w) and sources_w[i]
            sources = {"epsW": eps_src or "missing", "momW": mom_src or "missing",
                       "wc": wc_src or "default 0 (layer.py WeightLayerParser.add_params)",
                       "wball": wball_src or "default 0 (layer.py WeightLayerParser.add_params)",
                       "schedW": sched_w_src}
            if d.type == "conv":
                sources["wcNormMin"] = lo_src or "default 0 (layer.py ConvLayerParser.add_params)"
                sources["wcNormMax"] = hi_src or "default 0 (layer.py ConvLayerParser.add_params)"
            if super_eps > 0:
                sources["superEps"] = super_src
            if shared:
                sources["weightSource"] = f"shares {sources_w[i]}[{d.derived['weightSourceMatrixIndices'][i]}]"
            tensors.append(ParamTensor(
                d.name, "weights", i, name, shape, 0 if shared else _count(shape), d.gpu, eps, mom,
                float(wc or 0.0), float(wball or 0.0), fan_in, float(lo or 0.0), float(hi or 0.0),
                sched_w, table, d.type == "conv" or super_eps > 0, sources, super_eps))
        eps_b, eps_b_src = _value(lp, "epsB")
        mom_b, mom_b_src = _value(lp, "momB")
        if eps_b is None:
            table_b = constant_timetable(0.0, eps_b_src or "missing", "epsB missing: planned frozen")
        else:
            table_b = constant_timetable(float(eps_b), eps_b_src, "params file (the log records no epsB change)")
        rates.append(table_b.start)
        tensors.append(ParamTensor(
            d.name, "biases", None, None, bias, _count(bias), d.gpu, eps_b, mom_b, 0.0, 0.0, None, 0.0, 0.0,
            sched_b, table_b, True,
            {"epsB": eps_b_src or "missing", "momB": mom_b_src or "missing", "schedB": sched_b_src,
             "wc": "biases are never decayed (layer.cu: WeightLayer biases get wc=0)"}
            | ({"superEps": super_src} if super_eps > 0 else {}), super_eps))
        if d.type == "treefc":
            notes.append(f"treefc '{d.name}': ε and wc are divided per tree node by its leaf count "
                         "(SEMANTICS §3.17); its node count comes from batches.meta, so its weight shape is unknown")
    if not as_written and any(t.kind == "biases" for t in tensors):
        notes.append("epsB is the params file's value throughout: the log never records an epsB change, "
                     "so the starting epsB of layers frozen later (epsB=0 in the file) is not known")

    # Gradient consumers (layer.py gradConsumer; Layer::isGradConsumer) at the starting rates.
    consumer: dict[str, bool] = {}
    for d in drafts:
        own = any(r > 0 for r in start_rates.get(d.name, []))
        consumer[d.name] = own or any(consumer.get(i, False) for i in d.inputs)

    # Cross-GPU edges and transfers (SEMANTICS §6).
    edges: list[CrossEdge] = []
    transfers: dict[tuple[str, int], Transfer] = {}
    for d in drafts:
        for name in d.inputs:
            src = by_name.get(name)
            if src is None or src.gpu == d.gpu:
                continue
            per_case = None if src.outputs is None else src.outputs * FLOAT_BYTES
            edges.append(CrossEdge(src.name, d.name, src.gpu, d.gpu, per_case))
            if src.gpu is not None and (src.name, d.gpu) not in transfers:
                transfers[(src.name, d.gpu)] = Transfer(src.name, src.gpu, d.gpu, per_case, consumer[src.name])

    # Memory per logical GPU.
    fixed, per_case = [], []
    for gpu in range(num_gpus):
        on = [d for d in drafts if d.gpu == gpu]
        mine = [t for t in tensors if t.gpu == gpu]
        counts = [t.count for t in mine]
        params = None if any(c is None for c in counts) else sum(counts)
        training = None
        if params is not None:
            grads = sum(t.count for t in mine if t.use_grad)
            scratch = 0
            for d in on:
                ps = d.settings.get("partialSum")
                if d.type == "conv" and isinstance(ps, int) and ps > 0 and d.derived.get("modules"):
                    per = [w for w in d.derived.get("weightsPerFilter") or [] if w is not None]
                    if per:
                        scratch = max(scratch, d.derived["modules"] // ps * max(per) * d.derived["filters"])
            training = FLOAT_BYTES * (2 * params + grads + scratch)
        acts: int | None = 0
        remote: set[str] = set()
        for d in on:
            if d.type != "data" and not d.type.startswith("cost."):
                acts = None if acts is None or d.outputs is None else acts + 2 * d.outputs
            for name in d.inputs:
                src = by_name.get(name)
                if src is not None and src.gpu != gpu and name not in remote:
                    remote.add(name)
                    factor = 1 if src.type == "data" else 2
                    acts = None if acts is None or src.outputs is None else acts + factor * src.outputs
        fixed.append((gpu, len(on), params, training))
        per_case.append(None if acts is None else acts * FLOAT_BYTES)

    layers = tuple(PlanLayer(d.name, d.type, d.inputs, d.gpu, d.outputs, d.channels, d.img_size, d.neuron,
                             d.split_from, d.params, _flops(d, by_name), consumer[d.name], d.source,
                             d.settings, d.derived) for d in drafts)

    # Color noise and dropout as the log changed them; what else it changed is listed, not applied.
    color_noise, dropout = logged_setting_timetables(experiment, as_written=as_written)
    hs_names = {d.name for d in drafts if d.type == "hs"}
    for name in sorted(set(dropout) - hs_names):
        notes.append(f"the log enables dropout on {name!r}, which is no hs layer of this net; ignored")
    dropout = {name: table for name, table in dropout.items() if name in hs_names}
    applied = {"epsw", "color noise", "dropout"}
    own = {run.index for run in experiment.own_runs}
    others: list[LoggedChange] = []
    for entry in experiment.logbook.entries:
        if entry.run not in own:
            continue
        if entry.kind == "event":
            for change in entry.changes:
                if change.quantity not in applied:
                    others.append(LoggedChange("event", entry.epoch, change.quantity, change.text.strip(),
                                               str(entry.span)))
        elif entry.kind == "init":
            for change in entry.settings:
                if change.quantity == "color noise":
                    continue
                others.append(LoggedChange("init", entry.epoch, change.quantity, change.text.strip(),
                                           str(entry.span)))

    return ReplayPlan(
        experiment=experiment.id, params_file=experiment.params_file, layers_file=experiment.layers_file,
        as_written=as_written, num_gpus=num_gpus, input_size=experiment.input.size,
        input_channels=experiment.input.channels, layers=layers, params=tuple(tensors), edges=tuple(edges),
        transfers=tuple(transfers.values()), other_changes=tuple(others), notes=tuple(dict.fromkeys(notes)),
        color_noise=color_noise, dropout=dropout,
        _gpu_fixed=tuple(fixed), _gpu_per_case=tuple(per_case))


# --- text -------------------------------------------------------------------------------------

def _n(value) -> str:
    return "?" if value is None else f"{value:,}"


def _mib(value) -> str:
    return "?" if value is None else f"{value / 2**20:,.1f} MiB"


def _rate_text(table: Timetable) -> str:
    return " → ".join(f"{s.value:g}" + (f" @{s.epoch:g}" if s.epoch else "") for s in table.steps)


def format_plan(plan: ReplayPlan, minibatch: int = 128) -> str:
    """A readable table of the plan (layers, parameters, transfers, memory, notes)."""
    rates = "as written in the params file" if plan.as_written else "rebuilt from the log"
    lines = [f"Replay plan of #{plan.experiment}: {plan.layers_file} + {plan.params_file}",
             (f"  {plan.num_gpus} logical GPU(s), input {plan.input_size}×{plan.input_size}×"
              f"{plan.input_channels}, rates {rates}"), ""]
    head = f"{'layer':<18} {'type':<14} {'gpu':>4} {'output':>14} {'params':>12} {'MFLOP/img':>10}  inputs"
    lines += [head, "-" * len(head)]
    for layer in plan.layers:
        shape = (f"{layer.img_size}×{layer.img_size}×{layer.channels}" if layer.img_size and layer.channels
                 else _n(layer.outputs))
        gpu = "host" if layer.gpu is None else str(layer.gpu)
        flops = "?" if layer.flops is None else f"{layer.flops / 1e6:,.1f}"
        kind = layer.type + (f"[{layer.neuron}]" if layer.neuron else "")
        lines.append(f"{layer.name:<18} {kind:<14} {gpu:>4} {shape:>14} {_n(layer.params):>12} {flops:>10}  "
                     f"{', '.join(layer.inputs)}")
    flops, weight_flops = plan.flops_per_image(), plan.weight_flops_per_image()
    total = "?" if flops is None else f"{flops / 1e9:.3f} G"
    weighted = "?" if weight_flops is None else f"{weight_flops / 1e9:.3f} G"
    summary = f"total parameters {_n(plan.total_params())}; forward FLOPs per image {total} (conv/local/fc {weighted})"
    lines += ["", summary, ""]
    head = f"{'parameter':<22} {'shape':>16} {'gpu':>4} {'eps (base per epoch)':<44} {'mom':>5} {'wc':>8} schedule"
    lines += [head, "-" * len(head)]
    for p in plan.params:
        shape = "×".join("?" if s is None else str(s) for s in p.shape)
        lines.append(f"{p.key:<22} {shape:>16} {p.gpu:>4} {_rate_text(p.timetable):<44} "
                     f"{'?' if p.mom is None else f'{p.mom:g}':>5} {p.wc:>8g} "
                     f"{p.schedule.canonical() if p.schedule else 'default'}")
    fwd, bwd = plan.transfer_bytes(minibatch)
    lines += ["", f"cross-GPU edges (minibatch {minibatch}):"]
    for e in plan.edges:
        src = "host" if e.source_gpu is None else f"GPU {e.source_gpu}"
        lines.append(f"  {e.source} ({src}) -> {e.target} (GPU {e.target_gpu}): "
                     f"{_n(e.bytes_per_case)} bytes/case")
    lines.append(f"  GPU-to-GPU bytes per minibatch: forward {_n(fwd)}, backward {_n(bwd)}")
    lines += ["", f"memory per logical GPU (minibatch {minibatch}, float32):"]
    for m in plan.memory(minibatch):
        lines.append(f"  GPU {m.gpu}: {m.layers} layers, {_n(m.params)} params ({_mib(m.param_bytes)}), "
                     f"training state {_mib(m.training_param_bytes)}, activations {_mib(m.activation_bytes)}, "
                     f"total {_mib(m.total_bytes)}")
    lines += ["", f"color noise (--color-noise, from the log): {_rate_text(plan.color_noise)}"]
    for name, table in plan.dropout.items():
        lines.append(f"dropout enable of {name} (from the log): {_rate_text(table)}")
    if plan.other_changes:
        lines += ["", "logged changes not applied by the plan:"]
        lines += [f"  {c.source}: {c.text}" for c in plan.other_changes]
    if plan.notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in plan.notes]
    return "\n".join(lines)

