"""Trigger mode end to end: a real engine and simulator; the file is the audience, and only
recipients named by trigger events (or released by count) are sent, each once; at the end time
the campaign is Done and the rest are marked "not triggered"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.errors import BadRequest, InvalidTransition
from dispatch.campaigns.model import Campaign, CampaignMode, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.simulator import destination_hash

from .helpers import MovableClock, engine_config, parts, until, until_status, write_numbers


async def test_trigger_events_release_recipients_once_and_the_end_marks_the_rest(
        tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "audience.txt", 200)
    clock = MovableClock()
    engine = Engine(engine_config(tmp_path / "var"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        now = clock()
        created = await service.create(Campaign(
            sender="Roam", text="Welcome abroad", author="t", esme="sim",
            mode=CampaignMode.TRIGGER, start_at=now - timedelta(minutes=1),
            end_at=now + timedelta(hours=1), source_path=str(tmp_path / "audience.txt")))
        cid = created.id
        assert cid is not None
        await service.approve(cid, "mod", auto_start=True)

        async def built() -> bool:
            c = await service.get(cid)
            return c.status is CampaignStatus.SENDING and (await store.counters(cid)).held == 200
        await until(built)
        await trio.sleep(0.3)  # several control ticks and feed rounds: nothing may go out
        assert sim.stats.submits == 0

        named = [numbers[7], "+" + numbers[42], "00" + numbers[99]]
        result = await service.trigger(cid, "crm", [*named, "79001234567890"])
        assert (result.released, result.already_released, result.not_found) == (3, 0, 1)

        def submitted(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return sim.stats.submits >= n
            return check
        await until(submitted(3))
        assert {r.destination_hash for r in sim.stats.submit_log} == {
            destination_hash(numbers[i]) for i in (7, 42, 99)}

        again = await service.trigger(cid, "crm", named)
        assert (again.released, again.already_released) == (0, 3)
        assert (await service.trigger(cid, "crm", count=10)).released == 10
        await until(submitted(13))

        async def settled() -> bool:
            k = await store.counters(cid)
            return k.sent == 13 and k.inflight == 0 and k.pending == 0
        await until(settled)
        await trio.sleep(0.3)
        assert (await service.get(cid)).status is CampaignStatus.SENDING  # still open for events

        clock.set(clock() + timedelta(hours=2))  # past the end time

        await until_status(service, cid, CampaignStatus.DONE)
        k = await store.counters(cid)
        assert (k.total, k.sent, k.held, k.expired, k.failed) == (200, 13, 0, 187, 187)
        assert sim.stats.submits == 13
        with pytest.raises(InvalidTransition, match="status Done"):
            await service.trigger(cid, "crm", count=1)
        engine.stop()
        await engine.wait_stopped()


async def test_trigger_refused_for_other_modes(tmp_path: Path) -> None:
    write_numbers(tmp_path / "r.txt", 10)
    engine = Engine(engine_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service = engine.service
        assert service is not None
        c = await service.create(Campaign(sender="S", text="t", author="t", esme="sim",
                                          source_path=str(tmp_path / "r.txt")))
        assert c.id is not None
        with pytest.raises(BadRequest, match="only Trigger campaigns"):
            await service.trigger(c.id, "crm", count=1)
        engine.stop()
        await engine.wait_stopped()
