"""The replay plan's 2012 graph as a PyTorch module (NCHW), and cuda-convnet weights in today's layout.

Two things live here:

- `today_layout(plan, weights)`: NumPy only. Turns weights as cuda-convnet keeps them (SEMANTICS.md §2,
  keyed by `ParamTensor.key`, e.g. "conv1a.weights[0]") into the shapes PyTorch uses, keyed by the names
  `build_torch_model`'s state_dict has (`TODAY_LAYOUT` lists every rule). `alexnet-archive runs export`
  writes this.
- `build_torch_model(plan, experiment, weights)`: the same graph as replay/network.py runs it, in PyTorch,
  layer by layer with the 2012 rules of replay/backends/numpy_ref (module rule of conv/local, clipped pooling
  windows, the normalisations' divided `scale`, test-time hs = ×keep, ...). It exists as an oracle for the
  NumPy backend over whole nets and as the speed yardstick of bench/replay_cpu.py.

torch is imported inside the functions that need it: this module is importable (and `today_layout` usable)
without torch, and nothing the CLI imports at start imports torch (torch is a test/bench dependency only).

Activations: image-shaped outputs stay (N, C, S, S); fc/softmax outputs are (N, D). Flattening (N, C, S, S)
to (N, C·S·S) gives cuda-convnet's feature order (channel, row, column; column fastest), so concat and fc
read the same features as in the (features, N) layout.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from .layout import conv_weights_to_torch

__all__ = [
    "TODAY_LAYOUT",
    "TorchGraphError",
    "build_torch_model",
    "logreg_loss",
    "state_dict_name",
    "today_graph_note",
    "today_layout",
    "today_to_2012",
]

TODAY_LAYOUT = {
    "conv weight": "(F, Cf, fs, fs) per input, torch Conv2d's layout (cross-correlation, no flip); groups as "
                   "torch's groups=, filter f in group f // (F/groups)",
    "local weight": "(M, F, Cf, fs, fs) per input, M = Mx² modules, module m = my·Mx + mx (row-major over "
                    "the output grid); module m applies weight[m] like a Conv2d filter bank at its position",
    "fc weight": "(out, in) per input, torch Linear's layout; `in` in cuda-convnet's feature order, which is "
                 "the flattening of an NCHW input",
    "conv bias": "(F,) when shared; (F·Mx·Mx,) with index f·M + m when unshared (sharedBiases=0)",
    "local bias": "(F·Mx·Mx,) with index f·M + m (local biases are always per module)",
    "fc bias": "(out,)",
    "conns": "int64 (groups·Cf,): the randSparse channel of filter channel c of group g at g·Cf + c",
    "names": "<layer>.weight for a one-input layer, <layer>.weight.<input index> for several inputs; "
             "<layer>.bias; <layer>.conns[.<input index>] for randSparse inputs. Towers are separate layers "
             "(conv1a on GPU 0, conv1b on GPU 1)",
}


class TorchGraphError(ValueError):
    """A layer the PyTorch graph cannot express (or weights that do not fit the plan)."""


def _per_input(value, index: int):
    # as replay/network.py: a per-input setting given once applies to every input
    if isinstance(value, (list, tuple)):
        return value[index] if index < len(value) else value[-1]
    return value


def _where(layer) -> str:
    return f"layer {layer.name!r} ({layer.source})"


# --- today's layout (NumPy only) ------------------------------------------------------------------

def state_dict_name(layer, kind: str, input_index: int | None) -> str:
    """The today-layout / state_dict name of one parameter tensor of a PlanLayer."""
    if kind == "biases":
        return f"{layer.name}.bias"
    if len(layer.inputs) == 1:
        return f"{layer.name}.weight"
    return f"{layer.name}.weight.{input_index}"


def _conns_name(layer, index: int) -> str:
    return f"{layer.name}.conns" + ("" if len(layer.inputs) == 1 else f".{index}")


def _param_to_today(layer, param, value: np.ndarray) -> np.ndarray:
    d = layer.derived
    if param.kind == "biases":
        return np.ascontiguousarray(value.reshape(-1))
    i = param.input_index
    if layer.type == "fc":
        return np.ascontiguousarray(value.T)  # (in, out) -> (out, in)
    if layer.type == "conv":
        return conv_weights_to_torch(value, d["filterChannels"][i], d["filterSize"][i])
    if layer.type == "local":
        fs, cf, m = d["filterSize"][i], d["filterChannels"][i], d["modules"]
        # rows ((m·Cf + c)·fs + u)·fs + v, columns f -> (M, F, Cf, fs, fs)
        return np.ascontiguousarray(value.reshape(m, cf, fs, fs, value.shape[1]).transpose(0, 4, 1, 2, 3))
    raise TorchGraphError(f"{_where(layer)}: no today layout for {layer.type!r} weights")


def today_layout(plan, weights: dict[str, np.ndarray], *, conns: dict[str, np.ndarray] | None = None
                 ) -> dict[str, np.ndarray]:
    """cuda-convnet weights (keyed by ParamTensor.key, shapes of SEMANTICS §2) -> today's layout, keyed by
    the state_dict names of `build_torch_model` (TODAY_LAYOUT). conns: Network.conns ("layer[i]" -> channel
    indices) for randSparse inputs; written as int64 "<layer>.conns[.<i>]". Raises TorchGraphError for a
    missing tensor or a shape that does not match the plan."""
    layers = {layer.name: layer for layer in plan.layers}
    out: dict[str, np.ndarray] = {}
    for param in plan.params:
        layer = layers[param.layer]
        if param.key not in weights:
            raise TorchGraphError(f"{_where(layer)}: no tensor {param.key!r} in the weights")
        value = np.asarray(weights[param.key])
        if tuple(value.shape) != tuple(param.shape):
            raise TorchGraphError(f"{_where(layer)}: {param.key} is {value.shape}, the plan says {param.shape}")
        out[state_dict_name(layer, param.kind, param.input_index)] = _param_to_today(layer, param, value)
    for key, value in (conns or {}).items():
        name, index = key[:-1].split("[")
        out[_conns_name(layers[name], int(index))] = np.asarray(value, dtype=np.int64)
    return out


def today_to_2012(plan, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of today_layout for the parameter tensors (conns are left out): state_dict names and
    shapes -> ParamTensor keys with cuda-convnet's shapes."""
    layers = {layer.name: layer for layer in plan.layers}
    out = {}
    for param in plan.params:
        layer = layers[param.layer]
        value = np.asarray(tensors[state_dict_name(layer, param.kind, param.input_index)])
        if param.kind == "biases":
            out[param.key] = value.reshape(param.shape)
        elif layer.type == "fc":
            out[param.key] = np.ascontiguousarray(value.T)
        elif layer.type == "conv":
            out[param.key] = np.ascontiguousarray(value.reshape(value.shape[0], -1).T)
        else:  # local (M, F, Cf, fs, fs) -> (M·Cf·fs·fs, F)
            out[param.key] = np.ascontiguousarray(value.transpose(0, 2, 3, 4, 1).reshape(param.shape))
    return out


