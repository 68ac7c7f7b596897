"""The experiment log at the end of the parameter files, as typed entries.

From summer 2012 to March 2013 Alex Krizhevsky kept his lab notebook in the
comment lines at the bottom of each ``layer-params-*.cfg``: which experiment a
net derives from, the machine it ran on, its run directory and log file, every
hand-made change of learning rate at a given epoch, when and why it was killed,
and the error rates it reached. The 2012 code never read these lines
(``MyConfigParser`` in layer.py drops comments), so this grammar is learnt from
the files themselves, not from any original parser.

Guarantees:

- every comment line lands in exactly one `LogEntry`; a line nothing here
  understands is kept verbatim as a `Note` (kind ``note``);
- an entry keeps its line numbers and its verbatim text (`LogEntry.text`);
- entries are grouped into `Run` records (one training run each: restarts,
  copied notes of other experiments, "now lets run this for 80 epochs ...").

Reading rules (each decided from the release, see tests/archive/test_logbook.py):

- Blocks. A blank line or any non-comment line (a ``[section]``: layer-params-154.cfg
  pasted its whole file, log included, twice) ends a block of comment lines.
- Empty comment lines (``#`` alone) join the entry before them in their block
  (or the one after, or form a note of their own when alone).
- Continuations. An indented line (``#           set color noise to 0 from 0.1``)
  continues the epoch entry above it: more changes, or a remark. An indented
  result line (``#           logprob:  1.85, ...``) is a result of its own: the
  indent only aligns it with the ``multiview logprob:`` line below. An unparsed
  line right after a lineage sentence continues that sentence ("and has
  narrower columns ..."); one starting with "but"/"and"/"so" after a status
  continues its reason.
- Result labels on their own line ("validation multiview error:") are merged
  with the result line that follows into one two-line entry; a label with no
  result after it is a note. ``python convnet.py ... --multiview-test=1`` is a
  command entry whose flag sets `multiview` of the result right after it.
- Epochs. ``epoch 23:``, ``epcoh 98:`` (typo), ``epoch  77:``, ``epoch 4.7822:``
  (fractions: the 2009/2011 sets were trained in fractions of an epoch),
  ``after 84 epochs:``. ``epoch 4x:`` (layer-params-132.cfg; a digit never
  filled in) keeps ``epoch_text="4x"`` and ``epoch=None``: the neighbours only
  bound it (between 23 and 65). ``300 batches:`` keeps ``epoch=None``,
  ``epoch_text="300 batches"`` and ``Event.batch=300``.
- Runs. Each block starts a new run, except a block that (a) restates the
  block before it line for line and then goes on (layer-params-154.cfg), (b)
  follows a block holding only description (lineage, def file, dataset, notes:
  layer-params-137.cfg opens with "this is like #135 ..." alone), (c) holds
  only notes, or (d) goes on with a run directory the current run already has.
  Inside a block a heading ("restart:", "135 notes:", "now trying wball ...")
  starts a new run, and so does a run directory with another timestamp (or
  suffix) than the current run's, once that run has one; the host, log-file,
  def-file, dataset and init lines just before such a directory move with it
  into the new run (layer-params-130.cfg: "on guppy9 / logs/layers-130a.log /
  .../ConvNet__2012-08-09_14.09.20"). The same directory under another root
  (/storage/tmp -> /nobackup/kriz/tmp) is the same run moving host.
- Restated lines (`LogEntry.repeat_of`): in a block of kind (a) the repeated
  lines are entries like any other, but they name the line they repeat and do
  not count again in their run's hosts, run dirs or log paths.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

from .cfgfile import COMMENT, CfgFile, Line
from .source import SourceSpan

# ---------------------------------------------------------------------------
# Records


def _jsonable(value: Any) -> Any:
    if isinstance(value, (Change, Dataset)):
        return value.to_json()
    if isinstance(value, SourceSpan):
        return value.line
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _record_json(record: Any) -> dict[str, Any]:
    return {f.name: _jsonable(getattr(record, f.name)) for f in fields(record)}


@dataclass(frozen=True, slots=True)
class Dataset:
    """A training set as the log names it, normalised: name "ILSVRC-2010",
    "ILSVRC-2012", "ImageNet-2009", "ImageNet-2011", "ImageNet", "Flickr" or
    "CIFAR-10"; `full` for ILSVRC-2012 "(full)" / "(non-full)" when said;
    `subset` such as "1-8800", "10k", "20k", "half", "jpeg", "16k"; `text` as written."""

    name: str
    full: bool | None
    subset: str | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return _record_json(self)


@dataclass(frozen=True, slots=True)
class Change:
    """One hand-made change: "set epsw to 0.001 from 0.01 on conv1,conv2".

    action: "set" | "init" | "backup" | "enable" | "turn_on" | "turn_off".
    quantity: normalised name ("epsw", "color noise", "brightness noise", "wc",
    "mini", "epochs", "schedw", "schedw factor", "fade prob", "domax", "dropout")
    or None. new/old: floats where numeric, else the text ("default",
    "dexp[250,0,4]", a backup path). layers: named layers, "conv1/2" and
    "conv1-5" expanded. scope: "everywhere" | "elsewhere" | "conv layers" | None.
    qualifier: trailing words ("(conv1/2 still 0)", "to increase learning rate").
    """

    action: str
    quantity: str | None
    new: float | str | None
    old: float | str | None
    layers: tuple[str, ...]
    scope: str | None
    qualifier: str | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return _record_json(self)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """Base of every entry. `span`: the first line; `lines`: all its line
    numbers; `text`: the comment text of those lines without the leading '#',
    joined by newlines; `epoch`: when it happened, if said; `run`: index into
    `Logbook.runs`; `repeat_of`: the line this entry restates, if it does."""

    kind: ClassVar[str] = "note"

    span: SourceSpan
    lines: tuple[int, ...]
    text: str
    epoch: float | None
    epoch_text: str | None
    run: int
    repeat_of: int | None

    def to_json(self) -> dict[str, Any]:
        data = _record_json(self)
        return {"kind": self.kind, **data}


@dataclass(frozen=True, slots=True)
class Note(LogEntry):
    """A line kept verbatim because no rule here reads it ("uhh.. relu wiped this. nice.")."""

    kind: ClassVar[str] = "note"


@dataclass(frozen=True, slots=True)
class Lineage(LogEntry):
    """"this is like #101 but ...": the experiments this one derives from.

    relation: "like" | "is" | "hybrid" | "based_on" | "trains"; primary: False for
    "its also like" / "this is also like"; change: the rest of the sentence
    (continuation lines joined by a space); layers_file: the definition file it
    reuses ("so uses def file #120", "(hence uses same file)"); parent_host: the
    "(on gpu)" after a parent, where that parent ran; host: "on krunch" in the
    sentence; dataset: what it was trained on, if the sentence says."""

    kind: ClassVar[str] = "lineage"
    relation: str
    parents: tuple[str, ...]
    primary: bool
    change: str
    layers_file: str | None
    parent_host: str | None
    host: str | None
    dataset: Dataset | None


@dataclass(frozen=True, slots=True)
class DefFile(LogEntry):
    """"use def file 153", "uses config file #153-4gpu": the layers-*.cfg used."""

    kind: ClassVar[str] = "def_file"
    layers_file: str


@dataclass(frozen=True, slots=True)
class Host(LogEntry):
    """The machine: "on guppy9", "guppy9", "on gpu (now guppy8)", "moved to guppy9",
    "resuming from epoch 10 on guppy7". action: "on" | "moved" | "resumed"."""

    kind: ClassVar[str] = "host"
    host: str
    action: str
    now: str | None


@dataclass(frozen=True, slots=True)
class RunDir(LogEntry):
    """A run (checkpoint) directory, ``.../ConvNet__2012-07-26_04.06.44[suffix]``;
    `start` is the time in its name (convnet.py names it at start-up)."""

    kind: ClassVar[str] = "run_dir"
    path: str
    start: datetime | None
    suffix: str


@dataclass(frozen=True, slots=True)
class BackupDir(LogEntry):
    """"backup: /ais/..." (with its "also /ais/..." line), or "169 backup at 23
    epochs: /nobackup/...bak (guppy9)" (experiment, at_epoch, host)."""

    kind: ClassVar[str] = "backup_dir"
    paths: tuple[str, ...]
    experiment: str | None
    at_epoch: float | None
    host: str | None


