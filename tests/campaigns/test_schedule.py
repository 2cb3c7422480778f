"""Schedule arithmetic at exact instants, including DST in Europe/Berlin and windows that cross
midnight. 2026 DST in Berlin: spring forward 29 March 01:00 UTC (02:00 -> 03:00 local), fall
back 25 October 01:00 UTC (03:00 -> 02:00 local)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

import pytest

from dispatch.campaigns.model import Campaign, CampaignMode, DailyWindow
from dispatch.campaigns.schedule import (
    ShareRequest,
    fair_share,
    is_expired,
    may_start,
    next_close,
    next_open,
    open_seconds_between,
    spread_rate_tps,
    window_open,
)

BERLIN = "Europe/Berlin"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


DAY = DailyWindow(time(9, 0), time(21, 0), BERLIN)
NIGHT = DailyWindow(time(22, 0), time(6, 0), BERLIN)


@pytest.mark.parametrize(("t", "expected"), [
    (utc(2026, 1, 15, 7, 59, 59), False),   # 08:59:59 CET
    (utc(2026, 1, 15, 8, 0), True),         # 09:00 CET
    (utc(2026, 1, 15, 19, 59, 59), True),   # 20:59:59 CET
    (utc(2026, 1, 15, 20, 0), False),       # 21:00 CET: end is exclusive
    (utc(2026, 7, 15, 7, 0), True),         # 09:00 CEST
    (utc(2026, 7, 15, 6, 59), False),       # 08:59 CEST
])
def test_day_window(t: datetime, expected: bool) -> None:
    assert window_open(DAY, t) is expected


@pytest.mark.parametrize(("t", "expected"), [
    (utc(2026, 1, 15, 20, 59), False),  # 21:59 CET
    (utc(2026, 1, 15, 21, 0), True),    # 22:00 CET
    (utc(2026, 1, 15, 23, 30), True),   # 00:30 CET next day
    (utc(2026, 1, 16, 4, 59), True),    # 05:59 CET
    (utc(2026, 1, 16, 5, 0), False),    # 06:00 CET
    (utc(2026, 1, 16, 12, 0), False),
])
def test_window_across_midnight(t: datetime, expected: bool) -> None:
    assert window_open(NIGHT, t) is expected


def test_no_window_is_always_open() -> None:
    t = utc(2026, 1, 1, 3, 0)
    assert window_open(None, t)
    assert next_open(None, t) == t


def test_next_open_and_close_across_midnight() -> None:
    t = utc(2026, 1, 15, 12, 0)
    opens = next_open(NIGHT, t)
    assert opens == utc(2026, 1, 15, 21, 0)
    assert next_close(NIGHT, opens) == utc(2026, 1, 16, 5, 0)
    assert next_close(NIGHT, t) == t  # closed already
    assert next_open(NIGHT, opens) == opens  # open already


def test_spring_forward_window_in_skipped_hour_opens_at_the_jump() -> None:
    w = DailyWindow(time(2, 30), time(6, 0), BERLIN)
    opens = next_open(w, utc(2026, 3, 28, 12, 0))
    # 02:30 does not exist on 29 March; the clock jumps 02:00 CET -> 03:00 CEST at 01:00 UTC.
    assert opens == utc(2026, 3, 29, 1, 0)
    assert next_close(w, opens) == utc(2026, 3, 29, 4, 0)  # 06:00 CEST
    assert open_seconds_between(w, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0)) == 3 * 3600


def test_day_window_keeps_local_hours_across_dst() -> None:
    before = next_open(DAY, utc(2026, 3, 28, 0, 0))
    after = next_open(DAY, utc(2026, 3, 30, 0, 0))
    assert before == utc(2026, 3, 28, 8, 0)   # 09:00 CET
    assert after == utc(2026, 3, 30, 7, 0)    # 09:00 CEST
    # The spring-forward day's window is still 12 h of wall time.
    assert open_seconds_between(DAY, utc(2026, 3, 29, 0, 0), utc(2026, 3, 30, 0, 0)) == 12 * 3600


def test_fall_back_repeated_hour_reopens_a_night_window() -> None:
    w = DailyWindow(time(22, 0), time(2, 30), BERLIN)
    t = utc(2026, 10, 24, 12, 0)
    o1 = next_open(w, t)
    c1 = next_close(w, o1)
    o2 = next_open(w, c1)
    c2 = next_close(w, o2)
    assert o1 == utc(2026, 10, 24, 20, 0)   # 22:00 CEST
    assert c1 == utc(2026, 10, 25, 0, 30)   # 02:30 CEST
    assert o2 == utc(2026, 10, 25, 1, 0)    # 03:00 CEST becomes 02:00 CET: inside again
    assert c2 == utc(2026, 10, 25, 1, 30)   # 02:30 CET
    assert open_seconds_between(w, t, t + timedelta(days=1)) == 5 * 3600


def test_fall_back_day_window_is_13_hours_of_instants_when_it_spans_the_change() -> None:
    w = DailyWindow(time(0, 0), time(12, 0), BERLIN)
    # 25 October: 00:00 CEST (22:00 UTC on the 24th) to 12:00 CET (11:00 UTC) = 13 h.
    assert open_seconds_between(w, utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 21, 0)) == 13 * 3600


def test_spread_rate_counts_only_open_time() -> None:
    now = utc(2026, 1, 15, 8, 0)           # 09:00 CET, window open
    end = utc(2026, 1, 16, 20, 0)          # 21:00 CET next day: two full windows = 24 h
    assert spread_rate_tps(86_400, now, end, DAY) == pytest.approx(1.0)
    assert spread_rate_tps(3600, now, now + timedelta(hours=1), None) == pytest.approx(1.0)
    assert spread_rate_tps(0, now, end, DAY) == 0.0
    assert spread_rate_tps(10, end, end, DAY) == math.inf


def test_expiry_and_start() -> None:
    c = Campaign(sender="S", text="t", author="a", esme="e", mode=CampaignMode.ON_TIME,
                 start_at=utc(2026, 1, 1, 10, 0), end_at=utc(2026, 1, 1, 12, 0))
    assert not may_start(c, utc(2026, 1, 1, 9, 59))
    assert may_start(c, utc(2026, 1, 1, 10, 0))
    assert not is_expired(c, utc(2026, 1, 1, 11, 59))
    assert is_expired(c, utc(2026, 1, 1, 12, 0))
    on_demand = Campaign(sender="S", text="t", author="a", esme="e")
    assert may_start(on_demand, utc(2000, 1, 1))
    assert not is_expired(on_demand, utc(2100, 1, 1))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        window_open(DAY, datetime(2026, 1, 1, 10, 0))


def test_fair_share_small_urgent_campaign_is_not_starved() -> None:
    alloc = fair_share(1000, [ShareRequest("huge", 1), ShareRequest("urgent", 9, 50)])
    assert alloc["urgent"] == 50
    assert alloc["huge"] == pytest.approx(950)


def test_fair_share_by_priority_weight() -> None:
    alloc = fair_share(1000, [ShareRequest("a", 1), ShareRequest("b", 3)])
    assert alloc == {"a": pytest.approx(250), "b": pytest.approx(750)}


def test_fair_share_redistributes_what_capped_campaigns_cannot_use() -> None:
    alloc = fair_share(100, [ShareRequest("a", 1, 10), ShareRequest("b", 1, 30),
                             ShareRequest("c", 1), ShareRequest("d", 0), ShareRequest("e", 5, 0)])
    assert alloc["a"] == 10
    assert alloc["b"] == 30
    assert alloc["c"] == pytest.approx(60)
    assert alloc["d"] == 0 and alloc["e"] == 0


def test_fair_share_never_exceeds_capacity_or_demand() -> None:
    import random
    rng = random.Random(7)
    for _ in range(200):
        reqs = [ShareRequest(i, rng.randint(1, 10), rng.choice([math.inf, rng.uniform(0, 500)]))
                for i in range(rng.randint(1, 8))]
        capacity = rng.uniform(0, 2000)
        alloc = fair_share(capacity, reqs)
        assert sum(alloc.values()) <= capacity + 1e-6
        for r in reqs:
            assert alloc[r.key] <= r.demand_tps + 1e-9
        if any(r.demand_tps == math.inf for r in reqs):
            assert sum(alloc.values()) == pytest.approx(capacity)
