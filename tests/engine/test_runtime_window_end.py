"""A campaign whose end time is also the close of its daily window (a one-day campaign sent
during business hours) ends at its end time as a Sending campaign does: it is not first paused
by the window and then expired. Real engine, simulator and SQLite store; a moved clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignMode, CampaignStatus, DailyWindow
from dispatch.engine.core import Engine

from .helpers import MovableClock, approved, engine_config, parts, until, write_numbers


async def test_trigger_campaign_ending_at_window_close_is_done(tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "audience.txt", 30)
    clock = MovableClock(datetime(2026, 6, 3, 20, 0, tzinfo=UTC))
    engine = Engine(engine_config(tmp_path / "var"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, _ = parts(engine)
        cid = await approved(service, Campaign(
            sender="Shop", text="Today only", author="t", esme="sim", mode=CampaignMode.TRIGGER,
            start_at=datetime(2026, 6, 3, 9, 0, tzinfo=UTC),
            end_at=datetime(2026, 6, 3, 21, 0, tzinfo=UTC),
            window=DailyWindow(time(9, 0), time(21, 0), "UTC"),
            source_path=str(tmp_path / "audience.txt")))

        def status_is(status: CampaignStatus) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await service.get(cid)).status is status
            return check

        await until(status_is(CampaignStatus.SENDING))
        await service.trigger(cid, "crm", [numbers[3], numbers[4]])

        async def sent() -> bool:
            k = await store.counters(cid)
            return k.sent == 2 and k.inflight == 0
        await until(sent)

        clock.set(datetime(2026, 6, 3, 21, 0, 30, tzinfo=UTC))  # window closed, end passed

        async def ended() -> bool:
            return (await service.get(cid)).status.is_terminal
        await until(ended)
        detail = await service.detail(cid)
        assert detail.campaign.status is CampaignStatus.DONE
        assert CampaignStatus.PAUSED not in [h.phase for h in detail.state_history]
        k = detail.counters
        assert (k.total, k.sent, k.held, k.expired) == (30, 2, 0, 28)
        engine.stop()
        await engine.wait_stopped()
