"""dispatch.interpreter: what the engine and the simulator do to the collector and the GIL
switch interval at start-up."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dispatch import interpreter


@pytest.fixture
def restore_gc() -> Iterator[None]:
    saved, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.set_threshold(*saved)
    gc.unfreeze()
    sys.setswitchinterval(interval)


def test_tune_raises_the_young_threshold_and_freezes_what_is_alive(restore_gc: None) -> None:
    older = gc.get_threshold()[1:]
    survivor = {"kept": [1, 2, 3]}  # alive now: frozen, out of every later collection
    interpreter.tune(12_345, 0.002)
    assert gc.get_threshold() == (12_345, *older)
    assert sys.getswitchinterval() == pytest.approx(0.002)
    assert gc.get_freeze_count() > 0
    assert survivor["kept"] == [1, 2, 3]


def test_tune_with_zeros_leaves_the_interpreter_alone(restore_gc: None) -> None:
    gc.unfreeze()
    before, interval = gc.get_threshold(), sys.getswitchinterval()
    interpreter.tune(0, 0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == interval


def _limit_in_a_fresh_process(env: dict[str, str]) -> str:
    """``limit_malloc_arenas(2)`` in a new interpreter (the setting is process-wide)."""
    code = "from dispatch import interpreter; print(interpreter.limit_malloc_arenas(2))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_arenas_are_limited_unless_the_environment_sets_them() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _limit_in_a_fresh_process(env) == "True"
    assert _limit_in_a_fresh_process({**env, "MALLOC_ARENA_MAX": "4"}) == "False"