@dataclass(frozen=True, slots=True)
class LogPath(LogEntry):
    """"logs/layers-120.log": where the training output went."""

    kind: ClassVar[str] = "log_path"
    path: str


@dataclass(frozen=True, slots=True)
class Event(LogEntry):
    """Changes made by hand, usually at an epoch: "epoch 23: set epsw to 0.001
    from 0.01". `remarks`: words on its lines that are not a change; `batch`:
    for "300 batches:"."""

    kind: ClassVar[str] = "event"
    changes: tuple[Change, ...]
    remarks: tuple[str, ...]
    batch: int | None


@dataclass(frozen=True, slots=True)
class Status(LogEntry):
    """What became of the run: status "killed" | "on_hold" | "paused" |
    "restarted" | "reverted" | "deferred" | "not_started"; `reason` the words
    given; `from_epoch` for "restarting from 35"; `path` for "going back to
    training /nobackup/...bak"."""

    kind: ClassVar[str] = "status"
    status: str
    reason: str | None
    from_epoch: float | None
    path: str | None


@dataclass(frozen=True, slots=True)
class Result(LogEntry):
    """An error measurement. cost (the logprob cost, nats), top1, top5 (error
    rates); `values` as written; form: "logprob" ("logprob: a, b, c"), "list"
    ("[a, b, c]", printed by Python), "tuple" ("(294, b, c)": the first number
    is not a cost, so cost is None), "bare" ("a, b, c"), "pair" (top1, top5
    only), "cost" ("1.85 :("), "percent" ("18% error on CIFAR-10"). multiview:
    True / False / None when not said; split: "validation" | "test" | None;
    label: its label as written (own line or prefix); remark: trailing words;
    command_line: the line of the `python convnet.py` command it answers."""

    kind: ClassVar[str] = "result"
    cost: float | None
    top1: float | None
    top5: float | None
    values: tuple[float, ...]
    form: str
    multiview: bool | None
    split: str | None
    label: str | None
    remark: str | None
    dataset: Dataset | None
    command_line: int | None


@dataclass(frozen=True, slots=True)
class Command(LogEntry):
    """"python convnet.py -f DIR --test-only=1 --multiview-test=1": argv, its
    options ({"-f": DIR, "--test-only": "1", ...}), and the multiview flag."""

    kind: ClassVar[str] = "command"
    argv: tuple[str, ...]
    options: dict[str, str]
    multiview_test: bool | None


@dataclass(frozen=True, slots=True)
class ParamCount(LogEntry):
    """"140523240 params (incl biases)"."""

    kind: ClassVar[str] = "param_count"
    count: int
    detail: str | None


@dataclass(frozen=True, slots=True)
class Init(LogEntry):
    """How the run started: settings ("init epsw 0.001, 0.0001 on conv1",
    "start epsw 0.001 (still 0 on conv1)", "color noise put back to 0.1",
    "50 epochs") and/or the weights it started from ("initialized from 24
    epochs of #169": source_experiment "169", source_epochs 24)."""

    kind: ClassVar[str] = "init"
    settings: tuple[Change, ...]
    source: str | None
    source_experiment: str | None
    source_path: str | None
    source_epochs: float | None


@dataclass(frozen=True, slots=True)
class DatasetEntry(LogEntry):
    """"trained on 2010", "on lsvrc-2010:", "now let's train on 2009 1-8800"."""

    kind: ClassVar[str] = "dataset"
    dataset: Dataset


@dataclass(frozen=True, slots=True)
class Heading(LogEntry):
    """Starts a run: "restart:", "batch size 128 x 8:", "135 notes:" (the block
    copies experiment 135's notes: `experiment`), "restart from 31, ..."
    (action "restart", from_epoch 31), "resuming for 55 more epochs ...:"
    (action "resume")."""

    kind: ClassVar[str] = "heading"
    label: str
    experiment: str | None
    action: str | None
    from_epoch: float | None


ENTRY_CLASSES: dict[str, type[LogEntry]] = {
    cls.kind: cls
    for cls in (Note, Lineage, DefFile, Host, RunDir, BackupDir, LogPath, Event, Status, Result,
                Command, ParamCount, Init, DatasetEntry, Heading)
}


@dataclass(frozen=True, slots=True)
class Run:
    """One training run. `start` is the time in its first run directory's name;
    hosts in order (moves included, repeats in a row collapsed); status: the
    last status entry's after its first run directory ("not starting this
    because ..." before it is no final word); last_epoch: the largest epoch any entry names;
    entries: indices into `Logbook.entries`; parents/layers_file from its
    first primary lineage sentence and def-file mention."""

    index: int
    label: str | None
    experiment: str | None
    start: datetime | None
    run_dirs: tuple[str, ...]
    hosts: tuple[str, ...]
    log_paths: tuple[str, ...]
    dataset: Dataset | None
    status: str | None
    last_epoch: float | None
    parents: tuple[str, ...]
    layers_file: str | None
    entries: tuple[int, ...]
    span: SourceSpan

    @property
    def host(self) -> str | None:
        """The machine the run started on."""
        return self.hosts[0] if self.hosts else None

    def to_json(self) -> dict[str, Any]:
        return {**_record_json(self), "host": self.host}


@dataclass(frozen=True, slots=True)
class Logbook:
    """The log of one file: its entries in file order and its runs."""

    path: str
    entries: tuple[LogEntry, ...]
    runs: tuple[Run, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path,
                "entries": [e.to_json() for e in self.entries],
                "runs": [r.to_json() for r in self.runs]}

    def typed_count(self) -> int:
        return sum(1 for e in self.entries if e.kind != "note")

    def note_count(self) -> int:
        return sum(1 for e in self.entries if e.kind == "note")

    def lines_covered(self) -> set[int]:
        return {n for e in self.entries for n in e.lines}

    def of_kind(self, kind: str) -> list[LogEntry]:
        return [e for e in self.entries if e.kind == kind]


def def_file_name(ref: str) -> str:
    """The layers file a def-file reference names: "153" -> "layers-153.cfg",
    "layers-141-2009-2010.cfg" -> itself."""
    return ref if ref.endswith(".cfg") else f"layers-{ref.lstrip('#')}.cfg"


# ---------------------------------------------------------------------------
# Grammar

