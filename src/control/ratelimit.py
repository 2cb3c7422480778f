"""Per-key request rate limit: one token bucket per API key.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; each request takes one.
An empty bucket answers with the seconds until the next token, which becomes 429's Retry-After.
Buckets are plain objects touched only from the event loop, so no lock is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("burst", "rate_per_s", "tokens", "updated_at")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated_at = now

    def take(self, now: float) -> float:
        """Take one token; return 0.0 on success, else the seconds to wait for one."""
        elapsed = max(0.0, now - self.updated_at)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.updated_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class RateLimiter:
    """Token buckets by key id; idle full buckets are dropped so memory follows active keys."""

    def __init__(self, rate_per_s: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic, max_buckets: int = 10_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key_id: str) -> int:
        """0 when the request may proceed, else whole seconds to wait (at least 1)."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._prune(now)
            bucket = self._buckets[key_id] = TokenBucket(self.rate_per_s, self.burst, now)
        wait_s = bucket.take(now)
        return 0 if wait_s == 0.0 else max(1, math.ceil(wait_s))

    def _prune(self, now: float) -> None:
        refill_s = self.burst / self.rate_per_s
        for key_id, bucket in list(self._buckets.items()):
            if now - bucket.updated_at >= refill_s:
                del self._buckets[key_id]
