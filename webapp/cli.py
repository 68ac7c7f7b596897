"""`alexnet-archive`: the command-line tool.

Each command imports what it needs inside its function, so `list`, `lineage`,
`diff`, `stats` and `fetch` load only the standard-library `archive` package, and
`show`, `log`, `glossary`, `curator` and `annotations` add only the `annotations`
package (standard library and markdown-it) -- never NumPy, CuPy or FastAPI
(tests/test_layering.py and tests/test_cli_annotations.py check).

Every read command takes ``--json``; that JSON is a documented interface
(README, "JSON output").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from archive.source import ArchiveError

    try:
        return args.handler(args) or 0
    except ArchiveError as error:
        print(f"alexnet-archive: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `alexnet-archive list | head`: stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alexnet-archive",
        description="Browse, compare and replay the 2012 AlexNet experiments (cuda-convnet, CHM release).")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler, help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--archive", metavar="PATH",
                         help="the release checkout (default: $ALEXNET_ARCHIVE, else the download cache)")
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON (a stable interface; see README)")
        return sub

    sub = command("list", cmd_list, "a table of every experiment")
    sub.add_argument("--host", help="only runs on this machine (e.g. guppy9)")
    sub.add_argument("--since", metavar="DATE", help="only experiments started on or after DATE (YYYY-MM-DD)")
    sub.add_argument("--until", metavar="DATE", help="only experiments started on or before DATE")
    sub.add_argument("--status", help="killed, on_hold, paused, ... or 'none'")
    sub.add_argument("--dataset", help="part of the data set label (2012, CIFAR, JPEG), or full / non-full")

    sub = command("show", cmd_show, "one experiment: layers with shapes and GPU, parameters, log, results, "
                  "curated notes and approved annotations, and the glossary terms it uses")
    sub.add_argument("id", help="experiment id, e.g. 120 or 120-2012-full")
    _notes_options(sub)

    sub = command("log", cmd_log, "the experiment log of one experiment, typed entry by entry, with its notes")
    sub.add_argument("id")
    _notes_options(sub)

    sub = command("lineage", cmd_lineage, "ancestors and descendants following 'this is like #N'")
    sub.add_argument("id")

    sub = command("diff", cmd_diff, "semantic diff of two experiments or .cfg files "
                  "(exit status 0 same, 1 different, 2 error)", json_flag=False)
    sub.add_argument("a", help="experiment id or path to a .cfg file")
    sub.add_argument("b", help="experiment id or path to a .cfg file")
    sub.add_argument("--format", choices=("text", "unified", "json"), default="text")
    sub.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    command("stats", cmd_stats, "counts over the whole release: files, experiments, layers, log lines typed")

    sub = command("fetch", cmd_fetch, "download the public release at the pinned commit and verify every file",
                  json_flag=False)
    sub.add_argument("--dest", metavar="DIR", help="where to put it (default: the per-user cache)")
    sub.add_argument("--url", help="download from here instead (a mirror, or a file:// tarball)")

    sub = command("serve", cmd_serve, "the museum web site on this archive", json_flag=False)
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    sub.add_argument("--db", metavar="PATH", help="the site's database: replays and annotations (default: "
                     "$ALEXNET_ARCHIVE_DB, else the per-user data folder)")
    sub.add_argument("--workers", type=int, default=1, help="worker processes (each parses the archive once)")
    sub.add_argument("--root-path", default="", help="the URL prefix when served behind a proxy")

    sub = command("replay", cmd_replay, "train an archived experiment again with 2012 semantics "
                  "(NumPy reference backend, or our CUDA kernels with --backend cuda)", json_flag=False)
    sub.add_argument("id", help="experiment id, e.g. 120 or cifar-18pct-noisylr")
    sub.add_argument("--plan", action="store_true", help="print the plan (shapes, parameters, FLOPs, memory per "
                     "logical GPU, bytes between GPUs) and stop")
    sub.add_argument("--check", action="store_true", help="check the net's gradients against finite differences "
                     "(float64, a small synthetic batch; as the original's --check-grads) and stop: exit 1 on a failure")
    sub.add_argument("--data", metavar="DIR", help="CIFAR-10 python batches or an image folder "
                     "(default: a synthetic set, clearly marked as such)")
    sub.add_argument("--epochs", type=int, default=1)
    sub.add_argument("--mini", type=int, default=None, help="minibatch size (convnet.py's --mini, default 128)")
    sub.add_argument("--test-freq", type=int, default=50, help="batch files between test passes")
    sub.add_argument("--crop-border", type=int, default=None, help="pixels cropped on each side (default: what "
                     "the data's and the net's image sizes imply)")
    sub.add_argument("--color-noise", type=float, default=None, help="PCA colour noise scale throughout "
                     "(default: as the log set it, epoch by epoch; see --plan)")
    sub.add_argument("--multiview-test", type=int, choices=(0, 1), default=0)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--fix", action="append", default=[], metavar="NAME", help="correct a 2012 bug (see --plan)")
    sub.add_argument("--as-written", action="store_true", help="the params file's values from the start, instead "
                     "of the starting values rebuilt from the log")
    sub.add_argument("--scale", choices=("full", "small"), default="full",
                     help="small: minibatch 8 and, without --data, a synthetic set of 64 + 32 images")
    sub.add_argument("--db", metavar="PATH", help="where runs are kept (default: $ALEXNET_ARCHIVE_DB, else the "
                     "per-user data folder); `serve --db` shows them")
    sub.add_argument("--train-range", metavar="A-B", help="cuda-convnet batch files data_batch_A..B of --data "
                     "to train on (convnet.py's option; with --test-range)")
    sub.add_argument("--test-range", metavar="A-B", help="batch files to test on, e.g. 6")
    sub.add_argument("--test-one", type=int, choices=(0, 1), default=1, help="1 (as 2012): each test pass reads "
                     "the next file of --test-range; 0: all of them")
    sub.add_argument("--init-from", metavar="RUN", help="a run of ours (or its .ckpt file) whose layers stand in "
                     "for the 2012 checkpoint that initWFunc=initw.makew(LAYER) copied from")
    sub.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last checkpoint")
    sub.add_argument("--backend", choices=("numpy", "cuda"), default=None,
                     help="numpy (the 2012 reference, default) or cuda (our kernels through CuPy on a GPU; without "
                     "one they run in the CPU emulator, slowly). With --resume: the run's own backend unless given; "
                     "a checkpoint of either backend resumes on the other")
    sub.add_argument("--max-minibatches", type=int, default=None, help=argparse.SUPPRESS)

    sub = command("runs", cmd_runs, "replays kept in the database: list, show RUN, export RUN FILE, "
                  "filters RUN FILE.png")
    sub.add_argument("action", nargs="?", choices=("list", "show", "export", "filters"), default="list")
    sub.add_argument("run", nargs="?", help="run id (show, export, filters)")
    sub.add_argument("dest", nargs="?", help="export: the .safetensors file to write; filters: the .png")
    sub.add_argument("--db", metavar="PATH", help="the runs database (default as for replay)")

    sub = command("export-site", cmd_export_site, "write the whole exhibit as static files (opens from disk)",
                  json_flag=False)
    sub.add_argument("dest", metavar="DIR", help="the folder to write (created if missing)")

    sub = command("glossary", cmd_glossary, "the 2012 terms explained: every entry by kind, or one TERM in full "
                  "(exit status 2 for an unknown term, with suggestions)")
    sub.add_argument("term", nargs="?", help="a term or one of its aliases, any case (e.g. epsW, hs, cmrnorm)")

    sub = command("curator", cmd_curator, "curator accounts of the site: add NAME (asks for the password), list")
    sub.add_argument("action", choices=("add", "list"))
    sub.add_argument("name", nargs="?", help="add: the curator's login name")
    sub.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input (the default when it is "
                          "not a terminal)")
    sub.add_argument("--replace", action="store_true", help="add: set a new password for an existing curator")
    sub.add_argument("--db", metavar="PATH", help=_DB_HELP)

    sub = command("annotations", cmd_annotations, "stored annotations: list, export [FILE|-], import FILE "
                  "(JSON Lines with the full history; importing twice adds nothing)")
    sub.add_argument("action", choices=("list", "export", "import"))
    sub.add_argument("file", nargs="?", help="export: where to write (default -, standard output); "
                     "import: the file to read (- for standard input)")
    sub.add_argument("--status", choices=("pending", "approved", "hidden"), help="list: only this status")
    sub.add_argument("--anchor", metavar="PREFIX", help="list: only annotations at or under this anchor "
                     "(120, 120/conv1a, layers/layer-params-120.cfg)")
    sub.add_argument("--db", metavar="PATH", help=_DB_HELP)
    return parser


_DB_HELP = ("the site's database, shared with replays (default: $ALEXNET_ARCHIVE_DB, else the per-user data "
            "folder; the file `serve` reads)")


def _notes_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--db", metavar="PATH", help="read approved annotations from this site database "
                     "(default as for serve; never created here)")
    sub.add_argument("--site-url", metavar="URL", help="on a terminal, make glossary terms links (OSC 8) to "
                     "this site's glossary, e.g. http://127.0.0.1:8000")


# --- helpers ---------------------------------------------------------------------

def _load(args):
    from archive import load_archive
    from archive.locate import resolve_archive_path

    return load_archive(resolve_archive_path(args.archive))


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


# --- commands --------------------------------------------------------------------

def cmd_list(args) -> int:
    from archive.query import filter_experiments

    archive = _load(args)
    experiments = filter_experiments(archive, host=args.host, since=args.since, until=args.until,
                                     status=args.status, dataset=args.dataset)
    if args.json:
        _print_json([e.summary_json() for e in experiments])
        return 0
    rows = []
    for e in experiments:
        final = e.final_result
        rows.append([e.id, e.start.strftime("%Y-%m-%d %H:%M") if e.start else "", ",".join(e.hosts),
                     ",".join(e.parents), e.status or "", _pct(final.top5) if final else "",
                     e.dataset.label(), e.layers_file or "(unpaired)"])
    print(_table(rows, ["id", "start", "host", "parents", "status", "top-5", "data set", "layers file"]))
    print(f"\n{len(experiments)} of {len(archive.experiments)} experiments")
    return 0


def cmd_show(args) -> int:
    archive = _load(args)
    e = archive.experiment(args.id)
    notes, annotations = _notes_and_annotations(args, archive, e)
    if args.json:
        _print_json({**e.to_json(), **_notes_json(archive, notes, annotations)})
        return 0
    out = [f"experiment {e.id}", ""]
    facts = [("params file", e.params_file),
             ("layers file", f"{e.layers_file or '(none)'}  [{e.pairing}"
                             + (f", {e.pairing_span}" if e.pairing_span else "") + "]"),
             ("data set", f"{e.dataset.label()}  [{e.dataset.rule}]"),
             ("input", f"{e.input.size}×{e.input.size}×{e.input.channels}  [{e.input.rule}]"),
             ("started", e.start.isoformat(sep=" ") if e.start else "not logged"),
             ("hosts", ", ".join(e.hosts) or "not logged"),
             ("status", e.status or "not logged"),
             ("last epoch", "" if e.last_epoch is None else f"{e.last_epoch:g}"),
             ("parents", ", ".join(e.parents) or "none"),
             ("children", ", ".join(e.children) or "none")]
    if e.layers is not None:
        total = e.layers.total_params()
        facts.append(("parameters", f"{total:,}" if total is not None else "unknown"))
    width = max(len(k) for k, _ in facts)
    out += [f"  {k.ljust(width)}  {v}" for k, v in facts]
    if e.layers is not None:
        out += ["", "layers"]
        rows = [[l.name, l.type, "" if l.gpu is None else str(l.gpu), ",".join(l.inputs), l.shape_text(),
                 "" if l.outputs is None else str(l.outputs), "" if l.params is None else f"{l.params:,}",
                 l.neuron or ""] for l in e.layers.layers]
        out.append(_indent(_table(rows, ["name", "type", "gpu", "inputs", "shape", "outputs", "params", "neuron"])))
    out += ["", "parameters"]
    rows = []
    for section in e.params.layers:
        values = ", ".join(f"{k}={_value_text(v)}" for k, v in section.values.items())
        rows.append([section.name, values])
    out.append(_indent(_table(rows, ["layer", "values"])))
    out += ["", "log"]
    out += _log_lines(e, _log_marks(e, notes, annotations))
    results = e.results
    if results:
        out += ["", "results"]
        rows = [[str(r.span.line), r.label or "", "" if r.cost is None else f"{r.cost:.6f}", _pct(r.top1),
                 _pct(r.top5), {True: "yes", False: "no", None: ""}[r.multiview]] for r in results]
        out.append(_indent(_table(rows, ["line", "label", "cost", "top-1", "top-5", "multiview"])))
    shown = [f for f in e.findings if f.severity != "info"]
    if e.findings:
        out += ["", "findings"]
        out += [f"  {f}" for f in shown]
        if len(shown) < len(e.findings):
            out.append(f"  (+{len(e.findings) - len(shown)} informational; --json lists them all)")
    out += _notes_section(archive, notes, annotations)
    out += _terms_footer(e, args)
    print("\n".join(out))
    return 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _value_text(value) -> str:
    if hasattr(value, "canonical"):
        return value.canonical()
    if isinstance(value, tuple):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def _log_lines(e, marks: dict[int, list[str]] | None = None) -> list[str]:
    """The log entry by entry; `marks` (params-file line -> labels) puts a note's or an
    annotation's title under the entry it is pinned to."""
    marks = marks or {}
    lines = []
    current_run = None
    for entry in e.logbook.entries:
        if entry.run != current_run:
            current_run = entry.run
            run = e.logbook.runs[entry.run] if entry.run < len(e.logbook.runs) else None
            head = f"  run {entry.run + 1}"
            if run is not None:
                bits = [run.label or "", run.start.isoformat(sep=" ") if run.start else "",
                        "→".join(run.hosts), run.status or ""]
                head += ": " + "  ".join(b for b in bits if b)
            lines.append(head)
        epoch = "" if entry.epoch_text is None else f"epoch {entry.epoch_text}"
        text = " / ".join(part.strip() for part in entry.text.splitlines())
        lines.append(f"    {entry.span.line:>4}  {entry.kind:<11} {epoch:<13} {text}")
        for number in entry.lines:
            lines += [f"{'':>36}▸ {label}" for label in marks.get(number, ())]
    return lines


