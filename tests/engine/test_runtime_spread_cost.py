"""A Spread campaign's rate is recomputed by its route on every feed tick (20 ms): the open
window time left before its end must not cost work in proportion to the days left, or a
campaign ending in a month holds the event loop for a whole tick each time (SMPP readers and
the control API wait). Work is counted in daily-window evaluations, not timed."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from dispatch.campaigns import schedule
from dispatch.campaigns.model import DailyWindow
from dispatch.campaigns.schedule import open_seconds_between, spread_rate_tps

BERLIN_DAY = DailyWindow(time(9, 0), time(21, 0), "Europe/Berlin")
NIGHT = DailyWindow(time(22, 0), time(2, 30), "Europe/Berlin")  # repeated hour at fall-back


def test_feed_tick_rate_of_a_year_long_spread_campaign_is_cheap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = schedule.window_open

    def counting(window: DailyWindow | None, t: datetime) -> bool:
        nonlocal calls
        calls += 1
        return real(window, t)

    monkeypatch.setattr(schedule, "window_open", counting)
    now = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    end = now + timedelta(days=365)
    spread_rate_tps(1_000_000, now, end, BERLIN_DAY)  # the first tick may do the work once
    calls = 0
    for tick in range(1, 11):  # the next ten feed ticks, 20 ms apart
        spread_rate_tps(1_000_000, now + timedelta(milliseconds=20 * tick), end, BERLIN_DAY)
    assert calls <= 10 * 200, calls  # a day or two of edges a tick, not a year's


@pytest.mark.parametrize("window", [BERLIN_DAY, NIGHT])
def test_open_seconds_over_long_spans_are_exact(window: DailyWindow) -> None:
    """Summing whole local days gives exactly what walking every edge gives (DST included):
    each local day of BERLIN_DAY is 12 h open; NIGHT is 4.5 h a night, 5.5 h at fall-back."""
    a = datetime(2026, 1, 15, 10, 17, 3, tzinfo=UTC)
    b = datetime(2027, 1, 15, 10, 17, 3, tzinfo=UTC)
    expected = 0.0
    t = a
    while t < b:  # walk edge by edge, as the scheduler did
        if schedule.window_open(window, t):
            close = schedule.next_close(window, t)
            expected += (min(close, b) - t).total_seconds()
            t = close
        else:
            t = schedule.next_open(window, t)
    assert open_seconds_between(window, a, b) == expected
    for days in (0, 1, 2, 3, 40):
        for hours in (0, 5, 13, 23):
            end = a + timedelta(days=days, hours=hours, minutes=7)
            short = 0.0
            t = a
            while t < end:
                if schedule.window_open(window, t):
                    close = schedule.next_close(window, t)
                    short += (min(close, end) - t).total_seconds()
                    t = close
                else:
                    t = schedule.next_open(window, t)
            assert open_seconds_between(window, a, end) == short, (days, hours)