_I = re.IGNORECASE
_HOST = r"guppy\d*|gpu|krunch"
_NUM = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
_ID = r"#?\d+(?:-[a-z0-9]+)*"
_LAYER = r"(?:conv|fc|pool|hs|rnorm|cnorm|logprob)\w*(?:[-/]\d+)?"
_LAYERS = rf"{_LAYER}(?:\s*,\s*{_LAYER})*"
_QUANT = (r"color\s+\(brightness\)\s+noise|color\s+noise|brightness\s+noise|epstw|epsw|epw|eps|wc"
          r"|minibatch|mini|epochs|schedw\s+factor|schedw|fade\s+probability|fade\s+prob|domax|dropout")
_VALUE = r"-?\d+(?:\.\d+)?(?:e-?\d+)?|[a-z]\w*(?:\[[^\]]*\])?"

_EPOCH_RE = re.compile(
    r"(?:ep(?:och|coh)\s+(?P<e>\d+(?:\.\d+)?(?![\dx])|\d+x)|after\s+(?P<a>\d+(?:\.\d+)?)\s+epochs"
    r"|(?P<b>\d+)\s+batches)\s*:\s*", _I)
_RUN_DIR_RE = re.compile(
    r"(?P<path>(?:\S*/)?ConvNet__(?P<ts>\d{4}-\d\d-\d\d_\d\d\.\d\d\.\d\d)(?P<suffix>\S*))")
_LOG_RE = re.compile(r"(?P<path>logs/\S+\.log)")
_HOST_RE = re.compile(rf"(?:on\s+)?(?P<host>{_HOST})(?:\s*\(now\s+(?P<now>{_HOST})\))?", _I)
_MOVE_RE = re.compile(rf"(?:moved|moving|move)(?:\s+back)?\s+to\s+(?P<host>{_HOST})", _I)
_RESUME_RE = re.compile(rf"resuming\s+(?:from\s+epoch\s+(?P<from>\d+)\s+)?on\s+(?P<host>{_HOST})", _I)
_PARAMS_RE = re.compile(r"(?P<n>\d+)\s+params\b\s*(?P<detail>.*)", _I)
_COMMAND_RE = re.compile(r"python\s+\S+\.py\b.*")
_NOTES_RE = re.compile(rf"(?P<exp>{_ID})\s+notes\b(?P<rest>[^:]*):", _I)
_DEF_FILE_RE = re.compile(r"(?:so\s+)?(?:it\s+)?(?:uses?|using)\s+(?:def|config)\s+file:?\s+(?P<ref>#?[\w.-]+?)\.?", _I)
_LINEAGE_RE = re.compile(
    rf"(?P<lead>this\s+is\s+(?:also\s+)?like|it'?s\s+also\s+like|this\s+is\s+a\s+hybrid\s+of|this\s+is"
    rf"|this\s+trains|\d+\s+gpus,\s+based\s+on|trained\s+on\s+(?P<ds>[^,.]+)[,.]\s+like)\s+"
    rf"(?P<ids>{_ID}(?:(?:\s*,\s*|\s+and\s+){_ID})*)\b(?P<rest>.*)", _I)
_PAREN_RE = re.compile(r"\s*\((?P<paren>[^)]*)\)")
_INLINE_DEF_RE = re.compile(r"(?:def|config)\s+file:?\s+#?(?P<ref>[\w-]+(?:\.cfg)?)", _I)
_SAME_FILE_RE = re.compile(r"uses\s+same\s+file", _I)
_INLINE_HOST_RE = re.compile(r"\bon\s+(?P<host>krunch|guppy\d*)\b", _I)
_TRAIN_ON_RE = re.compile(r"(?:^|[^-\w])(?:train(?:ed|ing|s\s+#?\S+)?|but)\s+on\s+", _I)
_DATASET_RE = re.compile(
    r"(?:i?lsvrc-?(?P<ly>2010|2012)(?:\s*\((?P<lf>full|non-full)\))?"
    r"|(?:ilya's\s+new\s+)?imgnet-(?P<iy>2009|2010)(?P<jpeg>\s+jpeg)?"
    r"|half\s+of\s+(?P<hy>2009)\s+imgnet|(?P<k>16k)\s+imgnet"
    r"|(?P<y>2009|2010|2011|2012)(?:[- ](?P<sub>1-8800|\d+k)\b|-(?P<yf>full|nonfull|non-full))?"
    r"(?:\s*\((?P<yp>full|non-full)\))?"
    r"|(?P<flickr>flickr)|(?P<cifar>cifar-10))", _I)
_DATASET_LINE_RE = re.compile(r"(?:on|trained\s+on|training\s+on|now\s+let'?s\s+train\s+on)\s+", _I)
_INIT_FROM_RE = re.compile(r"(?:also\s+|weights\s+)?initialized\s+from\s+(?P<src>.+)", _I)
_INIT_RE = re.compile(r"(?:init|start)\s+", _I)
_EPOCHS_RE = re.compile(r"(?P<n>\d+)\s+epochs", _I)
_NOT_DOING_RE = re.compile(r"not\s+doing\s+(?P<what>fading|fade-in)", _I)
_BACKUP_RE = re.compile(r"backup:\s*(?P<path>\S+)", _I)
_BACKUP_OF_RE = re.compile(
    rf"(?P<exp>{_ID})\s+backup\s+at\s+(?P<ep>\d+)\s+epochs:\s*(?P<path>\S+)(?:\s*\((?P<host>{_HOST})\))?", _I)
_ALSO_PATH_RE = re.compile(r"also\s+(?P<path>/\S+)", _I)
_KILLED_RE = re.compile(r"(?P<pre>[^a-z]*)killed\b(?:\s+after\s+(?P<after>\d+)\s+epochs)?[\s,.;-]*(?P<reason>.*)", _I)
_KILLING_RE = re.compile(r"\bkilling\b", _I)
_HOLD_RE = re.compile(r"(?:putting\s+)?on\s+hold\b[\s,.:;-]*(?P<reason>.*)", _I)
_PAUSED_RE = re.compile(r"paused\b\s*(?P<reason>.*)", _I)
_RESTARTING_RE = re.compile(r"(?P<reason>.*?),?\s*restarting\s+(?:from\s+(?P<from>\d+)|(?P<with>with\s+.*))", _I)
_DEFERRED_RE = re.compile(r"not\s+starting\s+this\b\s*(?P<reason>.*)", _I)
_DEAD_RE = re.compile(rf"\((?P<reason>(?:{_HOST})\s+is\s+dead\b.*)\)", _I)
_REVERT_RE = re.compile(r"(?P<reason>.*?)\.?\s*going\s+back\s+to\s+training\s+(?P<path>/\S+)", _I)
_RESTART_HEAD_RE = re.compile(r"restart\b(?P<rest>.*)", _I)
_FROM_RE = re.compile(r"\bfrom\s+(?P<n>\d+)\b", _I)
_NOW_HEAD_RE = re.compile(r"now\s+(?:trying|with|lets|let's)\b", _I)
_COLON_HEAD_RE = re.compile(r"[^:]{3,120}:")
_NUMS_RE = re.compile(rf"(?P<a>{_NUM})\s*,\s*(?P<b>{_NUM})(?:\s*,\s*(?P<c>{_NUM}))?")
_RESULT_PREFIX_RE = re.compile(r"[a-z :]*?(?P<open>[\[(])?\s*", _I)
_RESULT_WORDS = frozenset({"validation", "valid", "test", "multiview", "multliview", "center", "patch",
                           "error", "logprob"})