def today_graph_note(plan) -> dict[str, str]:
    """safetensors metadata describing the graph: the files, the layers, and per tensor its 2012 key and
    shape (all values are strings, as the format wants)."""
    layers = {layer.name: layer for layer in plan.layers}
    tensors = {}
    for param in plan.params:
        layer = layers[param.layer]
        tensors[state_dict_name(layer, param.kind, param.input_index)] = {
            "key_2012": param.key, "shape_2012": list(param.shape), "layer_type": layer.type,
            "input": param.input_name}
    graph = [{"name": layer.name, "type": layer.type, "inputs": list(layer.inputs), "gpu": layer.gpu,
              "neuron": layer.neuron} for layer in plan.layers]
    return {"layers_file": plan.layers_file, "params_file": plan.params_file,
            "input": f"{plan.input_channels}x{plan.input_size}x{plan.input_size} (C x H x W), NCHW",
            "layout": json.dumps(TODAY_LAYOUT, ensure_ascii=False),
            "tensors": json.dumps(tensors), "graph": json.dumps(graph)}


# --- the PyTorch graph ------------------------------------------------------------------------------

def logreg_loss(probs, labels, coeff: float = 1.0):
    """cost.logreg's differentiated value: coeff·(−Σ_n log probs[n, t_n]) (a sum over the minibatch, as
    src/layer_kernels.cu: kLogregCost; not divided by N). probs (N, K), labels (N,) int64."""
    import torch

    rows = torch.arange(probs.shape[0], device=probs.device)
    return -coeff * torch.log(probs[rows, labels]).sum()


