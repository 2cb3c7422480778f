"""Schedule arithmetic, pure functions of an explicit ``now`` (the caller's clock is injected, so
tests give exact instants and the engine passes ``clock()``).

Daily windows are wall-clock hours in an IANA zone: the window is open at instant ``t`` when the
local wall time of ``t`` lies in ``[start, end)`` (or, crossing midnight, ``>= start`` or
``< end``). Wall-clock semantics makes DST behave as a person reading a clock expects: on a
spring-forward night a window starting in the skipped hour opens when the clock jumps; on a
fall-back night a repeated hour is inside (or outside) the window both times. The edge finder
below looks only at instants where openness can change (local start/end times in both folds, and
the zone's UTC-offset transitions) and keeps those where it really changes, so it always agrees
with ``window_open``.

Fair share: weighted max-min (water-filling). Each active campaign of a route asks for up to
``demand_tps`` (its TPS cap, its Spread rate, or what it has left); capacity is split in
proportion to priority, and whatever a capped campaign cannot use is handed on to the others. A
small urgent campaign therefore gets its share however big the others are.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from dispatch.campaigns.model import Campaign, CampaignMode, DailyWindow

_EPS = timedelta(microseconds=1)
_MAX_SEARCH_DAYS = 8
_MAX_SPAN_DAYS = 4 * 366


def _require_aware(t: datetime) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("schedule functions need timezone-aware datetimes")


def window_open(window: DailyWindow | None, t: datetime) -> bool:
    """Is the daily window open at instant ``t``? No window means always open."""
    if window is None:
        return True
    _require_aware(t)
    wall = t.astimezone(window.zone).time().replace(tzinfo=None)
    if window.start < window.end:
        return window.start <= wall < window.end
    return wall >= window.start or wall < window.end


def _offset_transitions(window: DailyWindow, day: date) -> list[datetime]:
    """UTC instants on local ``day`` where the zone's UTC offset changes (DST), to the second."""
    zone = window.zone
    lo = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
    hi = lo + timedelta(days=1, hours=2)
    if lo.astimezone(zone).utcoffset() == hi.astimezone(zone).utcoffset():
        return []
    lo_off = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):  # bounded: ~17 halvings of a day
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == lo_off:
            lo = mid
        else:
            hi = mid
    # Offsets change on whole seconds: the first whole second after ``lo`` is ``floor(hi)``.
    return [hi.replace(microsecond=0)]


@lru_cache(maxsize=4 * _MAX_SPAN_DAYS)
def _candidates(window: DailyWindow, day: date) -> tuple[datetime, ...]:
    """Every instant on local ``day`` where the window may open or close (cached: each edge
    search looks at eight days, and consecutive searches at mostly the same ones)."""
    zone = window.zone
    out: list[datetime] = []
    for wall in (window.start, window.end):
        for fold in (0, 1):
            local = datetime.combine(day, wall, zone).replace(fold=fold)
            out.append(local.astimezone(UTC))
    out.extend(_offset_transitions(window, day))
    return tuple(out)


def _next_edge(window: DailyWindow, t: datetime, opening: bool) -> datetime:
    # Gather every day's candidates before sorting: a DST transition found from day d may lie
    # after day d+1's earliest candidates.
    start_day = t.astimezone(window.zone).date() - timedelta(days=1)
    found: set[datetime] = set()
    for offset in range(_MAX_SEARCH_DAYS):
        found.update(_candidates(window, start_day + timedelta(days=offset)))
    for c in sorted(found):
        if c > t and window_open(window, c) == opening \
                and window_open(window, c - _EPS) != opening:
            return c
    raise ValueError(f"no window edge within {_MAX_SEARCH_DAYS} days")  # pragma: no cover


def next_open(window: DailyWindow | None, t: datetime) -> datetime:
    """``t`` itself when the window is open at ``t``, else the instant it next opens (UTC)."""
    _require_aware(t)
    if window is None or window_open(window, t):
        return t
    return _next_edge(window, t, opening=True)


def next_close(window: DailyWindow, t: datetime) -> datetime:
    """``t`` when the window is closed at ``t``, else the instant it next closes (UTC)."""
    _require_aware(t)
    if not window_open(window, t):
        return t
    return _next_edge(window, t, opening=False)