_LABEL_LINE_RE = re.compile(r"(?P<label>[a-z ]+?)\s*:", _I)
_COST_ONLY_RE = re.compile(r"(?P<cost>\d+\.\d+)\s*(?P<tail>[^\w\s]*)")
_PERCENT_RE = re.compile(r"(?P<pct>\d+(?:\.\d+)?)%\s+error\s+on\s+(?P<ds>cifar-10)\b(?P<rest>.*)", _I)
_CLAUSE_SPLIT_RE = re.compile(
    r",\s+(?=(?:set|also|changed|made|enabled|turned|epsw|epstw|color|mini|wc|fade|schedw|\d|\.\d))", _I)
_SET_RE = re.compile(
    rf"(?:(?P<verb>set|changed)\s+)?(?:(?P<pre>{_LAYERS})\s+)?(?P<q>{_QUANT})(?:\s+(?P<mid>{_LAYERS}))?"
    rf"(?P<sep>\s+(?:to|ot|put\s+back\s+to)\s+|\s*=\s*|\s+)(?P<new>{_VALUE})(?:\s+from\s+(?P<old>{_VALUE}))?"
    rf"(?P<rest>.*)", _I)
_REST_RE = re.compile(rf"\s*(?:on\s+(?P<layers>conv\s+layers|{_LAYERS})\b|(?P<scope>everywhere|elsewhere)\b)?"
                      rf"\s*(?P<qual>.*)", _I)
_VALUE_ONLY_RE = re.compile(
    rf"(?P<new>{_NUM})\s+(?:on\s+(?P<layers>conv\s+layers|{_LAYERS})\b|(?P<scope>everywhere|elsewhere)\b)"
    rf"\s*(?P<qual>.*)", _I)
_BACKUP_TO_RE = re.compile(r"made\s+backup\s+to\s+(?P<path>\S+)", _I)
_ENABLE_RE = re.compile(rf"(?P<verb>enabled|disabled)\s+(?P<q>[\w-]+)(?:\s+on\s+(?P<layers>{_LAYERS}))?", _I)
_TURN_RE = re.compile(r"turned\s+(?P<dir>on|off)\s+(?P<what>.+)", _I)
_USING_RE = re.compile(rf"using\s+(?P<q>{_QUANT})\s+of\s+(?P<new>{_NUM})\s*(?P<qual>.*)", _I)
_SPACES_RE = re.compile(r"\s+")
_COMMA_RE = re.compile(r"\s*,\s*")
_RANGE_RE = re.compile(r"([a-z]+)(\d+)([-/])(\d+)", _I)
_CONV_LAYERS_RE = re.compile(r"conv\s+layers", _I)
_ALSO_RE = re.compile(r"also\s+", _I)
_WORD_RE = re.compile(r"[a-z]+", _I)
_LOGPROB_TAIL_RE = re.compile(r"\s*logprob\s*:\s*$", _I)
_ID_RE = re.compile(_ID, _I)
_PAREN_HOST_RE = re.compile(rf"on\s+({_HOST})", _I)
_LEAD_BUT_RE = re.compile(r"^[\s,.:;]*(?:but\b\s*)?", _I)
_SOURCE_RE = re.compile(rf"(?:(?P<ep>\d+)\s+epochs\s+of\s+)?(?P<id>{_ID})\b", _I)
_PATH_RE = re.compile(r"/\S+")
_SET_VERB_RE = re.compile(r"(?:set|changed)\b", _I)

_QUANTITY_NAMES = {"epstw": "epsw", "epw": "epsw", "eps": "epsw", "epsw": "epsw",
                   "color (brightness) noise": "brightness noise", "minibatch": "mini",
                   "fade probability": "fade prob"}


