"""How long loading the whole release takes, against only reading its bytes.

    python3 bench/parse_archive.py [--archive PATH] [--repeat N]

Prints the median of N runs of each, and the ratio: loads repeated in one
process (as the web app's start-up would see them after a reload), and the
first load in a fresh process (what every command-line call pays). Aim: the
whole release in under 50 ms.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive import load_archive  # noqa: E402
from archive.locate import resolve_archive_path  # noqa: E402


def read_bytes(root: Path) -> int:
    total = 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.parts:
            total += len(path.read_bytes())
    return total


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


FIRST_LOAD = """
import sys, time
sys.path.insert(0, {repo!r})
from archive import load_archive
started = time.perf_counter()
load_archive({root!r})
print(time.perf_counter() - started)
"""


def first_load_seconds(root: Path, repeat: int) -> float:
    repo = str(Path(__file__).resolve().parent.parent)
    code = FIRST_LOAD.format(repo=repo, root=str(root))
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(repeat)]
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "AlexNet-Source-Code"
    root = resolve_archive_path(args.archive or (default if default.is_dir() else None))
    size = read_bytes(root)
    load_archive(root)  # warm the file cache and the imports
    raw = median_seconds(lambda: read_bytes(root), args.repeat)
    full = median_seconds(lambda: load_archive(root), args.repeat)
    first = first_load_seconds(root, max(3, args.repeat // 3))
    archive = load_archive(root)
    print(f"release: {root} ({len(archive.files)} files, {size / 1024:.0f} KiB, "
          f"{len(archive.experiments)} experiments)")
    print(f"read bytes only              {raw * 1000:8.2f} ms")
    print(f"load_archive, repeated       {full * 1000:8.2f} ms   {full / raw:6.1f}x the raw read (aim: < 50 ms)")
    print(f"load_archive, fresh process  {first * 1000:8.2f} ms   {first / raw:6.1f}x the raw read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
