"""Selects the fast path implementation: the Cython extension, or its pure-Python reference.

Both modules export the same names with the same behaviour (parity is tested). The extension
is picked when it imports; ``DISPATCH_PURE=1`` forces the reference (the CI runs the whole
suite once that way), and ``DISPATCH_REQUIRE_EXTENSION=1`` turns a missing extension into an
import error instead of a silent fallback (the guard test uses it).

``IMPLEMENTATION`` says which one is active: ``"cython"`` or ``"python"``.
"""

from __future__ import annotations

import os
from types import ModuleType

from dispatch import _reference

_force_pure = os.environ.get("DISPATCH_PURE", "") not in ("", "0")
_require_ext = os.environ.get("DISPATCH_REQUIRE_EXTENSION", "") not in ("", "0")

impl: ModuleType
if _force_pure:
    if _require_ext:
        raise ImportError("DISPATCH_PURE and DISPATCH_REQUIRE_EXTENSION are both set")
    impl = _reference
    IMPLEMENTATION = "python"
else:
    try:
        from dispatch import _fastpath as _ext
    except ImportError:
        if _require_ext:
            raise
        impl = _reference
        IMPLEMENTATION = "python"
    else:
        impl = _ext
        IMPLEMENTATION = "cython"


def implementations() -> dict[str, ModuleType]:
    """Every implementation importable here, by name (for parity tests and benchmarks)."""
    found: dict[str, ModuleType] = {"python": _reference}
    try:
        from dispatch import _fastpath as ext
    except ImportError:
        pass
    else:
        found["cython"] = ext
    return found