def cmd_log(args) -> int:
    archive = _load(args)
    e = archive.experiment(args.id)
    notes, annotations = _notes_and_annotations(args, archive, e)
    if args.json:
        _print_json({**e.logbook.to_json(), **_notes_json(archive, notes, annotations)})
        return 0
    print(f"log of {e.id} ({e.params_file})")
    print("\n".join(_log_lines(e, _log_marks(e, notes, annotations)) + _notes_section(archive, notes, annotations)))
    return 0


def cmd_lineage(args) -> int:
    archive = _load(args)
    e = archive.experiment(args.id)
    ancestors, descendants = archive.ancestors(e.id), archive.descendants(e.id)
    if args.json:
        _print_json({"id": e.id, "ancestors": ancestors, "descendants": descendants})
        return 0

    def label(eid: str) -> str:
        other = archive.experiments.get(eid)
        if other is None:
            return f"#{eid} (not in the release)"
        note = other.status or ""
        return f"#{eid}" + (f"  {other.start:%Y-%m-%d}" if other.start else "") + (f"  {note}" if note else "")

    def walk(tree: dict, prefix: str) -> list[str]:
        lines = []
        items = list(tree.items())
        for i, (eid, sub) in enumerate(items):
            last = i == len(items) - 1
            lines.append(prefix + ("└── " if last else "├── ") + label(eid))
            lines += walk(sub, prefix + ("    " if last else "│   "))
        return lines

    print("ancestors (this is like …)")
    print("\n".join(walk(ancestors, "  ")) or "  none")
    print(label(e.id) + "  ◀")
    print("descendants")
    print("\n".join(walk(descendants, "  ")) or "  none")
    return 0


