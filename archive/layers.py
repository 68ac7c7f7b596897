"""Layer graphs from layer-definition files (``layers-*.cfg``).

The 2012 trainer turned a layer file into a list of layer dictionaries in
`LayerParser.parse_layers` (layer.py): one `XxxLayerParser.parse` per section,
in file order, each reading its keys, deriving its shape from its inputs and
refusing the whole file (LayerParsingError, then exit) at the first objection.
This module does the same arithmetic, check for check, but keeps going: every
objection becomes a `Finding` (severity "error" where layer.py would have
refused the file), so that the whole archive -- including files written for
older or newer versions of the code -- can be read and shown. `strict=True`
turns the first error into an `ArchiveError` naming file:line and the rule.

What the original needed from the data provider, the caller supplies:
`data_dims` (outputs per image of each data index, `get_data_dims`),
`num_classes` (`get_num_classes`) and `num_gpus` (``--num-gpus``). Whatever is
not supplied is inferred where the file itself decides it (a logreg cost's
label input has dimension 1) and otherwise left unknown (``None``), which
makes every shape downstream unknown too, never a crash.

Shapes are those of layer.py: Python 2 integer division, `int(sqrt(...))`
image sides (exact here: `math.isqrt`), and the ceil rules for conv modules
and pool outputs.
"""
from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping

from .cfgfile import CfgFile, Entry, MergedSection, read_cfg
from .source import Finding, SourceSpan

DataDims = Mapping[int, int]

# layer.py: the `layer_parsers` table.
LAYER_TYPES: frozenset[str] = frozenset({
    "data", "fc", "treefc", "conv", "local", "softmax", "eltsum", "eltmax", "neuron", "pool",
    "rnorm", "cnorm", "cmrnorm", "nailbed", "blur", "href", "resize", "rgb2yuv", "rgb2lab",
    "rscale", "concat", "hs", "cost.logreg", "cost.msm", "cost.crossent", "cost.crossent2",
    "cost.sum2", "cost.gsum2", "cost.tica", "cost.rflickr",
})
# Types of cuda-convnet2 (2014, layer.py `layer_parsers`) that the 2012 parser does not know.
# We read their shapes where the rule is plain; the 2012 parser would refuse the file.
CC2_TYPES: frozenset[str] = frozenset({
    "sfc", "sum", "cmpool", "crop", "pass", "dropout", "dropout2", "cost.bce", "cost.dce",
})
WEIGHT_TYPES = frozenset({"fc", "treefc", "conv", "local"})

# layer.py: `neuron_parsers` (plain names, and names with positional float parameters).
NEURON_TYPES: frozenset[str] = frozenset({"ident", "logistic", "abs", "relu", "nrelu", "softrelu",
                                          "square", "sqrt"})
NEURON_PARAMS: dict[str, int] = {"tanh": 2, "brelu": 1, "linear": 2, "drelu": 1}

# Value kinds, as MyConfigParser read them (safe_get_int, safe_get_float_list, ...).
STR, INT, FLOAT, BOOL, STRS, INTS, FLOATS, BOOLS = "str", "int", "float", "bool", "strs", "ints", "floats", "bools"
_KIND_WORDS = {INT: "int", FLOAT: "float", BOOL: "bool", INTS: "','-delimited list of ints",
               FLOATS: "','-delimited list of floats", BOOLS: "','-delimited list of bools",
               STR: "a string", STRS: "','-delimited list of strings"}

# Every key any parser reads (layer file or params file), in the original's spelling, with the
# kind it is read as. Used to spell and type keys that a given type does not read.
KNOWN_KEYS: dict[str, str] = {
    "type": STR, "inputs": STRS, "gpu": INT, "neuron": STR, "dataIdx": INT,
    "initW": FLOATS, "initB": FLOAT, "initWFunc": STR, "initBFunc": STR, "initCFunc": STR,
    "weightSource": STRS, "channels": INTS, "padding": INTS, "stride": INTS, "filterSize": INTS,
    "filters": INTS, "groups": INTS, "randSparse": BOOLS, "filterChannels": INTS,
    "partialSum": INT, "sharedBiases": BOOL, "outputs": INT, "sizeX": INT, "start": INT,
    "outputsX": INT, "pool": STR, "size": INT, "blocked": BOOL, "stdev": FLOAT, "scale": FLOAT,
    "maxScale": FLOAT, "tgtSize": INT, "center": BOOL, "coeffs": FLOATS, "keep": FLOAT,
    # params-file keys (layer.py add_params), sometimes written into old layer files
    "epsW": FLOATS, "epsB": FLOAT, "momW": FLOATS, "momB": FLOAT, "wc": FLOATS, "wball": FLOATS,
    "superEps": FLOAT, "superMom": FLOAT, "schedW": STR, "schedB": STR, "quantF": STR,
    "quantB": STR, "wcNormMax": FLOATS, "wcNormMin": FLOATS, "pow": FLOAT, "minDiv": FLOAT,
    "coeff": FLOAT, "topk": INT, "enable": BOOL, "doMax": BOOL, "setSize": INT, "threads": INT,
    # cuda-convnet2 layer-file keys
    "sumWidth": INT, "startX": INT, "startY": INT, "sum": BOOL, "updatePeriod": INT,
}
_CANONICAL = {key.lower(): key for key in KNOWN_KEYS}

_REQUIRED = object()

# Python 2 int() / float() on a stripped ConfigParser value. Python 3 also accepts '1_000'
# and non-ASCII digits; Python 2 did not.
_INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
_FLOAT_RE = re.compile(r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\s*\Z",
                       re.IGNORECASE)
_BOOLEAN_STATES = {"1": True, "yes": True, "true": True, "on": True,
                   "0": False, "no": False, "false": False, "off": False}
# layer.py: WeightLayerParser.LAYER_PAT ("layer" or "layer[idx]")
_WEIGHT_SOURCE_RE = re.compile(r"^\s*([^\s\[]+)(?:\[(\d+)\])?\s*$")


def _to_int(text: str) -> int:
    # Python 2 would make a long of any length; no layer parameter near 10**30 could ever run,
    # and refusing them keeps all later arithmetic small.
    if not _INT_RE.match(text) or len(text.strip().lstrip("+-")) > 30:
        raise ValueError(text)
    return int(text)


def _to_float(text: str) -> float:
    if not _FLOAT_RE.match(text):
        raise ValueError(text)
    return float(text)


def convert(value: str, kind: str) -> object:
    """Read `value` as MyConfigParser's safe_get_<kind> did; ValueError if it would have refused."""
    if kind == STR:
        return value
    if kind == INT:
        return _to_int(value)
    if kind == FLOAT:
        return _to_float(value)
    if kind == BOOL:
        state = _BOOLEAN_STATES.get(value.lower())
        if state is None:
            raise ValueError(value)
        return state
    parts = [part.strip() for part in value.split(",")]
    if kind == STRS:
        return tuple(parts)
    if kind == INTS:
        return tuple(_to_int(p) for p in parts)
    if kind == FLOATS:
        return tuple(_to_float(p) for p in parts)
    if kind == BOOLS:  # safe_get_bool_list: only 'true'/'1' are true; nothing fails
        return tuple(p.lower() in ("true", "1") for p in parts)
    raise AssertionError(kind)


_BAD = object()


# The release's 2,600 layers hold a few hundred distinct values; results are immutable.
@lru_cache(maxsize=8192)
def _convert_memo(value: str, kind: str) -> object:
    """convert(), remembered; _BAD where convert raises ValueError."""
    try:
        return convert(value, kind)
    except ValueError:
        return _BAD


