"""A histogram kept as plain ints: what hot paths update, and what collectors read at scrape.

prometheus-client's own ``Histogram`` takes a lock on every ``observe``; the engine's hot
paths (a commit per batch, a receipt per deliver_sm) run on one trio thread, so a list of
counts updated inline is enough and costs a ``bisect`` and two additions. The collector turns
the per-bucket counts into Prometheus' cumulative ``_bucket`` series at scrape time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Durations of store commits and file ingests, seconds (1 ms .. 1 min).
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                      10.0, 30.0, 60.0, math.inf)
#: Rows in one group commit (the writer's ``group_commit_rows`` caps it).
BATCH_ROWS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, math.inf)
#: Submit -> delivery receipt, seconds: receipts take from a second to days (validity period).
RECEIPT_DELAY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                           3600.0, 4 * 3600.0, 24 * 3600.0, math.inf)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Per-bucket counts (not cumulative), their upper bounds, and the sum of observations."""

    upper_bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``[(le, cumulative count), ...]`` as ``HistogramMetricFamily(buckets=...)`` wants."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip(self.upper_bounds, self.counts, strict=True):
            total += n
            out.append(("+Inf" if math.isinf(bound) else repr(float(bound)), float(total)))
        return out


class BucketCounts:
    """``observe(value)`` into fixed buckets; ``snapshot()`` for the collector.

    The last bound must be ``inf`` so every observation lands in a bucket.
    """

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, upper_bounds: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in upper_bounds)
        if not bounds or not math.isinf(bounds[-1]) or list(bounds) != sorted(bounds):
            raise ValueError("bucket bounds must be sorted and end with inf")
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self._bounds, tuple(self._counts), self._sum)


def snapshot_of(upper_bounds: Sequence[float], counts: Sequence[int],
                total: float) -> HistogramSnapshot:
    """A snapshot from a component that keeps its own bucket list (``BindPool`` latency)."""
    return HistogramSnapshot(tuple(float(b) for b in upper_bounds), tuple(counts), total)
