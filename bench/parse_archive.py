"""How long loading the whole release takes, against only reading its bytes.

    python3 bench/parse_archive.py [--archive PATH] [--repeat N]

Prints the median of N runs of each, and the ratio. Aim: the whole release in
under 50 ms.
"""
from __future__ import annotations

import argparse
import statistics
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
    archive = load_archive(root)
    print(f"release: {root} ({len(archive.files)} files, {size / 1024:.0f} KiB, "
          f"{len(archive.experiments)} experiments)")
    print(f"read bytes only   {raw * 1000:8.2f} ms")
    print(f"load_archive      {full * 1000:8.2f} ms   (aim: < 50 ms)")
    print(f"ratio             {full / raw:8.1f}x the raw read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