def _infer(value: str) -> object:
    """Type a value no parser reads: int, float, or the text; comma lists as tuples."""
    def scalar(text: str) -> object:
        text = text.strip()
        for kind in (_to_int, _to_float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text
    if "," in value:
        return tuple(scalar(p) for p in value.split(","))
    return scalar(value)


def parse_neuron(text: str) -> tuple[str, dict[str, float]] | None:
    """(base type, parameters) as layer.py's neuron_parsers accept `text`, else None.
    Parameters are positional floats of digits, '.', '-' only (no exponents)."""
    if text in NEURON_TYPES:  # NeuronParser.parse: exact comparison
        return text, {}
    for base, count in NEURON_PARAMS.items():  # ParamNeuronParser.parse
        match = re.match(r"^%s\s*\[([\d,\.\s\-]*)\]\s*$" % base, text)
        if match:
            try:
                values = [float(v.strip()) for v in match.group(1).split(",")]
            except ValueError:  # uncaught in layer.py (it caught only TypeError): still a refusal
                return None
            if len(values) == count:
                names = ("a", "b")[:count]
                return base, dict(zip(names, values))
    return None


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _floor_ratio(size: int, scale: float) -> int | None:
    """int(floor(size / scale)) as layer.py computed it (None where a float cannot hold it)."""
    try:
        return int(math.floor(size / scale))
    except (OverflowError, ValueError):
        return None


def _isqrt(value: int | None) -> int | None:
    if value is None or value < 0:
        return None
    return math.isqrt(value)


def _jsonable(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return repr(value)
    return value


@dataclass(frozen=True, slots=True)
class LayerDef:
    """One layer as the 2012 parser would have built it.

    `outputs` is values per image (`dic['outputs']`; cost layers 0, as in layer.py);
    `channels`/`img_size` describe the *output* image where the type defines one.
    `gpu` is resolved as layer.py does: the `gpu=` key, else the first input's gpu;
    data layers have gpu -1, so a layer fed only by data inherits -1 (which the
    release refuses; replay should treat it as 0). None when it cannot be known.
    `params` counts trainable weights and biases (0 for layers without any; None
    when unknown). `derived` holds the values layer.py computed, in its spelling.
    """

    name: str
    type: str
    span: SourceSpan
    inputs: tuple[str, ...]
    gpu: int | None
    gpu_explicit: bool
    neuron: str | None
    settings: dict[str, object]
    outputs: int | None
    channels: int | None
    img_size: int | None
    params: int | None
    derived: dict[str, object]
    unknown_keys: tuple[str, ...]
    setting_lines: dict[str, int]   # key (as in `settings`) -> the line it is written on

    @property
    def line(self) -> int:
        return self.span.line

    def setting_span(self, key: str) -> SourceSpan | None:
        line = self.setting_lines.get(key)
        return SourceSpan(self.span.path, line) if line is not None else None

    def shape_text(self) -> str:
        """The output as people write it: "55×55×48" for an image, else the value count, "" if unknown."""
        if self.img_size and self.channels:
            return f"{self.img_size}×{self.img_size}×{self.channels}"
        return "" if self.outputs is None else str(self.outputs)

    @property
    def is_cost(self) -> bool:
        return self.type.startswith("cost.")

    def to_json(self) -> dict:
        return {
            "name": self.name, "type": self.type, "line": self.span.line, "inputs": list(self.inputs),
            "gpu": self.gpu, "gpu_explicit": self.gpu_explicit, "neuron": self.neuron,
            "outputs": self.outputs, "channels": self.channels, "img_size": self.img_size,
            "params": self.params, "settings": _jsonable(self.settings),
            "derived": _jsonable(self.derived), "unknown_keys": list(self.unknown_keys),
        }


@dataclass(frozen=True, slots=True)
class LayerGraph:
    """The layers of one file in file order (repeated sections merged as Python 2 did)
    and every objection found while reading them."""

    path: str
    layers: tuple[LayerDef, ...]
    findings: tuple[Finding, ...]

    def __iter__(self) -> Iterator[LayerDef]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> LayerDef:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(layer.name == name for layer in self.layers)

    def get(self, name: str) -> LayerDef | None:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def consumers(self, name: str) -> tuple[str, ...]:
        """Layers that list `name` among their inputs, in file order."""
        return tuple(layer.name for layer in self.layers if name in layer.inputs)

    def total_params(self) -> int | None:
        total = 0
        for layer in self.layers:
            if layer.params is None:
                return None
            total += layer.params
        return total

    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "layers": [layer.to_json() for layer in self.layers],
            "total_params": self.total_params(),
            "findings": [f.to_json() for f in self.findings],
        }


# ---------------------------------------------------------------------------------------------
# Building one layer

class _Layer:
    """A layer being parsed: the state of layer.py's `dic`, plus what we record."""

    def __init__(self, ctx: "_Context", index: int, section: MergedSection):
        self.ctx = ctx
        self.index = index
        self.section = section
        self.name = section.name
        self.type = ""
        self.read: set[str] = set()
        self.settings: dict[str, object] = {}
        self.derived: dict[str, object] = {}
        self.inputs: tuple[str, ...] = ()
        self.input_layers: list[_Layer | None] = []
        self.outputs: int | None = None
        self.channels: int | None = None
        self.img_size: int | None = None
        self.params: int | None = 0
        self.gpu: int | None = -1  # LayerParser.set_defaults
        self.gpu_explicit = False
        self.neuron: str | None = None
        self.grad_consumer = False  # WeightLayerParser.parse sets it
        self.weight_matrices = 0
        self.done = False

    # -- reporting
    def report(self, severity: str, rule: str, message: str, entry: Entry | None = None,
               phase: int = 1) -> None:
        span = entry.span if entry is not None else self.section.span
        self.ctx.add(phase, self.index, Finding(span, severity, rule, f"layer '{self.name}': {message}"))

    def error(self, rule: str, message: str, key: str | None = None) -> None:
        self.report("error", rule, message, self.section.entry(key) if key else None)

    # -- reading keys (MyConfigParser.safe_get_*)
    def get(self, key: str, kind: str, default: object = _REQUIRED, *, quiet: bool = False) -> object:
        lower = key.lower()
        self.read.add(lower)
        entry = self.section.entries.get(lower)
        if entry is None:
            if default is _REQUIRED:
                if not quiet:
                    self.error("layer.missing-key", f"required parameter '{key}' missing")
                return None
            return default
        value = _convert_memo(entry.value, kind)
        if value is _BAD:
            self.settings[key] = entry.value
            if not quiet:
                self.error("layer.bad-value", f"parameter '{key}' must be {_KIND_WORDS[kind]}, "
                           f"got {entry.value!r}", key)
            return None
        self.settings[key] = value
        return value

    def has(self, key: str) -> bool:
        return key in self.section

    # -- layer.py's verify_* helpers
    def verify_range(self, value: object, key: str, low: float | None, high: float | None,
                     fmt: str = "%d") -> None:
        if value is None:
            return
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        for i, v in enumerate(values):
            if v is None:
                continue
            where = "" if not isinstance(value, (list, tuple)) else f" (input {i})"
            if low is not None and high is not None and (v < low or v > high):
                self.error("layer.range", f"parameter '{key}'{where} must be in the range "
                           f"{fmt % low}-{fmt % high}, got {v}", key)
            elif low is not None and v < low:
                self.error("layer.range", f"parameter '{key}'{where} must be greater than or equal to "
                           f"{fmt % low}, got {v}", key)
            elif high is not None and v > high:
                self.error("layer.range", f"parameter '{key}'{where} must be smaller than or equal to "
                           f"{fmt % high}, got {v}", key)

    def verify_divisible(self, value: int | None, div: int | None, what: str, div_name: str | None = None,
                         key: str | None = None, input_idx: int | None = None) -> None:
        if value is None or div is None or div == 0:
            return
        if value % div != 0:
            where = "" if input_idx is None else f" (input {input_idx})"
            self.error("layer.divisible", f"'{what}'{where} ({value}) must be divisible by "
                       f"{div if div_name is None else repr(div_name)} ({div})", key or what)

    def verify_num_params(self, values: dict[str, tuple | None]) -> None:
        for key, value in values.items():
            if value is not None and len(value) != len(self.inputs):
                self.error("layer.list-length", f"{key} list length ({len(value)}) does not match "
                           f"number of inputs ({len(self.inputs)})", key)

    def per_input(self, value: tuple | None) -> list | None:
        """A per-input list, for shape purposes: as given, or one value broadcast (cuda-convnet2
        expands a single value; the 2012 parser refused it: see verify_num_params)."""
        if value is None:
            return None
        if len(value) == len(self.inputs):
            return list(value)
        if len(value) == 1:
            return list(value) * len(self.inputs)
        return None

    @property
    def num_inputs(self) -> list[int | None]:
        return [None if layer is None or not layer.done else layer.outputs for layer in self.input_layers]

    def grad_consumers_below(self) -> bool:
        """layer.py: LayerWithInputParser.grad_consumers_below (a weight layer at or below)."""
        seen: set[int] = set()
        stack: list[_Layer] = [self]
        while stack:
            layer = stack.pop()
            if layer.grad_consumer:
                return True
            for below in layer.input_layers:
                if below is not None and below.done and id(below) not in seen:
                    seen.add(id(below))
                    stack.append(below)
        return False

    def image(self, num_input: int | None, channels: int | None) -> tuple[int | None, int | None]:
        """imgPixels and imgSize as layer.py computed them: numInputs / channels (Python 2
        floor division) and int(sqrt(imgPixels))."""
        if num_input is None or channels is None or channels <= 0:
            return None, None
        pixels = num_input // channels
        return pixels, _isqrt(pixels)

    def verify_img_size(self, num_input: int | None, pixels: int | None, size: int | None,
                        channels: int | None) -> None:
        """layer.py: LayerWithInputParser.verify_img_size."""
        if num_input is None or pixels is None or size is None:
            return
        if pixels <= 0 or num_input % pixels != 0 or size * size != pixels:
            self.error("layer.img-size", f"has {num_input}-dimensional input, not interpretable as "
                       f"{channels}-channel images", "channels")

    def verify_no_grads(self) -> None:
        if self.grad_consumers_below():
            self.error("layer.no-grads", f"layers of type '{self.type}' cannot propagate gradient and "
                       "must not be placed over layers with parameters")

    # -- the finished record
    def freeze(self) -> LayerDef:
        settings: dict[str, object] = {}
        lines: dict[str, int] = {}
        unknown: list[str] = []
        for lower, entry in self.section.entries.items():
            canonical = _CANONICAL.get(lower, entry.key)
            lines[canonical] = entry.line
            if lower not in self.read:
                unknown.append(canonical)
            if canonical in self.settings:
                settings[canonical] = self.settings[canonical]
            elif canonical in KNOWN_KEYS:
                value = _convert_memo(entry.value, KNOWN_KEYS[canonical])
                settings[canonical] = entry.value if value is _BAD else value
            else:
                settings[canonical] = _infer(entry.value)
        return LayerDef(self.name, self.type, self.section.span, self.inputs, self.gpu,
                        self.gpu_explicit, self.neuron, settings, self.outputs, self.channels,
                        self.img_size, self.params, dict(self.derived), tuple(unknown), lines)


# ---------------------------------------------------------------------------------------------
# The per-type parsers (layer.py: XxxLayerParser.parse), in the original's order of checks.

def _parse_data(layer: _Layer) -> None:
    # DataLayerParser.parse: outputs = dp.get_data_dims(dataIdx); gpu stays -1; no inputs.
    idx = layer.get("dataIdx", INT)
    layer.derived["dataIdx"] = idx
    dims = layer.ctx.data_dims
    if idx is not None and idx in dims:
        layer.outputs = dims[idx]
    elif idx is not None and idx in layer.ctx.inferred_dims:
        layer.outputs, source = layer.ctx.inferred_dims[idx]
        layer.report("info", "layer.data-dims-inferred",
                     f"dimension of data index {idx} not given; {layer.outputs} inferred from {source}",
                     phase=1)
    elif idx is not None:
        layer.report("warning", "layer.data-dims-unknown",
                     f"dimension of data index {idx} not given and not inferable; shapes above it are unknown")
    layer.params = 0


def _parse_with_inputs(layer: _Layer, num_inputs: int = -1) -> None:
    """layer.py: LayerWithInputParser.parse."""
    ctx = layer.ctx
    names = layer.get("inputs", STRS)
    layer.inputs = tuple(names) if names is not None else ()
    layer.input_layers = []
    for name in layer.inputs:
        target = ctx.by_name.get(name)
        layer.input_layers.append(target)
        if target is None:
            layer.error("layer.input-undefined", f"input layer '{name}' not defined", "inputs")
        elif target.index >= layer.index:
            cycle = ctx.cycle_of.get(layer.name)
            if cycle is not None and name in cycle:
                path = " -> ".join(cycle + (cycle[0],))
                layer.error("layer.cycle", f"input layer '{name}' not defined above this layer; "
                            f"the layers form a cycle: {path}", "inputs")
            else:
                layer.error("layer.input-undefined", f"input layer '{name}' not defined above this "
                            f"layer (it is defined at line {target.section.span.line})", "inputs")
    for target in layer.input_layers:
        if target is not None and target.done and target.outputs == 0:
            layer.error("layer.input-no-output", f"input layer '{target.name}' does not produce any output",
                        "inputs")
    layer.derived["numInputs"] = layer.num_inputs
    neuron = layer.get("neuron", STR, "")
    layer.neuron = neuron or None
    if num_inputs > 0 and len(layer.inputs) != num_inputs:
        layer.error("layer.num-inputs", f"number of inputs must be {num_inputs}, got {len(layer.inputs)}",
                    "inputs")
    first = layer.input_layers[0] if layer.input_layers else None
    inherited = first.gpu if first is not None and first.done else None
    layer.gpu_explicit = layer.has("gpu")
    gpu = layer.get("gpu", INT, inherited, quiet=True)
    if layer.gpu_explicit and gpu is None:
        raw = layer.section.get("gpu") or ""
        try:  # cuda-convnet2 writes a list of replicas, e.g. gpu=0,1
            replicas = convert(raw, INTS)
            layer.derived["gpus"] = list(replicas)
            gpu = replicas[0]
        except ValueError:
            pass
        layer.error("layer.bad-value", f"parameter 'gpu' must be int, got {raw!r}", "gpu")
    layer.gpu = gpu
    # `if model: verify_int_in(gpu, range(0, num_gpus))` -- the trainer always had a model.
    if gpu is not None and (gpu < 0 or (ctx.num_gpus is not None and gpu >= ctx.num_gpus)):
        if not layer.gpu_explicit and gpu < 0:
            message = (f"gpu resolves to {gpu}, inherited from input '{first.name if first else ''}' "
                       "(no gpu= given); it must be a GPU index")
        else:
            allowed = f"0-{ctx.num_gpus - 1}" if ctx.num_gpus else "a GPU index >= 0"
            message = f"parameter 'gpu' must be one of {allowed}, got {gpu}"
        layer.error("layer.gpu-range", message, "gpu" if layer.gpu_explicit else None)


def _parse_weights(layer: _Layer) -> None:
    """layer.py: WeightLayerParser.parse (keys common to fc, treefc, conv, local)."""
    ctx = layer.ctx
    layer.grad_consumer = True
    layer.derived["requiresParams"] = True
    if layer.has("initW"):
        init_w = layer.get("initW", FLOATS)
    else:  # the scalar default 0.01 is not a list: safe_get_list fails on it
        layer.read.add("initw")
        init_w = None
        layer.error("layer.missing-key", "parameter 'initW' must be ','-delimited list of floats "
                    "(it has no usable default)")
    layer.get("initB", FLOAT, 0.0)
    layer.get("initWFunc", STR, "")
    layer.get("initBFunc", STR, "")
    sources = layer.get("weightSource", STRS, ("",) * len(layer.inputs))
    layer.verify_num_params({"initW": init_w, "weightSource": sources})
    source_layers: list[str] = []
    source_indices: list[int] = []
    for i, source in enumerate(sources or ()):
        src_name, src_idx = "", -1
        if source != "":
            match = _WEIGHT_SOURCE_RE.match(source)
            if match is None:
                layer.error("layer.weight-source", f"unable to parse weight sharing source '{source}'",
                            "weightSource")
            else:
                src_name, src_idx = match.group(1), int(match.group(2) or 0)
                src = layer if src_name == layer.name else ctx.by_name.get(src_name)
                if src is None or (src is not layer and src.index >= layer.index):
                    layer.error("layer.weight-source", f"weight sharing source layer '{src_name}' does "
                                "not exist", "weightSource")
                elif src.gpu != layer.gpu:
                    layer.error("layer.weight-source", f"weight sharing source layer '{src_name}' runs on "
                                f"GPU {src.gpu}, while this layer runs on GPU {layer.gpu}", "weightSource")
                elif src.type != layer.type:
                    layer.error("layer.weight-source", f"weight sharing source layer '{src_name}' is of "
                                f"type '{src.type}'; should be '{layer.type}'", "weightSource")
                elif src is not layer and src.weight_matrices <= src_idx:
                    layer.error("layer.weight-source", f"weight sharing source layer '{src_name}' has "
                                f"{src.weight_matrices} weight matrices, but '{source}' requested",
                                "weightSource")
                elif src is layer and src_idx >= i:
                    layer.error("layer.weight-source", f"weight sharing source '{src_name}[{src_idx}]' "
                                "not defined yet", "weightSource")
        source_layers.append(src_name)
        source_indices.append(src_idx)
    layer.derived["weightSourceLayers"] = source_layers
    layer.derived["weightSourceMatrixIndices"] = source_indices
    layer.weight_matrices = len(layer.inputs)


def _shared(layer: _Layer, i: int) -> bool:
    sources = layer.derived.get("weightSourceLayers") or []
    return i < len(sources) and sources[i] != ""


def _parse_fc(layer: _Layer) -> None:
    _parse_with_inputs(layer)
    _parse_weights(layer)
    outputs = layer.get("outputs", INT)
    layer.verify_range(outputs, "outputs", 1, None)
    layer.outputs = outputs
    num_inputs = layer.num_inputs
    layer.derived["weightsPerFilter"] = num_inputs
    if outputs is None or any(n is None for n in num_inputs):
        layer.params = None
    else:  # weights (in_i x out) per input, biases (1 x out): FCLayerParser.parse
        layer.params = sum(n * outputs for i, n in enumerate(num_inputs) if not _shared(layer, i)) + outputs


def _parse_treefc(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    _parse_weights(layer)
    if any(layer.derived["weightSourceLayers"]):
        layer.error("layer.weight-source", "weight sharing not allowed in tree-fc layers", "weightSource")
    # outputs = number of classes; weights are (in x number of tree nodes), from batches.meta['tree'],
    # which the layer file does not give.
    layer.outputs = layer.ctx.num_classes
    layer.derived["weightsPerFilter"] = layer.num_inputs
    layer.params = None


def _parse_local_common(layer: _Layer) -> dict | None:
    """layer.py: LocalLayerParser.parse. Returns the per-input shape values, or None if unknown."""
    _parse_with_inputs(layer)
    _parse_weights(layer)
    n = len(layer.inputs)
    channels = layer.get("channels", INTS)
    padding = layer.get("padding", INTS, (0,) * n)
    stride = layer.get("stride", INTS, (1,) * n)
    filter_size = layer.get("filterSize", INTS)
    filters = layer.get("filters", INTS)
    groups = layer.get("groups", INTS, (1,) * n)
    rand_sparse = layer.get("randSparse", BOOLS, (False,) * n)
    layer.get("initW", FLOATS, quiet=True)  # re-read with no default (reported above when missing)
    layer.get("initCFunc", STR, "")
    layer.verify_num_params({"channels": channels, "padding": padding, "stride": stride,
                             "filterSize": filter_size, "filters": filters, "groups": groups,
                             "randSparse": rand_sparse})
    layer.verify_range(stride, "stride", 1, None)
    layer.verify_range(filter_size, "filterSize", 1, None)
    layer.verify_range(padding, "padding", 0, None)
    layer.verify_range(channels, "channels", 1, None)
    layer.verify_range(groups, "groups", 1, None)

    ch, pad, st, fs, flt, grp, sparse = (layer.per_input(v) for v in
                                        (channels, padding, stride, filter_size, filters, groups, rand_sparse))
    num_inputs = layer.num_inputs
    if any(v is None for v in (ch, pad, st, fs, flt, grp, sparse)) or n == 0:
        sizes_known = False
    else:
        sizes_known = (all(c >= 1 for c in ch) and all(s >= 1 for s in st) and all(g >= 1 for g in grp))
    filter_channels = None
    if sizes_known:
        filter_channels = [c // g for c, g in zip(ch, grp)]
    if sparse is not None and any(sparse):
        given = layer.get("filterChannels", INTS, tuple(filter_channels) if filter_channels else None)
        if given is not None:
            layer.verify_num_params({"filterChannels": given})
            filter_channels = layer.per_input(given)
    if not sizes_known or filter_channels is None:
        layer.outputs = None
        layer.params = None
        return None

    layer.derived["channels"] = ch
    pixels = [None if num is None else num // c for num, c in zip(num_inputs, ch)]
    sizes = [_isqrt(p) for p in pixels]
    layer.derived["imgPixels"] = pixels
    layer.derived["imgSize"] = sizes
    layer.verify_range([s for s in sizes if s is not None], "imgSize", 1, None)
    total_filters = [f * g for f, g in zip(flt, grp)]
    modules_x = [None if s is None else 1 + _ceil_div(2 * p + s - f, t)
                 for p, s, f, t in zip(pad, sizes, fs, st)]
    if len(set(total_filters)) != 1 or len(set(m for m in modules_x if m is not None)) > 1:
        dims = ", ".join(f"{f}x{m}x{m}" for f, m in zip(total_filters, modules_x))
        layer.error("layer.input-shapes", f"all inputs must produce equally-dimensioned output. "
                    f"Dimensions are: {dims}")
    known_mx = [m for m in modules_x if m is not None]
    mx = known_mx[0] if known_mx and len(known_mx) == len(modules_x) else None
    f_total = total_filters[0]
    layer.derived["filters"] = f_total
    layer.derived["filterSize"] = fs
    layer.derived["filterPixels"] = [f * f for f in fs]
    layer.derived["filterChannels"] = filter_channels
    layer.derived["modulesX"] = mx
    layer.derived["modules"] = None if mx is None else mx * mx
    for i in range(n):
        if num_inputs[i] is not None and pixels[i] is not None:
            if pixels[i] <= 0 or sizes[i] is None or num_inputs[i] % pixels[i] != 0 or sizes[i] * sizes[i] != pixels[i]:
                layer.error("layer.img-size", f"input {i} has {num_inputs[i]}-dimensional input, not "
                            f"interpretable as square {ch[i]}-channel images", "channels")
        if ch[i] > 3 and ch[i] % 4 != 0:
            layer.error("layer.channels", f"input {i}: number of channels ({ch[i]}) must be smaller than 4 "
                        "or divisible by 4", "channels")
        if sizes[i] is not None and fs[i] > 2 * pad[i] + sizes[i]:
            layer.error("layer.filter-size", f"input {i}: filter size ({fs[i]}) greater than image size "
                        f"+ 2 * padding ({2 * pad[i] + sizes[i]})", "filterSize")
        if sparse[i]:
            if grp[i] == 1:
                layer.error("layer.rand-sparse", f"input {i}: number of groups must be greater than 1 when "
                            "using random sparse connectivity", "groups")
            layer.verify_divisible(ch[i], filter_channels[i], "channels", "filterChannels", input_idx=i)
            layer.verify_divisible(filter_channels[i], 4, "filterChannels", input_idx=i)
            layer.verify_divisible(grp[i] * filter_channels[i], ch[i], "groups * filterChannels",
                                   "channels", key="groups", input_idx=i)
        else:
            if grp[i] > 1:
                layer.verify_divisible(ch[i], 4 * grp[i], "channels", "4 * groups", input_idx=i)
            layer.verify_divisible(ch[i], grp[i], "channels", "groups", input_idx=i)
        layer.verify_divisible(f_total, 16 * grp[i], "filters * groups", key="filters", input_idx=i)
    layer.derived["paddingStart"] = [-p for p in pad]  # the checkpoint stores padding negated
    layer.derived["overSample"] = [g * c // h if h else None for g, c, h in zip(grp, filter_channels, ch)]
    layer.derived["weightsPerFilter"] = [c * f * f for c, f in zip(filter_channels, fs)]
    layer.channels = f_total
    layer.img_size = mx
    layer.outputs = None if mx is None else mx * mx * f_total
    return {"filters": f_total, "modules": None if mx is None else mx * mx,
            "weightsPerFilter": layer.derived["weightsPerFilter"]}


def _parse_conv(layer: _Layer) -> None:
    shape = _parse_local_common(layer)
    partial_sum = layer.get("partialSum", INT)
    shared_biases = layer.get("sharedBiases", BOOL, True)
    if shape is None:
        return
    modules, filters = shape["modules"], shape["filters"]
    if partial_sum is not None and partial_sum != 0 and modules is not None and modules % partial_sum != 0:
        mx = layer.derived["modulesX"]
        layer.error("layer.partial-sum", f"convolutional layer produces {mx}x{mx}={modules} outputs per "
                    f"filter, but given partialSum parameter ({partial_sum}) does not divide this number",
                    "partialSum")
    if shared_biases is None or (not shared_biases and modules is None):
        layer.params = None
        return
    biases = filters if shared_biases else modules * filters
    # ConvLayerParser.parse: weights (filterPixels * filterChannels) x filters per input
    layer.params = sum(w * filters for i, w in enumerate(shape["weightsPerFilter"])
                       if not _shared(layer, i)) + biases


def _parse_local(layer: _Layer) -> None:
    shape = _parse_local_common(layer)
    if shape is None or shape["modules"] is None:
        layer.params = None
        return
    modules, filters = shape["modules"], shape["filters"]
    # LocalUnsharedLayerParser.parse: weights (modules * filterPixels * filterChannels) x filters,
    # biases modules * filters
    layer.params = sum(modules * w * filters for i, w in enumerate(shape["weightsPerFilter"])
                       if not _shared(layer, i)) + modules * filters


def _parse_pool(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    channels = layer.get("channels", INT)
    size_x = layer.get("sizeX", INT)
    start = layer.get("start", INT, 0)
    stride = layer.get("stride", INT)
    outputs_x = layer.get("outputsX", INT, 0)
    pool = layer.get("pool", STR)
    layer.derived["requiresParams"] = pool == "rand"
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    if size is not None:
        layer.verify_range(size_x, "sizeX", 1, size)
    else:
        layer.verify_range(size_x, "sizeX", 1, None)
    layer.verify_range(stride, "stride", 1, size_x)
    layer.verify_range(outputs_x, "outputsX", 0, None)
    layer.verify_range(channels, "channels", 1, None)
    if channels is not None and layer.grad_consumers_below():
        layer.verify_divisible(channels, 16, "channels")
    if pool is not None and pool not in ("max", "maxabs", "avg", "rand"):
        layer.error("layer.choice", f"parameter 'pool' must be one of 'max', 'maxabs', 'avg', 'rand', "
                    f"got {pool!r}", "pool")
    layer.verify_img_size(num_input, pixels, size, channels)
    if outputs_x is not None and outputs_x <= 0:
        if None in (size, start, size_x, stride) or stride <= 0:
            outputs_x = None
        else:  # ceil((S - start - sizeX) / stride) + 1
            outputs_x = _ceil_div(size - start - size_x, stride) + 1
    layer.derived["start"] = start
    layer.derived["outputsX"] = outputs_x
    layer.channels, layer.img_size = channels, outputs_x
    layer.outputs = None if outputs_x is None or channels is None else outputs_x * outputs_x * channels


def _parse_norm(layer: _Layer) -> None:
    """layer.py: NormLayerParser.parse for rnorm, cnorm and cmrnorm."""
    _parse_with_inputs(layer, 1)
    cross_map = layer.type == "cmrnorm"
    layer.derived["requiresParams"] = True
    channels = layer.get("channels", INT)
    size = layer.get("size", INT)
    if size is None and not layer.has("size") and layer.has("sizeX"):
        # cuda-convnet 1 spelling (example-layers/): read it as `size` so the file can be shown.
        try:
            size = convert(layer.section.get("sizeX") or "", INT)
            layer.report("info", "layer.sizex-as-size", "reading 'sizeX' as 'size' (the cuda-convnet 1 "
                         "spelling, which the 2012 parser does not read)", layer.section.entry("sizeX"))
        except ValueError:
            size = None
    layer.derived["size"] = size
    layer.get("blocked", BOOL, False)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, img = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, img
    layer.verify_range(channels, "channels", 1, None)
    if cross_map:
        layer.verify_range(size, "size", 2, channels)
        if channels is not None and channels % 16 != 0:
            layer.error("layer.channels", f"number of channels ({channels}) must be divisible by 16 when "
                        "using crossMap", "channels")
    else:
        layer.verify_range(size, "size", 1, img)
    if not cross_map and channels is not None and channels > 3 and channels % 4 != 0:
        layer.error("layer.channels", f"number of channels ({channels}) must be smaller than 4 or divisible "
                    "by 4", "channels")
    layer.verify_img_size(num_input, pixels, img, channels)
    layer.channels, layer.img_size = channels, img
    layer.outputs = None if pixels is None else pixels * channels


def _parse_nailbed(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    channels = layer.get("channels", INT)
    stride = layer.get("stride", INT)
    layer.verify_range(channels, "channels", 1, None)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    if size is None or stride is None or stride <= 0:
        if stride is not None and stride <= 0:  # a ZeroDivisionError (or nonsense) in layer.py
            layer.error("layer.range", f"parameter 'stride' must be greater than 0, got {stride}", "stride")
        layer.verify_img_size(num_input, pixels, size, channels)
        return
    outputs_x = (size + stride - 1) // stride
    start = (size - stride * (outputs_x - 1)) // 2
    layer.derived["outputsX"], layer.derived["start"] = outputs_x, start
    layer.verify_range(outputs_x, "outputsX", 0, None)
    layer.verify_img_size(num_input, pixels, size, channels)
    layer.channels, layer.img_size = channels, outputs_x
    layer.outputs = channels * outputs_x * outputs_x


def _parse_blur(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    layer.outputs = num_input
    channels = layer.get("channels", INT)
    filter_size = layer.get("filterSize", INT)
    layer.get("stdev", FLOAT)
    layer.verify_range(channels, "channels", 1, None)
    if filter_size is not None and filter_size not in (3, 5, 7, 9):
        layer.error("layer.choice", f"parameter 'filterSize' must be one of 3, 5, 7, 9, got {filter_size}",
                    "filterSize")
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    layer.verify_img_size(num_input, pixels, size, channels)
    if filter_size is not None and size is not None and filter_size > size:
        layer.error("layer.filter-size", f"filter size ({filter_size}) must be smaller than image size "
                    f"({size})", "filterSize")
    layer.channels, layer.img_size = channels, size


def _parse_href(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    layer.outputs = num_input
    channels = layer.get("channels", INT)
    layer.verify_range(channels, "channels", 1, 3)
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    layer.verify_img_size(num_input, pixels, size, channels)
    layer.channels, layer.img_size = channels, size


def _parse_resize(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    channels = layer.get("channels", INT)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    scale = layer.get("scale", FLOAT)
    target = None
    if size is not None and scale is not None and 0 < scale < math.inf:
        target = _floor_ratio(size, scale)
    layer.derived["tgtSize"] = target
    layer.verify_range(channels, "channels", 1, None)
    layer.verify_range(scale, "scale", 0.5, 2, "%.3f")
    layer.verify_img_size(num_input, pixels, size, channels)
    layer.verify_no_grads()
    layer.channels, layer.img_size = channels, target
    layer.outputs = None if target is None or channels is None else channels * target * target


def _parse_rscale(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    channels = layer.get("channels", INT)
    layer.verify_range(channels, "channels", 1, None)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    max_scale = layer.get("maxScale", FLOAT)
    target = layer.get("tgtSize", INT)
    min_size = None
    if size is not None and max_scale is not None and 0 < max_scale < math.inf:
        min_size = _floor_ratio(size, max_scale)
    if min_size is not None and target is not None:
        if target < min_size:
            layer.error("layer.range", f"target size must be greater than minimum image size after "
                        f"rescaling ({min_size})", "tgtSize")
        if target > size:
            layer.error("layer.range", f"target size must be smaller than maximum image size after "
                        f"rescaling ({size})", "tgtSize")
    layer.verify_range(max_scale, "maxScale", 1, 2, "%.3f")
    layer.verify_img_size(num_input, pixels, size, channels)
    layer.verify_no_grads()
    layer.channels, layer.img_size = channels, target
    layer.outputs = None if target is None or channels is None else channels * target * target


def _parse_color(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, 3)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    layer.outputs = num_input
    layer.verify_img_size(num_input, pixels, size, 3)
    layer.verify_no_grads()
    if layer.type == "rgb2lab":
        layer.get("center", BOOL, False)
    layer.channels, layer.img_size = 3, size


def _pass_image(layer: _Layer) -> None:
    """Elementwise layers keep their (first) input's image shape."""
    first = layer.input_layers[0] if layer.input_layers else None
    if first is not None and first.done and first.outputs == layer.outputs:
        layer.channels, layer.img_size = first.channels, first.img_size


def _parse_neuron_layer(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    layer.outputs = layer.num_inputs[0] if layer.input_layers else None
    text = layer.neuron or ""
    if parse_neuron(text) is None:
        layer.error("layer.neuron", f"unable to parse neuron type {text!r}", "neuron" if text else None)
    layer.neuron = text or None
    _pass_image(layer)


def _same_dims(layer: _Layer) -> None:
    dims = layer.num_inputs
    known = [d for d in dims if d is not None]
    if len(set(known)) > 1:
        layer.error("layer.input-shapes", "all inputs must have the same dimensionality. Got "
                    f"dimensionalities: {', '.join(str(d) for d in dims)}", "inputs")
    layer.outputs = dims[0] if dims else None


def _parse_eltsum(layer: _Layer) -> None:
    _parse_with_inputs(layer)
    _same_dims(layer)
    # the 2012 parser does not check the length of coeffs against the inputs
    layer.get("coeffs", FLOATS, (1.0,) * len(layer.inputs))
    _pass_image(layer)


def _parse_eltmax(layer: _Layer) -> None:
    _parse_with_inputs(layer)
    if len(layer.inputs) < 2:
        layer.error("layer.num-inputs", f"elementwise max layer must have at least 2 inputs, got "
                    f"{len(layer.inputs)}", "inputs")
    _same_dims(layer)
    _pass_image(layer)


def _parse_hs(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    layer.derived["requiresParams"] = True
    layer.outputs = layer.num_inputs[0] if layer.input_layers else None
    layer.get("keep", FLOAT)
    _pass_image(layer)


def _parse_softmax(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    layer.outputs = layer.num_inputs[0] if layer.input_layers else None


def _parse_concat(layer: _Layer) -> None:
    _parse_with_inputs(layer)
    dims = layer.num_inputs
    if any(d is None for d in dims):
        return
    layer.outputs = sum(dims)
    layer.derived["copyOffsets"] = [sum(dims[:i]) for i in range(len(dims))]


def _parse_cost(layer: _Layer, num_inputs: int) -> None:
    """layer.py: CostParser.parse -- the neuron key is read and then dropped."""
    _parse_with_inputs(layer, num_inputs)
    layer.derived["requiresParams"] = True
    if layer.neuron is not None:
        layer.report("info", "layer.neuron-ignored", "neuron= is ignored on cost layers",
                     layer.section.entry("neuron"))
    layer.neuron = None
    layer.outputs = 0


def _check_classes(layer: _Layer, i: int, what: str) -> None:
    dims = layer.num_inputs
    classes = layer.ctx.num_classes
    if i < len(dims) and dims[i] is not None and classes is not None and dims[i] != classes:
        layer.error("layer.num-classes", f"{what} '{layer.inputs[i]}' must produce {classes} outputs, because "
                    "that is the number of classes in the dataset", "inputs")


def _check_label_dim(layer: _Layer) -> None:
    dims = layer.num_inputs
    if dims and dims[0] is not None and dims[0] != 1:
        layer.error("layer.input-dims", f"dimensionality of first input must be 1, got {dims[0]}", "inputs")


def _check_softmax_input(layer: _Layer) -> None:
    if len(layer.input_layers) > 1 and layer.input_layers[1] is not None \
            and layer.input_layers[1].type != "softmax":
        layer.error("layer.input-type", f"second input must be softmax layer, got "
                    f"'{layer.input_layers[1].type}'", "inputs")


def _parse_cost_logreg(layer: _Layer) -> None:
    _parse_cost(layer, 2)
    _check_label_dim(layer)
    _check_softmax_input(layer)
    _check_classes(layer, 1, "softmax input")


def _parse_cost_crossent(layer: _Layer) -> None:
    _parse_cost(layer, 2)
    _check_classes(layer, 0, "first input")
    _check_softmax_input(layer)
    _check_classes(layer, 1, "softmax input")


def _parse_cost_flickr(layer: _Layer) -> None:
    """layer.py: FlickrBaseCost.parse (cost.crossent2, cost.rflickr)."""
    _parse_cost(layer, 2)
    _check_classes(layer, 0, "input")
    _check_classes(layer, 1, "input")
    dims = layer.num_inputs
    if len(dims) == 2 and None not in dims and dims[0] != dims[1]:
        layer.error("layer.input-shapes", f"both inputs must produce the number of classes; they produce "
                    f"{dims[0]} and {dims[1]}", "inputs")
    second = layer.input_layers[1] if len(layer.input_layers) > 1 else None
    if second is not None and (second.type == "neuron" or second.neuron != "logistic"):
        layer.report("warning", "layer.not-logistic", f"input '{second.name}' is not logistic, results may "
                     "not be what you intend", layer.section.entry("inputs"))


def _parse_cost_msm(layer: _Layer) -> None:
    _parse_cost(layer, 2)
    _check_label_dim(layer)
    _check_classes(layer, 1, "input")
    layer.derived["numOut"] = layer.num_inputs[1] if len(layer.num_inputs) > 1 else None


def _parse_cost_gsum2(layer: _Layer) -> None:
    _parse_cost(layer, 2)
    dims = layer.num_inputs
    if dims and dims[0] is not None and dims[0] != 1:  # verify_input_dims([1, None]): the gate
        layer.error("layer.input-dims", f"dimensionality of input 0 must be 1, got {dims[0]}", "inputs")


def _parse_cost_tica(layer: _Layer) -> None:
    _parse_cost(layer, 1)
    channels = layer.get("channels", INT)
    layer.get("sizeX", INT)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, channels)
    layer.derived["imgPixels"], layer.derived["imgSize"] = pixels, size
    layer.verify_img_size(num_input, pixels, size, channels)


# cuda-convnet2 types, read where the rule is plain (cc2 layer.py), never validated beyond shapes.
def _parse_cc2_same(layer: _Layer) -> None:  # dropout, dropout2
    _parse_with_inputs(layer, 1)
    layer.outputs = layer.num_inputs[0] if layer.input_layers else None
    _pass_image(layer)


def _parse_cc2_pass(layer: _Layer) -> None:
    _parse_with_inputs(layer)
    dims = layer.num_inputs
    layer.outputs = None if any(d is None for d in dims) else sum(dims)


def _parse_cc2_cost(layer: _Layer) -> None:  # cost.bce, cost.dce
    _parse_cost(layer, 2)


def _parse_cc2_crop(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    channels = layer.get("channels", INT)
    layer.get("startX", INT)
    if layer.has("startY"):
        layer.get("startY", INT)
    size_x = layer.get("sizeX", INT)
    layer.channels, layer.img_size = channels, size_x
    layer.outputs = None if channels is None or size_x is None else channels * size_x * size_x


def _parse_cc2_sum(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    stride = layer.get("stride", INT, 1)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    layer.outputs = None if num_input is None or not stride or stride < 0 else num_input // stride


def _parse_cc2_cmpool(layer: _Layer) -> None:
    _parse_with_inputs(layer, 1)
    channels = layer.get("channels", INT)
    layer.get("size", INT)
    layer.get("start", INT, 0)
    layer.get("stride", INT)
    out_channels = layer.get("outputs", INT, 0)
    layer.get("pool", STR)
    num_input = layer.num_inputs[0] if layer.input_layers else None
    pixels, size = layer.image(num_input, channels)
    layer.derived["outputChannels"] = out_channels
    layer.channels, layer.img_size = out_channels, size
    layer.outputs = None if pixels is None or out_channels is None else out_channels * pixels


def _parse_unknown(layer: _Layer) -> None:
    """A type no parser knows: keep its edges, no shapes."""
    if layer.has("inputs"):
        _parse_with_inputs(layer)
    layer.outputs = None
    layer.params = None


_PARSERS = {
    "data": _parse_data, "fc": _parse_fc, "treefc": _parse_treefc, "conv": _parse_conv,
    "local": _parse_local, "softmax": _parse_softmax, "eltsum": _parse_eltsum, "eltmax": _parse_eltmax,
    "neuron": _parse_neuron_layer, "pool": _parse_pool, "rnorm": _parse_norm, "cnorm": _parse_norm,
    "cmrnorm": _parse_norm, "nailbed": _parse_nailbed, "blur": _parse_blur, "href": _parse_href,
    "resize": _parse_resize, "rgb2yuv": _parse_color, "rgb2lab": _parse_color, "rscale": _parse_rscale,
    "concat": _parse_concat, "hs": _parse_hs, "cost.logreg": _parse_cost_logreg,
    "cost.msm": _parse_cost_msm, "cost.crossent": _parse_cost_crossent,
    "cost.crossent2": _parse_cost_flickr, "cost.rflickr": _parse_cost_flickr,
    "cost.sum2": lambda layer: _parse_cost(layer, 1), "cost.gsum2": _parse_cost_gsum2,
    "cost.tica": _parse_cost_tica,
    # cuda-convnet2
    "dropout": _parse_cc2_same, "dropout2": _parse_cc2_same, "pass": _parse_cc2_pass,
    "cost.bce": _parse_cc2_cost, "cost.dce": _parse_cc2_cost, "crop": _parse_cc2_crop,
    "sum": _parse_cc2_sum, "cmpool": _parse_cc2_cmpool, "sfc": _parse_unknown,
}
assert LAYER_TYPES | CC2_TYPES == set(_PARSERS)


# ---------------------------------------------------------------------------------------------
# The whole file (layer.py: LayerParser.parse_layers)

class _Context:
    def __init__(self, cfg: CfgFile, data_dims: Mapping[int, int], num_gpus: int | None,
                 num_classes: int | None, inferred: dict[int, tuple[int, str]]):
        self.cfg = cfg
        self.data_dims = data_dims
        self.inferred_dims = inferred
        self.num_gpus = num_gpus
        self.num_classes = num_classes
        self.findings: list[tuple[int, int, int, Finding]] = []
        self.by_name: dict[str, _Layer] = {}
        self.cycle_of: dict[str, tuple[str, ...]] = {}
        self.layers: list[_Layer] = []

    def add(self, phase: int, index: int, finding: Finding) -> None:
        self.findings.append((phase, index, len(self.findings), finding))


def _input_names(section: MergedSection) -> tuple[str, ...]:
    value = section.get("inputs")
    return tuple(p.strip() for p in value.split(",")) if value is not None else ()


def _cycles(names: list[str], edges: dict[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Strongly connected components with a cycle (Tarjan, iterative), each in file order."""
    order = {name: i for i, name in enumerate(names)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[tuple[str, ...]] = []
    counter = 0
    for root in names:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in order:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(tuple(sorted(component, key=order.__getitem__)))
    return found


def _run(cfg: CfgFile, data_dims: Mapping[int, int], num_gpus: int | None, num_classes: int | None,
         inferred: dict[int, tuple[int, str]]) -> _Context:
    ctx = _Context(cfg, data_dims, num_gpus, num_classes, inferred)
    for problem in cfg.problems:
        ctx.add(0, problem.span.line, problem)
    merged = cfg.merged()
    layers: list[_Layer] = []
    for index, section in enumerate(merged.values()):
        layer = _Layer(ctx, index, section)
        layers.append(layer)
        ctx.by_name[layer.name] = layer
    names = [layer.name for layer in layers]
    edges = {layer.name: _input_names(layer.section) for layer in layers}
    for cycle in _cycles(names, edges):
        for name in cycle:
            ctx.cycle_of[name] = cycle

    # Parse in dependency order (file order where free), so forward references still get shapes;
    # what is left once no layer is ready sits on or above a cycle and gets unknown inputs.
    waiting = {layer.name: sum(1 for e in edges[layer.name] if e in ctx.by_name) for layer in layers}
    users: dict[str, list[str]] = {name: [] for name in names}
    for layer in layers:
        for e in edges[layer.name]:
            if e in users:
                users[e].append(layer.name)
    ready = [layer.index for layer in layers if waiting[layer.name] == 0]
    heapq.heapify(ready)
    order: list[_Layer] = []
    while ready:
        layer = layers[heapq.heappop(ready)]
        order.append(layer)
        for user in users[layer.name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, ctx.by_name[user].index)
    placed = {id(layer) for layer in order}
    order += [layer for layer in layers if id(layer) not in placed]

    for layer in order:
        _parse_one(layer)
        layer.done = True

    # Keys the parser never looked at: Python 2 ignored them silently.
    for layer in layers:
        if layer.type in LAYER_TYPES or layer.type in CC2_TYPES:
            for lower, entry in layer.section.entries.items():
                if lower not in layer.read:
                    layer.report("warning", "layer.unknown-key", f"key '{entry.key}' is not read by the 2012 "
                                 f"parser for a layer of type '{layer.type}' (ignored)", entry)

    # LayerParser.detach_neuron_layers: a neuron= key becomes a layer '<name>_neuron'.
    taken = set(names)
    for layer in layers:
        if layer.type != "neuron" and layer.neuron is not None:
            if parse_neuron(layer.neuron) is None:
                layer.report("error", "layer.neuron", f"unable to parse neuron type {layer.neuron!r}",
                             layer.section.entry("neuron"), phase=2)
            wish = f"{layer.name}_neuron"
            detached = wish
            for i in range(1, 100):  # NeuronLayerParser.get_unused_layer_name
                if detached not in taken:
                    break
                detached = f"{wish}.{i}"
            taken.add(detached)
            layer.derived["neuronLayer"] = detached

    # "Layer '%s' of type '%s' is unused": every non-cost layer must feed another.
    used = {e for layer in layers for e in layer.inputs}
    for layer in layers:
        if layer.type and not layer.type.startswith("cost.") and layer.name not in used:
            shown = layer.derived.get("neuronLayer", layer.name)
            layer.report("error", "layer.unused", f"layer of type '{layer.type}' is unused (no layer takes "
                         f"it as input{'; layer.py names it ' + repr(shown) if shown != layer.name else ''})",
                         phase=3)
    ctx.layers = layers
    return ctx


def _parse_one(layer: _Layer) -> None:
    section = layer.section
    entry = section.entry("type")
    if entry is None:
        layer.error("layer.no-type", "no type given")
        _parse_unknown(layer)
        return
    layer.read.add("type")
    layer.type = entry.value
    layer.settings["type"] = entry.value
    if entry.value in CC2_TYPES:
        layer.report("error", "layer.unknown-type", f"unknown layer type '{entry.value}' (a cuda-convnet2 "
                     "type, which the 2012 parser does not know)", entry)
    elif entry.value not in LAYER_TYPES:
        layer.report("error", "layer.unknown-type", f"unknown layer type '{entry.value}'", entry)
        _parse_unknown(layer)
        return
    _PARSERS[entry.value](layer)
    layer.derived.setdefault("requiresParams", False)
    if layer.type == "sfc":  # a cuda-convnet2 weight layer whose shapes we do not derive
        layer.params = None
    elif layer.type not in WEIGHT_TYPES:
        layer.params = 0


def _infer_dims(ctx: _Context, known: Mapping[int, int]) -> dict[int, tuple[int, str]]:
    """Dimensions of data indices the caller did not give, decided by the cost layers that read them:
    a label input of cost.logreg/cost.msm/cost.gsum2 has dimension 1 (layer.py checks it); the targets
    of the Flickr costs (and cuda-convnet2's cost.bce/cost.dce) have the size of the other input, and
    a data input of eltsum/eltmax the size of the other inputs."""
    inferred: dict[int, tuple[int, str]] = {}
    for layer in ctx.layers:
        for i, source in enumerate(layer.input_layers):
            if source is None or source.type != "data":
                continue
            idx = source.derived.get("dataIdx")
            if not isinstance(idx, int) or idx in known or idx in inferred:
                continue
            value: int | None = None
            if layer.type in ("cost.logreg", "cost.msm", "cost.gsum2") and i == 0:
                value = 1
            elif layer.type in ("cost.crossent2", "cost.rflickr", "cost.bce", "cost.dce", "cost.crossent") \
                    and len(layer.input_layers) == 2:
                other = layer.input_layers[1 - i]
                if other is not None and other.outputs:
                    value = other.outputs
            elif layer.type in ("eltsum", "eltmax"):  # all inputs must have the same size
                others = [o.outputs for j, o in enumerate(layer.input_layers)
                          if j != i and o is not None and o.type != "data" and o.outputs]
                if others:
                    value = others[0]
            if value is not None:
                inferred[idx] = (value, f"its use as input {i} of {layer.type} layer '{layer.name}'")
    return inferred


def _label_dims(cfg: CfgFile, known: Mapping[int, int]) -> dict[int, tuple[int, str]]:
    """The label inputs of cost.logreg/cost.msm/cost.gsum2 (dimension 1), found without shapes,
    so that the common case needs a single pass."""
    sections = cfg.merged()
    inferred: dict[int, tuple[int, str]] = {}
    for section in sections.values():
        ltype = section.get("type")
        names = _input_names(section)
        if ltype not in ("cost.logreg", "cost.msm", "cost.gsum2") or not names:
            continue
        source = sections.get(names[0])
        if source is None or source.get("type") != "data":
            continue
        try:
            idx = convert(source.get("dataIdx") or "", INT)
        except ValueError:
            continue
        if isinstance(idx, int) and idx not in known and idx not in inferred:
            inferred[idx] = (1, f"its use as input 0 of {ltype} layer '{section.name}'")
    return inferred


def parse_layers(cfg: CfgFile, data_dims: DataDims | None = None, *, num_gpus: int | None = None,
                 num_classes: int | None = None, strict: bool = False) -> LayerGraph:
    """Build the layer graph of a parsed layer-definition file.

    data_dims: outputs per image for each dataIdx (the data provider's get_data_dims);
    num_gpus: the --num-gpus the file was meant for (gpu= must lie in 0..num_gpus-1; when None
    only gpu >= 0 is checked); num_classes: the data provider's get_num_classes (checked
    against the cost layers' inputs, and the outputs of treefc).
    strict: raise the first objection that layer.py would have refused the file for, as an
    ArchiveError naming file:line and the rule; otherwise report everything as findings.
    """
    dims = dict(data_dims or {})
    inferred = _label_dims(cfg, dims)
    ctx = _run(cfg, dims, num_gpus, num_classes, inferred)
    for _ in range(3):  # each round may make more shapes known
        more = _infer_dims(ctx, {**dims, **inferred})
        if not more:
            break
        inferred.update(more)
        ctx = _run(cfg, dims, num_gpus, num_classes, inferred)
    ordered = sorted(ctx.findings, key=lambda item: item[:3])
    findings = tuple(item[3] for item in ordered)
    if strict:
        for finding in findings:
            if finding.severity == "error":
                raise finding.as_error()
    return LayerGraph(cfg.path, tuple(layer.freeze() for layer in ctx.layers), findings)


def load_layers(path: Path | str, data_dims: DataDims | None = None, *, display_path: str | None = None,
                num_gpus: int | None = None, num_classes: int | None = None,
                strict: bool = False) -> LayerGraph:
    """Read and parse a layer-definition file (see `parse_layers`)."""
    return parse_layers(read_cfg(path, display_path), data_dims, num_gpus=num_gpus,
                        num_classes=num_classes, strict=strict)
