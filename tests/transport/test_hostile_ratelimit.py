"""The TPS cap across a rate change (``BindPool.set_tps``: a cluster re-splits an account's
contract when nodes join or die), on trio's MockClock: exact and instant."""

from __future__ import annotations

import trio
import trio.testing

from dispatch.transport.ratelimit import RateLimiter


def _grants_around_a_change(tps: float, new_tps: float, *, burst: int, change_at: float,
                            total: int) -> list[float]:
    times: list[float] = []

    async def main() -> None:
        limiter = RateLimiter(tps, burst=burst)
        changed = False
        with trio.fail_after(10_000):
            while len(times) < total:
                if not changed and trio.current_time() >= change_at:
                    limiter.set_rate(new_tps, burst=burst)
                    changed = True
                n = await limiter.acquire(64)
                times.extend([trio.current_time()] * n)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return times


def _max_in_window(times: list[float], window_s: float) -> int:
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_setting_the_same_rate_again_keeps_the_cap() -> None:
    """The grants of the last second still count after ``set_rate``: re-setting the same
    rate must not open a fresh window with a full bucket."""
    times = _grants_around_a_change(100, 100, burst=50, change_at=3.0, total=800)
    assert _max_in_window(times, 1.0) <= 100


def test_lowering_the_rate_counts_the_grants_already_made() -> None:
    """100 -> 50: a one-second window never holds more than the old cap, and one that starts
    after the change never more than the new one."""
    change_at = 3.0
    times = _grants_around_a_change(100, 50, burst=50, change_at=change_at, total=600)
    assert _max_in_window(times, 1.0) <= 100
    after = [t for t in times if t > change_at]
    assert _max_in_window(after, 1.0) <= 50