def build_torch_model(plan, experiment, weights: dict[str, np.ndarray] | None = None, *, dtype=None,
                      conns: dict[str, np.ndarray] | None = None, exact_cnorm_grad: bool = False):
    """An nn.Module running `plan`'s graph as replay/network.py does, in NCHW.

    weights: cuda-convnet weights keyed by ParamTensor.key (Network.weights, a checkpoint's "w/" arrays);
    None gives zeros of the right shapes (then load a today_layout dict with load_state_dict). The module's
    state_dict names are today_layout's. dtype: a torch dtype (default torch.float32). conns: Network.conns,
    needed for randSparse inputs. exact_cnorm_grad: False detaches cnorm's window mean, which makes autograd
    give exactly the 2012 gradient (convContrastNormUndo treats the mean as a constant); True differentiates
    through it.

    model(x) with x (N, C, S, S) returns the probabilities (N, K) that the (single) cost layer reads;
    model(x, outputs=[names]) returns {name: output} instead (a cost layer's output is its probabilities).
    model.train() draws hs dropout masks (u < keep, no rescaling) and nrelu noise from torch's generator;
    model.eval() (the default) is the test pass: hs multiplies by keep. Raises TorchGraphError for layers it
    cannot express.
    """
    import torch

    return _make_graph_class(torch)(plan, experiment, weights, dtype or torch.float32, conns or {},
                                    exact_cnorm_grad)


_GRAPH_CLASS = None


