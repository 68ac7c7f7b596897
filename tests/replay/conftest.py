"""Makes this folder importable, so the replay tests share helpers with a plain
`from gradcheck import numeric_grad, assert_close` (tests/ is not a package)."""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
