"""A control tick works from the campaign list it read at its start. A campaign it saw
Building may be Sending (or Paused) by the time the tick reaches it: the builder finished in
between. Starting a builder for it then deleted its recipients (all still New, nothing claimed
yet) and ingested them again; the next tick saw a Sending campaign with nothing pending and
finished it Done without sending anything (seen as a flaky diagnostics test under load)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus, DailyWindow
from dispatch.engine.core import Engine

from .helpers import MovableClock, engine_config, until, write_numbers


async def test_a_builder_started_from_a_stale_list_leaves_a_built_campaign_alone(
        tmp_path: Path) -> None:
    write_numbers(tmp_path / "r.txt", 40)
    clock = MovableClock()
    engine = Engine(engine_config(tmp_path / "var"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service = engine.service
        assert service is not None
        now = clock()
        # A window closed now: built, then paused by the window before anything is claimed.
        closed = DailyWindow(start=(now + timedelta(hours=2)).time().replace(microsecond=0),
                             end=(now + timedelta(hours=3)).time().replace(microsecond=0))
        c = await service.create(Campaign(sender="S", text="t", author="a", esme="sim",
                                          window=closed, source_path=str(tmp_path / "r.txt")))
        assert c.id is not None
        await service.approve(c.id, "mod", auto_start=True)

        async def paused() -> bool:
            return (await service.get(c.id or 0)).status is CampaignStatus.PAUSED

        await until(paused)
        before = [(r.id, r.created_at) for r in (await service.recipients(c.id, limit=200)).items]
        assert len(before) == 40
        clock.set(clock() + timedelta(minutes=5))  # rows ingested again would say so

        # What a tick holding a stale list does: start a builder for the "Building" campaign.
        stale = replace(await service.get(c.id), status=CampaignStatus.BUILDING)
        async with trio.open_nursery() as builders:
            engine._start_builder(builders, stale)
        after = [(r.id, r.created_at) for r in (await service.recipients(c.id, limit=200)).items]
        assert after == before  # the same rows: nothing deleted and ingested again
        assert (await service.get(c.id)).status is CampaignStatus.PAUSED
        assert (await service.counters(c.id)).pending == 40
        engine.stop()
        await engine.wait_stopped()
