"""The async facade and the group-commit writer under trio, on a real SQLite file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
import trio
import trio.testing
from store_fixtures import T0, new_campaign, rows, sending_campaign

from dispatch.campaigns.model import SmsResult
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import (
    Receipt,
    RecipientFilter,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.sqlite import SqliteStore
from dispatch.store.writer import GroupCommitWriter


def clock() -> datetime:
    return T0


def test_writer_commits_in_batches_and_drains_on_close(store: Store) -> None:
    cid = sending_campaign(store).id or 0
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


def test_writer_commits_once_the_queue_goes_quiet(store: Store) -> None:
    """A batch closes ``group_commit_quiet_s`` after the last item, long before the interval:
    an SMSC with a full deliver window waits for the deliver_sm_resps this commit gates.
    Items arriving closer together than that keep the batch open. (Mock clock, jumped by
    hand; the commit itself runs on a real SQLite file in a worker thread.)"""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(6), T0)
    config = replace(StoreConfig(), group_commit_rows=1000, group_commit_interval_s=3600.0,
                     group_commit_quiet_s=0.005)
    clock_ = trio.testing.MockClock()

    async def real_wait_until(condition: Callable[[], bool]) -> None:
        for _ in range(500):  # at most ~5 s of real time
            if condition():
                return
            await trio.to_thread.run_sync(time.sleep, 0.01)
        raise AssertionError("condition not met in 5 s")

    async def main() -> None:
        astore = AsyncStore(store)
        claimed = await astore.claim_for_send(cid, 6, T0)
        outcomes = [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e", (f"m{r.id}",))
                    for r in claimed]
        writer = GroupCommitWriter(astore, config, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            writer.add(outcomes[:3])
            await trio.testing.wait_all_tasks_blocked()
            clock_.jump(0.004)
            writer.add(outcomes[3:])
            await trio.testing.wait_all_tasks_blocked()
            clock_.jump(0.004)  # 8 ms after the first item, 4 ms after the last
            await trio.testing.wait_all_tasks_blocked()
            assert writer.backlog == 6 and writer.statistics().batches == 0
            clock_.jump(0.002)  # 6 ms quiet
            await real_wait_until(lambda: writer.backlog == 0)
            stats = writer.statistics()
            assert (stats.batches, stats.last_batch_rows) == (1, 6)
            await writer.aclose()
        assert (await astore.counters(cid)).sent == 6

    trio.run(main, clock=clock_)


def test_writer_queue_is_bounded_by_wait_for_room(store: Store) -> None:
    """``add`` never blocks; ``wait_for_room`` holds the caller while the queue is at its bound
    (``group_commit_queue_rows``) and lets it go once a commit has taken a batch."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(40), T0)
    config = replace(StoreConfig(), group_commit_rows=8, group_commit_interval_s=3600.0,
                     group_commit_quiet_s=3600.0, group_commit_queue_rows=16)

    async def main() -> None:
        astore = AsyncStore(store)
        claimed = await astore.claim_for_send(cid, 40, T0)
        outcomes = [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e", (f"m{r.id}",))
                    for r in claimed]
        writer = GroupCommitWriter(astore, config, clock)
        released = trio.Event()

        async def producer() -> None:
            writer.add(outcomes[:20])  # over the bound at once: add itself never waits
            await writer.wait_for_room()
            released.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.testing.wait_all_tasks_blocked()
            assert not released.is_set() and writer.statistics().queued == 20
            await nursery.start(writer.run)  # full batches (8 rows) go at once: 20 -> 12
            with trio.fail_after(10):
                await released.wait()
                await writer.wait_durable(16)
            assert writer.statistics().queued <= 8
            writer.add(outcomes[20:])
            await writer.aclose()  # drains the rest
        assert (await astore.counters(cid)).sent == 40

    trio.run(main)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def test_items_the_store_refuses_are_set_aside_and_the_rest_committed(store: Store) -> None:
    """A batch with one outcome the store refuses (64 segments: more than the receipt mask
    holds) and one receipt it cannot encode (a lone surrogate) among good ones: the writer
    splits the batch, commits every good item, records the refused outcome as unknown and
    drops the refused receipt, and keeps running. A batch where every item is refused is
    not the data's fault: ``run`` fails, as it did for any refusal before."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(12), T0)
    config = replace(StoreConfig(), group_commit_rows=1000, group_commit_interval_s=0.05)
    ACC = SubmitKind.ACCEPTED

    async def main() -> None:
        astore = AsyncStore(store)
        claimed = await astore.claim_for_send(cid, 12, T0)
        good, bad, rest = claimed[:9], claimed[9], claimed[10:]
        writer = GroupCommitWriter(astore, config, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            items: list[SubmitOutcome | Receipt] = [
                SubmitOutcome(r.id, ACC, "e", (f"m{r.id}",)) for r in good]
            items.insert(4, SubmitOutcome(bad.id, ACC, "e", tuple(f"x{i}" for i in range(64))))
            items += [Receipt("e", f"m{r.id}", "DELIVRD", None, SmsResult.DELIVERED)
                      for r in good[:8]]
            items.insert(12, Receipt("e", f"m{good[8].id}", "\ud800", None,
                                     SmsResult.DELIVERED))
            with trio.fail_after(10):
                await writer.wait_durable(writer.add(items))
            stats = writer.statistics()
            assert (stats.refused_outcomes, stats.refused_receipts) == (1, 1)
            k = await astore.counters(cid)
            assert (k.sent, k.failed, k.unknown, k.ambiguous, k.delivered, k.inflight) == (
                9, 1, 1, 1, 8, 2)
            view = (await astore.list_recipients(cid, RecipientFilter(after_id=bad.id - 1,
                                                                      limit=1))).items[0]
            assert view.id == bad.id and view.sms_result is SmsResult.UNKNOWN
            assert view.error == "the store refused the SMSC's answer (ValueError)"

            # Every item refused: not the data; the writer stops (and with it the engine).
            writer.add([SubmitOutcome(r.id, ACC, "e", tuple(f"y{r.id}-{i}" for i in range(64)))
                        for r in rest])
            with trio.fail_after(10):
                await trio.sleep_forever()

    with pytest.raises(BaseExceptionGroup) as info:
        trio.run(main)
    assert [type(e) for e in _leaves(info.value)] == [ValueError]
    assert store.counters(cid).inflight == 2  # the refused batch left nothing behind


class _HeldResults:
    """The real store with a hand-held gate on ``record_submit_results`` for recipients in
    ``held`` (a test harness: every call still runs on the store below). Takes two calls at
    once, as the store process does."""

    def __init__(self, store: Store, held: set[int], calls_in_flight: int) -> None:
        self._store, self._held = store, held
        self.calls_in_flight = calls_in_flight
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def record_submit_results(self, outcomes: list[SubmitOutcome], now: datetime) -> object:
        if any(o.recipient_id in self._held for o in outcomes):
            assert self.gate.wait(10), "the test never released the held batch"
        return self._store.record_submit_results(outcomes, now)


@pytest.mark.parametrize("calls_in_flight", [3, 1])
def test_a_batch_commits_while_the_one_before_it_is_still_committing(
        tmp_path: Path, calls_in_flight: int) -> None:
    """With a store that takes three calls at once (the store process), two batches are in
    flight (the store sat idle between calls otherwise), and one that finishes first is
    committed, but nothing counts as durable (no deliver_sm_resp goes out) past an earlier
    batch that is not: "durable up to seq" stays a prefix. A store that takes one call at a
    time gets one batch at a time (a slot stays free for claims)."""
    store = SqliteStore(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(4), T0)
    config = replace(StoreConfig(), group_commit_rows=2, group_commit_interval_s=0.01,
                     group_commit_quiet_s=0.001)
    answered: list[str] = []

    async def main() -> None:
        claimed = store.claim_for_send(cid, 4, T0)
        gated = _HeldResults(store, {claimed[0].id}, calls_in_flight)
        astore = AsyncStore(gated)  # type: ignore[arg-type]
        writer = GroupCommitWriter(astore, config, clock)
        outcomes = [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e", (f"m{r.id}",))
                    for r in claimed]
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            first = writer.add(outcomes[:2])  # held in the store
            writer.call_when_durable(first, lambda: answered.append("first"))
            with trio.fail_after(10):
                while writer.statistics().queued:
                    await trio.sleep(0.005)  # the first batch is taken
            second = writer.add(outcomes[2:])
            writer.call_when_durable(second, lambda: answered.append("second"))
            if calls_in_flight > 2:
                with trio.fail_after(10):  # the second batch commits past the held one
                    while store.counters(cid).sent < 2:
                        await trio.sleep(0.005)
            await trio.sleep(0.1)
            assert store.counters(cid).sent == (2 if calls_in_flight > 2 else 0)
            assert answered == [] and writer.backlog == 4
            gated.gate.set()
            with trio.fail_after(10):
                await writer.wait_durable(second)
            assert answered == ["first", "second"] and writer.backlog == 0
            await writer.aclose()
        assert (await astore.counters(cid)).sent == 4

    try:
        trio.run(main)
    finally:
        store.close()
