"""Timing a callable robustly on a shared machine: repeat it for a time budget and keep the
median round (other work on the cores inflates some rounds; the median ignores them)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], *, budget_s: float, min_rounds: int = 3,
                   max_rounds: int = 10_000) -> tuple[float, int, Any]:
    """Median wall seconds of one call of ``fn`` (after one warm-up call), the rounds timed,
    and the warm-up call's result (for checking what was measured).

    Rounds continue until ``budget_s`` is spent and at least ``min_rounds`` were timed."""
    first = fn()  # warm-up: caches, first-call allocations
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_rounds and (len(times) < min_rounds or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times), first
