"""A campaign that is Paused when its end time passes (paused by hand, or by its daily window
at night) must still end, and must not hold up the control loop for the other campaigns.

Real engine, real simulator, real SQLite store; the engine's clock is moved by the test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignKind, CampaignMode, CampaignStatus
from dispatch.campaigns.service import TransactionalMessage
from dispatch.engine.core import Engine

from .helpers import MovableClock, engine_config, parts, until, write_numbers


async def test_paused_trigger_and_transactional_campaigns_end_at_their_end_time(
        tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "audience.txt", 50)
    write_numbers(tmp_path / "later.txt", 30, seed=2, prefix="7911")
    clock = MovableClock()
    engine = Engine(engine_config(tmp_path / "var"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        now = clock()
        trigger = await service.create(Campaign(
            sender="Roam", text="Welcome", author="t", esme="sim", mode=CampaignMode.TRIGGER,
            start_at=now - timedelta(minutes=1), end_at=now + timedelta(hours=1),
            source_path=str(tmp_path / "audience.txt")))
        txn = await service.create(Campaign(
            sender="Bank", text="Code 1234", author="t", esme="sim",
            kind=CampaignKind.TRANSACTIONAL, end_at=now + timedelta(hours=1)))
        tid, xid = trigger.id, txn.id
        assert tid is not None and xid is not None
        await service.approve(tid, "mod", auto_start=True)
        await service.approve(xid, "mod", auto_start=True)

        def status_is(cid: int, status: CampaignStatus) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await service.get(cid)).status is status
            return check

        await until(status_is(tid, CampaignStatus.SENDING))
        await until(status_is(xid, CampaignStatus.SENDING))
        await service.trigger(tid, "crm", [numbers[0], numbers[1]])
        await service.add_messages(xid, [TransactionalMessage("+79001112233")])

        async def all_sent() -> bool:
            t, x = await store.counters(tid), await store.counters(xid)
            return (t.sent, t.inflight, x.sent, x.inflight) == (2, 0, 1, 0)
        await until(all_sent)
        await service.pause(tid, "ops")
        await service.pause(xid, "ops")

        clock.set(clock() + timedelta(hours=2))  # both end times pass while Paused
        # A campaign created afterwards must still be built and sent: the control loop is
        # not stuck on the paused ones.
        later = await service.create(Campaign(sender="S", text="Hi", author="t", esme="sim",
                                              source_path=str(tmp_path / "later.txt")))
        assert later.id is not None
        await service.approve(later.id, "mod", auto_start=True)

        await until(status_is(tid, CampaignStatus.EXPIRED), timeout_s=15)
        await until(status_is(xid, CampaignStatus.EXPIRED), timeout_s=15)
        await until(status_is(later.id, CampaignStatus.DONE), timeout_s=30)
        k = await store.counters(tid)
        # The untriggered audience is marked, nothing stays Held in an ended campaign.
        assert (k.total, k.sent, k.held, k.pending, k.expired) == (50, 2, 0, 0, 48)
        x = await store.counters(xid)
        assert (x.total, x.sent, x.pending, x.inflight) == (1, 1, 0, 0)
        assert sim.stats.submits == 2 + 1 + 30
        engine.stop()
        await engine.wait_stopped()
