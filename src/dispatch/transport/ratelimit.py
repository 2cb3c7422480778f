"""Send-rate limiter: a token bucket for smoothness plus a sliding log for the hard cap.

SMSC contracts say "N messages per second" per account and count them in one-second windows.
A token bucket alone (rate r, depth b) lets ``r + b`` through in some second; so each grant is
also checked against a log of the last ``tps`` grant times: the k-th grant from now must come
at least ``window_s`` after the grant ``tps`` places before it. Together: smooth at ``r`` in
the steady state, and *never* more than ``tps`` in any ``window_s`` (bursts included).
``window_s = 1 + guard`` absorbs network jitter between our clock and the SMSC's.

Shared by every bind of an ESME (one instance in the pool); a bind may also have its own.
Times come from ``trio.current_time()`` so ``trio.testing.MockClock`` makes tests exact.
"""

from __future__ import annotations

import math

import trio


class RateLimiter:
    """At most ``tps`` grants in any ``window_s``, refilled smoothly at ``tps / window_s``.

    ``tps == 0`` means unlimited (``acquire`` returns at once).
    """

    def __init__(self, tps: float, *, burst: int = 0, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self.granted = 0  # plain-int counters for statistics()
        self.waits = 0
        self._cap = 0
        self._rate = 0.0
        self._burst = 0.0
        self._tokens = 0.0
        self._stamp = 0.0
        self._log: list[float] = []
        self._head = 0
        self.set_rate(tps, burst=burst)

    def set_rate(self, tps: float, *, burst: int = 0) -> None:
        """Change the rate (e.g. when live nodes share an account's TPS).

        Grants already made still count: the latest stay in the log and the bucket keeps no
        more than it holds now, so a change (even to the same rate) never opens a fresh
        window with a full bucket on top of the second just sent.
        """
        was_limited = self._cap > 0
        recent = self._recent_grants()
        if was_limited:  # what the bucket holds now, at the old rate
            self._tokens = min(self._burst, self._tokens
                               + (trio.current_time() - self._stamp) * self._rate)
        self.tps = tps
        self._cap = max(1, math.floor(tps)) if tps > 0 else 0
        self._rate = tps / self.window_s if tps > 0 else 0.0
        self._burst = float(burst if burst > 0 else max(1, int(tps / 20)))
        self._burst = min(self._burst, float(self._cap or 1))
        self._tokens = min(self._tokens, self._burst) if was_limited else self._burst
        self._stamp = trio.current_time() if tps > 0 else 0.0
        # ring of the last ``cap`` grant times, oldest at ``_head``
        keep = recent[len(recent) - self._cap:] if self._cap else []
        self._log = [-math.inf] * (self._cap - len(keep)) + keep
        self._head = 0

    def _recent_grants(self) -> list[float]:
        """The logged grant times, oldest first."""
        log, cap, head = self._log, self._cap, self._head
        return [t for t in (log[(head + i) % cap] for i in range(cap)) if t > -math.inf]

    def _available(self, now: float, want: int) -> tuple[int, float]:
        """How many grants may go now (<= want), and when to look again if none."""
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        n = min(want, int(self._tokens + 1e-9))
        if n < 1:
            return 0, now + (1.0 - self._tokens) / self._rate
        log, cap, head = self._log, self._cap, self._head
        horizon = now - self.window_s
        # grants are ordered by time from _head: count those at least window_s old
        k = 0
        while k < n and log[(head + k) % cap] <= horizon:
            k += 1
        if k == 0:
            return 0, log[head] + self.window_s
        return k, now

    async def acquire(self, want: int) -> int:
        """Wait until at least one grant is possible; take up to ``want``; return how many."""
        if self._cap == 0 or want <= 0:
            self.granted += max(want, 0)
            return want
        while True:
            now = trio.current_time()
            n, retry_at = self._available(now, want)
            if n:
                self._tokens -= n
                log, cap, head = self._log, self._cap, self._head
                for i in range(n):
                    log[(head + i) % cap] = now
                self._head = (head + n) % cap
                self.granted += n
                return n
            self.waits += 1
            await trio.sleep_until(max(retry_at, now + 1e-6))