def _number(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _quantity(text: str) -> str:
    name = _SPACES_RE.sub(" ", text.lower())
    return _QUANTITY_NAMES.get(name, name)


def _expand_layers(text: str | None) -> tuple[str, ...]:
    """"conv1,conv2" -> (conv1, conv2); "conv1/2" -> (conv1, conv2); "conv1-5" -> conv1..conv5."""
    if not text:
        return ()
    names: list[str] = []
    for part in _COMMA_RE.split(text.strip()):
        m = _RANGE_RE.fullmatch(part)
        if m:
            first, last = int(m.group(2)), int(m.group(4))
            # "conv1-5" is a range; "conv1/2" two layers; a range of more than a net's depth is no range
            ranged = m.group(3) == "-" and first < last <= first + 32
            numbers = range(first, last + 1) if ranged else (first, last)
            names.extend(f"{m.group(1)}{n}" for n in numbers)
        elif part:
            names.append(part)
    return tuple(names)


def _layers_and_scope(text: str | None) -> tuple[tuple[str, ...], str | None]:
    if text and _CONV_LAYERS_RE.fullmatch(text):
        return (), "conv layers"
    return _expand_layers(text), None


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def _dataset(m: re.Match[str]) -> Dataset:
    g = m.group
    text = m.group(0)
    year = g("ly") or g("iy") or g("hy") or g("y")
    full_word = (g("lf") or g("yf") or g("yp") or "").lower()
    full = None if not full_word else full_word == "full"
    subset = g("sub") or ("half" if g("hy") else None) or ("jpeg" if g("jpeg") else None)
    if g("flickr"):
        return Dataset("Flickr", None, None, text)
    if g("cifar"):
        return Dataset("CIFAR-10", None, None, text)
    if g("k"):
        return Dataset("ImageNet", None, "16k", text)
    if year in ("2010", "2012"):
        return Dataset(f"ILSVRC-{year}", full, subset, text)
    return Dataset(f"ImageNet-{year}", full, subset, text)


def _trained_on(text: str) -> Dataset | None:
    """The set a sentence says a net was trained on ("trained on lsvrc-2012 (full)",
    "this trains 135 on 2012", "but on flickr"); "pre-trained on" does not count."""
    found = None
    for m in _TRAIN_ON_RE.finditer(text):
        d = _DATASET_RE.match(text, m.end())
        if d:
            found = _dataset(d)
    return found


# ---------------------------------------------------------------------------
# Changes ("set epsw to 0.001 from 0.01 on conv1,conv2")


def _parse_clause(clause: str, prev: Change | None, action: str) -> Change | None:
    text = clause.strip()
    also = _ALSO_RE.match(text)
    body = text[also.end():] if also else text
    first = body[:4].lower()  # cheap dispatch on the verb before any regex
    if first == "made":
        m = _BACKUP_TO_RE.fullmatch(body)
        if m:
            return Change("backup", None, m.group("path"), None, (), None, None, text)
    elif first in ("enab", "disa"):
        m = _ENABLE_RE.fullmatch(body)
        if m and m.group("q").lower() in ("dropout", "fade-in", "fading"):
            return Change("enable" if m.group("verb").lower() == "enabled" else "disable",
                          _quantity(m.group("q")), None, None, _expand_layers(m.group("layers")), None, None, text)
    elif first == "turn":
        m = _TURN_RE.fullmatch(body)
        if m:
            what = m.group("what").strip()
            value = _number(what)
            is_number = isinstance(value, float)
            return Change("turn_" + m.group("dir").lower(), None if is_number else what,
                          value if is_number else None, None, (), None, None, text)
    elif first == "usin":
        m = _USING_RE.fullmatch(body)
        if m:
            return Change(action, _quantity(m.group("q")), float(m.group("new")), None, (), None,
                          _clean(m.group("qual")), text)
    m = _SET_RE.fullmatch(body)
    if m:
        new = _number(m.group("new"))
        if m.group("sep").strip() == "" and not isinstance(new, float):
            return None  # "set epsw foo": a word value needs "to" or "="
        rest = _REST_RE.fullmatch(m.group("rest"))
        if rest is None:  # every group is optional: only odd line breaks get here
            return None
        layers, scope = _layers_and_scope(rest.group("layers"))
        layers = _expand_layers(m.group("pre")) + _expand_layers(m.group("mid")) + layers
        return Change(action, _quantity(m.group("q")), new, _number(m.group("old")), layers,
                      scope or _clean(rest.group("scope") and rest.group("scope").lower()),
                      _clean(rest.group("qual")), text)
    m = _VALUE_ONLY_RE.fullmatch(body)
    if m and prev is not None and prev.quantity is not None:
        layers, scope = _layers_and_scope(m.group("layers"))
        return Change(prev.action, prev.quantity, float(m.group("new")), None, layers,
                      scope or _clean(m.group("scope") and m.group("scope").lower()), _clean(m.group("qual")), text)
    return None


@lru_cache(maxsize=4096)
def _parse_changes(text: str, action: str = "set") -> tuple[tuple[Change, ...], tuple[str, ...]]:
    """Split a line into clauses; return the changes found and the clauses left over."""
    changes: list[Change] = []
    remarks: list[str] = []
    prev: Change | None = None
    for clause in _CLAUSE_SPLIT_RE.split(text.strip()):
        change = _parse_clause(clause, prev, action)
        if change is None:
            if clause.strip():
                remarks.append(clause.strip())
        else:
            changes.append(change)
            prev = change
    return tuple(changes), tuple(remarks)


# ---------------------------------------------------------------------------
# One line -> (kind, fields)

_Fields = dict[str, Any]


def _result_fields(text: str) -> _Fields | None:
    """ "logprob:  1.634692, 0.378533, 0.172360", "[a, b, c]", "(294, b, c)",
    "a, b", "validation multiview: logprob: ...", "1.85 :(", "18% error on CIFAR-10"."""
    m = _NUMS_RE.search(text)
    if m is None:
        c = _COST_ONLY_RE.fullmatch(text)
        if c:
            return {"cost": float(c.group("cost")), "top1": None, "top5": None,
                    "values": (float(c.group("cost")),), "form": "cost", "multiview": None, "split": None,
                    "label": None, "remark": _clean(c.group("tail")), "dataset": None, "command_line": None}
        p = _PERCENT_RE.fullmatch(text)
        if p:
            d = _DATASET_RE.fullmatch(p.group("ds"))
            return {"cost": None, "top1": float(p.group("pct")) / 100, "top5": None,
                    "values": (float(p.group("pct")),), "form": "percent", "multiview": None, "split": None,
                    "label": None, "remark": _clean(p.group("rest")), "dataset": d and _dataset(d),
                    "command_line": None}
        return None
    prefix = text[:m.start()]
    pm = _RESULT_PREFIX_RE.fullmatch(prefix)
    if pm is None:
        return None
    words = _WORD_RE.findall(prefix.lower())
    if any(w not in _RESULT_WORDS for w in words):
        return None
    values = tuple(float(v) for v in m.group("a", "b", "c") if v is not None)
    tail = text[m.end():].strip()
    opener = pm.group("open")
    if opener and tail[:1] in ("]", ")"):
        tail = tail[1:].strip()
    if len(values) == 3:
        form = "logprob" if "logprob" in words else {"[": "list", "(": "tuple"}.get(opener or "", "bare")
        # "(294, 0.371, 0.168)" (layer-params-98-16kinit.cfg): 294 is no log-prob cost.
        cost = values[0] if not (values[0] >= 10 and values[0].is_integer()) else None
        top1, top5 = values[1], values[2]
    else:
        form, cost, top1, top5 = "pair", None, values[0], values[1]
    if tail and not (tail.startswith("(") or not _WORD_RE.search(tail)):
        return None  # numbers inside a sentence
    # the label without the "logprob:" every result line carries
    label = _LOGPROB_TAIL_RE.sub("", prefix.strip().rstrip("[(").strip()) or None
    fields_ = {"cost": cost, "top1": top1, "top5": top5, "values": values, "form": form,
               "multiview": None, "split": None, "label": label, "remark": tail or None,
               "dataset": None, "command_line": None}
    _apply_label(fields_, words, tail)
    return fields_


def _apply_label(fields_: _Fields, words: list[str], tail: str = "") -> None:
    if "test" in words:
        fields_["split"] = "test"
    elif "validation" in words or "valid" in words:
        fields_["split"] = "validation"
    if "multiview" in words or "multliview" in words:
        fields_["multiview"] = True
    elif "center" in words or "not multiview" in tail.lower():
        fields_["multiview"] = False


def _label_line(text: str) -> list[str] | None:
    """ "validation multiview error:" alone on its line: the words, else None."""
    m = _LABEL_LINE_RE.fullmatch(text)
    if not m:
        return None
    words = m.group("label").lower().split()
    if words and all(w in _RESULT_WORDS for w in words) and any(
            w in ("test", "validation", "valid", "multiview", "multliview") for w in words):
        return words
    return None


def _lineage_fields(text: str) -> _Fields | None:
    m = _LINEAGE_RE.fullmatch(text)
    if m is None:
        return None
    lead = _SPACES_RE.sub(" ", m.group("lead").lower())
    if "hybrid" in lead:
        relation = "hybrid"
    elif "based on" in lead:
        relation = "based_on"
    elif "trains" in lead:
        relation = "trains"
    elif "like" in lead:
        relation = "like"
    else:
        relation = "is"
    parents = tuple(p.lstrip("#") for p in _ID_RE.findall(m.group("ids")))
    rest = m.group("rest")
    layers_file = parent_host = None
    paren = _PAREN_RE.match(rest)
    if paren:
        inner = paren.group("paren")
        host = _PAREN_HOST_RE.fullmatch(inner.strip())
        ref = _INLINE_DEF_RE.search(inner)
        if host:
            parent_host = host.group(1)
        elif ref:
            layers_file = ref.group("ref")
        elif _SAME_FILE_RE.search(inner):
            layers_file = parents[0]
        if host or ref or _SAME_FILE_RE.search(inner):
            rest = rest[paren.end():]
    change = _LEAD_BUT_RE.sub("", rest).strip()
    if layers_file is None:
        ref = _INLINE_DEF_RE.search(change)
        if ref:
            layers_file = ref.group("ref")
    host_m = _INLINE_HOST_RE.search(change)
    dataset = None
    if m.group("ds"):
        d = _DATASET_RE.fullmatch(m.group("ds").strip())
        dataset = d and _dataset(d)
    dataset = dataset or _trained_on(text)
    return {"relation": relation, "parents": parents, "primary": "also" not in lead, "change": change,
            "layers_file": layers_file, "parent_host": parent_host,
            "host": host_m.group("host") if host_m else None, "dataset": dataset}


def _status_fields(body: str) -> _Fields | None:
    def status(kind: str, reason: str | None = None, from_epoch: float | None = None,
               path: str | None = None) -> _Fields:
        return {"status": kind, "reason": _clean(reason), "from_epoch": from_epoch, "path": path}

    m = _KILLED_RE.fullmatch(body)
    if m:
        result = status("killed", m.group("reason"))
        if m.group("after"):
            result["_epoch"] = (float(m.group("after")), f"after {m.group('after')} epochs")
        return result
    m = _HOLD_RE.fullmatch(body)
    if m:
        return status("on_hold", m.group("reason"))
    m = _PAUSED_RE.fullmatch(body)
    if m:
        return status("paused", m.group("reason"))
    m = _DEFERRED_RE.fullmatch(body)
    if m:
        return status("deferred", m.group("reason"))
    m = _DEAD_RE.fullmatch(body)
    if m:
        return status("not_started", m.group("reason"))
    m = _REVERT_RE.fullmatch(body)
    if m:
        return status("reverted", m.group("reason"), path=m.group("path"))
    m = _RESTARTING_RE.fullmatch(body)
    if m:
        frm = m.group("from")
        return status("restarted", body if m.group("with") else m.group("reason"), float(frm) if frm else None)
    if _KILLING_RE.search(body):
        return status("killed", body)
    return None


def _heading_fields(text: str) -> _Fields | None:
    m = _NOTES_RE.fullmatch(text)
    if m:
        return {"label": text, "experiment": m.group("exp").lstrip("#"), "action": "notes", "from_epoch": None}
    m = _RESTART_HEAD_RE.fullmatch(text)
    if m:
        frm = _FROM_RE.search(m.group("rest"))
        return {"label": text, "experiment": None, "action": "restart",
                "from_epoch": float(frm.group("n")) if frm else None}
    if _COLON_HEAD_RE.fullmatch(text) or _NOW_HEAD_RE.match(text):
        action = "resume" if text.lower().startswith("resuming") else None
        return {"label": text, "experiment": None, "action": action, "from_epoch": None}
    return None


def _init_fields(text: str) -> _Fields | None:
    m = _INIT_FROM_RE.fullmatch(text)
    if m:
        src = m.group("src").strip()
        exp = _SOURCE_RE.match(src)
        path = _PATH_RE.search(src)
        return {"settings": (), "source": src,
                "source_experiment": exp.group("id").lstrip("#") if exp else None,
                "source_path": path.group(0) if path else None,
                "source_epochs": float(exp.group("ep")) if exp and exp.group("ep") else None}
    m = _EPOCHS_RE.fullmatch(text)
    if m:
        change = Change("init", "epochs", float(m.group("n")), None, (), None, None, text)
        return {"settings": (change,), "source": None, "source_experiment": None, "source_path": None,
                "source_epochs": None}
    m = _NOT_DOING_RE.fullmatch(text)
    if m:  # "not doing fading" (layer-params-170-256.cfg): fade-in of images off for this run
        change = Change("disable", "fade", None, None, (), None, None, text)
        return {"settings": (change,), "source": None, "source_experiment": None, "source_path": None,
                "source_epochs": None}
    init = _INIT_RE.match(text)
    body = text[init.end():] if init else text
    changes, remarks = _parse_changes(body, "init")
    if changes and not remarks and (init or not _SET_VERB_RE.match(body)):
        return {"settings": changes, "source": None, "source_experiment": None, "source_path": None,
                "source_epochs": None}
    return None


_STATUS_WORDS = ("kill", "hold", "paused", "not starting", "dead", "going back", "restarting")
_HOST_FIRST = ("on", "guppy", "gpu", "krunch")


def _maybe_status(low: str) -> bool:
    return any(word in low for word in _STATUS_WORDS)


@lru_cache(maxsize=4096)
def _classify_body_cached(body: str) -> tuple[str, _Fields] | None:
    # "set epsw to 0.001 from 0.01" follows dozens of different "epoch N:" prefixes
    return _classify_body(body, body.lower())


def _classify_body(body: str, low: str) -> tuple[str, _Fields] | None:
    """A line after its epoch prefix (or a line without one): kinds that may carry
    an epoch. `low` is `body` lower-cased; cheap keyword tests keep the regexes
    for the lines that can match them."""
    if low.startswith(("mov", "resuming")):
        m = _MOVE_RE.fullmatch(body) or _RESUME_RE.fullmatch(body)
        if m:
            action = "resumed" if low.startswith("resuming") else "moved"
            fields_: _Fields = {"host": m.group("host"), "action": action, "now": None}
            if action == "resumed" and m.group("from"):
                fields_["_epoch"] = (float(m.group("from")), m.group("from"))
            return "host", fields_
    res = _result_fields(body)
    if res is not None:
        return "result", res
    status = _status_fields(body) if _maybe_status(low) else None
    if status is not None and not _SET_RE.match(body):
        return "status", status
    changes, remarks = _parse_changes(body)
    if changes:
        return "event", {"changes": changes, "remarks": remarks, "batch": None}
    if status is not None:
        return "status", status
    return None


@lru_cache(maxsize=4096)
def _classify_cached(text: str) -> tuple[str, _Fields, float | None, str | None]:
    # The release repeats many lines verbatim (copied notes, the standard epsW
    # schedule); reading each distinct line once keeps the whole release fast.
    return _classify_line(text)


def _classify(text: str) -> tuple[str, _Fields, float | None, str | None]:
    """One comment line (stripped) -> kind, fields (a fresh dict), epoch, epoch_text."""
    kind, fields_, epoch, epoch_text = _classify_cached(text)
    return kind, dict(fields_), epoch, epoch_text


def _classify_line(text: str) -> tuple[str, _Fields, float | None, str | None]:
    body = text.lstrip("#").strip()  # "# # killed in favor of 184" (layer-params-183-4gpu-26epc.cfg)
    low = body.lower()
    if low.startswith(("ep", "after", "3")):
        m = _EPOCH_RE.match(body)
        if m:
            rest = body[m.end():]
            if m.group("b"):
                epoch, epoch_text = None, f"{m.group('b')} batches"
            elif m.group("a"):
                epoch, epoch_text = float(m.group("a")), f"after {m.group('a')} epochs"
            else:
                raw = m.group("e")
                epoch, epoch_text = (None if raw.endswith("x") else float(raw)), raw
            found = _classify_body_cached(rest)
            if found is None:
                return "note", {}, epoch, epoch_text
            kind, fields_ = found[0], dict(found[1])
            fields_.pop("_epoch", None)  # the line's own epoch prefix wins
            if kind == "event" and m.group("b"):
                fields_["batch"] = int(m.group("b"))
            return kind, fields_, epoch, epoch_text

    if "convnet__" in low:
        m = _RUN_DIR_RE.fullmatch(body)
        if m:
            return "run_dir", _run_dir_fields(m), None, None
    if low.startswith("logs/"):
        m = _LOG_RE.fullmatch(body)
        if m:
            return "log_path", {"path": m.group("path")}, None, None
    if low.startswith(_HOST_FIRST):
        m = _HOST_RE.fullmatch(body)
        if m:
            return "host", {"host": m.group("host"), "action": "on", "now": m.group("now")}, None, None
    if low.startswith(("mov", "resuming")):
        found = _classify_body(body, low)
        if found is not None and found[0] == "host":
            epoch = found[1].pop("_epoch", (None, None))
            return "host", found[1], epoch[0], epoch[1]
    res = _result_fields(body)
    if res is not None:
        return "result", res, None, None
    if low.endswith(":") and _label_line(body) is not None:
        return "result_label", {}, None, None
    if low.startswith("python"):
        if _COMMAND_RE.fullmatch(body):
            return "command", _command_fields(body), None, None
    first_char = low[:1]
    if first_char.isdigit():
        m = _PARAMS_RE.fullmatch(body)
        if m:
            return "param_count", {"count": int(m.group("n")), "detail": _clean(m.group("detail"))}, None, None
        if "notes" in low:
            heading = _heading_fields(body)
            if heading is not None:
                return "heading", heading, None, None
    if "file" in low:
        m = _DEF_FILE_RE.fullmatch(body)
        if m:
            return "def_file", {"layers_file": m.group("ref").lstrip("#")}, None, None
    if "like" in low or low.startswith(("this", "4 gpus")):
        lineage = _lineage_fields(body)
        if lineage is not None:
            return "lineage", lineage, None, None
    if "backup" in low:
        m = _BACKUP_OF_RE.fullmatch(body) or _BACKUP_RE.fullmatch(body)
        if m:
            exp, epoch = m.groupdict().get("exp"), m.groupdict().get("ep")
            return "backup_dir", {"paths": (m.group("path"),), "experiment": exp and exp.lstrip("#"),
                                  "at_epoch": float(epoch) if epoch else None,
                                  "host": m.groupdict().get("host")}, None, None
    if low.startswith(("on", "train", "now")):
        m = _DATASET_LINE_RE.match(body)
        if m:
            d = _DATASET_RE.match(body, m.end())
            if d and body[d.end():].strip() in ("", ":"):
                return "dataset", {"dataset": _dataset(d)}, None, None
    if low.startswith(("init", "start", "not doing")) or "initialized" in low or "put back" in low \
            or low.endswith("epochs"):
        init = _init_fields(body)
        if init is not None:
            return "init", init, None, None
    if _maybe_status(low):
        status = _status_fields(body)
        if status is not None:
            epoch = status.pop("_epoch", (None, None))
            return "status", status, epoch[0], epoch[1]
    heading = _heading_fields(body)
    if heading is not None:
        return "heading", heading, None, None
    if low.startswith(("set", "changed")):
        changes, remarks = _parse_changes(body)
        if changes and not remarks:
            return "event", {"changes": changes, "remarks": (), "batch": None}, None, None
    return "note", {}, None, None


def _run_dir_fields(m: re.Match[str]) -> _Fields:
    ts = m.group("ts")  # 2012-07-26_04.06.44 (strptime is ten times slower)
    try:
        start: datetime | None = datetime(int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]),
                                          int(ts[14:16]), int(ts[17:19]))
    except ValueError:
        start = None
    return {"path": m.group("path"), "start": start, "suffix": m.group("suffix").rstrip("/")}