def cmd_diff(args) -> int:
    from archive.compare import diff_sides, unified
    from archive.query import side_for

    archive_cache = {}

    def loader():
        if "archive" not in archive_cache:
            archive_cache["archive"] = _load(args)
        return archive_cache["archive"]

    a, b = side_for(args.a, loader), side_for(args.b, loader)
    if args.format == "unified":
        text = unified(a, b)
        sys.stdout.write(text)
        return 1 if text else 0
    result = diff_sides(a, b)
    if args.format == "json":
        _print_json(result.to_json())
        return 0 if result.same else 1
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    print(render_diff_text(result, color))
    return 0 if result.same else 1


def render_diff_text(result, color: bool) -> str:
    paint = {"+": "\x1b[32m", "-": "\x1b[31m", "~": "\x1b[33m", "h": "\x1b[1m"} if color else {}
    reset = "\x1b[0m" if color else ""

    def c(kind: str, text: str) -> str:
        return f"{paint[kind]}{text}{reset}" if kind in paint else text

    out = [c("h", f"diff {result.a} {result.b}")]
    if result.same:
        out.append("no differences")
        return "\n".join(out)
    out += [f"  {line}" for line in result.summary]
    for title, sections in (("layers", result.layers), ("params", result.params)):
        changed = [d for d in sections if d.status != "same"]
        if not changed:
            continue
        out += ["", c("h", title)]
        for d in changed:
            mark = {"added": "+", "removed": "-", "changed": "~"}[d.status]
            head = f"{mark} {d.name}" + (f" ({d.type})" if d.type else "")
            if d.status != "changed":
                out.append(c(mark, f"  {head} {d.status}"))
                continue
            out.append(c("~", f"  {head}"))
            for change in d.changes:
                out.append(f"      {change.label}: {c('-', _value_text(change.old))} → {c('+', _value_text(change.new))}")
    if result.log:
        out += ["", c("h", "log")]
        for line in result.log:
            out.append(c(line.op, f"  {line.op} {line.span.line:>4} {line.text}"))
    return "\n".join(out)


def cmd_stats(args) -> int:
    from archive.query import archive_stats

    archive = _load(args)
    stats = archive_stats(archive)
    if args.json:
        _print_json(stats)
        return 0
    log = stats["log"]
    print(f"release at {stats['root']}")
    print(f"  files                 {stats['files']['total']}  ({', '.join(f'{k} {v}' for k, v in stats['files']['by_kind'].items())})")
    print(f"  experiments           {stats['experiments']}  (runs {stats['runs']})")
    print(f"  layer files           {stats['layer_files']}  (unpaired {len(stats['unpaired_layers'])})")
    print(f"  unpaired params files {len(stats['unpaired_params'])}")
    print(f"  layers                {stats['layers']['total']}  ({', '.join(f'{k} {v}' for k, v in stats['layers']['by_type'].items())})")
    print(f"  log comment lines     {log['comment_lines']}: {log['typed_lines']} in typed entries, "
          f"{log['note_lines']} kept as notes ({log['typed_share']:.1%} typed)")
    print(f"  log entries           {log['entries']}  ({', '.join(f'{k} {v}' for k, v in log['by_kind'].items())})")
    print(f"  findings              {stats['findings']['total']}  ({', '.join(f'{k} {v}' for k, v in stats['findings']['by_severity'].items())})")
    machines = stats["machines"]
    if machines and machines["devices"]:
        first = machines["devices"][0]
        print(f"  machines ({machines['file']})  {len(machines['devices'])} × {first['name']}, "
              f"{first['memory_bytes'] / 2**20:.0f} MiB, {first['cuda_cores']} CUDA cores, capability "
              f"{first['compute_capability']}; CUDA driver/runtime {machines['driver']}/{machines['runtime']}")
    print(f"  loaded in             {stats['load_ms']:.1f} ms")
    return 0


