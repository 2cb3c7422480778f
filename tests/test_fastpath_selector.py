"""The selector picks the extension, honours DISPATCH_PURE, and the guard catches a missing build."""

from __future__ import annotations

import os
import subprocess
import sys

from dispatch import fastpath


def _implementation_with(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", "from dispatch import fastpath; print(fastpath.IMPLEMENTATION)"],
        env=env, capture_output=True, text=True, timeout=60,
    )


def test_extension_is_loaded_when_required() -> None:
    """Guard: CI sets DISPATCH_REQUIRE_EXTENSION=1, so a silently missing build fails here."""
    if os.environ.get("DISPATCH_REQUIRE_EXTENSION") == "1":
        assert fastpath.IMPLEMENTATION == "cython"
        assert "cython" in fastpath.implementations()
    elif os.environ.get("DISPATCH_PURE") == "1":
        assert fastpath.IMPLEMENTATION == "python"
    else:
        assert fastpath.IMPLEMENTATION in ("cython", "python")


def test_pure_env_forces_reference() -> None:
    out = _implementation_with({"DISPATCH_PURE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "python"


def test_both_flags_conflict() -> None:
    out = _implementation_with({"DISPATCH_PURE": "1", "DISPATCH_REQUIRE_EXTENSION": "1"})
    assert out.returncode != 0
    assert "both set" in out.stderr