def open_seconds_between(window: DailyWindow | None, a: datetime, b: datetime) -> float:
    """Seconds inside the window between instants ``a`` and ``b`` (0 when ``b <= a``).

    A route asks this on every feed tick for each Spread campaign (time left before its end),
    so the cost must not grow with the days left: the span is cut at local midnights, whole
    local days come from a per-day cache, and only the partial first and last days are walked
    edge by edge. Open time adds up over any partition of the span, so the result is the
    same as walking every edge. With a window, a span is counted up to ``_MAX_SPAN_DAYS``
    (a rate spread over more is as good as nothing; the bound keeps the work bounded)."""
    _require_aware(a)
    _require_aware(b)
    if b <= a:
        return 0.0
    if window is None:
        return (b - a).total_seconds()
    b = min(b, a + timedelta(days=_MAX_SPAN_DAYS))
    first = a.astimezone(window.zone).date() + timedelta(days=1)
    last = b.astimezone(window.zone).date()
    lo, hi = _day_start(window, first), _day_start(window, last)
    if last <= first or not a <= lo <= hi <= b:
        return _walk_open_seconds(window, a, b)
    total = _walk_open_seconds(window, a, lo) + _walk_open_seconds(window, hi, b)
    for offset in range((last - first).days):
        total += _open_seconds_on(window, first + timedelta(days=offset))
    return total


def _day_start(window: DailyWindow, day: date) -> datetime:
    """The UTC instant of local midnight starting ``day`` (the first one at a fall-back; at a
    gap, the instant the clock jumps): strictly increasing with ``day``."""
    return datetime.combine(day, datetime.min.time(), window.zone).astimezone(UTC)


@lru_cache(maxsize=4 * _MAX_SPAN_DAYS)
def _open_seconds_on(window: DailyWindow, day: date) -> float:
    """Open seconds of local ``day``, midnight to midnight (DST days differ)."""
    return _walk_open_seconds(window, _day_start(window, day),
                              _day_start(window, day + timedelta(days=1)))


def _walk_open_seconds(window: DailyWindow, a: datetime, b: datetime) -> float:
    """``open_seconds_between`` by walking every edge from ``a`` to ``b``."""
    total = 0.0
    t = a
    for _ in range(4 * _MAX_SPAN_DAYS):  # bounded: a few edges a day
        if t >= b:
            break
        if window_open(window, t):
            close = next_close(window, t)
            total += (min(close, b) - t).total_seconds()
            t = close
        else:
            t = next_open(window, t)
    return total


def spread_rate_tps(remaining: int, now: datetime, end_at: datetime,
                    window: DailyWindow | None) -> float:
    """Spread mode: the rate that sends ``remaining`` recipients evenly over the open window
    time left before ``end_at``. With no open time left it is ``inf`` (send what can be sent;
    expiry will stop the rest)."""
    if remaining <= 0:
        return 0.0
    seconds = open_seconds_between(window, now, end_at)
    return math.inf if seconds <= 0 else remaining / seconds


def may_start(campaign: Campaign, now: datetime) -> bool:
    """Has an auto-started campaign reached its start? OnDemand starts at once."""
    if campaign.mode is CampaignMode.ON_DEMAND or campaign.start_at is None:
        return True
    return now >= campaign.start_at


def is_expired(campaign: Campaign, now: datetime) -> bool:
    """Has the campaign's end passed (only campaigns with an end time expire)?"""
    return campaign.end_at is not None and now >= campaign.end_at


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """One campaign's claim on a route: ``weight`` is its priority, ``demand_tps`` the most it
    can use now (``inf`` for unlimited)."""

    key: Hashable
    weight: float
    demand_tps: float = math.inf


def fair_share(capacity_tps: float, requests: Iterable[ShareRequest]) -> dict[Hashable, float]:
    """Weighted max-min fair allocation of ``capacity_tps`` (water-filling).

    Every request gets ``min(demand, weight * level)`` for the one ``level`` that uses the whole
    capacity (or every demand is met). Zero/negative weights or demands get 0.
    """
    reqs: Sequence[ShareRequest] = list(requests)
    alloc: dict[Hashable, float] = {r.key: 0.0 for r in reqs}
    active = [r for r in reqs if r.weight > 0 and r.demand_tps > 0]
    left = max(0.0, capacity_tps)
    for _ in range(len(active) + 1):  # each round saturates at least one request or ends
        if not active or left <= 1e-12:
            break
        total_weight = sum(r.weight for r in active)
        level = left / total_weight
        saturated = [r for r in active if r.demand_tps - alloc[r.key] <= r.weight * level]
        if not saturated:
            for r in active:
                alloc[r.key] += r.weight * level
            left = 0.0
            break
        for r in saturated:
            need = r.demand_tps - alloc[r.key]
            alloc[r.key] = r.demand_tps
            left -= need
        active = [r for r in active if r not in saturated]
    return alloc
