"""`alexnet-archive`: the command-line tool.

Each command imports what it needs inside its function, so `list`, `show`,
`log`, `lineage`, `diff`, `stats` and `fetch` load only the standard-library
`archive` package -- never NumPy, CuPy or FastAPI (tests/test_layering.py checks).

Every read command takes ``--json``; that JSON is a documented interface
(README, "JSON output").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence


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

    sub = command("show", cmd_show, "one experiment: layers with shapes and GPU, parameters, log, results")
    sub.add_argument("id", help="experiment id, e.g. 120 or 120-2012-full")

    sub = command("log", cmd_log, "the experiment log of one experiment, typed entry by entry")
    sub.add_argument("id")

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
                  "(NumPy reference backend)", json_flag=False)
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
    sub.add_argument("--color-noise", type=float, default=0.0)
    sub.add_argument("--multiview-test", type=int, choices=(0, 1), default=0)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--fix", action="append", default=[], metavar="NAME", help="correct a 2012 bug (see --plan)")
    sub.add_argument("--as-written", action="store_true", help="the params file's values from the start, instead "
                     "of the starting values rebuilt from the log")
    sub.add_argument("--scale", choices=("full", "small"), default="full",
                     help="small: minibatch 8 and, without --data, a synthetic set of 64 + 32 images")
    sub.add_argument("--db", metavar="PATH", help="where runs are kept (default: $ALEXNET_ARCHIVE_DB, else the "
                     "per-user data folder); `serve --db` shows them")
    sub.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last checkpoint")
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
    return parser


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
    if args.json:
        _print_json(e.to_json())
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
    out += _log_lines(e)
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


def _log_lines(e) -> list[str]:
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
    return lines


def cmd_log(args) -> int:
    archive = _load(args)
    e = archive.experiment(args.id)
    if args.json:
        _print_json(e.logbook.to_json())
        return 0
    print(f"log of {e.id} ({e.params_file})")
    print("\n".join(_log_lines(e)))
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

    from replay.data import DataError, load_cifar_dir, load_image_folder, synthetic_dataset
    from replay.network import Network, ReplayError, check_experiment
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
                    "multiview_test", "seed", "fix"):
            if key in stored["options"]:
                setattr(args, key, stored["options"][key])
    plan = build_plan(experiment, as_written=args.as_written)
    mini = args.mini or (8 if args.scale == "small" else 128)
    if args.plan:
        print(format_plan(plan, minibatch=mini))
        return 0
    try:
        if args.data:
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
                               multiview_test=bool(args.multiview_test), seed=args.seed, fixes=tuple(args.fix),
                               max_minibatches=args.max_minibatches)
        store = _run_store(args)
        network = Network(plan, experiment, rng=np.random.default_rng(args.seed), fixes=frozenset(args.fix))
        if stored:
            run_id = stored["id"]
            store.reopen_run(run_id)
        else:
            run_id = store.create_run(experiment=experiment.id, backend="numpy", data=dataset.description,
                                      synthetic=dataset.synthetic,
                                      options={"data": args.data, "scale": args.scale, "as_written": args.as_written,
                                               "epochs": args.epochs, "mini": mini, "test_freq": args.test_freq,
                                               "crop_border": args.crop_border, "color_noise": args.color_noise,
                                               "multiview_test": args.multiview_test, "seed": args.seed,
                                               "fix": list(args.fix)},
                                      fixes=list(args.fix), code_version=_code_version())
        trainer = Trainer(network, dataset, options, store=store, run_id=run_id,
                          checkpoint=store.checkpoint_path(run_id))
        if args.resume:
            trainer.restore()
        print(f"replaying #{experiment.id} as run {run_id} ({store.path})", file=sys.stderr)
        try:
            status = trainer.run()
        except KeyboardInterrupt:
            trainer.save()
            store.finish_run(run_id, "stopped", transfers=_transfers(network))
            print(f"\nstopped; continue with: alexnet-archive replay {experiment.id} --resume {run_id}",
                  file=sys.stderr)
            return 130
        store.finish_run(run_id, status, transfers=_transfers(network))
        print(f"run {run_id} {status}; see `alexnet-archive runs show {run_id}`", file=sys.stderr)
        if status == "stopped":
            print(f"continue with: alexnet-archive replay {experiment.id} --resume {run_id}", file=sys.stderr)
        return 0
    except (DataError, ReplayError) as error:
        print(f"alexnet-archive: {error}", file=sys.stderr)
        return 2


def _transfers(network) -> dict:
    batches = network.transfers.per_batch
    if not batches:
        return {"copies_per_batch": 0, "bytes_per_batch": 0}
    return {"copies_per_batch": batches[-1][0], "bytes_per_batch": batches[-1][1], "batches": len(batches)}


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


if __name__ == "__main__":
    sys.exit(main())
