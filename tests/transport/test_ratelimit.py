"""The rate limiter on trio's MockClock: exact and instant."""

from __future__ import annotations

import itertools

import trio
import trio.testing

from dispatch.transport.ratelimit import RateLimiter


def _grant_times(tps: float, total: int, *, burst: int = 0, batch: int = 1,
                 window_s: float = 1.0) -> list[float]:
    times: list[float] = []

    async def main() -> None:
        limiter = RateLimiter(tps, burst=burst, window_s=window_s)
        with trio.fail_after(10_000):
            while len(times) < total:
                n = await limiter.acquire(min(batch, total - len(times)))
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


def test_never_more_than_tps_in_any_window_even_with_a_full_burst() -> None:
    times = _grant_times(100, 1000, burst=50, batch=64)
    assert _max_in_window(times, 1.0) <= 100
    # and it is not idle: 1000 grants take about 10 s, not 20
    assert 9.0 <= times[-1] - times[0] <= 10.5


def test_steady_rate_is_smooth() -> None:
    times = _grant_times(50, 200, burst=1)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 1 / 50 + 1e-6


def test_guard_window_holds_the_cap_over_longer_windows() -> None:
    times = _grant_times(200, 2000, batch=100, window_s=1.02)
    assert _max_in_window(times, 1.02) <= 200


def test_unlimited_grants_everything_at_once() -> None:
    times = _grant_times(0, 500, batch=500)
    assert times == [times[0]] * 500


# The cap across a rate change (``BindPool.set_tps``: a cluster re-splits an account's
# contract when nodes join or die).

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
