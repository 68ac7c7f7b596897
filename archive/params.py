"""Layer-parameter files (`layer-params-*.cfg`) as typed records.

A params file holds, per layer, the settings the 2012 code re-read on every
start and resume (`LayerParser.add_params` in layer.py): learning rates
(epsW, epsB), momenta, weight decay, learning-rate schedules, normalisation
constants, dropout switches and cost coefficients. Each value keeps the span
of the line it came from.

The archive's files were edited over months, so they contain spellings the
release's own parser rejects (positional schedules such as ``dexp[250,0,4]``)
and a key it silently ignores (``sched=``). We read all of them, normalise
every schedule to one form, and say in a `Finding` what the 2012 parser would
have done.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .cfgfile import CfgFile, Entry, MergedSection, read_cfg
from .source import ArchiveError, Finding, SourceSpan

__all__ = [
    "Schedule", "parse_schedule", "schedule_rate",
    "InputParams", "LayerParams", "ParamSet",
    "parse_params", "load_params", "check_against",
    "py2_float", "py2_int", "py2_boolean", "py2_bool_list", "REQUIRES_PARAMS",
]




# --------------------------------------------------------------------------
# Python 2 value conversions (ConfigParser.getfloat/getint/getboolean and
# MyConfigParser.safe_get_*_list in layer.py)
# --------------------------------------------------------------------------

def _py2_number_text(text: str) -> bool:
    # Python 3's float()/int() also accept '1_000' and non-ASCII digits;
    # Python 2's did not.
    return text.isascii() and "_" not in text


def py2_float(text: str) -> float:
    """float() as Python 2.7 applied it to a config value; ValueError if not."""
    if not _py2_number_text(text):
        raise ValueError(text)
    return float(text)


def py2_int(text: str) -> int:
    """int() as Python 2.7 applied it (no '4.0', no '1_0'); ValueError if not."""
    if not _py2_number_text(text):
        raise ValueError(text)
    return int(text)


# ConfigParser.RawConfigParser._boolean_states (Python 2.7).
_BOOLEAN_STATES = {"1": True, "yes": True, "true": True, "on": True,
                   "0": False, "no": False, "false": False, "off": False}


def py2_boolean(text: str) -> bool:
    """ConfigParser.getboolean: 1/yes/true/on and 0/no/false/off, any case."""
    try:
        return _BOOLEAN_STATES[text.lower()]
    except KeyError:
        raise ValueError(text) from None


def py2_bool_list(text: str) -> tuple[bool, ...]:
    """MyConfigParser.safe_get_bool_list: only 'true' and '1' (any case) are
    true; every other word, even 'yes', is silently false."""
    return tuple(part.strip().lower() in ("true", "1") for part in text.split(","))


def _float_list(text: str) -> tuple[float, ...]:
    # MyConfigParser.safe_get_list: split on ',', strip, convert each.
    return tuple(py2_float(part.strip()) for part in text.split(","))


# --------------------------------------------------------------------------
# Learning-rate schedules (layer.py: ParamParser, lrs_parsers; src/lr.cu)
# --------------------------------------------------------------------------

# Parameter names and converters of each schedule, in the order lrs_parsers
# declares them. tanh exists only in lr.cu (TanhLRS): layer.py cannot select it.
_SCHEDULE_PARAMS: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("tgtFactor", "noiseStdev"),
    "exp": ("tgtFactor", "noiseStdev"),
    "dexp": ("tgtFactor", "noiseStdev", "numSteps"),
    "jdexp": ("tgtFactor", "noiseStdev", "numSteps"),
    "tanh": ("tgtFactor", "noiseStdev"),
}
SELECTABLE_2012 = ("default", "linear", "exp", "dexp", "jdexp")

# The shape of any bracketed schedule we are prepared to read.
_LOOSE_SCHEDULE_RE = re.compile(r"^\s*(\w+)\s*(?:\[(.*)\])?\s*$", re.DOTALL | re.ASCII)


def _release_schedule_re(kind: str) -> re.Pattern[str]:
    # layer.py ParamParser.parse: every parameter named, in declared order,
    # case-insensitive, whitespace allowed around names and values; the
    # brackets themselves are optional in the regex.
    inner = ",".join(r"\s*%s\s*=\s*[^,\s=]+\s*" % name for name in _SCHEDULE_PARAMS[kind])
    # re.ASCII: Python 2 byte-string patterns knew only ASCII \s and \w.
    return re.compile(r"^%s\s*(?:\[(%s)\])?\s*$" % (kind, inner), re.IGNORECASE | re.ASCII)


_RELEASE_SCHEDULE_RES = {kind: _release_schedule_re(kind) for kind in SELECTABLE_2012}


def _fmt_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class Schedule:
    """One learning-rate schedule, however it was written.

    form: "named" (the release's syntax, ``dexp[tgtFactor=250,...]``),
    "positional" (``dexp[250,0,4]``), "keyword" (names, but not all of them or
    not in the release's order), "bare" (``dexp`` with no parameters).
    accepted_2012: whether layer.py's ParamParser would have returned it.
    For positional forms we read (as SEMANTICS.md §1.2 recommends): one value
    = tgtFactor; linear/exp with two = (tgtFactor, noiseStdev); dexp/jdexp with
    two = (tgtFactor, numSteps); three = declared order. Missing noise is 0.
    """

    kind: str
    tgt_factor: float | None
    noise_stdev: float | None
    num_steps: int | None
    written: str
    form: str
    accepted_2012: bool

    def canonical(self) -> str:
        """The release's own spelling, e.g. 'dexp[tgtFactor=250,noiseStdev=0,numSteps=4]'."""
        names = _SCHEDULE_PARAMS[self.kind]
        if not names or self.tgt_factor is None:
            return self.kind
        values = {"tgtFactor": self.tgt_factor, "noiseStdev": self.noise_stdev, "numSteps": self.num_steps}
        return "%s[%s]" % (self.kind, ",".join(f"{n}={_fmt_number(values[n])}" for n in names))

    def to_json(self) -> dict:
        return {"kind": self.kind, "tgt_factor": self.tgt_factor, "noise_stdev": self.noise_stdev,
                "num_steps": self.num_steps, "written": self.written, "form": self.form,
                "accepted_2012": self.accepted_2012, "canonical": self.canonical()}


def _schedule_error(span: SourceSpan | None, text: str, why: str) -> ArchiveError:
    return ArchiveError(span, f"cannot read learning-rate schedule {text!r}: {why}", "params.schedule-syntax")


def _build_schedule(kind: str, values: dict[str, str], text: str, form: str, accepted: bool,
                    span: SourceSpan | None) -> Schedule:
    try:
        tgt = py2_float(values["tgtFactor"]) if "tgtFactor" in values else None
        noise = py2_float(values["noiseStdev"]) if "noiseStdev" in values else None
    except ValueError:
        raise _schedule_error(span, text, "tgtFactor and noiseStdev must be numbers") from None
    steps = None
    if "numSteps" in values:
        try:
            steps = py2_int(values["numSteps"])
        except ValueError:
            # layer.py converts with int(): '4.0' is a ValueError there too
            # (uncaught, so the 2012 program died with a traceback).
            raise _schedule_error(span, text, "numSteps must be an integer") from None
    return Schedule(kind, tgt, noise, steps, text, form, accepted)


def parse_schedule(text: str, span: SourceSpan | None = None) -> Schedule:
    """Read a schedule in any spelling found in the archive; ArchiveError for
    anything that is not a schedule at all. `text` is stripped first, as
    ConfigParser stripped every value before layer.py saw it."""
    text = text.strip()
    for kind, pattern in _RELEASE_SCHEDULE_RES.items():
        match = pattern.match(text)
        if match is None:
            continue
        names = _SCHEDULE_PARAMS[kind]
        if match.group(1) is None:
            if names:  # ParamParser: no values for a kind that needs some -> None
                return Schedule(kind, None, None, None, text, "bare", False)
            return Schedule(kind, None, None, None, text, "named", True)
        if not names:  # 'default[]': the release's regex accepts it
            return Schedule(kind, None, None, None, text, "named", True)
        parts = [part.split("=", 1)[1].strip() for part in match.group(1).split(",")]
        return _build_schedule(kind, dict(zip(names, parts)), text, "named", True, span)

    match = _LOOSE_SCHEDULE_RE.match(text)
    if match is None:
        raise _schedule_error(span, text, "expected kind[values], e.g. dexp[tgtFactor=250,noiseStdev=0,numSteps=4]")
    kind = match.group(1).lower()
    if kind not in _SCHEDULE_PARAMS:
        raise _schedule_error(span, text, f"unknown kind {match.group(1)!r} (one of {', '.join(SELECTABLE_2012)})")
    names = _SCHEDULE_PARAMS[kind]
    inner = match.group(2)
    if inner is None:
        return Schedule(kind, None, None, None, text, "bare", False)
    if not names:
        raise _schedule_error(span, text, f"{kind} takes no parameters")
    args = [arg.strip() for arg in inner.split(",")]
    if any(not arg for arg in args):
        raise _schedule_error(span, text, "empty parameter")
    named = ["=" in arg for arg in args]
    if all(named):
        lowered = {name.lower(): name for name in names}
        values: dict[str, str] = {}
        for arg in args:
            key, value = (piece.strip() for piece in arg.split("=", 1))
            name = lowered.get(key.lower())
            if name is None or name in values:
                raise _schedule_error(span, text, f"unknown or repeated parameter {key!r}")
            values[name] = value
        form = "named" if tuple(values) == names else "keyword"
        values.setdefault("noiseStdev", "0")
        if "tgtFactor" not in values or ("numSteps" in names and "numSteps" not in values):
            raise _schedule_error(span, text, "tgtFactor (and numSteps for dexp/jdexp) must be given")
        return _build_schedule(kind, values, text, form, False, span)
    if any(named):
        raise _schedule_error(span, text, "mixes named and positional parameters")
    # Positional: see the Schedule docstring for the reading.
    if len(args) == len(names):
        order = names
    elif len(args) == 1:
        order = ("tgtFactor",)
    elif len(args) == 2 and "numSteps" in names:
        order = ("tgtFactor", "numSteps")
    else:
        raise _schedule_error(span, text, f"{kind} takes {len(names)} values, got {len(args)}")
    if "numSteps" in names and "numSteps" not in order:
        raise _schedule_error(span, text, f"{kind} needs numSteps")
    values = dict(zip(order, args))
    values.setdefault("noiseStdev", "0")
    return _build_schedule(kind, values, text, "positional", False, span)


# ---- src/lr.cu, without the noise -------------------------------------------
# The C++ code works in double; Python floats are doubles, and math.log/pow
# are the C library's, so these agree bit for bit where C gives a number.
# Where C gives inf/nan (division by zero, log of a negative), so do we.

def _c_div(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _c_log(x: float) -> float:
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def _c_pow(x: float, y: float) -> float:
    if x == 1 or y == 0:
        return 1.0
    if math.isnan(x) or math.isnan(y):
        return math.nan
    try:
        return math.pow(x, y)
    except OverflowError:
        return math.inf
    except ValueError:  # 0 ** negative is a pole (inf); negative ** fraction is nan
        return math.inf if x == 0 else math.nan


def _c_sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan


def _c_atanh(x: float) -> float:
    if -1 < x < 1:
        return math.atanh(x)
    if x == 1 or x == -1:
        return math.copysign(math.inf, x)
    return math.nan


def _exp_rate(eps0: float, tgt: float, progress: float) -> float:
    # ExpLRS: _pow = log(final)/log(base) - 1 (1 when base is 0); rate = base^(1 + p*_pow).
    power = 1.0 if eps0 == 0 else _c_div(_c_log(_c_div(eps0, tgt)), _c_log(eps0)) - 1
    return _c_pow(eps0, 1.0 + progress * power)


_C_INT_MAX = 2**31 - 1


def _dexp_rate(eps0: float, tgt: float, steps: int, index: int) -> float:
    # DiscreteExpLRS ctor: rates[i] = ExpLRS(i/(n-1)) for i < n-1, then base/tgt.
    if index < steps - 1:
        return _exp_rate(eps0, tgt, index / (steps - 1))
    return _c_div(eps0, tgt)


def _dexp_interval(progress: float, size: int) -> int | None:
    """The smallest i with progress <= (i+1)/size, or None (progress > 1 or nan)."""
    if not progress <= 1.0:
        return None
    if progress <= 0:
        return 0
    i = min(size - 1, max(0, math.ceil(progress * size) - 1))
    while i > 0 and progress <= i / size:
        i -= 1
    while not progress <= (i + 1) / size:
        i += 1
    return i


def schedule_rate(schedule: Schedule, eps0: float, progress: float) -> float:
    """The learning rate at `progress` for base rate `eps0`: `_getRate` of
    src/lr.cu (LinearLRS, ExpLRS, TanhLRS, DiscreteExpLRS, JumpyDiscreteExpLRS).

    The noise (noiseStdev > 0 multiplies by 1 + σ|z| on every call) is left
    out: this is the deterministic part. ArchiveError for a bare schedule.
    """
    kind = schedule.kind
    if kind == "default":
        return float(eps0)
    tgt = schedule.tgt_factor
    if tgt is None or (kind in ("dexp", "jdexp") and schedule.num_steps is None):
        raise ArchiveError(None, f"schedule {schedule.written!r} has no parameters, so no rate",
                           "params.schedule-incomplete")
    eps0, p = float(eps0), float(progress)
    if kind == "linear":
        return eps0 * (1 - p) + _c_div(eps0, tgt) * p
    if kind == "exp":
        return _exp_rate(eps0, tgt, p)
    if kind == "tanh":
        if not eps0 > 0:  # TanhLRS leaves alpha = beta = 0
            return 0.0
        final = _c_div(eps0, tgt)
        beta = 0.5 * (eps0 + final)
        alpha = 2 * _c_atanh(_c_div(eps0 - final, eps0 + final))
        return beta * (math.tanh(-alpha * (p - 0.5)) + 1.0)
    # dexp/jdexp: the rate table has max(n, 1) entries (the ctor's loop runs n-1 times).
    steps = schedule.num_steps or 0
    if steps > _C_INT_MAX:
        raise ArchiveError(None, f"numSteps={steps} does not fit the C int of lr.cu", "params.schedule-range")
    size = max(steps, 1)
    index = _dexp_interval(p, size)
    if kind == "dexp":
        return _dexp_rate(eps0, tgt, steps, size - 1 if index is None else index)
    # JumpyDiscreteExpLRS: rateIdx stays 0 when no interval matches (p > 1).
    index = 0 if index is None else index
    middle = (index + 0.5) / size
    if index > 0 and 0.2 < p < 0.9 and p > middle:
        return _c_sqrt(_dexp_rate(eps0, tgt, steps, index) * _dexp_rate(eps0, tgt, steps, index - 1))
    return _dexp_rate(eps0, tgt, steps, index)


# --------------------------------------------------------------------------
# Keys of a params section
# --------------------------------------------------------------------------

# Every key some `add_params` of layer.py reads, spelled as layer.py spells it,
# with its reader. Looked up case-insensitively, as ConfigParser did.
FLOAT, FLOAT_LIST, INT, BOOL, SCHEDULE, QUANT = "float", "float-list", "int", "bool", "schedule", "quant"
RELEASE_KEYS: dict[str, str] = {
    "epsW": FLOAT_LIST, "momW": FLOAT_LIST, "wc": FLOAT_LIST, "wball": FLOAT_LIST,  # WeightLayerParser
    "epsB": FLOAT, "momB": FLOAT, "superEps": FLOAT, "superMom": FLOAT,
    "schedW": SCHEDULE, "schedB": SCHEDULE,
    "wcNormMin": FLOAT_LIST, "wcNormMax": FLOAT_LIST,  # ConvLayerParser
    "scale": FLOAT, "pow": FLOAT, "minDiv": FLOAT,  # NormLayerParser
    "enable": BOOL,  # HiddenSexLayerParser
    "coeff": FLOAT, "topk": INT, "setSize": INT, "threads": INT,  # CostParser, LogregCostParser, MultiSoftmax
    "doMax": BOOL,  # PoolLayerParser (pool=rand)
    "quantF": QUANT, "quantB": QUANT,  # LayerParser.add_params
}
# Keys of older code that the release never reads; typed all the same.
OLD_KEYS: dict[str, tuple[str, str]] = {
    "sched": (SCHEDULE, "the release reads schedW/schedB only, so this layer got the default schedule"),
    "wcnorm": (FLOAT_LIST, "the release reads wcNormMin/wcNormMax only"),
}
_CANONICAL_KEY = {name.lower(): name for name in (*RELEASE_KEYS, *OLD_KEYS)}
_PER_INPUT = ("epsW", "momW", "wc", "wball")

# Layer types whose parser sets requiresParams (layer.py): weight layers,
# the norms, hs and every cost; pool only with pool=rand.
REQUIRES_PARAMS = frozenset({"fc", "treefc", "conv", "local", "rnorm", "cnorm", "cmrnorm", "hs"})
WEIGHT_TYPES = frozenset({"fc", "treefc", "conv", "local"})
NORM_TYPES = frozenset({"rnorm", "cnorm", "cmrnorm"})


def _keys_read(layer_type: str, pool_kind: str | None) -> dict[str, bool]:
    """The params keys layer.py reads for a layer type: name -> required."""
    keys = {"quantF": False, "quantB": False}
    if layer_type in WEIGHT_TYPES:
        keys.update({"epsW": True, "epsB": True, "momW": True, "momB": True, "superEps": False,
                     "superMom": False, "wc": False, "wball": False, "schedW": False, "schedB": False})
        if layer_type == "conv":
            keys.update({"wcNormMin": False, "wcNormMax": False})
    elif layer_type in NORM_TYPES:
        keys.update({"scale": True, "pow": True})
        if layer_type == "cmrnorm":  # rnorm/cnorm never read minDiv
            keys["minDiv"] = False
    elif layer_type == "hs":
        keys["enable"] = True
    elif layer_type.startswith("cost."):
        keys["coeff"] = True
        if layer_type == "cost.logreg":
            keys["topk"] = False
        if layer_type == "cost.msm":
            keys.update({"setSize": True, "threads": True})
    elif layer_type == "pool" and pool_kind == "rand":
        keys["doMax"] = False
    return keys


def _requires_params(layer_type: str, pool_kind: str | None) -> bool:
    return (layer_type in REQUIRES_PARAMS or layer_type.startswith("cost.")
            or (layer_type == "pool" and pool_kind == "rand"))


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InputParams:
    """The per-input values of a weight layer (input i of its `inputs=`);
    None where the list is shorter or absent."""

    epsW: float | None
    momW: float | None
    wc: float | None
    wball: float | None

    def to_json(self) -> dict:
        return {"epsW": self.epsW, "momW": self.momW, "wc": self.wc, "wball": self.wball}


def _value_json(value: object) -> object:
    if isinstance(value, Schedule):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, slots=True)
class LayerParams:
    """One ``[layer]`` section of a params file, merged over repeated blocks
    as Python 2 did (later keys win).

    Typed fields are None when the key is absent or its value is bad (then
    `values` keeps the text as written and a Finding says why). `values` has
    every key, typed, under the release's spelling (unknown keys as written);
    `entries` the cfg Entry of each, for its file:line.
    """

    name: str
    span: SourceSpan
    spans: tuple[SourceSpan, ...]
    inputs: tuple[InputParams, ...]
    epsB: float | None
    momB: float | None
    schedW: Schedule | None
    schedB: Schedule | None
    sched: Schedule | None
    scale: float | None
    pow: float | None
    minDiv: float | None
    enable: bool | None
    coeff: float | None
    topk: int | None
    wcNormMin: tuple[float, ...] | None
    wcNormMax: tuple[float, ...] | None
    wcnorm: tuple[float, ...] | None
    quantF: str | None
    quantB: str | None
    doMax: bool | None
    superEps: float | None
    superMom: float | None
    values: dict[str, object] = field(repr=False)
    entries: dict[str, Entry] = field(repr=False)
    unknown_keys: tuple[str, ...] = ()

    def value_span(self, key: str) -> SourceSpan:
        """Where `key` (any case) was written; KeyError if it was not."""
        entry = self.entries.get(_CANONICAL_KEY.get(key.lower(), key))
        if entry is None:
            for name, candidate in self.entries.items():
                if name.lower() == key.lower():
                    return candidate.span
            raise KeyError(f"layer {self.name!r} has no key {key!r}")
        return entry.span

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "span": self.span.to_json(),
            "spans": [s.to_json() for s in self.spans],
            "inputs": [i.to_json() for i in self.inputs],
            "values": {k: _value_json(v) for k, v in self.values.items()},
            "lines": {k: e.line for k, e in self.entries.items()},
            "unknown_keys": list(self.unknown_keys),
        }


@dataclass(frozen=True, slots=True)
class ParamSet:
    """A whole params file: the layer sections in file order, and everything
    worth telling about it (including the cfg reader's problems)."""

    path: str
    layers: tuple[LayerParams, ...]
    findings: tuple[Finding, ...]

    def __getitem__(self, name: str) -> LayerParams:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def get(self, name: str, default: LayerParams | None = None) -> LayerParams | None:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return any(layer.name == name for layer in self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def to_json(self) -> dict:
        return {"path": self.path, "layers": [layer.to_json() for layer in self.layers],
                "findings": [f.to_json() for f in self.findings]}


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

_TYPE_WORDS = {FLOAT: "float", FLOAT_LIST: "','-delimited list of floats", INT: "int", BOOL: "bool"}
_QUANT_RE = re.compile(r"^(default|half)\s*(?:\[\])?\s*$", re.IGNORECASE | re.ASCII)  # quant_parsers


class _Reader:
    """Reads one section; collects findings, or raises in strict mode."""

    def __init__(self, section: MergedSection, strict: bool, findings: list[Finding]):
        self.section = section
        self.strict = strict
        self.findings = findings

    def report(self, finding: Finding, fatal: bool) -> None:
        if fatal and self.strict:
            raise finding.as_error()
        self.findings.append(finding)

    def read(self, name: str, kind: str, entry: Entry) -> object:
        layer = self.section.name
        value = entry.value
        if kind == SCHEDULE:
            try:
                schedule = parse_schedule(value, entry.span)
            except ArchiveError as error:
                self.report(Finding(entry.span, "error", error.rule or "params.schedule-syntax",
                                    f"layer {layer!r}: {error.message}"), fatal=True)
                return value
            if not schedule.accepted_2012 and name != "sched":
                # LayerParser.parse_params raised this, then exit(1).
                self.report(Finding(entry.span, "error", "params.schedule-rejected-2012",
                                    f"Layer '{layer}': unable to parse learning rate schedule "
                                    f"{name}={value}. (the release's parser; read here as "
                                    f"{schedule.canonical()})"), fatal=False)
            return schedule
        if kind == QUANT:
            match = _QUANT_RE.match(value)
            if match:
                return match.group(1).lower()
            human = "forward" if name == "quantF" else "backward"
            self.report(Finding(entry.span, "error", "params.bad-quant",
                                f"Layer '{layer}': unable to parse {human} quantization scheme "
                                f"{name}={value}. (one of default, half)"), fatal=True)
            return value
        try:
            if kind == FLOAT:
                return py2_float(value)
            if kind == INT:
                return py2_int(value)
            if kind == BOOL:
                return py2_boolean(value)
            return _float_list(value)
        except ValueError:
            # MyConfigParser.safe_get / safe_get_list
            self.report(Finding(entry.span, "error", "params.bad-value",
                                f"Layer '{layer}': parameter '{name}' must be {_TYPE_WORDS[kind]}, "
                                f"not {value!r}"), fatal=True)
            return value


def _typed(values: Mapping[str, object], name: str, kind: type | tuple[type, ...]) -> object:
    value = values.get(name)
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None


# cuda-convnet2 (2014) writes the schedule inside the rate, one per input:
# ``epsW=dexp[base=0.01;tgtFactor=250;numSteps=4]`` (its layer.py: lrs_parsers, where a
# bare number means ``const[base=x]``).
_CC2_RATE_RE = re.compile(r"^\s*(const|linear|exp|dexp)\s*\[([^\]]*)\]\s*$", re.IGNORECASE)
_CC2_KIND = {"const": "default", "linear": "linear", "exp": "exp", "dexp": "dexp"}


def _cc2_rates(text: str) -> tuple[tuple[float, ...], Schedule] | None:
    """(base rate per input, the schedule) for a cuda-convnet2 rate, else None."""
    bases: list[float] = []
    schedules: list[Schedule] = []
    for part in text.split(","):
        match = _CC2_RATE_RE.match(part)
        try:
            if match is None:
                bases.append(py2_float(part.strip()))
                schedules.append(Schedule("default", None, None, None, part.strip(), "cc2", False))
                continue
            named = dict(piece.split("=", 1) for piece in match.group(2).split(";"))
            named = {key.strip().lower(): value.strip() for key, value in named.items()}
            bases.append(py2_float(named.pop("base")))
            kind = _CC2_KIND[match.group(1).lower()]
            tgt = py2_float(named.pop("tgtfactor")) if kind != "default" else None
            steps = py2_int(named.pop("numsteps")) if kind == "dexp" else None
        except (ValueError, KeyError):
            return None
        if named:
            return None
        schedules.append(Schedule(kind, tgt, 0.0 if tgt is not None else None, steps, part.strip(), "cc2", False))
    # One schedule per layer in 2012 (schedW): the first input's stands for all of them.
    return tuple(bases), schedules[0]


def _layer_params(section: MergedSection, strict: bool, findings: list[Finding]) -> LayerParams:
    reader = _Reader(section, strict, findings)
    values: dict[str, object] = {}
    entries: dict[str, Entry] = {}
    unknown: list[str] = []
    for entry in section.entries.values():
        name = _CANONICAL_KEY.get(entry.name)
        if name in ("epsW", "epsB") and "[" in entry.value:
            cc2 = _cc2_rates(entry.value)
            if cc2 is not None:
                bases, schedule = cc2
                values[name] = bases if name == "epsW" else bases[0]
                entries[name] = entry
                sched_key = "schedW" if name == "epsW" else "schedB"
                if sched_key not in section:
                    values[sched_key] = schedule
                    entries[sched_key] = entry
                reader.report(Finding(entry.span, "error", "params.cc2-rate",
                                      f"Layer '{section.name}': {name}={entry.value} is cuda-convnet2 (2014) "
                                      f"syntax, which the 2012 parser refuses (a list of floats); read as "
                                      f"{name}={','.join(_fmt_number(b) for b in bases)} with "
                                      f"{sched_key}={schedule.canonical()}"), fatal=False)
                continue
        if name is None:
            values[entry.key] = entry.value
            entries[entry.key] = entry
            unknown.append(entry.key)
            findings.append(Finding(entry.span, "warning", "params.unknown-key",
                                    f"layer {section.name!r}: key {entry.key!r} is read by no layer type "
                                    "of the release"))
            continue
        if name in OLD_KEYS:
            kind, why = OLD_KEYS[name]
            unknown.append(name)
            findings.append(Finding(entry.span, "info", "params.ignored-key",
                                    f"layer {section.name!r}: the release ignores {entry.key}={entry.value}: {why}"))
        else:
            kind = RELEASE_KEYS[name]
        values[name] = reader.read(name, kind, entry)
        entries[name] = entry

    lists = {name: _typed(values, name, tuple) for name in _PER_INPUT}
    count = max((len(v) for v in lists.values() if v is not None), default=0)
    inputs = tuple(InputParams(*(v[i] if v is not None and i < len(v) else None
                                 for v in (lists[n] for n in _PER_INPUT)))
                   for i in range(count))
    number = (int, float)
    return LayerParams(
        name=section.name, span=section.span, spans=section.spans, inputs=inputs,
        epsB=_typed(values, "epsB", number), momB=_typed(values, "momB", number),
        schedW=_typed(values, "schedW", Schedule), schedB=_typed(values, "schedB", Schedule),
        sched=_typed(values, "sched", Schedule),
        scale=_typed(values, "scale", number), pow=_typed(values, "pow", number),
        minDiv=_typed(values, "minDiv", number), enable=_typed(values, "enable", bool),
        coeff=_typed(values, "coeff", number), topk=_typed(values, "topk", int),
        wcNormMin=_typed(values, "wcNormMin", tuple), wcNormMax=_typed(values, "wcNormMax", tuple),
        wcnorm=_typed(values, "wcnorm", tuple),
        quantF=values.get("quantF") if values.get("quantF") in ("default", "half") else None,
        quantB=values.get("quantB") if values.get("quantB") in ("default", "half") else None,
        doMax=_typed(values, "doMax", bool),
        superEps=_typed(values, "superEps", number), superMom=_typed(values, "superMom", number),
        values=values, entries=entries, unknown_keys=tuple(unknown),
    )


def parse_params(cfg: CfgFile, *, strict: bool = False) -> ParamSet:
    """Type every section of a parsed params file.

    strict: raise the first fatal problem as an ArchiveError (a line the cfg
    reader could not read, a bad number or bool, a value that is no schedule
    at all). Schedules that are well-formed but in a spelling the release
    rejects are read in both modes, with an error Finding.
    """
    if strict:
        for problem in cfg.problems:
            if problem.severity == "error":
                raise problem.as_error()
    findings: list[Finding] = list(cfg.problems)
    layers = []
    for name, section in cfg.merged().items():
        if len(section.spans) > 1:
            lines = ", ".join(str(s.line) for s in section.spans)
            findings.append(Finding(section.span, "info", "params.repeated-section",
                                    f"section [{name}] is written {len(section.spans)} times (lines {lines}); "
                                    "Python 2's ConfigParser merged them, later keys winning"))
        layers.append(_layer_params(section, strict, findings))
    return ParamSet(cfg.path, tuple(layers), tuple(findings))


def load_params(path: Path | str, *, display_path: str | None = None, strict: bool = False) -> ParamSet:
    """Read and type a params file (`display_path` names it in spans)."""
    return parse_params(read_cfg(path, display_path), strict=strict)


# --------------------------------------------------------------------------
# Checks that need the layer graph
# --------------------------------------------------------------------------

def check_against(params: ParamSet, layer_input_counts: Mapping[str, int],
                  layer_types: Mapping[str, str] | None = None, *,
                  pool_kinds: Mapping[str, str] | None = None,
                  layers_path: str | None = None) -> list[Finding]:
    """What the release's `LayerParser.parse_layers` / `add_params` would say
    about this params file for a layer graph.

    layer_input_counts: number of inputs of every layer of the graph.
    layer_types: the `type=` of each layer (enables the requiresParams and
    required-key checks); pool_kinds: `pool=` of pool layers (pool=rand needs
    params). A detached `X_neuron` layer reads X's section, so only graph
    layers are expected here.
    """
    findings: list[Finding] = []
    layer_types = layer_types or {}
    pool_kinds = pool_kinds or {}
    where = layers_path or "the layer file"
    for layer in params.layers:
        if layer.name not in layer_input_counts:
            # The release never looks at such a section: it is dead text, not a refusal.
            findings.append(Finding(layer.span, "warning", "params.no-such-layer",
                                    f"section [{layer.name}] names no layer of {where}; the release ignores it"))
            continue
        n_inputs = layer_input_counts[layer.name]
        layer_type = layer_types.get(layer.name)
        read = _keys_read(layer_type, pool_kinds.get(layer.name)) if layer_type else None
        listed = ("epsW", "momW", "wc", "wball", "wcNormMin", "wcNormMax")
        if read is not None:
            listed = tuple(k for k in listed if k in read)
            for key, required in read.items():
                if required and key not in layer.values:
                    findings.append(Finding(layer.span, "error", "params.missing-key",
                                            f"Layer '{layer.name}': required parameter '{key}' missing"))
            for key in layer.values:
                if key in RELEASE_KEYS and key not in read:
                    findings.append(Finding(layer.value_span(key), "info", "params.key-not-read",
                                            f"layer {layer.name!r} of type {layer_type!r}: "
                                            f"the release does not read {key!r}"))
        for key in listed:
            value = layer.values.get(key)
            if isinstance(value, tuple) and len(value) != n_inputs:
                # WeightLayerParser/ConvLayerParser: verify_num_params
                findings.append(Finding(layer.value_span(key), "error", "params.list-length",
                                        f"Layer '{layer.name}': {key} list length does not match number of inputs "
                                        f"({len(value)} values, {n_inputs} inputs)"))
        if (read is None or "wcNormMin" in read) and layer.wcNormMin and layer.wcNormMax:
            if any(lo > hi for lo, hi in zip(layer.wcNormMin, layer.wcNormMax)):
                findings.append(Finding(layer.value_span("wcNormMin"), "error", "params.wcnorm-order",
                                        f"Layer '{layer.name}': wcNormMin must be <= wcNormMax."))
    sections = set(params.names())  # `name in params` scans the layers
    for name, layer_type in layer_types.items():
        if name not in sections and _requires_params(layer_type, pool_kinds.get(name)):
            findings.append(Finding(SourceSpan(params.path, 1), "error", "params.missing-section",
                                    f"Layer '{name}' of type '{layer_type}' requires extra parameters, "
                                    f"but none given in file '{params.path}'."))
    return findings
