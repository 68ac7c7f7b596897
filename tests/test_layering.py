"""Dependencies point one way: archive (standard library only) ← annotations ←
replay ← webapp. Checked in fresh interpreters, so nothing imported by another
test can hide a violation."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "cupy", "fastapi", "jinja2", "markdown_it", "uvicorn", "starlette", "pydantic")


def modules_after(code: str, env_archive: str | None = None) -> set[str]:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    import os
    env = dict(os.environ)
    if env_archive:
        env["ALEXNET_ARCHIVE"] = env_archive
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_archive_imports_only_the_standard_library():
    # Compare with a bare interpreter: site hooks (.pth files) may import things before us.
    baseline = modules_after("pass")
    loaded = modules_after("import archive, archive.catalog, archive.compare, archive.query, archive.locate")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    stdlib = set(sys.stdlib_module_names)
    third_party = {m.split(".")[0] for m in loaded - baseline} - stdlib - {"archive"}
    assert not third_party, third_party


@pytest.mark.parametrize("argv", [
    ["list"], ["show", "120"], ["diff", "120", "131"], ["log", "120"], ["lineage", "120"], ["stats"],
])
def test_read_commands_never_import_numpy_cupy_or_fastapi(argv, archive_root):
    code = ("import sys\nfrom webapp.cli import main\n"
            f"rc = main({argv!r})\n"
            "sys.stdout.flush()\n")
    loaded = modules_after(code, str(archive_root))
    assert not {m for m in loaded if m.split(".")[0] in ("numpy", "cupy", "fastapi", "starlette", "uvicorn")}


def test_archive_lrhistory_is_standard_library_too():
    baseline = modules_after("pass")
    loaded = modules_after("import archive.lrhistory")
    third_party = {m.split(".")[0] for m in loaded - baseline} - set(sys.stdlib_module_names) - {"archive"}
    assert not third_party, third_party


def test_replay_with_the_numpy_backend_imports_neither_cupy_nor_torch_nor_the_site():
    loaded = modules_after("import replay.network, replay.train, replay.check\n"
                           "from replay.backends import get_backend\nget_backend('numpy')")
    assert "numpy" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("cupy", "torch", "fastapi", "starlette", "jinja2",
                                                          "webapp", "PIL")}


def test_the_site_reads_runs_without_numpy():
    # webapp.site opens the runs database through replay.store, which is standard library only.
    loaded = modules_after("import replay.store")
    assert not {m for m in loaded if m.split(".")[0] in ("numpy", "cupy", "torch")}


def test_the_cuda_backend_on_a_cpu_imports_no_cupy():
    # cupy is imported only where an array is a cupy array (replay/backends/cuda/kernels.py)
    loaded = modules_after("from replay.backends import get_backend\nget_backend('cuda')")
    assert not {m for m in loaded if m.split(".")[0] in ("cupy", "torch", "fastapi")}