def cmd_fetch(args) -> int:
    from pathlib import Path

    from archive.locate import fetch_release, manifest

    m = manifest()
    print(f"fetching {m.repository} at {m.short_commit} …", file=sys.stderr)
    path, report = fetch_release(Path(args.dest) if args.dest else None, url=args.url)
    print(f"{report.checked} files verified against the manifest; the release is at {path}")
    if report.extra:
        print(f"({len(report.extra)} files not in the manifest were kept)")
    if not args.dest:
        print("commands now find it without --archive")
    return 0


def _settings(args):
    from pathlib import Path

    from archive.locate import resolve_archive_path

    from .settings import Settings

    # serve shows the replays `alexnet-archive replay` stores: both default to the same database.
    return Settings(archive=resolve_archive_path(args.archive), db=Path(args.db) if getattr(args, "db", None) else default_db(),
                    root_path=getattr(args, "root_path", "") or "")


def cmd_serve(args) -> int:
    import socket

    import uvicorn

    settings = _settings(args)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        print(f"alexnet-archive: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if args.workers > 1:
        # Worker processes import the app factory and read the settings from the environment;
        # they share the socket bound above (uvicorn's `fd`), so the printed port is theirs.
        os.environ.update(settings.to_env())
        print(f"The exhibit is open at http://{shown}:{port}{settings.root_path}/  "
              f"(archive: {settings.archive}; {args.workers} workers; Ctrl-C to close)", flush=True)
        uvicorn.run("webapp.app:app_from_env", factory=True, fd=sock.fileno(), workers=args.workers,
                    log_level="warning", proxy_headers=True)
        return 0
    from .app import create_app
    from .site import Site

    site = Site.load(settings)  # parse before announcing the URL, so the first visitor does not wait
    config = uvicorn.Config(create_app(settings, site), log_level="warning", proxy_headers=True)
    print(f"The exhibit is open at http://{shown}:{port}{settings.root_path}/  "
          f"(archive: {settings.archive}; Ctrl-C to close)", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def default_db() -> "Path":
    from pathlib import Path

    from .settings import DB_ENV

    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "alexnet-archive" / "site.sqlite"


def _run_store(args):
    from pathlib import Path

    from replay.store import RunStore

    path = Path(args.db) if args.db else default_db()
    path.parent.mkdir(parents=True, exist_ok=True)
    return RunStore(path)


def cmd_replay(args) -> int:
    from pathlib import Path

    import numpy as np

    from replay.data import (DataError, load_batch_folder, load_cifar_dir, load_image_folder, parse_range,
                             synthetic_dataset)
    from replay.network import FIXABLE, Network, ReplayError, check_experiment, replayed_bugs
    from replay.plan import build_plan, format_plan
    from replay.train import Trainer, TrainOptions

    archive = _load(args)
    experiment = archive.experiment(args.id)
    check_experiment(experiment)
    if args.check:
        from replay.check import check_experiment_gradients, format_checks

        try:
            report = check_experiment_gradients(experiment, seed=args.seed)
        except ReplayError as error:
            print(f"alexnet-archive: {error}", file=sys.stderr)
            return 2
        print(format_checks(report.checks, header=report.describe()))
        return 0 if report.passed else 1
    stored = None
    if args.resume:  # a resumed run goes on with the options it was started with
        from replay.store import StoreError

        try:
            stored = _run_store(args).run(args.resume)
        except StoreError as error:
            print(f"alexnet-archive: {error}", file=sys.stderr)
            return 2
        if stored["experiment"] != experiment.id:
            print(f"alexnet-archive: run {args.resume} replays #{stored['experiment']}, not #{experiment.id}",
                  file=sys.stderr)
            return 2
        for key in ("data", "scale", "as_written", "epochs", "mini", "test_freq", "crop_border", "color_noise",
                    "multiview_test", "seed", "fix", "train_range", "test_range", "test_one", "init_from"):
            if key in stored["options"]:
                setattr(args, key, stored["options"][key])
    plan = build_plan(experiment, as_written=args.as_written)
    mini = args.mini or (8 if args.scale == "small" else 128)
    bugs = replayed_bugs(plan, frozenset(args.fix))
    if args.plan:
        print(format_plan(plan, minibatch=mini))
        print("\n2012 bugs this replay reproduces (correct one with --fix NAME):" if bugs else
              f"\nNo known 2012 bug applies to this net (known: {', '.join(sorted(FIXABLE))}).")
        for name, where in bugs:
            print(f"  {name}: {where}")
        return 0
    backend_name, backend_label, switched = _replay_backend(args, stored)
    if bool(args.train_range) != bool(args.test_range):
        print("alexnet-archive: --train-range and --test-range go together (e.g. --train-range 1-5 --test-range 6)",
              file=sys.stderr)
        return 2
    try:
        init_source, init_name = _init_source(args) if args.init_from else (None, "")
        # the net first: a config it refuses stops before any data is read
        from replay.backends import get_backend

        network = Network(plan, experiment, rng=np.random.default_rng(args.seed), fixes=frozenset(args.fix),
                          init_source=init_source, init_source_name=init_name, backend=get_backend(backend_name))
        if args.train_range and not args.data:
            raise DataError("--train-range needs --data, the folder of cuda-convnet batch files")
        if args.train_range:
            dataset = load_batch_folder(args.data, parse_range(args.train_range, "--train-range"),
                                        parse_range(args.test_range, "--test-range"))
        elif args.data:
            folder = Path(args.data)
            if (folder / "batches.meta").exists():
                dataset = load_cifar_dir(folder, side=32)
            else:
                side = plan.input_size + 2 * (args.crop_border if args.crop_border is not None
                                              else (16 if plan.input_size >= 200 else 0))
                dataset = load_image_folder(folder, side)
        else:
            classes = plan.layers[-2].outputs if plan.layers[-2].type == "softmax" else 10
            sizes = (64, 32) if args.scale == "small" else (1024, 256)
            dataset = synthetic_dataset(plan.input_size, int(classes or 10), train_size=sizes[0],
                                        test_size=sizes[1], seed=args.seed)
            print(f"NOTE: no --data given: training on {dataset.description}", file=sys.stderr)
        if args.scale == "small":
            print(f"scale small: minibatch {mini} instead of 128" + ("" if args.data else
                  "; 64 training and 32 test images"), file=sys.stderr)
        options = TrainOptions(epochs=args.epochs, mini=mini, batch_size=10_000, test_freq=args.test_freq,
                               crop_border=args.crop_border, color_noise=args.color_noise,
                               multiview_test=bool(args.multiview_test), test_one=bool(args.test_one),
                               seed=args.seed, fixes=tuple(args.fix),
                               max_minibatches=args.max_minibatches)
        store = _run_store(args)
        for name, where in bugs:
            print(f"WARNING: replaying a 2012 bug, as the original ran it: {where}; --fix {name} corrects it",
                  file=sys.stderr)
        if stored:
            run_id = stored["id"]
            store.reopen_run(run_id)
        else:
            run_id = store.create_run(experiment=experiment.id, backend=backend_label, data=dataset.description,
                                      synthetic=dataset.synthetic,
                                      options={"data": args.data, "scale": args.scale, "as_written": args.as_written,
                                               "epochs": args.epochs, "mini": mini, "test_freq": args.test_freq,
                                               "crop_border": args.crop_border, "color_noise": args.color_noise,
                                               "multiview_test": args.multiview_test, "seed": args.seed,
                                               "fix": list(args.fix), "train_range": args.train_range,
                                               "test_range": args.test_range, "test_one": args.test_one,
                                               "init_from": args.init_from},
                                      fixes=list(args.fix), code_version=_code_version())
        trainer = Trainer(network, dataset, options, store=store, run_id=run_id,
                          checkpoint=store.checkpoint_path(run_id))
        if args.resume:
            trainer.restore()
        note = None
        if switched:  # the run's backend column says where it started; the note says where it went on
            note = f"resumed on backend {backend_label} at minibatch {trainer.state.minibatches_done} " \
                   f"(started on {stored['backend']})"
            print(f"NOTE: run {run_id} was written by backend {stored['backend']}; it goes on with "
                  f"{backend_label} (checkpoints hold NumPy arrays, readable by either backend)", file=sys.stderr)
        print(f"replaying #{experiment.id} as run {run_id} ({store.path}) on backend {backend_label}",
              file=sys.stderr)
        try:
            status = trainer.run()
        except KeyboardInterrupt:
            trainer.save()
            store.finish_run(run_id, "stopped", transfers=_transfers(network), note=note)
            print(f"\nstopped; continue with: alexnet-archive replay {experiment.id} --resume {run_id}",
                  file=sys.stderr)
            return 130
        store.finish_run(run_id, status, transfers=_transfers(network), note=note)
        print(f"run {run_id} {status}; see `alexnet-archive runs show {run_id}`", file=sys.stderr)
        if status == "stopped":
            print(f"continue with: alexnet-archive replay {experiment.id} --resume {run_id}", file=sys.stderr)
        return 0
    except (DataError, ReplayError) as error:
        print(f"alexnet-archive: {error}", file=sys.stderr)
        return 2


def _replay_backend(args, stored: dict | None) -> tuple[str, str, bool]:
    """(backend for get_backend, label stored with the run, whether a resumed run switches backend).
    A resumed run keeps the backend it was started on unless --backend says otherwise; switching is
    allowed because a checkpoint holds plain NumPy arrays and generator states, whichever backend wrote
    it (replay/train.py Trainer.save). The curve then continues with the other backend's rounding (and,
    with dropout, its other random stream: the CUDA backend draws masks with Philox)."""
    started = stored["backend"] if stored else None
    name = args.backend or ("cuda" if started and started.startswith("cuda") else "numpy")
    label = name
    if name == "cuda":
        from replay.backends.cuda.devices import gpu_xp

        if gpu_xp() is None:
            label = "cuda-emulated"
            print("NOTE: --backend cuda without CuPy and a CUDA GPU: the CUDA kernels run in the CPU EMULATOR "
                  "(g++ threads standing in for the GPU's). This checks the kernels, it is not a fast replay: "
                  "expect it to be far slower than --backend numpy. The run is stored as backend "
                  "'cuda-emulated'.", file=sys.stderr)
    return name, label, bool(started) and label != started


def _init_source(args) -> tuple[dict, str]:
    """The weights --init-from names: a run in the database, or a checkpoint file."""
    from pathlib import Path

    from replay.checkpoint import CheckpointError, load_checkpoint, network_parts
    from replay.data import DataError
    from replay.store import StoreError

    path, name = Path(args.init_from), f"checkpoint {args.init_from}"
    if not path.is_file():
        try:
            store = _run_store(args)
            run = store.run(args.init_from)
        except StoreError as error:
            raise DataError(f"--init-from {args.init_from}: neither a checkpoint file nor a run ({error})") from None
        path, name = store.checkpoint_path(run["id"]), f"run {run['id']} (#{run['experiment']})"
    try:
        arrays, _ = load_checkpoint(path)
    except CheckpointError as error:
        raise DataError(f"--init-from: {error}") from None
    return network_parts(arrays)["weights"], name


def _transfers(network) -> dict:
    batches = network.transfers.per_batch
    if not batches:
        return {"copies_per_batch": 0, "bytes_per_batch": 0}
    summary = {"copies_per_batch": batches[-1][0], "bytes_per_batch": batches[-1][1], "batches": len(batches)}
    waits = getattr(network.transfers, "wait_per_batch", None)
    if waits:  # the CUDA backend: time the target streams waited for their sources (events)
        summary["wait_seconds_per_batch"] = waits[-1]
    return summary


def _code_version() -> str:
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("alexnet-archive")
    except PackageNotFoundError:
        release = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(__file__), timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{release}+{commit}" if commit else release


def cmd_runs(args) -> int:
    from replay.checkpoint import CheckpointError
    from replay.store import StoreError

    store = _run_store(args)
    try:
        if args.action == "list":
            runs = store.runs()
            if args.json:
                _print_json([{"id": r["id"], "experiment": r["experiment"], "backend": r["backend"],
                              "status": r["status"], "started": r["started"], "data": r["data"]} for r in runs])
                return 0
            print(_table([[r["id"], r["experiment"], r["backend"], r["status"], r["started"],
                           "synthetic" if r["synthetic"] else r["data"][:40]] for r in runs],
                         ["run", "experiment", "backend", "status", "started", "data"]))
            return 0
        if not args.run:
            print(f"alexnet-archive: runs {args.action} needs a run id (see `alexnet-archive runs`)", file=sys.stderr)
            return 2
        run = store.run(args.run)
        if args.action == "show":
            if args.json:
                _print_json(run)
                return 0
            print(f"run {run['id']}: #{run['experiment']} on {run['backend']}, {run['status']}")
            print(f"  data: {run['data']}")
            print(f"  started {run['started']}, ended {run['ended'] or '-'}; code {run['code_version']}")
            if run["transfers"]:
                print(f"  between logical GPUs per batch: {run['transfers']}")
            for label, points in (("train", run["train"]), ("test", run["tests"])):
                if points:
                    first, last = points[0], points[-1]
                    print(f"  {label}: {len(points)} points; cost {first['cost']:.6f} -> {last['cost']:.6f}, "
                          f"top-1 {first['top1']:.4f} -> {last['top1']:.4f}")
            return 0
        if args.action == "filters":
            return _filters(store, run, args.dest)
        return _export_run(store, run, args.dest)
    except (StoreError, CheckpointError, ValueError) as error:
        print(f"alexnet-archive: {error}", file=sys.stderr)
        return 2


def _stored_run(store, run):
    """(plan, arrays by part, state) of a stored run's checkpoint."""
    from replay.checkpoint import load_run

    return load_run(store.checkpoint_path(run["id"]), _load(argparse.Namespace(archive=None)), run["experiment"],
                    as_written=bool(run["options"].get("as_written")))


def _filters(store, run, dest) -> int:
    """The learned first-layer filters as a PNG, one panel per logical GPU."""
    from pathlib import Path

    from replay.filters import filters_png

    if not dest:
        print("alexnet-archive: runs filters RUN FILE.png", file=sys.stderr)
        return 2
    plan, parts, _ = _stored_run(store, run)
    Path(dest).write_bytes(filters_png(parts["weights"], plan))
    print(f"wrote the first-layer filters of run {run['id']} to {dest}")
    return 0


def _export_run(store, run, dest) -> int:
    """The run's weights in today's layout (replay/torch_graph.py: TODAY_LAYOUT), named as the
    state_dict of build_torch_model, with a note of the graph in the safetensors metadata."""
    from pathlib import Path

    from replay.checkpoint import write_safetensors
    from replay.torch_graph import today_graph_note, today_layout

    if not dest:
        print("alexnet-archive: runs export RUN FILE.safetensors", file=sys.stderr)
        return 2
    plan, parts, _ = _stored_run(store, run)
    weights, conns = parts["weights"], parts["conns"]
    tensors = today_layout(plan, weights, conns=conns)
    write_safetensors(Path(dest), tensors, {"experiment": run["experiment"], "run": run["id"],
                                            **today_graph_note(plan)})
    print(f"wrote {len(tensors)} tensors to {dest} (today's layout; the graph is in the file's metadata)")
    return 0


def cmd_export_site(args) -> int:
    from pathlib import Path

    from .export import export_site
    from .site import Site

    site = Site.load(_settings(args))
    report = export_site(site, Path(args.dest))
    print(f"wrote {report.files} files ({report.bytes / 1e6:.1f} MB of pages) to {report.directory}; "
          f"open {report.directory / 'index.html'}")
    return 0


# --- notes, annotations and the glossary (issue 7) ------------------------------------
# annotations.* is imported inside the functions, as everything else here: `diff` must stay
# standard-library only, and `show` needs markdown-it only because notes are rendered.

_NO_DB = ("no site database at {path} (`curator add`, `annotations import`, `serve` and `replay` create it; "
          "--db names another)")


def _db_path(args) -> Path:
    from pathlib import Path

    return Path(args.db) if getattr(args, "db", None) else default_db()


def _fail(message: str) -> int:
    print(f"alexnet-archive: {message}", file=sys.stderr)
    return 2


def _open_store(path, *, create: bool):
    """The annotations store in the site database, or None when the file is missing and not to be made."""
    from annotations.store import AnnotationStore

    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
    return AnnotationStore(path)


def _holds_annotations(path) -> bool:
    """Whether an existing database has the annotations tables, checked read-only: `show` must
    neither create a database nor add tables to one that only holds replays."""
    import sqlite3
    from contextlib import closing

    if not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT version FROM schema_versions WHERE component = 'annotations'").fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return False
        raise
    return row is not None


def _notes_and_annotations(args, archive, e) -> tuple[list, list]:
    """The curated notes on experiment `e` (its layers, keys and the lines of its files) and the
    approved annotations there, oldest first. A database that cannot be read is reported on
    stderr and skipped: the experiment itself is still worth printing."""
    import sqlite3

    from annotations.notes import notes_for
    from annotations.store import AnnotationStoreError

    notes = notes_for(e.id, archive=archive)
    path = _db_path(args)
    annotations: dict[int, object] = {}
    try:
        if _holds_annotations(path):
            with _open_store(path, create=False) as store:
                for prefix in dict.fromkeys(p for p in (e.id, e.params_file, e.layers_file) if p):
                    for annotation in store.list(prefix=prefix, status="approved"):
                        annotations[annotation.id] = annotation
    except (AnnotationStoreError, sqlite3.Error) as error:
        print(f"alexnet-archive: annotations not shown: {path}: {error}", file=sys.stderr)
    return notes, [annotations[key] for key in sorted(annotations)]


def _resolved(anchor, archive):
    from annotations.anchors import AnchorError, resolve

    try:
        return resolve(anchor, archive)
    except AnchorError:
        return None  # a visitor's anchor the release no longer has: shown as written


def _notes_json(archive, notes, annotations) -> dict:
    """The JSON twins' extra keys: each note and approved annotation with where it lands."""
    def places(anchors) -> list[dict]:
        return [r.to_json() for r in (_resolved(a, archive) for a in anchors) if r is not None]

    return {"notes": [{**note.to_json(), "resolved": places(note.anchors)} for note in notes],
            "annotations": [{**a.to_json(), "resolved": places([a.anchor])} for a in annotations]}


def _log_marks(e, notes, annotations) -> dict[int, list[str]]:
    """params-file line -> the titles of the notes and annotations pinned to it."""
    from annotations.anchors import AnchorError, parse_anchor

    marks: dict[int, list[str]] = {}
    for note in notes:
        for anchor in note.anchors:
            if anchor.kind == "line" and anchor.path == e.params_file:
                marks.setdefault(anchor.line, []).append(f"note: {note.title}")
    for annotation in annotations:
        try:
            anchor = parse_anchor(annotation.anchor)
        except AnchorError:
            continue
        if anchor.kind == "line" and anchor.path == e.params_file:
            marks.setdefault(anchor.line, []).append(f"annotation #{annotation.id} by {annotation.author}")
    return marks


def _width() -> int:
    import shutil

    return max(60, min(shutil.get_terminal_size((88, 24)).columns, 100))


def _notes_section(archive, notes, annotations) -> list[str]:
    """"notes" and "annotations" sections: each item under the places it is pinned to
    (file:line and the line as written), its Markdown as wrapped plain text."""
    if not notes and not annotations:
        return []
    width = _width()
    out: list[str] = []

    def place_lines(anchors) -> list[str]:
        lines = []
        for anchor in anchors:
            resolved = _resolved(anchor, archive)
            if getattr(anchor, "kind", None) == "experiment" or (resolved and resolved.anchor.kind == "experiment"):
                lines.append(f"    ▸ #{anchor}, the experiment as a whole")
                continue
            if resolved is None:
                lines.append(f"    ▸ {anchor}")
                continue
            where = f"{resolved.span.path}:{resolved.span.line}"
            text = resolved.text.strip()
            shown = f"{anchor}  →  {where}" if str(anchor) != where else where
            lines.append(_clip(f"    ▸ {shown}" + (f"  {text}" if text else ""), width))
        return lines

    if notes:
        out += ["", "notes"]
        for note in notes:
            out.append(f"  {note.title}" + ("  (interpretation)" if note.interpretation else ""))
            out += place_lines(note.anchors)
            out += markdown_text(note.html, width, "    ")
            cited = [c.text for c in note.sources]
            if cited:
                out += _wrap("sources: " + "; ".join(cited), width, "    ", "      ")
            out.append("")
        out.pop()
    if annotations:
        out += ["", "annotations"]
        for a in annotations:
            edited = f", edited {_when(a.edited)}" if a.edited else ""
            out.append(f"  #{a.id} by {a.author} ({a.role}), {_when(a.created)}{edited}")
            out += place_lines([a.anchor])
            out += markdown_text(a.html, width, "    ")
            out.append("")
        out.pop()
    return out


def _when(timestamp: str) -> str:
    """"2024-05-01T12:00:00.000+00:00" -> "2024-05-01 12:00 UTC" (the store keeps UTC)."""
    return timestamp[:16].replace("T", " ") + " UTC" if len(timestamp) >= 16 else timestamp


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def markdown_text(html: str, width: int, indent: str = "") -> list[str]:
    """Rendered Markdown (our own renderers' safe HTML) as terminal lines: paragraphs wrapped,
    list items bulleted, code blocks kept as written, a link's address after its text."""
    from html.parser import HTMLParser

    blocks: list[tuple[str, str]] = []   # (prefix or "pre", text)

    class Reader(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.text: list[str] = []
            self.prefix = ""
            self.pre = False
            self.lists: list[list[int | None]] = []   # [counter or None for bullets]
            self.links: list[str | None] = []

        def flush(self):
            text = "".join(self.text)
            if self.pre:
                blocks.append(("pre", text.rstrip("\n")))
            elif text.strip():
                blocks.append((self.prefix, " ".join(text.split())))
            self.text, self.prefix = [], ""

        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "hr", "table"):
                self.flush()
            elif tag == "pre":
                self.flush()
                self.pre = True
            elif tag in ("ul", "ol"):
                self.flush()
                self.lists.append([1 if tag == "ol" else None])
            elif tag == "li":
                self.flush()
                depth = "  " * max(len(self.lists) - 1, 0)
                counter = self.lists[-1] if self.lists else [None]
                if counter[0] is None:
                    self.prefix = depth + "• "
                else:
                    self.prefix = f"{depth}{counter[0]}. "
                    counter[0] += 1
            elif tag == "br":
                self.text.append(" ")
            elif tag in ("td", "th"):
                self.text.append(" | " if self.text else "")
            elif tag == "a":
                self.links.append(attributes.get("href"))
            elif tag == "img":
                self.text.append(attributes.get("alt") or "")

        def handle_endtag(self, tag):
            if tag == "pre":
                self.flush()
                self.pre = False
            elif tag in ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr"):
                self.flush()
            elif tag in ("ul", "ol"):
                self.flush()
                if self.lists:
                    self.lists.pop()
            elif tag == "a" and self.links:
                href = self.links.pop()
                if href and not href.startswith("#") and href not in "".join(self.text):
                    self.text.append(f" <{href}>")

        def handle_data(self, data):
            self.text.append(data)

    reader = Reader()
    reader.feed(html)
    reader.close()
    reader.flush()
    lines: list[str] = []
    for prefix, text in blocks:
        if lines:
            lines.append("")
        if prefix == "pre":
            lines += [f"{indent}    {line}".rstrip() for line in text.split("\n")]
        else:
            lines += _wrap(text, width, indent + prefix, indent + " " * len(prefix))
    return lines


def _first_sentence(markdown: str) -> str:
    import re

    from annotations.markdown import render_curated

    paragraph = (markdown_text(render_curated(markdown), 10_000) or [""])[0]
    # A sentence ends at . ! ? before a space ("0.01" does not end one), not after "e.g." and the like.
    match = re.match(r"(.+?(?<!\be\.g)(?<!\bi\.e)(?<!\bcf)(?<!\bvs)(?<!\betc)[.!?])\s+(?=\S)", paragraph)
    return match.group(1) if match else paragraph


def _hyperlink(text: str, url: str) -> str:
    """OSC 8: a terminal hyperlink; terminals that do not know it show the text alone."""
    return f"\x1b]8;;{url}\x1b\\{text}\x1b]8;;\x1b\\"


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _terms_of(e) -> list[str]:
    """The words `show` prints that the glossary may explain: layer types, neurons, the params
    keys (release spelling) and schedule kinds, in the order they are printed."""
    from archive.layers import parse_neuron

    words: list[str] = []
    if e.layers is not None:
        words += [layer.type for layer in e.layers.layers]
        for layer in e.layers.layers:
            if layer.neuron:
                parsed = parse_neuron(layer.neuron)
                words.append(parsed[0] if parsed else layer.neuron)
    for section in e.params.layers:
        for key, value in section.values.items():
            words.append(key)
            kind = getattr(value, "kind", None)
            if isinstance(kind, str):
                words.append(kind)
    return words


def _terms_footer(e, args) -> list[str]:
    """"terms": one line per glossary entry the printed tables use."""
    from annotations.glossary import load_glossary, terms_named

    terms = terms_named(load_glossary(), _terms_of(e))
    if not terms:
        return []
    site = (getattr(args, "site_url", None) or "").rstrip("/")
    linked = bool(site) and _stdout_is_terminal() and not os.environ.get("NO_COLOR")
    width = _width() if _stdout_is_terminal() else 10_000
    out = ["", "terms  (alexnet-archive glossary TERM for the whole entry)"]
    for term in terms:
        modern = f" — {term.modern_name}" if term.modern_name else ""
        # Cut before linking: the escape sequences take no room on screen.
        line = _clip(f"  {term.term}{modern} — {_first_sentence(term.explanation)}", width)
        if linked:
            url = f"{site}/glossary#{term.slug}"
            line = line.replace(term.term, _hyperlink(term.term, url), 1)
        out.append(line)
    return out


def cmd_glossary(args) -> int:
    import difflib

    from annotations.glossary import glossary_json, load_glossary

    glossary = load_glossary()
    if args.term is None:
        if args.json:
            _print_json(glossary_json(glossary))
            return 0
        # One line per term: cut to the terminal's width there; whole first sentences in a pipe, for grep.
        width = _width() if _stdout_is_terminal() else 10_000
        out = [f"glossary of the 2012 code: {len(glossary)} terms"]
        for kind, terms in glossary.by_kind().items():
            out += ["", kind]
            for term in terms:
                modern = f" — {term.modern_name}" if term.modern_name else ""
                out.append(_clip(f"  {term.term}{modern} — {_first_sentence(term.explanation)}", width))
        print("\n".join(out))
        return 0
    term = glossary.lookup(args.term)
    if term is None:
        names = {name.lower(): t.term for t in glossary for name in t.names()}
        near = dict.fromkeys(names[n] for n in difflib.get_close_matches(args.term.lower(), list(names), n=5))
        hint = f" (did you mean {', '.join(near)}?)" if near else " (`alexnet-archive glossary` lists them all)"
        return _fail(f"no glossary entry for {args.term!r}{hint}")
    if args.json:
        _print_json(term.to_json())
        return 0
    from annotations.markdown import render_curated

    width = _width()
    out = [f"{term.term}  ({', '.join(term.kinds)})"]
    facts = [("modern name", term.modern_name or "none (a 2012 notion without a common name today)"),
             ("origin", term.origin)]
    if term.aliases:
        facts.append(("aliases", ", ".join(term.aliases)))
    if term.see:
        facts.append(("see also", ", ".join(term.see)))
    label_width = max(len(label) for label, _ in facts)
    for label, value in facts:
        out += _wrap(f"{label.ljust(label_width)}  {value}", width, "  ", "  " + " " * (label_width + 2))
    out.append("")
    out += markdown_text(render_curated(term.explanation), width, "  ")
    print("\n".join(out))
    return 0


def _read_password(args) -> str | None:
    """The new password: the first line of stdin (--password-stdin, or stdin not a terminal),
    else asked twice without echo. None when the two answers differ."""
    import getpass

    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for curator {args.name}: ")
    again = getpass.getpass("the same password again: ")
    return first if first == again else None


def cmd_curator(args) -> int:
    from annotations.accounts import add_curator, check_curator_name
    from annotations.store import AnnotationInputError, AnnotationStoreError

    path = _db_path(args)
    try:
        if args.action == "list":
            store = _open_store(path, create=False)
            if store is None:
                return _fail(_NO_DB.format(path=path))
            with store:
                curators = store.curators()
            if args.json:
                _print_json([c.to_json() for c in curators])
                return 0
            if not curators:
                print(f"no curators in {path}; add one with `alexnet-archive curator add NAME`")
                return 0
            print(_table([[c.name, _when(c.created)] for c in curators], ["name", "created"]))
            print(f"\n{len(curators)} curator{'s' if len(curators) != 1 else ''} in {path}")
            return 0
        if not args.name:
            return _fail("curator add needs a NAME (e.g. `alexnet-archive curator add ada`)")
        check_curator_name(args.name)  # before asking for a password
        with _open_store(path, create=True) as store:
            if store.curator(args.name) is not None and not args.replace:
                return _fail(f"curator {args.name!r} exists already in {path} (--replace sets a new password)")
            password = _read_password(args)
            if password is None:
                return _fail("the two passwords differ; nothing was changed")
            if not password:
                return _fail("no password given (on standard input: the first line)")
            record = add_curator(store, args.name, password, replace=args.replace)
    except AnnotationInputError as error:
        return _fail(f"curator {args.action}: {error}")
    except AnnotationStoreError as error:
        return _fail(str(error))
    if args.json:
        _print_json({**record.to_json(), "db": str(path)})
    else:
        print(f"{'new password for' if args.replace else 'added'} curator {record.name} in {path}")
    return 0


def cmd_annotations(args) -> int:
    from annotations.store import AnnotationInputError, AnnotationStoreError
    from annotations.transfer import TransferError

    path = _db_path(args)
    try:
        if args.action == "import":
            return _import_annotations(args, path)
        store = _open_store(path, create=False)
        if store is None:
            return _fail(_NO_DB.format(path=path))
        with store:
            if args.action == "export":
                return _export_annotations(store, args.file or "-", path)
            annotations = store.list(status=args.status, prefix=args.anchor.rstrip("/") if args.anchor else None)
    except TransferError as error:
        return _fail(f"{args.file}: {error}")
    except (AnnotationInputError, AnnotationStoreError) as error:
        return _fail(str(error))
    if args.json:
        _print_json([a.to_json() for a in annotations])
        return 0
    width = _width() if _stdout_is_terminal() else 10_000
    rows = [[str(a.id), a.status, a.role, a.author, _when(a.created), a.anchor,
             _clip(" ".join(a.body.split()), 60)] for a in annotations]
    table = _table(rows, ["id", "status", "role", "author", "created", "anchor", "text"])
    print("\n".join(_clip(line, width) for line in table.splitlines()))
    print(f"\n{len(annotations)} annotation{'s' if len(annotations) != 1 else ''} in {path}")
    return 0


def _export_annotations(store, dest: str, path) -> int:
    from annotations.transfer import export_jsonl

    if dest == "-":
        count = export_jsonl(store, sys.stdout)
        sys.stdout.flush()
    else:
        with open(dest, "w", encoding="utf-8", newline="\n") as out:
            count = export_jsonl(store, out)
    print(f"exported {count} annotation{'s' if count != 1 else ''} from {path}"
          + ("" if dest == "-" else f" to {dest}"), file=sys.stderr)
    return 0


def _import_annotations(args, path) -> int:
    from annotations.transfer import import_jsonl

    if not args.file:
        return _fail("annotations import needs a FILE (JSON Lines from `annotations export`; - for stdin)")
    try:
        if args.file == "-":
            lines = sys.stdin.read().split("\n")
        else:
            with open(args.file, encoding="utf-8") as source:
                lines = source.read().split("\n")
    except OSError as error:
        return _fail(f"cannot read {args.file}: {error.strerror}")
    except UnicodeDecodeError as error:
        return _fail(f"{args.file}: not UTF-8 text (byte {error.start})")
    with _open_store(path, create=True) as store:
        report = import_jsonl(store, lines)
    if args.json:
        _print_json({**report.to_json(), "db": str(path)})
    else:
        print(f"imported {args.file} into {path}: {report.added} added, {report.extended} extended, "
              f"{report.unchanged} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