def _make_graph_class(torch):
    global _GRAPH_CLASS
    if _GRAPH_CLASS is not None:
        return _GRAPH_CLASS
    import torch.nn.functional as F
    from torch import nn

    from .backends.numpy_ref.dense import parse_neuron
    from .backends.numpy_ref.pool import MAX_POOL_BASE, _window_extent
    from .backends.numpy_ref.preprocess import blur_filter, nailbed_geometry

    def images(x, channels: int, side: int | None = None):
        """(N, D) or (N, C, S, S) -> (N, C, S, S)."""
        if x.dim() == 4:
            return x
        if side is None:
            side = round((x.shape[1] // channels) ** 0.5)
        if channels * side * side != x.shape[1]:
            raise TorchGraphError(f"{x.shape[1]} features are not {channels} maps of {side}×{side}")
        return x.reshape(x.shape[0], channels, side, side)

    def flat(x):
        return x.reshape(x.shape[0], -1)

    def neuron(x, spec: str, training: bool):
        kind, p = parse_neuron(spec)  # dense.py: neuron_forward's formulas, one by one
        if kind == "ident":
            return x
        if kind == "relu":
            return torch.relu(x)
        if kind == "nrelu":
            r = torch.relu(x)  # noise on every pass, test included (NoisyReluNeuron)
            return torch.relu(r + r * torch.randn_like(r))
        if kind == "logistic":
            return torch.sigmoid(x)
        if kind == "tanh":
            return p[0] * torch.tanh(p[1] * x)
        if kind == "brelu":
            return torch.clamp(x, 0.0, p[0])
        if kind == "softrelu":
            return torch.where(x > 4, x, torch.log1p(torch.exp(torch.clamp(x, max=4.0))))
        if kind == "abs":
            return torch.abs(x)
        if kind == "square":
            return x * x
        if kind == "sqrt":
            return torch.sqrt(x)
        if kind == "linear":
            return p[0] * x + p[1]
        if kind == "drelu":
            return x - p[0] * torch.tanh(x / p[0])
        raise TorchGraphError(f"neuron {spec!r} has no PyTorch form here")

    def box_sum(x, size: int, before: int, dims: tuple[int, ...]):
        """Σ over [i − before, i − before + size) ∩ [0, n) along each of `dims` (zero padded); dims are
        the spatial ones (2, 3) or the channel one (1) of an NCHW tensor."""
        if dims == (2, 3):
            padded = F.pad(x, (before, size - 1 - before, before, size - 1 - before))
            return F.avg_pool2d(padded, size, stride=1, divisor_override=1)
        padded = F.pad(x, (0, 0, 0, 0, before, size - 1 - before))  # channels: pad dim 1
        return F.avg_pool3d(padded.unsqueeze(1), (size, 1, 1), stride=1, divisor_override=1).squeeze(1)

    class WeightLayer(nn.Module):
        def __init__(self, shapes, bias_shape, dt):
            super().__init__()
            made = [nn.Parameter(torch.zeros(s, dtype=dt)) for s in shapes]
            if len(made) == 1:
                self.weight = made[0]
            else:
                self.weight = nn.ParameterList(made)
            self.bias = nn.Parameter(torch.zeros(bias_shape, dtype=dt))

        def weights(self):
            return [self.weight] if isinstance(self.weight, nn.Parameter) else list(self.weight)

    class Graph(nn.Module):
        def __init__(self, plan, experiment, weights, dt, conns, exact_cnorm_grad):
            super().__init__()
            self.plan, self.experiment, self.dt = plan, experiment, dt
            self.exact_cnorm_grad = exact_cnorm_grad
            self.specs = []
            self.cost_layers = []
            self.train(False)
            params_by_layer: dict[str, list] = {}
            for param in plan.params:
                params_by_layer.setdefault(param.layer, []).append(param)
            today = today_layout(plan, weights, conns=conns) if weights is not None else None
            for layer in plan.layers:
                spec = self._spec(layer, conns)
                self.specs.append(spec)
                if layer.type in ("conv", "local", "fc"):
                    if hasattr(self, layer.name) or "." in layer.name or not layer.name:
                        raise TorchGraphError(f"{_where(layer)}: its name cannot name a torch submodule")
                    shapes, bias_shape = self._today_shapes(layer, params_by_layer.get(layer.name, []))
                    self.add_module(layer.name, WeightLayer(shapes, bias_shape, dt))
            if today is not None:
                state = {k: torch.as_tensor(v) for k, v in today.items() if ".conns" not in k}
                self.load_state_dict({k: v.to(dt) for k, v in state.items()})

        # --- set-up ---------------------------------------------------------------------------

        def params_value(self, layer, key, default=None):
            section = self.experiment.params.get(layer.split_from or layer.name)
            if section is None or key not in section.values:
                return default
            return section.values[key]

        def required(self, layer, key) -> float:
            value = self.params_value(layer, key)
            if value is None:
                raise TorchGraphError(f"{_where(layer)}: {self.experiment.params_file} gives no {key!r}")
            return float(value)

        def _today_shapes(self, layer, params):
            d = layer.derived
            weights = sorted((p for p in params if p.kind == "weights"), key=lambda p: p.input_index)
            bias = next((p for p in params if p.kind == "biases"), None)
            if len(weights) != len(layer.inputs) or bias is None:
                raise TorchGraphError(f"{_where(layer)}: the plan lacks some of its parameter tensors")
            shapes = []
            for p in weights:
                i, (rows, cols) = p.input_index, p.shape
                if rows is None or cols is None:
                    raise TorchGraphError(f"{_where(layer)}: the shape of {p.key} is unknown")
                if layer.type == "fc":
                    shapes.append((cols, rows))
                elif layer.type == "conv":
                    shapes.append((cols, d["filterChannels"][i], d["filterSize"][i], d["filterSize"][i]))
                else:
                    fs = d["filterSize"][i]
                    shapes.append((d["modules"], cols, d["filterChannels"][i], fs, fs))
            return shapes, (bias.shape[0] * bias.shape[1],)

        def _spec(self, layer, conns) -> dict:
            t, s, d = layer.type, layer.settings, layer.derived
            spec = {"layer": layer, "type": t}
            if t == "data":
                spec["index"] = d.get("dataIdx", s.get("dataIdx"))
            elif t in ("conv", "local"):
                geos, found = [], {}
                for i in range(len(layer.inputs)):
                    for key in ("initWFunc", "initCFunc", "weightSource"):
                        if s.get(key):
                            raise TorchGraphError(f"{_where(layer)}: {key} is not expressible here")
                    size, fs = d["imgSize"][i], d["filterSize"][i]
                    pad, stride = _per_input(s.get("padding", 0), i), _per_input(s.get("stride", 1), i)
                    mx = d["modulesX"]
                    after = (mx - 1) * stride + fs - size - pad  # conv.py: _Geometry.pad_after
                    if after < 0:
                        raise TorchGraphError(f"{_where(layer)}: modulesX {mx} does not cover the image")
                    if _per_input(s.get("randSparse", False), i):
                        key = f"{layer.name}[{i}]"
                        if key not in conns:
                            raise TorchGraphError(f"{_where(layer)}: randSparse input {i} needs its conns "
                                                  "(Network.conns or a checkpoint's c/ arrays)")
                        found[i] = torch.as_tensor(np.asarray(conns[key], dtype=np.int64))
                    geos.append({"channels": d["channels"][i], "size": size, "fs": fs, "pad": pad,
                                 "after": after, "stride": stride, "cf": d["filterChannels"][i],
                                 "groups": _per_input(s.get("groups", 1), i)})
                spec.update(geos=geos, conns=found, mx=d["modulesX"], filters=d["filters"],
                            shared=t == "conv" and bool(s.get("sharedBiases", True)))
            elif t == "fc":
                pass
            elif t == "neuron":
                spec["spec"] = layer.neuron or s.get("neuron")
                parse_neuron(spec["spec"])
            elif t == "pool":
                kind = s["pool"]
                if kind == "rand":
                    if not bool(self.params_value(layer, "doMax", False)):
                        raise TorchGraphError(f"{_where(layer)}: pool=rand without doMax has no kernel in "
                                              "the release (replay/backends/numpy_ref/pool.py)")
                    kind = "max"
                side, size_x, stride = d["imgSize"], s["sizeX"], s["stride"]
                start, ox = d.get("start", 0), d.get("outputsX", 0)
                if not ox:
                    ox = -((start + size_x - side) // stride) + 1  # pool.py: pool_outputs_x
                extent = _window_extent(side, start, stride, ox, size_x)
                spec.update(kind=kind, channels=s["channels"], side=side, size_x=size_x, stride=stride,
                            start=start, ox=ox, region=torch.as_tensor(np.outer(extent, extent)))
            elif t in ("cmrnorm", "rnorm", "cnorm"):
                if s.get("blocked"):
                    raise TorchGraphError(f"{_where(layer)}: blocked cmrnorm is not replayed")
                if not s.get("size") or not s.get("channels"):
                    raise TorchGraphError(f"{_where(layer)}: no size/channels in the layer file")
                spec.update(channels=s["channels"], size=s["size"], scale=self.required(layer, "scale"),
                            pow=self.required(layer, "pow"),
                            min_div=float(self.params_value(layer, "minDiv", 1.0)) if t == "cmrnorm" else 1.0)
                if t == "cnorm":
                    side = d["imgSize"]
                    before = s["size"] // 2
                    extent = _window_extent(side, -before, 1, side, s["size"])
                    spec["region"] = torch.as_tensor(np.outer(extent, extent))
            elif t == "hs":
                spec.update(keep=float(s["keep"]), enable=bool(self.params_value(layer, "enable", True)))
            elif t == "blur":
                spec.update(channels=s["channels"], g=torch.as_tensor(blur_filter(s["filterSize"],
                                                                                  float(s["stdev"]))))
            elif t == "nailbed":
                ox, start = nailbed_geometry(d["imgSize"], s["stride"])
                spec.update(channels=s["channels"], side=d["imgSize"], stride=s["stride"], ox=ox, start=start)
            elif t == "href":
                spec.update(channels=s["channels"], side=d["imgSize"])
            elif t == "eltsum":
                spec["coeffs"] = list(s.get("coeffs") or [1.0] * len(layer.inputs))
            elif t == "cost.logreg":
                self.cost_layers.append(layer.name)
            elif t not in ("softmax", "concat", "eltmax"):
                raise TorchGraphError(f"{_where(layer)}: layer type {t!r} has no PyTorch form here "
                                      "(expressed: data, conv, local, fc, neuron, pool, cmrnorm, rnorm, cnorm, "
                                      "softmax, hs, blur, nailbed, href, concat, eltsum, eltmax, cost.logreg)")
            return spec

        # --- forward ----------------------------------------------------------------------------

        def forward(self, x, outputs: Sequence[str] | None = None):
            acts = {}
            for spec in self.specs:
                layer = spec["layer"]
                if spec["type"] == "data":
                    acts[layer.name] = x if spec["index"] == 0 else None  # labels: read by cost layers only
                    continue
                inputs = [acts[name] for name in layer.inputs]
                if spec["type"] == "cost.logreg":
                    acts[layer.name] = inputs[1]
                    continue
                if any(v is None for v in inputs):
                    raise TorchGraphError(f"{_where(layer)}: reads a label data layer; only cost layers may")
                acts[layer.name] = self._layer(spec, inputs)
            if outputs is not None:
                return {name: acts[name] for name in outputs}
            if len(self.cost_layers) != 1:
                raise TorchGraphError(f"the graph has {len(self.cost_layers)} cost layers; pass outputs=[...]")
            return acts[self.cost_layers[0]]

        def _layer(self, spec, inputs):
            t, layer = spec["type"], spec["layer"]
            if t in ("conv", "local"):
                return self._conv(spec, inputs, getattr(self, layer.name))
            if t == "fc":
                mod = getattr(self, layer.name)
                y = None
                for xi, w in zip(inputs, mod.weights()):
                    term = flat(xi) @ w.T
                    y = term if y is None else y + term
                return y + mod.bias
            if t == "neuron":
                return neuron(inputs[0], spec["spec"], self.training)
            if t == "pool":
                return self._pool(spec, inputs[0])
            if t in ("cmrnorm", "rnorm", "cnorm"):
                return self._norm(spec, inputs[0])
            if t == "softmax":
                return torch.softmax(flat(inputs[0]), dim=1)
            if t == "hs":
                x = inputs[0]
                if spec["enable"] and self.training:  # dense.py: dropout_forward; u in (0, 1], no 1/keep
                    u = 1.0 - torch.rand_like(x)
                    return x * (u < spec["keep"]).to(x.dtype)
                return x * spec["keep"]
            if t == "blur":
                return self._blur(spec, inputs[0])
            if t == "nailbed":
                x = images(inputs[0], spec["channels"], spec["side"])
                st, ox, start = spec["stride"], spec["ox"], spec["start"]
                return x[:, :, start::st, start::st][:, :, :ox, :ox]
            if t == "href":  # preprocess.py: href_forward, the columns of every map reversed
                return torch.flip(images(inputs[0], spec["channels"], spec["side"]), dims=[3])
            if t == "concat":
                return torch.cat([flat(v) for v in inputs], dim=1)
            if t == "eltsum":
                shape = inputs[0].shape
                y = None
                for v, c in zip(inputs, spec["coeffs"]):
                    term = v.reshape(shape) * c
                    y = term if y is None else y + term
                return y
            if t == "eltmax":
                shape = inputs[0].shape
                y = inputs[0]
                for v in inputs[1:]:
                    y = torch.maximum(y, v.reshape(shape))
                return y
            raise TorchGraphError(f"{_where(layer)}: no forward for {t!r}")

        def _conv(self, spec, inputs, mod):
            """conv.py: conv_forward / local_forward, summed over inputs, then the bias once."""
            mx, filters = spec["mx"], spec["filters"]
            y = None
            for i, (x, w) in enumerate(zip(inputs, mod.weights())):
                g = spec["geos"][i]
                x = images(x, g["channels"], g["size"])
                if i in spec["conns"]:  # randSparse: group g reads channels conns[g·Cf:(g+1)·Cf]
                    x = x[:, spec["conns"][i].to(x.device)]
                # The 2012 module rule: start at −padding, Mx modules; zeros past the bottom/right border.
                x = F.pad(x, (g["pad"], g["after"], g["pad"], g["after"]))
                if spec["type"] == "conv":
                    term = F.conv2d(x, w, stride=g["stride"], groups=g["groups"])
                else:
                    cols = F.unfold(x, g["fs"], stride=g["stride"])  # (N, C·fs·fs, M), rows (c, u, v)
                    n, groups = x.shape[0], g["groups"]
                    cols = cols.reshape(n, groups, -1, mx * mx)
                    wm = w.reshape(mx * mx, groups, filters // groups, -1)  # (M, G, Fg, Cf·fs·fs)
                    term = torch.einsum("ngkm,mgfk->ngfm", cols, wm).reshape(n, filters, mx, mx)
                y = term if y is None else y + term
            if spec["shared"]:
                return y + mod.bias.reshape(1, filters, 1, 1)
            return y + mod.bias.reshape(1, filters, mx, mx)

        def _pool(self, spec, x):
            """pool.py: pool_forward's clipped windows: crop/pad so that output o's window is
            [start + o·stride, +sizeX); max pads with −inf, avg sums zeros and divides by the in-image
            count of its window."""
            x = images(x, spec["channels"], spec["side"])
            side, size, stride, start, ox = spec["side"], spec["size_x"], spec["stride"], spec["start"], spec["ox"]
            end = start + (ox - 1) * stride + size
            before, after = max(0, -start), max(0, end - side)
            x = x[:, :, max(0, start):min(side, end), max(0, start):min(side, end)]
            kind = spec["kind"]
            if kind == "max":
                if before or after:
                    x = F.pad(x, (before, after, before, after), value=float("-inf"))
                y = F.max_pool2d(x, size, stride)
                if before or after:  # a window wholly outside the image: the kernel's base value
                    y = torch.where(torch.isinf(y) & (y < 0), torch.full_like(y, MAX_POOL_BASE), y)
                return y
            if before or after:
                x = F.pad(x, (before, after, before, after))
            if kind == "avg":
                total = F.avg_pool2d(x, size, stride, divisor_override=1)
                return total / spec["region"].to(total)
            if kind == "maxabs":  # the window's element of largest |x|, a tie to the later one
                n, c = x.shape[:2]
                cols = F.unfold(x.reshape(n * c, 1, *x.shape[2:]), size, stride=stride)  # (NC, k², L)
                cols = cols.flip(1)
                pick = cols.abs().argmax(dim=1, keepdim=True)
                return cols.gather(1, pick).reshape(n, c, ox, ox)
            raise TorchGraphError(f"pool {kind!r} has no PyTorch form here")

        def _norm(self, spec, x):
            """norm.py: α = scale/size (cmrnorm) or scale/size² (rnorm, cnorm); d = k + α·Σ_window v²,
            y = x·d^(−pow), windows [i − ⌊size/2⌋, +size) clipped, constant divisor."""
            x = images(x, spec["channels"])
            t, size = spec["type"], spec["size"]
            before = size // 2
            if t == "cmrnorm":
                denoms = spec["min_div"] + (spec["scale"] / size) * box_sum(x * x, size, before, (1,))
                return x * denoms ** (-spec["pow"])
            v = x
            if t == "cnorm":
                mean = box_sum(x, size, before, (2, 3)) / spec["region"].to(x)
                if not self.exact_cnorm_grad:
                    mean = mean.detach()  # convContrastNormUndo: the mean is a constant in 2012's gradient
                v = x - mean
            denoms = 1.0 + (spec["scale"] / (size * size)) * box_sum(v * v, size, before, (2, 3))
            return x * denoms ** (-spec["pow"])

        def _blur(self, spec, x):
            """preprocess.py: blur_forward: horizontal then vertical pass of the same Gaussian, zero padded."""
            x = images(x, spec["channels"])
            c = x.shape[1]
            g = spec["g"].to(x)
            r = g.numel() // 2
            horizontal = F.conv2d(F.pad(x, (r, r, 0, 0)), g.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
            return F.conv2d(F.pad(horizontal, (0, 0, r, r)), g.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    _GRAPH_CLASS = Graph
    return Graph