def _command_fields(text: str) -> _Fields:
    argv = tuple(text.split())
    options: dict[str, str] = {}
    i = 2
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            options[arg] = argv[i + 1]
            i += 1
        else:
            options[arg] = ""
        i += 1
    flag = options.get("--multiview-test")
    return {"argv": argv, "options": options, "multiview_test": None if flag is None else flag not in ("0", "")}


# ---------------------------------------------------------------------------
# Lines -> drafts -> entries and runs


class _Draft:
    """A mutable entry while the block is read."""

    __slots__ = ("kind", "lines", "fields", "epoch", "epoch_text", "repeat_of", "block")

    def __init__(self, kind: str, line: int, fields_: _Fields, epoch: float | None, epoch_text: str | None,
                 block: int) -> None:
        self.kind = kind
        self.lines = [line]
        self.fields = fields_
        self.epoch = epoch
        self.epoch_text = epoch_text
        self.repeat_of: int | None = None
        self.block = block


_CONJUNCTION_RE = re.compile(r"(?:but|and|so|that)\b|\.\.", _I)
_PREAMBLE_KINDS = frozenset({"lineage", "def_file", "dataset", "note", "param_count"})
_MOVES_WITH_DIR = frozenset({"log_path", "def_file", "dataset", "init"})


def _continue(prev: _Draft, text: str, line: int) -> bool:
    """Try to read an indented line as the continuation of `prev`."""
    if prev.kind == "event":
        changes, remarks = _parse_changes(text)
        prev_changes = prev.fields["changes"]
        if changes:
            prev.fields["changes"] = prev_changes + changes
            prev.fields["remarks"] = prev.fields["remarks"] + remarks
        elif _result_fields(text) is not None:
            return False
        else:
            prev.fields["remarks"] = prev.fields["remarks"] + (text,)
        prev.lines.append(line)
        return True
    if prev.kind == "status" and _result_fields(text) is None:
        prev.fields["reason"] = _clean(f"{prev.fields['reason'] or ''} {text}")
        prev.lines.append(line)
        return True
    if prev.kind == "backup_dir":
        m = _ALSO_PATH_RE.fullmatch(text)
        if m:
            prev.fields["paths"] = prev.fields["paths"] + (m.group("path"),)
            prev.lines.append(line)
            return True
    if prev.kind == "note" and prev.epoch_text is not None and _result_fields(text) is None:
        prev.lines.append(line)
        return True
    return False


