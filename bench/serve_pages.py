"""How fast the museum site serves its heaviest pages, against uvicorn serving the same bytes as a file.

    python3 bench/serve_pages.py [--archive PATH] [--duration 10] [--connections 32] [--workers 1] [--json]

What it measures. For each page -- an experiment (/experiments/120), the compare
permalink (/compare/120,131) and the compare query form (/compare?ids=120,131) -- the
requests per second and the p50/p99 latency at N keep-alive HTTP/1.1 connections
(default 32), once against the site and once against a baseline that serves the very
same HTML bytes as a static file. It also times the first request of each page on a
fresh site: the one uncached render (later requests come from the page cache). Those
are taken in the order listed, on one site process, so they are not independent: the
first page of a kind also pays one-off work (its template compiled, chart code warmed),
and the compare query form reuses what the permalink already computed.

The two servers. Both are real processes on free loopback ports, started the same way:
(a) the site, ``python -m webapp.cli serve --host 127.0.0.1 --port 0``; (b) the baseline,
a Starlette app holding only ``StaticFiles`` over a temp folder, run by uvicorn with the
settings ``serve`` uses (log level warning, the default loop and HTTP implementations,
the same worker count). The pages are fetched from the site once, written to that folder,
and read back from the baseline to check the bytes are identical.

Both servers stay up for the whole run, but only one is under load at any moment: the
pages are measured one after the other, site then baseline, so each pair of numbers is
taken seconds apart (on 2 cores, loading both at once would make them fight for the CPU
with each other and with the load generator). An idle uvicorn costs next to nothing.

Compression. Both are measured without gzip (no Accept-Encoding), since StaticFiles
cannot compress; the site would send its cached gzip copy to a browser that asks.

Load generator: Debian's ``wrk`` when it is on PATH (``wrk -t2 -cN -dDs --latency``;
its latencies are not corrected for coordinated omission), else a small asyncio client
in this file (raw sockets, keep-alive, N connections; ``--load-generator`` picks one).
The Python client spends more CPU per request than wrk, CPU it takes from the server on
a small machine. The output names the one used. Either way the load generator shares
the machine's cores with the server it loads, so close other work before trusting p99.

How to read the ratios. ratio = site req/s / baseline req/s. 1.0 means the site costs
no more than handing out a file; the aim is >= 0.5x for cached pages, with the site's
p99 under 20 ms on 2 cores. Expect a ratio above 1 on these ~180 KB pages: StaticFiles
stats and reads the file on every request through anyio's thread pool, in 64 KiB
chunks (each a separate send), while the page cache answers from memory in one send.
So the baseline is "what uvicorn + Starlette do for a file", not uvicorn's ceiling; the
second ratio (site / "memory") is against that ceiling: the same bytes handed out from
memory by a bare ASGI callable under the same uvicorn, which no page can beat.
The verdict lines are information, not an assertion: the script exits 0 whatever the
numbers, and non-zero only when a server does not start or the bytes differ.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
PAGES = ("/experiments/120", "/compare/120,131", "/compare?ids=120,131")
AIM_RATIO = 0.5
AIM_P99_MS = 20.0
START_TIMEOUT_S = 60.0


class BenchError(Exception):
    """A reason to stop: a server that did not start, or pages that differ."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors plus non-2xx/3xx answers


@dataclass(frozen=True, slots=True)
class PageResult:
    page: str
    bytes: int
    first_request_ms: float  # uncached render, as a client sees it
    second_request_ms: float  # the same page from the cache, one request, for contrast
    site: LoadResult
    static: LoadResult
    memory: LoadResult  # the same bytes from memory by a bare ASGI callable: uvicorn's ceiling

    @property
    def ratio(self) -> float:
        return self.site.requests_per_s / self.static.requests_per_s if self.static.requests_per_s else 0.0

    @property
    def ceiling_ratio(self) -> float:
        return self.site.requests_per_s / self.memory.requests_per_s if self.memory.requests_per_s else 0.0


# --- the two servers -------------------------------------------------------------------

# Written into the temp folder and run as a script, so that `--workers N` can hand uvicorn
# an import string ("static_baseline:app"), as `serve --workers N` does (webapp/cli.py: cmd_serve).
STATIC_SERVER = '''\
"""The baselines: uvicorn serving one folder through Starlette's StaticFiles, and the same
pages handed out from memory by a bare ASGI callable at /memory/NAME (uvicorn's ceiling)."""
import os
import socket
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

FOLDER = Path(os.environ["BENCH_STATIC_DIR"])
files = Starlette(routes=[Mount("/", StaticFiles(directory=FOLDER))])
in_memory = {path.name: path.read_bytes() for path in FOLDER.glob("*.html")}


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith("/memory/"):
        body = in_memory.get(scope["path"][len("/memory/"):])
        status = 200 if body is not None else 404
        body = body or b"not found"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    await files(scope, receive, send)


def main() -> None:
    workers = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    print(f"Static files at http://127.0.0.1:{port}/", flush=True)
    if workers > 1:  # as `serve --workers N` does: the workers share the socket bound here
        uvicorn.run("static_baseline:app", fd=sock.fileno(), workers=workers, log_level="warning",
                    proxy_headers=True)
    else:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=True)).run(sockets=[sock])


if __name__ == "__main__":
    main()
'''


