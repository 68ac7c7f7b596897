"""The CPU stand-in for compute-sanitizer's racecheck and memcheck: every production kernel under ThreadSanitizer
and AddressSanitizer, through the emulator (design: shared/design/CUDA-ON-CPU.md, "Sanitizers").

    python -m replay.backends.cuda.emulator.sanitize                    # thread, then address
    python -m replay.backends.cuda.emulator.sanitize thread             # data races (a missing __syncthreads)
    python -m replay.backends.cuda.emulator.sanitize address -k conv    # out-of-bounds reads/writes; cases ~ /conv/
    python -m replay.backends.cuda.emulator.sanitize thread --cases tests/cuda/kernels_for_tests/sanitizer_cases.py
    python -m replay.backends.cuda.emulator.sanitize --list             # the case names

What it does: the kernels are built with `-O1 -g -fsanitize=thread` (or address) — load_module(sanitize=...),
a separate cache entry — and such a library only runs in a process started with the sanitizer's runtime
preloaded. So this command (the parent) re-executes itself (the child) with
    LD_PRELOAD=$(g++ -print-file-name=libtsan.so)   or libasan.so and ASAN_OPTIONS=detect_leaks=0:halt_on_error=0
    ALEXNET_EMU_SANITIZE=thread|address             (read by load_module: every module loads sanitized)
and the child runs the cases: the op functions of replay/backends/cuda/{conv,dense,pool_norm}.py on small
shapes like the tests' (conv forward / data / weights with groups, padding, stride, randSparse, partialSum;
local; biases; pool max/maxabs/avg; cmrnorm/rnorm/cnorm forward and backward; neurons incl. nrelu; softmax;
logreg; dropout; concat/eltsum/eltmax; blur; nailbed; sgd_update; fc bias gradient). The child prints
markers (case begin/end, every kernel launch) on stderr, the stream the sanitizers report on, so the parent
attributes each report to the kernel being launched. A child that dies (a crash, an ASan abort) is restarted
after the case that killed it.

Output: one line per case, then per kernel OK or the sanitizer's first report, condensed to the accesses'
first frames in a .cu file (file:line, thanks to the loader's #line), then totals and times. --verbose also
prints every report in full. Exit status: 0 when every case ran clean (and, for the full production sweep,
every kernel of replay/backends/cuda/kernels/*.cu was launched); 1 on any report, case error or crash, or an
unlaunched kernel; 2 when the sanitizer runtime is missing (`g++ -print-file-name=libtsan.so` is no path).

--cases FILE: a Python file defining CASES, a dict {name: zero-argument function} (or a list of pairs) that
launch kernels through load_module or the ops; it replaces the production cases (tests/cuda uses this for its
deliberately broken toy kernels).
Environment: TSAN_OPTIONS / ASAN_OPTIONS given by the caller are appended to ours (theirs win).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SANITIZERS = ("thread", "address")
MARK = "@@sanitize@@"
_REPO_ROOT = Path(__file__).resolve().parents[4]
_CHILD_OPTIONS = {
    # halt_on_error=0: keep going after a report (every kernel gets its verdict in one run).
    "thread": ("TSAN_OPTIONS", "halt_on_error=0:report_signal_unsafe=0:history_size=4"),
    # detect_leaks=0: CPython's own allocations would be reported; halt_on_error=0 with -fsanitize-recover.
    "address": ("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=0:abort_on_error=0:detect_odr_violation=0"),
}


# ============================================================================================ the cases


def _rand(*shape, scale=1.0, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def production_cases() -> dict[str, Callable[[], object]]:
    """{case name: a function running some ops of replay/backends/cuda on small shapes}. Together they launch
    every kernel of replay/backends/cuda/kernels/*.cu at least once."""
    from replay.backends.cuda import conv, dense, pool_norm
    from replay.backends.numpy_ref.conv import modules_x_for

    cases: dict[str, Callable[[], object]] = {}

    # conv / local: (channels, image, filter, padding, stride, filters, groups, cases, randSparse overSample)
    conv_shapes = {
        "3x3-pad1": (3, 6, 3, 1, 1, 8, 1, 3, 0),
        "5x5-stride2-groups2": (4, 7, 3, 1, 2, 8, 2, 3, 0),  # the last module reaches past the border
        "randsparse": (4, 5, 3, 1, 1, 8, 4, 3, 2),  # 4 groups, conns = 2 permutations: data-gradient slots
        "wide-n1": (66, 4, 3, 1, 1, 70, 1, 1, 0),  # channels and filters over one 64-wide tile, N = 1
    }

    def conv_case(name, *, local=False, seed=0):
        channels, size, fs, padding, stride, filters, groups, n, over = conv_shapes[name]
        rng = np.random.default_rng(seed)
        mx = modules_x_for(size, fs, padding, stride)
        cf, conns = channels // groups, None
        if over:
            cf = over * channels // groups
            conns = np.concatenate([rng.permutation(channels) for _ in range(over)]).astype(np.int32)
        kw = {"channels": channels, "filter_size": fs, "padding": padding, "stride": stride, "groups": groups,
              "filter_channels": cf, "modules_x": mx, "conns": conns}
        taps = cf * fs * fs
        x = rng.standard_normal((channels * size * size, n)).astype(np.float32)
        w = rng.standard_normal((mx * mx * taps if local else taps, filters)).astype(np.float32)
        dy = rng.standard_normal((filters * mx * mx, n)).astype(np.float32)
        return x, w, dy, kw, size

    for name in conv_shapes:
        def forward(name=name):
            x, w, _, kw, _ = conv_case(name)
            conv.conv_forward(x, w, **kw)

        def backward_data(name=name):
            _, w, dy, kw, size = conv_case(name)
            conv.conv_backward_data(dy, w, image_size=size, **kw)

        def backward_weights(name=name):
            x, _, dy, kw, _ = conv_case(name)
            conv.conv_backward_weights(x, dy, **kw)

        cases[f"conv.forward[{name}]"] = forward
        cases[f"conv.backward_data[{name}]"] = backward_data
        cases[f"conv.backward_weights[{name}]"] = backward_weights

    def partial_sum():  # M = 16 modules in runs of 4: conv_weight_acts_kernel + sum_partials_kernel
        x, _, dy, kw, _ = conv_case("5x5-stride2-groups2", seed=1)
        conv.conv_backward_weights(x, dy, partial_sum=4, **kw)

    cases["conv.backward_weights[partialSum=4]"] = partial_sum

    for name in ("3x3-pad1", "randsparse"):
        def local_all(name=name):
            x, w, dy, kw, size = conv_case(name, local=True, seed=2)
            conv.local_forward(x, w, **kw)
            conv.local_backward_data(dy, w, image_size=size, **kw)
            conv.local_backward_weights(x, dy, **kw)

        cases[f"local.forward+backward[{name}]"] = local_all

    for shared in (True, False):
        def bias(shared=shared):
            filters, modules, n = 6, 9, 5
            y = _rand(filters * modules, n, seed=3)
            b = _rand(filters if shared else filters * modules, 1, seed=4)
            conv.add_conv_bias(y, b, shared=shared, filters=filters)
            conv.add_conv_bias(y, b, shared=shared, filters=filters, out=y)
            conv.conv_bias_grad(y, shared=shared, filters=filters)

        cases[f"conv.bias+bias_grad[{'shared' if shared else 'unshared'}]"] = bias

    # pool: (channels, image, size_x, stride, start, outputs_x)
    for pool, geometry in (("max", (3, 9, 3, 2, 0, 0)), ("maxabs", (2, 8, 3, 2, -1, 0)),
                           ("avg", (2, 9, 4, 3, 0, 4))):
        def pool_case(pool=pool, geometry=geometry):
            channels, size, size_x, stride, start, outputs_x = geometry
            rng = np.random.default_rng(5)
            x = rng.integers(-3, 4, (channels * size * size, 4)).astype(np.float32)
            kw = {"channels": channels, "size_x": size_x, "stride": stride, "start": start,
                  "outputs_x": outputs_x, "pool": pool}
            y = pool_norm.pool_forward(x, **kw)
            pool_norm.pool_backward(x, y, _rand(*y.shape, seed=6), **kw)

        cases[f"pool.forward+backward[{pool}]"] = pool_case

    def norm_inputs(channels=8, size=6, n=3, seed=7):
        return _rand(channels * size * size, n, scale=3.0, seed=seed), _rand(channels * size * size, n, seed=seed + 1)

    for blocked in (False, True):
        def cmrnorm(blocked=blocked):
            x, dy = norm_inputs()
            kw = {"channels": 8, "size": 3 if blocked else 5, "scale": 0.5, "pow": 0.75, "min_div": 2.0,
                  "blocked": blocked}
            y, denoms = pool_norm.cmrnorm_forward(x, **kw)
            pool_norm.cmrnorm_backward(x, y, denoms, dy, **kw)

        cases[f"norm.cmrnorm[{'blocked' if blocked else 'cross-map'}]"] = cmrnorm

    def rnorm():
        x, dy = norm_inputs(channels=4)
        kw = {"channels": 4, "size": 3, "scale": 2.0, "pow": 0.75}
        y, denoms = pool_norm.rnorm_forward(x, **kw)
        pool_norm.rnorm_backward(x, y, denoms, dy, **kw)

    def cnorm():
        x, dy = norm_inputs(channels=2, size=7)
        kw = {"channels": 2, "size": 5, "scale": 1.5, "pow": 0.75}
        y, denoms, diffs = pool_norm.cnorm_forward(x, **kw)
        pool_norm.cnorm_backward(diffs, y, denoms, dy, include_mean_grad=True, **kw)

    cases["norm.rnorm"] = rnorm
    cases["norm.cnorm"] = cnorm

    d, n = 37, 13  # ragged, as tests/cuda/test_dense_kernels.py

    def neurons():
        x, dy = _rand(d, n, scale=3.0, seed=10), _rand(d, n, seed=11)
        with np.errstate(all="ignore"):
            for kind, params in (("relu", ()), ("tanh", (1.7159, 0.6666)), ("softrelu", ()), ("brelu", (1.5,))):
                y = dense.neuron_forward(x, kind, params)
                dense.neuron_backward(x, y, dy, kind, params)
            dense.neuron_forward(x, "nrelu", (), rng=np.random.default_rng(12))

    def softmax_logreg():
        x = _rand(d, n, scale=4.0, seed=13)
        y = dense.softmax_forward(x)
        dense.softmax_backward(y, _rand(d, n, seed=14))
        labels = np.random.default_rng(15).integers(0, d, size=(1, n)).astype(np.float32)
        dense.logreg_cost(labels, y, topk=5)
        dense.logreg_backward_probs(labels, y, 1.0)
        dense.softmax_logreg_backward(labels, y, 1.0)

    def dropout():
        x = _rand(d, n, seed=16)
        y, mask = dense.dropout_forward(x, keep=0.5, enable=True, train=True, rng=np.random.default_rng(17))
        dense.dropout_backward(y, mask, keep=0.5, enable=True, train=True)
        dense.dropout_forward(x, keep=0.5, enable=True, train=False)

    def elementwise():
        xs = [_rand(d, n, seed=s) for s in (18, 19, 20)]
        y = dense.concat_forward(xs)
        dense.concat_backward(y, [d, d, d])
        dense.eltsum_forward(xs, [1.0, -0.5, 2.0])
        m = dense.eltmax_forward(xs)
        dense.eltmax_backward(xs[0], xs, m)

    def blur_nailbed():  # and href
        img = _rand(2 * 9 * 9, 5, seed=21)
        dense.blur_forward(img, channels=2, filter_size=5, stdev=1.0)
        y = dense.nailbed_forward(img, channels=2, stride=3)
        dense.nailbed_backward(y, channels=2, stride=3, img_size=9)
        mirrored = dense.href_forward(img, channels=2)
        dense.href_backward(mirrored, channels=2, prev_grad=img, fix_overwrite=True)

    def sgd_update():
        w, v, g = _rand(d, n, seed=22), _rand(d, n, scale=0.01, seed=23), _rand(d, n, seed=24)
        dense.sgd_update(w, v, g, eps=0.01, mom=0.9, wc=0.0005)

    def fc_bias_grad():
        dense.fc_bias_grad(_rand(11, 300, seed=25))  # several strided partial sums per thread
        dense.fc_bias_grad(_rand(5, 1, seed=26))  # one case: most threads sum nothing

    cases["dense.neurons"] = neurons
    cases["dense.softmax+logreg"] = softmax_logreg
    cases["dense.dropout"] = dropout
    cases["dense.concat+eltsum+eltmax"] = elementwise
    cases["dense.blur+nailbed+href"] = blur_nailbed
    cases["dense.sgd_update"] = sgd_update
    cases["dense.fc_bias_grad"] = fc_bias_grad
    return cases


def load_cases(path: str | None) -> dict[str, Callable[[], object]]:
    if path is None:
        return production_cases()
    spec = importlib.util.spec_from_file_location("_sanitizer_cases", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import cases from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = getattr(module, "CASES", None)
    if cases is None:
        raise SystemExit(f"{path} defines no CASES")
    return dict(cases)


def select(cases: dict, pattern: str | None) -> list[str]:
    names = list(cases)
    if pattern:
        regex = re.compile(pattern, re.IGNORECASE)
        names = [n for n in names if regex.search(n)]
    return names


# ============================================================================================ the child


def _child(sanitizer: str, cases_path: str | None, names: list[str]) -> int:
    from replay.backends.cuda import emulator

    if emulator.resolve_sanitize() != sanitizer:
        print(f"{MARK} fatal the child expects {emulator.SANITIZE_ENV}={sanitizer}", file=sys.stderr, flush=True)
        return 3
    original_call = emulator.EmulatedKernel.__call__

    def traced_call(self, *args, **kwargs):
        if self.module.sanitize != sanitizer:
            raise emulator.EmulatorError(f"{self.name}: module loaded with sanitize={self.module.sanitize!r}")
        print(f"{MARK} launch {Path(self.module.source_path).name}:{self.name}", file=sys.stderr, flush=True)
        return original_call(self, *args, **kwargs)

    emulator.EmulatedKernel.__call__ = traced_call
    cases = load_cases(cases_path)
    for name in names:
        print(f"{MARK} begin {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            cases[name]()
        except Exception as error:  # noqa: BLE001 - reported to the parent, the sweep goes on
            message = f"{type(error).__name__}: {error}".replace("\n", " | ")
            print(f"{MARK} error {message}", file=sys.stderr, flush=True)
        print(f"{MARK} end {time.perf_counter() - start:.3f}", file=sys.stderr, flush=True)
    print(f"{MARK} done", file=sys.stderr, flush=True)
    return 0


# =========================================================================================== the parent


@dataclass
class Report:
    case: str
    kernel: str | None  # "file.cu:kernel" being launched when it came, or None (between launches)
    lines: list[str]

    @property
    def headline(self) -> str:
        for line in self.lines:
            m = re.search(r"(?:WARNING|ERROR|FATAL): ((?:Thread|Address)Sanitizer.*)", line)
            if m:
                return re.sub(r" \(pid=\d+\)| on (?:unknown )?address\b.*$", "", m.group(1)).strip()
        return self.lines[0].strip() if self.lines else "?"

    @property
    def summary(self) -> str | None:
        for line in self.lines:
            if line.startswith("SUMMARY:"):
                return line[len("SUMMARY:"):].strip()
        return None

    def condensed(self) -> list[str]:
        """The accesses (TSan: this one and the previous; ASan: the bad one) at their first .cu frame, the
        location line, and the SUMMARY."""
        out: list[str] = []
        access = None
        for line in self.lines:
            stripped = line.strip()
            if re.match(r"(?:(?:Previous )?(?:atomic )?(?:[Ww]rite|[Rr]ead|READ|WRITE) of size \d+)", stripped):
                access = re.sub(r" at 0x[0-9a-f]+", "", stripped).rstrip(":")
                continue
            if access is not None:
                m = re.search(r"#\d+\s+(?:0x[0-9a-f]+\s+in\s+)?(\S+)\s+(\S+\.cu):(\d+)", stripped)
                if m:
                    out.append(f"{access} at {_short(m.group(2))}:{m.group(3)} in {m.group(1)}")
                    access = None
                elif not stripped:
                    out.append(f"{access} (no frame in a .cu file)")
                    access = None
            if stripped.startswith("Location is") or "is located" in stripped:
                out.append(re.sub(r" at 0x[0-9a-f]+| \([^)]*\.so\+0x[0-9a-f]+\)|0x[0-9a-f]+ ", "", stripped))
        if not any(" at " in line and ".cu:" in line for line in out):  # e.g. a SEGV: the first .cu frame
            for line in self.lines:
                m = re.search(r"#\d+\s+(?:0x[0-9a-f]+\s+in\s+)?(\S+)\s+(\S+\.cu):(\d+)", line.strip())
                if m:
                    out.append(f"first frame in a .cu file: {_short(m.group(2))}:{m.group(3)} in {m.group(1)}")
                    break
        if self.summary:
            out.append("SUMMARY: " + self.summary)
        return out


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(_REPO_ROOT))
    except ValueError:
        return path


@dataclass
class CaseResult:
    name: str
    seconds: float | None = None
    kernels: list[str] = field(default_factory=list)
    error: str | None = None
    crashed: str | None = None


@dataclass
class Sweep:
    sanitizer: str
    runtime: str
    cases: list[CaseResult] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    launches: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    restarts: int = 0


def _child_env(sanitizer: str, runtime: str) -> dict[str, str]:
    from replay.backends.cuda import emulator

    env = dict(os.environ)
    env["LD_PRELOAD"] = runtime + (" " + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    env[emulator.SANITIZE_ENV] = sanitizer
    name, ours = _CHILD_OPTIONS[sanitizer]
    env[name] = ours + (":" + env[name] if env.get(name) else "")
    env["PYTHONPATH"] = str(_REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_sweep(sanitizer: str, names: list[str], cases_path: str | None, *, verbose: bool = False,
              echo=print) -> Sweep:
    from replay.backends.cuda import emulator

    runtime = emulator.sanitizer_runtime(sanitizer)
    sweep = Sweep(sanitizer, runtime)
    env = _child_env(sanitizer, runtime)
    start = time.perf_counter()
    remaining = list(names)
    while remaining:
        command = [sys.executable, "-m", "replay.backends.cuda.emulator.sanitize", "--child", sanitizer]
        if cases_path:
            command += ["--cases", str(Path(cases_path).resolve())]
        command += ["--names", json.dumps(remaining)]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace", env=env, cwd=_REPO_ROOT)
        current: CaseResult | None = None
        kernel: str | None = None
        report: list[str] | None = None
        tail: list[str] = []
        done = False
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            if line.startswith(MARK):
                if report:
                    sweep.reports.append(Report(current.name if current else "<outside any case>", kernel, report))
                    report = None
                word, _, rest = line[len(MARK):].strip().partition(" ")
                if word == "begin":
                    current = CaseResult(rest)
                    sweep.cases.append(current)
                    kernel = None
                    tail = []
                elif word == "launch" and current is not None:
                    kernel = rest
                    sweep.launches[rest] = sweep.launches.get(rest, 0) + 1
                    if rest not in current.kernels:
                        current.kernels.append(rest)
                elif word == "error" and current is not None:
                    current.error = rest
                elif word == "end" and current is not None:
                    current.seconds = float(rest)
                    _print_case(current, sweep, echo)
                    remaining.remove(current.name)
                    current, kernel = None, None
                elif word == "done":
                    done = True
                elif word == "fatal":
                    echo(f"  child: {rest}")
                continue
            if verbose:
                echo("    | " + line)
            tail = (tail + [line])[-40:]
            starts = re.search(r"WARNING: ThreadSanitizer:|ERROR: AddressSanitizer|FATAL: |"
                               r"(?:Thread|Address)Sanitizer:DEADLYSIGNAL", line)
            if starts and report is not None and any(re.search(r"WARNING: ThreadSanitizer:|ERROR: AddressSanitizer",
                                                               x) for x in report):
                sweep.reports.append(Report(current.name if current else "<outside any case>", kernel, report))
                report = None
            if starts and report is None:
                report = [line]
            elif report is not None:
                if line.startswith("=================="):
                    continue
                report.append(line)
                if line.startswith("SUMMARY:"):
                    sweep.reports.append(Report(current.name if current else "<outside any case>", kernel,
                                                report))
                    report = None
        rc = proc.wait()
        if report:
            sweep.reports.append(Report(current.name if current else "<outside any case>", kernel, report))
        if done:
            break
        # The child died: blame the case it was running (or the start-up) and go on after it.
        what = f"the child exited with status {rc} " + ("during this case" if current else "outside any case")
        echo(f"  !! {what}; last output:")
        for line in tail[-8:]:
            echo("     " + (line if len(line) <= 200 else line[:197] + "..."))
        if current is None:
            sweep.cases.append(CaseResult("<start-up>", crashed=what))
            break
        current.crashed = what
        _print_case(current, sweep, echo)
        remaining.remove(current.name)
        sweep.restarts += 1
    sweep.seconds = time.perf_counter() - start
    return sweep


def _case_reports(case: CaseResult, sweep: Sweep) -> list[Report]:
    return [r for r in sweep.reports if r.case == case.name]


def _print_case(case: CaseResult, sweep: Sweep, echo) -> None:
    reports = _case_reports(case, sweep)
    if case.crashed:
        verdict = "CRASH"
    elif reports:
        verdict = f"REPORT ({len(reports)})"
    elif case.error:
        verdict = "ERROR"
    else:
        verdict = "ok"
    seconds = f"{case.seconds:6.2f} s" if case.seconds is not None else "     - s"
    kernels = ", ".join(k.split(":")[1] for k in case.kernels) or "no launch"
    echo(f"  {case.name:<42} {verdict:<11} {seconds}  [{kernels}]")
    if case.error:
        echo(f"      {case.error}")


def summarize(sweep: Sweep, expected_kernels: list[str] | None, echo=print) -> int:
    """Per-kernel verdicts; returns the number of problems (reports, errors, crashes, unlaunched kernels)."""
    echo(f"\nkernels under {sweep.sanitizer} sanitizer:")
    first: dict[str, Report] = {}
    for r in sweep.reports:
        first.setdefault(r.kernel or f"<no kernel; case {r.case}>", r)
    kernels = list(sweep.launches)
    for key in first:
        if key not in sweep.launches:
            kernels.append(key)
    not_run = [k for k in (expected_kernels or []) if k not in sweep.launches]
    width = max([len(k) for k in kernels + not_run] + [10])
    for k in kernels:
        r = first.get(k)
        count = sweep.launches.get(k, 0)
        if r is None:
            echo(f"  {k:<{width}}  OK      ({count} launch{'es' if count != 1 else ''})")
        else:
            echo(f"  {k:<{width}}  REPORT  {r.headline}  (case {r.case})")
            for line in r.condensed():
                echo(f"  {'':<{width}}      {line}")
    for k in not_run:
        echo(f"  {k:<{width}}  NOT RUN (no case launches it)")
    errors = [c for c in sweep.cases if c.error]
    crashes = [c for c in sweep.cases if c.crashed]
    problems = len(first) + len(errors) + len(crashes) + len(not_run)
    echo(f"{sweep.sanitizer}: {len(sweep.launches)} kernels run ({sum(sweep.launches.values())} launches) in "
         f"{len(sweep.cases)} cases, {sweep.seconds:.1f} s; {len(sweep.reports)} report(s) on {len(first)} "
         f"kernel(s), {len(errors)} case error(s), {len(crashes)} crash(es), {len(not_run)} kernel(s) not run"
         + (f", {sweep.restarts} restart(s)" if sweep.restarts else ""))
    return problems


def production_kernels() -> list[str]:
    from replay.backends.cuda.kernels import kernel_index

    return [f"{path.name}:{name}" for name, path in sorted(kernel_index().items(), key=lambda kv: (kv[1].name,
                                                                                                   kv[0]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replay.backends.cuda.emulator.sanitize",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("sanitizer", nargs="?", choices=(*SANITIZERS, "all"), default="all",
                        help="thread (races), address (out-of-bounds), or all (both, the default)")
    parser.add_argument("-k", dest="pattern", help="run only the cases whose name matches this regex")
    parser.add_argument("--cases", help="a Python file defining CASES (instead of the production kernels)")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the child's output (full reports)")
    parser.add_argument("--child", choices=SANITIZERS, help=argparse.SUPPRESS)
    parser.add_argument("--names", default="[]", help=argparse.SUPPRESS)  # the child's cases, JSON
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.cases, json.loads(args.names))

    cases = load_cases(args.cases)
    names = select(cases, args.pattern)
    if args.list:
        print("\n".join(names))
        return 0
    if not names:
        print(f"no case matches -k {args.pattern!r}; --list shows them", file=sys.stderr)
        return 1
    from replay.backends.cuda import emulator

    sanitizers = SANITIZERS if args.sanitizer == "all" else (args.sanitizer,)
    missing = [s for s in sanitizers if not os.path.isabs(emulator.sanitizer_runtime(s))]
    if missing:
        for s in missing:
            print(f"the {s} sanitizer runtime is missing: `{emulator.COMPILER} -print-file-name="
                  f"{emulator.sanitizer_runtime(s)}` names no file (install libtsan / libasan for this g++)",
                  file=sys.stderr)
        return 2
    # The full production sweep must launch every kernel; a -k selection or a --cases file need not.
    expected = production_kernels() if args.cases is None and not args.pattern else None
    problems = 0
    for sanitizer in sanitizers:
        print(f"== {sanitizer} sanitizer (LD_PRELOAD={emulator.sanitizer_runtime(sanitizer)}, "
              f"{len(names)} case(s))", flush=True)
        sweep = run_sweep(sanitizer, names, args.cases, verbose=args.verbose,
                          echo=lambda s: print(s, flush=True))
        problems += summarize(sweep, expected, echo=lambda s: print(s, flush=True))
        print(flush=True)
    print("RESULT: " + ("clean" if problems == 0 else f"{problems} problem(s)"), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