def _blocks(cfg: CfgFile) -> list[list[Line]]:
    blocks: list[list[Line]] = []
    current: list[Line] = []
    for line in cfg.lines:
        if line.kind == COMMENT:
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _read_block(block: list[Line], index: int, repeats: dict[int, int], texts: dict[int, str]) -> list[_Draft]:
    """Read one block of comment lines into drafts; `texts` collects each
    line's comment text by number."""
    drafts: list[_Draft] = []
    pending_empty: list[int] = []
    label: tuple[int, str] | None = None  # a result label line waiting for its result
    command: _Draft | None = None

    def flush_label() -> None:
        nonlocal label
        if label is not None:
            drafts.append(_Draft("note", label[0], {}, None, None, index))
            label = None

    for line in block:
        raw = texts[line.number] = line.comment_text
        text = raw.strip()
        if not text.strip("#").strip():
            if drafts and label is None:
                drafts[-1].lines.append(line.number)
            else:
                pending_empty.append(line.number)
            continue
        indented = len(raw) - len(raw.lstrip()) >= 2
        prev = drafts[-1] if drafts else None
        if indented and prev is not None and label is None and _continue(prev, text, line.number):
            continue
        kind, fields_, epoch, epoch_text = _classify(text)
        if kind == "note" and epoch is None and prev is not None and label is None:
            if prev.kind == "lineage" and not _NOW_HEAD_RE.match(text):
                prev.fields["change"] = f"{prev.fields['change']} {text}".strip()
                prev.lines.append(line.number)
                continue
            if prev.kind == "status" and _CONJUNCTION_RE.match(text):
                prev.fields["reason"] = _clean(f"{prev.fields['reason'] or ''} {text}")
                prev.lines.append(line.number)
                continue
        if kind == "result_label":
            flush_label()
            label = (line.number, text)
            continue
        draft = _Draft(kind, line.number, fields_, epoch, epoch_text, index)
        if kind == "result":
            if label is not None:
                draft.lines.insert(0, label[0])
                words = _label_line(label[1]) or []
                own_label = fields_["label"]
                fields_["label"] = label[1] if own_label is None else f"{label[1]} {own_label}"
                _apply_label(fields_, words + _WORD_RE.findall((own_label or "").lower()),
                             fields_["remark"] or "")
                label = None
            if command is not None and drafts and drafts[-1] is command:
                fields_["command_line"] = command.lines[0]
                if fields_["multiview"] is None:
                    fields_["multiview"] = command.fields["multiview_test"]
        else:
            flush_label()
        if pending_empty:
            draft.lines[:0] = pending_empty
            pending_empty = []
        drafts.append(draft)
        command = draft if kind == "command" else None
    flush_label()
    if pending_empty:
        if drafts:
            drafts[-1].lines.extend(pending_empty)
        else:
            drafts.append(_Draft("note", pending_empty[0], {}, None, None, index))
            drafts[-1].lines.extend(pending_empty[1:])
    for draft in drafts:
        if len(draft.lines) > 1:
            draft.lines.sort()
        if repeats and all(n in repeats for n in draft.lines):
            draft.repeat_of = repeats[draft.lines[0]]
    return drafts


