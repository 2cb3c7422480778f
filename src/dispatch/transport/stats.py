"""``PoolStatistics``: the snapshot of a pool's counters that metrics collectors read at
scrape time (``BindPool.statistics()``; ``dispatch.observability`` turns it into metrics).
The counters themselves are plain ints on the pool and its binds, so the hot path takes no
lock and builds no record per PDU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatch.observability.buckets import HistogramSnapshot

#: latency histogram bucket upper bounds, seconds (submit -> submit_sm_resp)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
                     5.0, 10.0, float("inf"))


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot for metrics (read at scrape time; the counters are plain ints)."""

    esme: str
    binds_configured: int
    binds_up: int
    queued: int
    in_flight: int
    window_capacity: int
    submits: int
    responses_by_status: dict[str, int]
    accepted: int
    failed: int
    unknown: int
    throttled: int
    retries: int
    inflight_retried: int
    inflight_unknown: int
    response_timeouts: int
    late_responses: int
    generic_nacks: int
    protocol_errors: int
    connection_drops: int
    reconnects: int
    bind_failures: int
    last_bind_error: str
    receipts: int  # receipts and MO count once answered: a redelivery is not counted twice
    mo_messages: int
    rate_limiter_waits: int
    latency_buckets_s: tuple[float, ...]
    latency_counts: tuple[int, ...] = field(default=())
    latency_sum_s: float = 0.0
    # observability (dispatch.observability): TPS contract, receipts by stat, receipt delay
    tps_limit: float = 0.0
    receipts_by_stat: dict[str, int] = field(default_factory=dict)
    receipt_delay: HistogramSnapshot | None = None
    receipt_delay_evicted: int = 0