@contextmanager
def running_server(name: str, command: list[str], *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `command`, wait for the URL it prints and for that URL to answer; yield the base URL.

    The server gets its own process group, so the stop also reaches `--workers` children.
    """
    with tempfile.TemporaryFile() as log:  # the server's stderr, shown if it does not start
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log,
                                   text=True, start_new_session=True)
        try:
            url = _announced_url(name, process, log)
            _wait_until_answering(name, url, process, log)
            yield url
        finally:
            _stop(process)


def _announced_url(name: str, process: subprocess.Popen, log) -> str:
    first_line: list[str] = []

    def read_stdout() -> None:
        # Keep draining after the first line, so a chatty server can never block on a full pipe.
        for line in process.stdout:
            if not first_line:
                first_line.append(line)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not first_line and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    found = re.search(r"http://[^\s/]+/", first_line[0]) if first_line else None
    if not found:
        raise BenchError(_start_failure(name, process, log, "printed no URL"))
    return found.group(0).rstrip("/")


def _wait_until_answering(name: str, url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer (the baseline has no index page) means it is serving
        except OSError:
            time.sleep(0.05)
    raise BenchError(_start_failure(name, process, log, f"did not answer at {url}"))


def _start_failure(name: str, process: subprocess.Popen, log, what: str) -> str:
    status = process.poll()
    state = "still running" if status is None else f"exit status {status}"
    log.seek(0)
    tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
    return f"the {name} did not start ({what}; {state})" + "".join(f"\n    {line}" for line in tail)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)  # the group this script created for it (start_new_session)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def site_command(archive: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "webapp.cli", "serve", "--archive", str(archive),
            "--host", "127.0.0.1", "--port", "0", "--workers", str(workers)]


def static_command(folder: Path, workers: int) -> list[str]:
    script = folder / "static_baseline.py"
    script.write_text(STATIC_SERVER)
    return [sys.executable, str(script), str(workers)]


# --- pages -----------------------------------------------------------------------------

def fetch(url: str) -> tuple[bytes, float]:
    """GET without compression (urllib asks for identity); the body and the seconds it took."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            body = answer.read()
            encoding = answer.headers.get("content-encoding")
    except OSError as error:  # HTTPError included: a 404 here means the page list is wrong
        raise BenchError(f"GET {url}: {error}") from error
    elapsed = time.perf_counter() - started
    if encoding not in (None, "identity"):
        raise BenchError(f"{url} came back {encoding}-encoded; the comparison needs the plain bytes")
    return body, elapsed


def static_name(page: str) -> str:
    """/compare?ids=120,131 -> compare-ids-120-131.html: a plain file name for each page."""
    return re.sub(r"[^A-Za-z0-9]+", "-", page).strip("-") + ".html"


# --- load generators -------------------------------------------------------------------

def run_wrk(url: str, *, connections: int, duration_s: float, threads: int) -> LoadResult:
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
               "--latency", url]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> LoadResult:
    def latency_ms(percent: str) -> float:
        found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        if not found:
            raise BenchError(f"no {percent}% line in wrk's output:\n{output}")
        return float(found.group(1)) * _WRK_UNITS_MS[found.group(2)]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rate or not total:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors += int(bad.group(1)) if bad else 0
    return LoadResult(float(rate.group(1)), latency_ms("50"), latency_ms("99"), int(total.group(1)), errors)


def run_python_load(url: str, *, connections: int, duration_s: float, threads: int = 0) -> LoadResult:
    return asyncio.run(_python_load(url, connections, duration_s))


async def _python_load(url: str, connections: int, duration_s: float) -> LoadResult:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: keep-alive\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration_s

    async def one_connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                writer.write(request)
                status_line, length = await _read_head(reader)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not status_line.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                    errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(len(latencies) / elapsed, _percentile_ms(latencies, 50), _percentile_ms(latencies, 99),
                      len(latencies), errors)


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status_line, int(value)
    raise OSError(f"an answer without content-length: {status_line!r}")


def _percentile_ms(sorted_seconds: list[float], percent: int) -> float:
    if not sorted_seconds:
        return float("nan")
    rank = max(0, min(len(sorted_seconds) - 1, round(percent / 100 * len(sorted_seconds)) - 1))
    return sorted_seconds[rank] * 1000


def pick_load_generator(choice: str):
    """('wrk' | 'python', function): wrk when asked for or, with 'auto', when it is on PATH."""
    if choice == "wrk" or (choice == "auto" and shutil.which("wrk")):
        if not shutil.which("wrk"):
            raise BenchError("--load-generator wrk, but wrk is not on PATH (Debian: apt install wrk)")
        return "wrk", run_wrk
    return "python (asyncio)", run_python_load