def _repeated_lines(blocks: list[list[Line]]) -> dict[int, int]:
    """Lines of a block that begins by restating the whole block before it
    (layer-params-154.cfg), mapped to the lines they restate."""
    repeats: dict[int, int] = {}
    for before, block in zip(blocks, blocks[1:]):
        if 2 <= len(before) <= len(block) and all(
                a.comment_text.strip() == b.comment_text.strip() for a, b in zip(before, block)):
            repeats.update((b.number, a.number) for a, b in zip(before, block))
    return repeats


def _dir_identity(draft: _Draft) -> tuple[datetime | None, str]:
    return (draft.fields["start"], draft.fields["suffix"])


def _segment(blocks: list[list[_Draft]]) -> list[list[_Draft]]:
    runs: list[list[_Draft]] = []
    run: list[_Draft] | None = None
    dirs: set[tuple[datetime | None, str]] = set()
    for block in blocks:
        if not block:
            continue
        first_dir = next((d for d in block if d.kind == "run_dir"), None)
        continues = run is not None and (
            block[0].repeat_of is not None
            or all(d.kind in _PREAMBLE_KINDS for d in run)
            or all(d.kind == "note" for d in block)
            or (block[0].kind != "heading" and first_dir is not None and _dir_identity(first_dir) in dirs))
        if not continues:
            run = []
            runs.append(run)
            dirs = set()
        assert run is not None
        for draft in block:
            new_run = False
            moving: list[_Draft] = []
            if draft.kind == "heading" and run:
                new_run = True
            elif draft.kind == "run_dir" and dirs and _dir_identity(draft) not in dirs:
                new_run = True
                # the host/log/def-file lines just before the new directory belong to the new run
                while run and run[-1].block == draft.block and (
                        run[-1].kind in _MOVES_WITH_DIR
                        or (run[-1].kind == "host" and run[-1].fields["action"] == "on")):
                    moving.insert(0, run.pop())
                if not run:  # nothing left behind: it was all this run's own preamble
                    run.extend(moving)
                    moving = []
                    new_run = False
            if new_run:
                run = moving
                runs.append(run)
                dirs = set()
            run.append(draft)
            if draft.kind == "run_dir":
                dirs.add(_dir_identity(draft))
    return runs


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _build_run(index: int, entries: list[LogEntry], indices: tuple[int, ...]) -> Run:
    label = experiment = layers_file = None
    start = None
    first_dir_line = 0
    statuses: list[tuple[int, str]] = []
    dataset = None
    parents: tuple[str, ...] = ()
    run_dirs: list[str] = []
    hosts: list[str] = []
    logs: list[str] = []
    epochs: list[float] = []
    for e in entries:
        if e.epoch is not None:
            epochs.append(e.epoch)
        if isinstance(e, Heading):
            if label is None:
                label, experiment = e.label.rstrip(":").strip(), e.experiment
            continue
        if isinstance(e, Status):
            statuses.append((e.span.line, e.status))
        if e.repeat_of is not None:
            continue
        if isinstance(e, RunDir):
            run_dirs.append(e.path)
            if not first_dir_line:
                start, first_dir_line = e.start, e.span.line
        elif isinstance(e, Host):
            hosts.append(e.host)
            if e.now:
                hosts.append(e.now)
        elif isinstance(e, LogPath):
            logs.append(e.path)
        elif isinstance(e, DatasetEntry):
            if label is None and (e.text.strip().endswith(":") or e is entries[0]):
                label = e.text.strip().rstrip(":").strip()
            dataset = dataset or e.dataset
        elif isinstance(e, Lineage):
            if e.host:
                hosts.append(e.host)
            if e.primary and not parents:
                parents = e.parents
                layers_file = layers_file or e.layers_file
                dataset = dataset or e.dataset
        elif isinstance(e, DefFile):
            layers_file = layers_file or e.layers_file
    # "not starting this because ..." (layer-params-170.cfg) before the run's
    # directory is not what became of the run: only statuses after it count.
    final = [s for line, s in statuses if line > first_dir_line]
    status = final[-1] if final else None
    collapsed = [h for i, h in enumerate(hosts) if i == 0 or hosts[i - 1] != h]
    return Run(index, label, experiment, start, _unique(run_dirs), tuple(collapsed), _unique(logs), dataset,
               status, max(epochs) if epochs else None, parents, layers_file, indices, entries[0].span)


def clear_caches() -> None:
    """Forget the lines read so far (for timing a cold parse)."""
    _classify_cached.cache_clear()
    _classify_body_cached.cache_clear()
    _parse_changes.cache_clear()


def parse_logbook(cfg: CfgFile) -> Logbook:
    """Read the comment lines of a parsed configuration file as its experiment
    log. Never raises on content: what no rule reads becomes a Note."""
    line_blocks = _blocks(cfg)
    repeats = _repeated_lines(line_blocks)
    texts: dict[int, str] = {}
    draft_blocks = [_read_block(block, i, repeats, texts) for i, block in enumerate(line_blocks)]
    runs = _segment(draft_blocks)
    path = cfg.path
    entries: list[LogEntry] = []
    run_entries: list[tuple[int, ...]] = []
    for run_index, run in enumerate(runs):
        first = len(entries)
        for d in run:
            kind = "note" if d.kind == "result_label" else d.kind
            cls = ENTRY_CLASSES[kind]
            # base fields by position (span, lines, text, epoch, epoch_text, run, repeat_of): faster
            entries.append(cls(SourceSpan(path, d.lines[0]), tuple(d.lines), "\n".join([texts[n] for n in d.lines]),
                               d.epoch, d.epoch_text, run_index, d.repeat_of, **d.fields))
        run_entries.append(tuple(range(first, len(entries))))
    built = tuple(_build_run(i, entries[idx[0]:idx[-1] + 1], idx) for i, idx in enumerate(run_entries))
    return Logbook(cfg.path, tuple(entries), built)


__all__ = [
    "BackupDir", "Change", "Command", "Dataset", "DatasetEntry", "DefFile", "ENTRY_CLASSES", "Event", "Heading",
    "Host", "Init", "Lineage", "LogEntry", "LogPath", "Logbook", "Note", "ParamCount", "Result", "Run", "RunDir",
    "Status", "clear_caches", "def_file_name", "parse_logbook",
]
