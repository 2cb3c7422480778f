"""Cancel while sending: once the cancel is acknowledged, the messages the engine still holds
(claimed, queued in the pool) are taken back at once, not at the next control tick; only the
submits already in the SMSC window go out, they are recorded, and the counters equal what the
simulator accepted. Real engine, real simulator, real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus, RecipientStage
from dispatch.engine.core import Engine
from dispatch.store.base import RecipientFilter

from .helpers import approved, engine_config, parts, until, write_numbers

WINDOW = 8


@asynccontextmanager
async def _cancelled_while_sending(tmp_path: Path, count: int, after_submits: int,
                                   **scheduler: Any) -> AsyncIterator[tuple[Engine, int, int]]:
    """A real engine sending a campaign of ``count`` to a slow SMSC (one bind, window 8,
    10 ms an answer: ~800 msg/s), cancelled once ``after_submits`` went out: yields the
    engine, the campaign id and the simulator's submits when the cancel returned; stops the
    engine after the body."""
    write_numbers(tmp_path / "r.txt", count)
    config = engine_config(tmp_path / "var", response_latency_s=0.01)
    config = replace(config, simulator=replace(config.simulator, binds=1, window=WINDOW),
                     scheduler=replace(config.scheduler, **scheduler))
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, _, sim = parts(engine)
        cid = await approved(service, Campaign(sender="S", text="Sale", author="t", esme="sim",
                                               source_path=str(tmp_path / "r.txt")))

        async def sending() -> bool:
            return sim.stats.submits >= after_submits
        await until(sending, timeout_s=30)
        await service.cancel(cid, "ops")
        yield engine, cid, sim.stats.submits
        engine.stop()
        await engine.wait_stopped()


async def test_cancel_stops_sending_without_waiting_for_the_control_tick(
        tmp_path: Path) -> None:
    # A control loop that ticks every 2 s (the default is 0.25 s; a busy node may well tick
    # slower): the cancel must not wait for it.
    async with _cancelled_while_sending(tmp_path, 4000, after_submits=100,
                                        control_interval_s=2.0) as (engine, cid, at_ack):
        service, store, sim = parts(engine)

        async def settled() -> bool:  # queued messages released, in-window ones answered
            return (await store.counters(cid)).inflight == 0
        await until(settled, timeout_s=10)
        after = sim.stats.submits
        # What was already in the window, plus what one feed tick and one pass of the
        # control loop let through at ~800 msg/s; not a control interval's worth (~1600).
        assert after - at_ack <= WINDOW + 40, (at_ack, after)
        await trio.sleep(0.3)
        assert sim.stats.submits == after  # nothing more after it settled

        k = await store.counters(cid)
        assert (await service.get(cid)).status is CampaignStatus.CANCELLED
        assert k.sent == sim.stats.submits  # in-flight submits were recorded
        assert k.total == 4000 and k.pending == 4000 - k.sent - k.failed and k.inflight == 0


async def test_cancel_leaves_nothing_pending(tmp_path: Path) -> None:
    """The product's rule: on Cancel the recipients not sent (still New, or given back by the
    pool) end Failed "campaign cancelled", as on expiry, so the campaign's pending count
    reaches 0 and its counters add up."""
    async with _cancelled_while_sending(tmp_path, 2000, after_submits=50) as (engine, cid, _):
        _, store, sim = parts(engine)

        async def settled() -> bool:
            return (await store.counters(cid)).inflight == 0
        await until(settled, timeout_s=10)
        k = await store.counters(cid)
        assert (k.pending, k.held, k.inflight, k.expired) == (0, 0, 0, 0)
        assert k.sent == sim.stats.submits and k.failed == k.total - k.sent
        page = await store.list_recipients(cid, RecipientFilter(
            stages=frozenset({RecipientStage.FAILED}), limit=200))
        assert page.total == k.failed
        assert {r.error for r in page.items} == {"campaign cancelled"}


async def test_cancel_while_building_leaves_nothing_pending(tmp_path: Path) -> None:
    """Cancelled while its file is being stored: the cancel marks the rows stored so far, and
    the build, refused Sending when it ends, marks the rows it stored after the cancel."""
    write_numbers(tmp_path / "r.txt", 12_000)  # stored in three slices of at most 5000
    engine = Engine(engine_config(tmp_path / "var"))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, _ = parts(engine)
            real_add = store.add_recipients
            first_stored, cancelled = trio.Event(), trio.Event()

            async def add_then_wait(*args: Any) -> int:
                n = await real_add(*args)
                if not first_stored.is_set():
                    first_stored.set()
                    await cancelled.wait()  # the rest of the file is stored after the cancel
                return n

            store.add_recipients = add_then_wait  # type: ignore[method-assign]
            cid = await approved(service, Campaign(sender="S", text="Sale", author="t",
                                                   esme="sim",
                                                   source_path=str(tmp_path / "r.txt")))
            await first_stored.wait()
            await service.cancel(cid, "ops")
            cancelled.set()

            async def all_stored_and_marked() -> bool:
                k = await store.counters(cid)
                return k.total == 12_000 and k.pending == 0 and not engine.statistics().builders
            await until(all_stored_and_marked, timeout_s=30)
            k = await store.counters(cid)
            assert (k.failed, k.sent, k.held, k.inflight) == (12_000, 0, 0, 0)
            assert (await service.get(cid)).status is CampaignStatus.CANCELLED
            page = await store.list_recipients(cid, RecipientFilter(limit=200))
            assert {r.error for r in page.items} == {"campaign cancelled"}
            engine.stop()
            await engine.wait_stopped()
