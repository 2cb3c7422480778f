"""The engine's control loop under a clock the test moves (real engine, real simulator): a
campaign pauses when its daily window closes, sends nothing while closed, resumes when it
opens (here across midnight and a DST change in Europe/Berlin), and expires at its end time
with the unsent recipients marked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, time
from pathlib import Path

import trio

from dispatch.campaigns.model import (
    Campaign,
    CampaignMode,
    CampaignStatus,
    DailyWindow,
    PausedBy,
)
from dispatch.engine.core import Engine

from .helpers import MovableClock, approved, engine_config, parts, until, write_numbers


async def test_window_pause_resume_across_midnight_and_dst_then_expiry(tmp_path: Path) -> None:
    write_numbers(tmp_path / "r.txt", 4000)
    # 2026-10-24 23:30 Berlin (CEST, UTC+2): inside 22:00-06:00. The night of 24/25 October
    # ends summer time, so that night's 06:00 local is 05:00 UTC.
    clock = MovableClock(datetime(2026, 10, 24, 21, 30, tzinfo=UTC))
    config = engine_config(tmp_path / "var", response_latency_s=0.02)
    config = replace(config, simulator=replace(config.simulator, binds=1, window=8))
    engine = Engine(config, clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        cid = await approved(service, Campaign(
            sender="Night", text="Offer", author="t", esme="sim", mode=CampaignMode.ON_TIME,
            start_at=clock(), end_at=datetime(2026, 10, 26, 4, 0, tzinfo=UTC),
            window=DailyWindow(time(22, 0), time(6, 0), "Europe/Berlin"),
            source_path=str(tmp_path / "r.txt")))

        def status_is(status: CampaignStatus) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await service.get(cid)).status is status
            return check

        def submits_over(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return sim.stats.submits > n
            return check

        async def inflight_zero() -> bool:
            return (await store.counters(cid)).inflight == 0

        await until(status_is(CampaignStatus.SENDING))
        await until(submits_over(50))

        # 05:10 UTC = 06:10 CET after the change: the window has closed.
        clock.set(datetime(2026, 10, 25, 5, 10, tzinfo=UTC))
        await until(status_is(CampaignStatus.PAUSED))
        assert (await service.get(cid)).paused_by is PausedBy.WINDOW
        await until(inflight_zero)
        closed_at = sim.stats.submits
        await trio.sleep(0.3)
        assert sim.stats.submits == closed_at < 4000

        # 21:05 UTC = 22:05 CET (it would be 23:05 under summer time): open again.
        clock.set(datetime(2026, 10, 25, 21, 5, tzinfo=UTC))
        await until(status_is(CampaignStatus.SENDING))
        await until(submits_over(closed_at))

        # Past the end time with recipients left: Expired, the rest marked.
        clock.set(datetime(2026, 10, 26, 4, 1, tzinfo=UTC))
        await until(status_is(CampaignStatus.EXPIRED))

        async def marked() -> bool:  # the status changes first, then the rows are marked
            k = await store.counters(cid)
            return k.inflight == 0 and k.pending == 0
        await until(marked)
        k = await store.counters(cid)
        assert k.sent == sim.stats.submits
        assert k.expired == 4000 - k.sent > 0 and k.pending == 0
        engine.stop()
        await engine.wait_stopped()

