"""The async facade and the group-commit writer under trio, on a real SQLite file."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import trio
from store_fixtures import T0, new_campaign, rows

from dispatch.campaigns.model import SmsResult
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import Receipt, Store, StoreConfig, SubmitKind, SubmitOutcome
from dispatch.store.writer import GroupCommitWriter


def clock() -> datetime:
    return T0


def test_writer_commits_in_batches_and_drains_on_close(store: Store) -> None:
    cid = new_campaign(store).id or 0
    store.add_recipients(cid, rows(250), T0)
    config = replace(StoreConfig(), group_commit_rows=100, group_commit_interval_s=0.05,
                     group_commit_queue_rows=64)

    async def main() -> None:
        astore = AsyncStore(store)
        claimed = await astore.claim_for_send(cid, 250, T0)
        writer = GroupCommitWriter(astore, config, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            last = 0
            for r in claimed:  # receipts first for some: they race the submit result
                if r.id % 10 == 0:
                    await writer.receipt(Receipt("e", f"m{r.id}", "DELIVRD", None,
                                                 SmsResult.DELIVERED))
                last = await writer.submit_result(
                    SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e", (f"m{r.id}",)))
            with trio.fail_after(10):
                await writer.wait_durable(last)
            assert (await astore.counters(cid)).sent == 250
            await writer.receipt(Receipt("e", f"m{claimed[1].id}", "DELIVRD", None,
                                         SmsResult.DELIVERED))
            await writer.aclose()  # drains what is queued, then run() returns
        stats = writer.statistics()
        assert stats.outcomes == 250 and stats.receipts == 26
        assert 3 <= stats.batches <= 260
        k = await astore.counters(cid)
        assert (k.sent, k.delivered, k.inflight) == (250, 26, 0)

    trio.run(main)


def test_store_calls_do_not_block_the_loop(store: Store) -> None:
    cid = new_campaign(store).id or 0
    ticks = 0

    async def ticker(stop: trio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await trio.sleep(0)

    async def main() -> None:
        astore = AsyncStore(store)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker, stop)
            await astore.add_recipients(cid, rows(2_000), T0)
            stop.set()
        assert (await astore.counters(cid)).total == 2_000

    trio.run(main)
    assert ticks > 1  # the loop kept running while SQLite worked in its thread
