"""A pause stops sending at once: messages still queued in the pool are taken back and
released to New, only the submits already in a window finish; resume sends the rest, each
recipient exactly once."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.simulator import destination_hash

from .helpers import engine_config, parts, write_numbers


async def test_pause_withdraws_queued_messages_and_resume_sends_each_once(tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "r.txt", 3000)
    config = engine_config(tmp_path / "var", response_latency_s=0.02)
    # A slow SMSC (window 8, 20 ms per answer: ~400 msg/s) behind a deep claim: most of what
    # is claimed waits in the pool's queue.
    config = replace(config, simulator=replace(config.simulator, binds=1, window=8))
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        c = await service.create(Campaign(sender="S", text="Sale", author="t", esme="sim",
                                          source_path=str(tmp_path / "r.txt")))
        assert c.id is not None
        await service.approve(c.id, "mod", auto_start=True)
        with trio.fail_after(30):
            while sim.stats.submits < 200:
                await trio.sleep(0.01)
        queued = engine.routes["sim"].pool.statistics().queued
        assert queued > 100  # the queue is deep

        await service.pause(c.id, "ops")
        at_pause = sim.stats.submits
        with trio.fail_after(10):  # released to New by the route, in-flight ones answered
            while (await store.counters(c.id)).inflight:
                await trio.sleep(0.02)
        # Only what was in the window (8), plus what the control tick let through before it
        # saw the pause (a 50 ms tick at ~400 msg/s), went out; not the queue.
        assert sim.stats.submits - at_pause <= 8 + 40 < queued
        settled = sim.stats.submits
        await trio.sleep(0.3)
        assert sim.stats.submits == settled
        at_pause = settled
        k = await store.counters(c.id)
        assert k.sent == at_pause and k.pending == 3000 - at_pause
        assert engine.routes["sim"].pool.statistics().queued == 0

        await service.resume(c.id, "ops")
        with trio.fail_after(60):
            while (await service.get(c.id)).status is not CampaignStatus.DONE:
                await trio.sleep(0.05)
        sent_to = Counter(r.destination_hash for r in sim.stats.submit_log)
        assert set(sent_to.values()) == {1}
        assert set(sent_to) == {destination_hash(n) for n in numbers}
        assert (await store.counters(c.id)).sent == 3000
        engine.stop()
        await engine.wait_stopped()


async def test_a_stop_while_a_claim_runs_gives_back_what_the_pool_never_got(
        tmp_path: Path) -> None:
    """The engine is told to stop while a route's claim is in the store: the claim commits,
    then the feed is cancelled or finds the pool closed before it queued the rows. Those rows
    go back to New at shutdown (none left in flight), and a restart sends everyone once."""
    numbers = write_numbers(tmp_path / "r.txt", 3000)
    config = engine_config(tmp_path / "var", response_latency_s=0.02)
    # Small claims, so that claims keep running while the campaign sends.
    config = replace(config, simulator=replace(config.simulator, binds=1, window=8),
                     scheduler=replace(config.scheduler, claim_batch=100,
                                       max_claimed_per_route=300))
    engine = Engine(config)
    stopped_in_claim: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        real_claim = store.sync.claim_for_send
        token = trio.lowlevel.current_trio_token()

        def claim_then_stop(campaign_id: int, limit: int, now: Any) -> Any:
            claimed = real_claim(campaign_id, limit, now)  # committed
            if claimed and not stopped_in_claim and sim.stats.submits >= 200:
                stopped_in_claim.append(len(claimed))
                trio.from_thread.run_sync(engine.stop, trio_token=token)
            return claimed

        store.sync.claim_for_send = claim_then_stop  # type: ignore[method-assign]
        c = await service.create(Campaign(sender="S", text="Sale", author="t", esme="sim",
                                          source_path=str(tmp_path / "r.txt")))
        assert c.id is not None
        await service.approve(c.id, "mod", auto_start=True)
        with trio.fail_after(60):
            await engine.wait_stopped()
    assert stopped_in_claim, "no claim ran after 200 submits"
    first_run = Counter(r.destination_hash for r in sim.stats.submit_log
                        if r.command_status == 0)

    engine = Engine(config)  # the same data directory: the campaign resumes by itself
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.recovery is not None
        assert engine.recovery.marked_unknown == engine.recovery.resent == 0  # nothing stranded
        service, sim2 = engine.service, engine.simulator
        assert service is not None and sim2 is not None
        with trio.fail_after(60):
            while (await service.get(c.id)).status is not CampaignStatus.DONE:
                await trio.sleep(0.05)
        engine.stop()
        await engine.wait_stopped()
    accepted = first_run + Counter(r.destination_hash for r in sim2.stats.submit_log
                                   if r.command_status == 0)
    assert set(accepted) == {destination_hash(n) for n in numbers}
    assert set(accepted.values()) == {1}, "a recipient was sent twice"
