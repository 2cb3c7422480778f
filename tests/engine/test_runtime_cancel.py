"""Cancel while sending: once the cancel is acknowledged, the messages the engine still holds
(claimed, queued in the pool) are taken back at once, not at the next control tick; only the
submits already in the SMSC window go out, they are recorded, and the counters equal what the
simulator accepted. Real engine, real simulator, real SQLite store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine

from .helpers import approved, engine_config, parts, until, write_numbers

WINDOW = 8


async def test_cancel_stops_sending_without_waiting_for_the_control_tick(
        tmp_path: Path) -> None:
    write_numbers(tmp_path / "r.txt", 4000)
    config = engine_config(tmp_path / "var", response_latency_s=0.01)
    # A slow SMSC (one bind, window 8, 10 ms an answer: ~800 msg/s) and a control loop that
    # ticks every 2 s (the default is 0.25 s; a busy node may well tick slower).
    config = replace(config, simulator=replace(config.simulator, binds=1, window=WINDOW),
                     scheduler=replace(config.scheduler, control_interval_s=2.0))
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        cid = await approved(service, Campaign(sender="S", text="Sale", author="t", esme="sim",
                                               source_path=str(tmp_path / "r.txt")))

        async def sending() -> bool:
            return sim.stats.submits >= 100
        await until(sending, timeout_s=30)

        await service.cancel(cid, "ops")
        at_ack = sim.stats.submits

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
        engine.stop()
        await engine.wait_stopped()
