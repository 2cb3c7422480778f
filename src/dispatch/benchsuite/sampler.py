"""Samples a ``BindPool``'s ``statistics()`` at a fixed interval while a run goes on: the
throughput-over-time and window-occupancy-over-time plots come from here.

``statistics()`` reads plain counters (STYLE.md: hot counters are ints, read at scrape time),
so sampling every 50 ms costs nothing measurable. Resident memory is sampled too (the e2e
section reports RSS growth per recipient from the peak).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from dispatch.benchsuite.results import Series
from dispatch.transport.pool import PoolStatistics

_PAGE_BYTES = 4096


def rss_bytes(pids: Iterable[int] = ()) -> int:
    """Resident set size of this process plus ``pids`` (the engine's store process, which is
    part of the engine: ``dispatch.store.process``), from Linux ``/proc/<pid>/statm``; a
    process that cannot be read counts 0."""
    total = 0
    for pid in ("self", *pids):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
        except (OSError, ValueError, IndexError):
            pass
    return total


@dataclass(slots=True)
class PoolSampler:
    """``nursery.start_soon(sampler.run, pool.statistics)``; cancel it when the run ends."""

    interval_s: float = 0.05
    t: list[float] = field(default_factory=list)  # seconds since start
    accepted: list[int] = field(default_factory=list)
    receipts: list[int] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    window_capacity: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    started: float = 0.0
    pids: tuple[int, ...] = ()  # other processes of the engine, counted in ``rss``

    async def run(self, statistics: Callable[[], PoolStatistics]) -> None:
        self.started = time.monotonic()
        while True:
            self.sample(statistics())
            await trio.sleep(self.interval_s)

    def sample(self, st: PoolStatistics) -> None:
        self.t.append(time.monotonic() - self.started)
        self.accepted.append(st.accepted)
        self.receipts.append(st.receipts)
        self.in_flight.append(st.in_flight)
        self.window_capacity.append(st.window_capacity)
        self.queued.append(st.queued)
        self.rss.append(rss_bytes(self.pids))

    def throughput(self, name: str, group: str, smooth_s: float = 0.5) -> Series:
        """Accepted submits per second, over windows of ``smooth_s``."""
        series = Series(name, "timeline", "msg/s", group=group)
        last_i = 0
        for i in range(1, len(self.t)):
            dt = self.t[i] - self.t[last_i]
            if dt >= smooth_s or i == len(self.t) - 1:
                if dt > 0:
                    series.x.append(round(self.t[i], 3))
                    series.y.append(round((self.accepted[i] - self.accepted[last_i]) / dt, 1))
                last_i = i
        return series

    def occupancy(self, name: str, group: str) -> Series:
        """In-flight submits as a percentage of the total window of the bound binds."""
        series = Series(name, "timeline", "%", group=group)
        for t, used, cap in zip(self.t, self.in_flight, self.window_capacity, strict=True):
            series.x.append(round(t, 3))
            series.y.append(round(100.0 * used / cap, 1) if cap else 0.0)
        return series

    def mean_occupancy_pct(self) -> float:
        """Mean occupancy over the samples where work was queued or in flight."""
        busy = [100.0 * u / c for u, c, q in zip(self.in_flight, self.window_capacity,
                                                  self.queued, strict=True) if c and (u or q)]
        return sum(busy) / len(busy) if busy else 0.0


@dataclass(slots=True)
class LoopLagProbe:
    """How late the trio loop wakes a task that asked to sleep ``interval_s``: the time any
    other task (an API handler, a timer) waits for the loop when something runs on it
    without yielding. Seconds of lag here mean seconds of API latency, whatever the handler
    itself costs."""

    interval_s: float = 0.01
    lags_ms: list[float] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            t0 = time.monotonic()
            await trio.sleep(self.interval_s)
            self.lags_ms.append(max(0.0, (time.monotonic() - t0 - self.interval_s) * 1e3))


def distribution(name: str, group: str, values_ms: list[float], points: int = 400) -> Series:
    """A latency distribution kept as ``points`` quantiles of the sorted values (enough to
    draw the CDF; the JSON stays small however many messages were sent)."""
    values = sorted(values_ms)
    series = Series(name, "distribution", "ms", group=group)
    if not values:
        return series
    n = len(values)
    step = max(1, n // points)
    series.y = [round(values[i], 4) for i in range(0, n, step)]
    if series.y[-1] != round(values[-1], 4):
        series.y.append(round(values[-1], 4))
    return series
