"""The security tests drive the real control app through the control tests' helpers
(``tests/control/control_env.py``: a real service over a SQLite store in tmp_path)."""

from __future__ import annotations

import sys
from pathlib import Path

_CONTROL_TESTS = str(Path(__file__).resolve().parents[1] / "control")
if _CONTROL_TESTS not in sys.path:
    sys.path.append(_CONTROL_TESTS)
