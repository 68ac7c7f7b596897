"""The browser tests use the site fixtures of tests/webapp (the real `serve` process above all)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("webapp_site_fixtures",
                                               Path(__file__).resolve().parents[1] / "webapp" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

live_server = _fixtures.live_server