# --- the run ---------------------------------------------------------------------------

def measure(args, archive: Path, load) -> list[PageResult]:
    results = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-pages-")))
        site = stack.enter_context(running_server("site", site_command(archive, args.workers)))
        pages = {}
        for page in PAGES:
            body, first = fetch(site + page)  # the one uncached render
            _, second = fetch(site + page)
            pages[page] = (body, first, second)
            (folder / static_name(page)).write_bytes(body)
        env = os.environ | {"BENCH_STATIC_DIR": str(folder)}
        static = stack.enter_context(running_server("static baseline",
                                                    static_command(folder, args.workers), env=env))
        for page, (body, first, second) in pages.items():
            static_url = f"{static}/{static_name(page)}"
            memory_url = f"{static}/memory/{static_name(page)}"
            for url in (static_url, memory_url):
                served, _ = fetch(url)
                if served != body:
                    raise BenchError(f"{page}: {url} served {len(served)} bytes, the site {len(body)}")
            options = {"connections": args.connections, "threads": args.threads}
            for url in (site + page, static_url, memory_url):  # warm every worker's cache and the OS file cache
                load(url, duration_s=args.warmup, **options)
            site_load = load(site + page, duration_s=args.duration, **options)
            static_load = load(static_url, duration_s=args.duration, **options)
            memory_load = load(memory_url, duration_s=args.duration, **options)
            results.append(PageResult(page, len(body), first * 1000, second * 1000, site_load, static_load,
                                      memory_load))
    return results


def print_table(results: list[PageResult]) -> None:
    header = ["page", "bytes", "site req/s", "static req/s", "ratio", "memory req/s", "ratio",
              "site p50 ms", "site p99 ms", "static p50 ms", "static p99 ms"]
    rows = [[r.page, f"{r.bytes:,}", f"{r.site.requests_per_s:,.0f}", f"{r.static.requests_per_s:,.0f}",
             f"{r.ratio:.2f}x", f"{r.memory.requests_per_s:,.0f}", f"{r.ceiling_ratio:.2f}x",
             f"{r.site.p50_ms:.2f}", f"{r.site.p99_ms:.2f}",
             f"{r.static.p50_ms:.2f}", f"{r.static.p99_ms:.2f}"] for r in results]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for n, row in enumerate([header] + rows):
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_first_requests(results: list[PageResult]) -> None:
    print("\nfirst request of each page on the fresh site (uncached render; in this order, so later pages\n"
          "reuse one-off work), then the second request (from the page cache):")
    width = max(len(r.page) for r in results)
    for r in results:
        print(f"  {r.page.ljust(width)}  {r.first_request_ms:8.1f} ms   then {r.second_request_ms:6.1f} ms")


def print_verdict(results: list[PageResult], cores: int) -> None:
    print(f"\naims (cached pages; stated for 2 cores, this machine has {cores}):")
    for r in results:
        ratio_ok = "meets" if r.ratio >= AIM_RATIO else "MISSES"
        p99_ok = "meets" if r.site.p99_ms < AIM_P99_MS else "MISSES"
        print(f"  {r.page}: {r.ratio:.2f}x the static rate {ratio_ok} >= {AIM_RATIO}x; "
              f"p99 {r.site.p99_ms:.1f} ms {p99_ok} < {AIM_P99_MS:g} ms")
    failed = sum(r.site.errors + r.static.errors for r in results)
    if failed:
        print(f"  warning: {failed} failed requests (socket errors or non-2xx/3xx answers) in the runs above")


def default_archive() -> Path | None:
    if os.environ.get("ALEXNET_ARCHIVE"):
        return Path(os.environ["ALEXNET_ARCHIVE"])
    beside = REPO.parent / "shared" / "AlexNet-Source-Code"
    return beside if beside.is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=default_archive(),
                        help="the release checkout (default: $ALEXNET_ARCHIVE, else ../shared/AlexNet-Source-Code)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per page and server (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement (2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes, for both servers (1)")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk when it is on PATH, else the built-in asyncio client")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.archive is None or not args.archive.is_dir():
        print(f"serve_pages: no release at {args.archive or '../shared/AlexNet-Source-Code'}; "
              "pass --archive or set ALEXNET_ARCHIVE", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 0
    try:
        generator, load = pick_load_generator(args.load_generator)
        print(f"load generator: {generator}; {args.connections} connections, {args.duration:g} s per run; "
              f"{args.workers} worker(s) per server; {cores} cores; no gzip on either side", flush=True)
        results = measure(args, args.archive.resolve(), load)
    except BenchError as error:
        print(f"serve_pages: {error}", file=sys.stderr)
        return 2
    print()
    print_table(results)
    print_first_requests(results)
    print_verdict(results, cores)
    if args.json:
        print(json.dumps({"load_generator": generator, "connections": args.connections, "duration_s": args.duration,
                          "workers": args.workers, "cores": cores,
                          "pages": [asdict(r) | {"ratio": r.ratio, "ceiling_ratio": r.ceiling_ratio}
                                    for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
