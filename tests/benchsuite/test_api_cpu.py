"""The api section's CPU accounting: per-process CPU from /proc and the sampler's windows."""

from __future__ import annotations

import os
import sys
import time

import pytest

from dispatch.benchsuite.api import CpuSampler, proc_cpu_s

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_proc_cpu_matches_the_process_own_clock() -> None:
    _burn(0.05)
    own, seen = time.process_time(), proc_cpu_s(os.getpid())
    assert seen is not None
    assert abs(seen - own) < 0.1  # /proc counts in clock ticks (10 ms)
    assert proc_cpu_s(2**31 - 1) is None  # no such process


def test_sampler_windows_count_the_cpu_used_between_two_instants() -> None:
    sampler = CpuSampler({"self": os.getpid, "gone": lambda: None})
    sampler.sample()
    t0 = time.monotonic()
    _burn(0.2)
    t1 = time.monotonic()
    sampler.sample()
    used = sampler.between("engine", t0, t1)
    assert 0.15 <= used <= 0.5
    assert abs(sampler.between("self", t0, t1) - used) < 0.05
    gone = sampler.between("gone", t0, t1)
    assert gone != gone  # nan: never readable
    # Window ends between samples are interpolated: half the window, about half the CPU.
    mid = t0 + (t1 - t0) / 2
    assert abs(sampler.between("engine", t0, mid) + sampler.between("engine", mid, t1)
               - used) < 1e-9
