"""Store outages against a real engine: a real SQLite file, the real built-in simulator over
loopback, and faults from inside the real store (DESIGN.md, Reliability; issue 9).

Two kinds of fault:

* the store's fault-injection hook (``SqliteStore.fault_hook``): every write transaction fails
  at its COMMIT with ``sqlite3.OperationalError("database or disk is full")`` and is rolled
  back, exactly as a real failing commit is -- total and deterministic;
* a real full database: ``PRAGMA max_page_count`` lowered to the file's current size on the
  engine's own connection, so SQLite itself answers SQLITE_FULL to every write that needs a new
  page (and lets the others through, as a nearly full disk does).

Either way the engine must lose nothing and not crash: it stops claiming, keeps what it could
not write, reports the fault in /diagnostics with the campaigns it holds up, answers no receipt
before it is committed (the simulator keeps and redelivers them), and when the fault clears it
resumes by itself, records a job error per paused campaign and completes with counters equal to
the simulator's, nothing sent twice.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus, SmsResult
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.engine.config import EmbeddedSimulator, EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine, utc_now
from dispatch.simulator import SimulatorConfig, destination_hash
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import Receipt, RecipientRow, StoreConfig, SubmitKind, SubmitOutcome
from dispatch.store.sqlite import SqliteStore

COUNT = 4000
TPS = 1500  # the route's contract: the campaign lasts ~3 s, so a fault lands mid-campaign
MAX_CLAIMED = 600


def _numbers(path: Path, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    digits = sorted({f"7900{rng.randrange(10**7):07d}" for _ in range(count * 2)})[:count]
    rng.shuffle(digits)
    path.write_text("".join(f"+{d}\n" for d in digits))
    return digits


def _config(data_dir: Path) -> EngineConfig:
    sim = SimulatorConfig(port=0, response_latency_s=0.001, receipt_delay_s=0.05,
                          # an unanswered receipt comes back after 1 s, like a real SMSC's
                          deliver_resp_timeout_s=1.0, redelivery_delay_s=0.2,
                          deliver_max_attempts=0)
    config = EngineConfig(
        data_dir=str(data_dir), api_enabled=False,
        hash_key_hex="00112233445566778899aabbccddeeff",
        simulator=EmbeddedSimulator(settings=sim, binds=2, window=64, tps=TPS),
        scheduler=SchedulerConfig(control_interval_s=0.05, claim_batch=200,
                                  max_claimed_per_route=MAX_CLAIMED),
    )
    # The store in the engine's own thread (not its own process, the default): these tests
    # reach into the SQLite connection to make its writes fail (``fault_hook``, page caps).
    # tests/hardening/test_store_process_killed.py covers a store process that dies.
    return replace(config, store=replace(config.store, process=False)).resolved()


def _disk_full() -> None:
    raise sqlite3.OperationalError("database or disk is full")


class _FailOnceInFlight:
    """A disk that fills up at a moment when the committed state has recipients in flight:
    the first transaction that commits with the campaign's ``inflight`` counter above zero
    goes through, every later one fails. (Failing at an arbitrary moment can, on a loaded
    machine, land when every claimed recipient already has its result committed, and then
    there is nothing ambiguous for the restart to recover.)"""

    def __init__(self, store: SqliteStore, campaign_id: int) -> None:
        self.store, self.campaign_id, self.full = store, campaign_id, False

    def __call__(self) -> None:
        if self.full:
            _disk_full()
        row = self.store._db.execute(  # inside the committing transaction, same connection
            "SELECT inflight FROM campaign_counters WHERE campaign_id = ?",
            (self.campaign_id,)).fetchone()
        self.full = row is not None and row[0] > 0


async def _wait_for(what: Callable[[], Any], limit_s: float, step_s: float = 0.02) -> None:
    with trio.fail_after(limit_s):
        while not what():
            await trio.sleep(step_s)


async def _start_campaign(engine: Engine, source: Path) -> int:
    assert engine.service is not None
    created = await engine.service.create(Campaign(
        sender="Shop", text="Store fault hello", author="t", esme="sim",
        source_path=str(source)))
    assert created.id is not None
    await engine.service.approve(created.id, "t", auto_start=True)
    return created.id


async def _finish(engine: Engine, cid: int, limit_s: float = 60, receipts: bool = True) -> None:
    """Wait for Done and (``receipts``) for every accepted message's receipt."""
    assert engine.service is not None
    with trio.fail_after(limit_s):
        while (await engine.service.get(cid)).status is not CampaignStatus.DONE:
            await trio.sleep(0.1)
        while receipts:
            c = await engine.service.counters(cid)
            if c.delivered + c.undelivered + c.unknown >= c.sent:
                break
            await trio.sleep(0.1)


def _reconcile(engine: Engine, cid: int, numbers: list[str]) -> None:
    """Counters equal the simulator's counts; every recipient sent exactly once."""
    sim = engine.simulator
    assert sim is not None
    store = SqliteStore(engine.config.store)
    try:
        c = store.counters(cid)
        rows = store._db.execute(  # every row: a reconciliation, no public bulk read needed
            "SELECT number, stage, sms_result FROM recipients WHERE campaign_id = ?",
            (cid,)).fetchall()
    finally:
        store.close()
    accepted = Counter(r.destination_hash for r in sim.stats.submit_log if r.command_status == 0)
    assert len(rows) == c.total == len(numbers)
    assert set(accepted) == {destination_hash(n) for n in numbers}
    assert set(accepted.values()) == {1}, "a recipient was sent twice"
    assert sim.stats.submits == len(numbers)
    assert {(stage, result) for _, stage, result in rows} == {("Delivered", "delivered")}
    assert c.sent == c.delivered == sim.stats.receipts_sent == len(numbers)
    assert c.failed == c.ambiguous == c.pending == c.inflight == 0
    assert sim.stats.deliver_abandoned == 0


async def test_store_write_errors_pause_sending_and_lose_nothing(tmp_path: Path) -> None:
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=11)
    engine = Engine(_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.simulator is not None and engine.writer is not None
        assert engine.store is not None and engine.service is not None
        sim, health = engine.simulator, engine.writer.health
        store = engine.store.sync
        assert isinstance(store, SqliteStore)
        cid = await _start_campaign(engine, tmp_path / "r.txt")
        await _wait_for(lambda: sim.stats.submits >= COUNT // 4, 30)

        store.fault_hook = _disk_full  # from now on every commit fails and rolls back
        await _wait_for(lambda: health.down, 10)
        # The pool finishes what was claimed before the fault, then nothing more goes out.
        await trio.sleep(1.0)
        submits_at_fault = sim.stats.submits
        await trio.sleep(1.5)
        assert sim.stats.submits == submits_at_fault, "dispatching went on without a store"
        assert submits_at_fault < COUNT
        report = await engine.diagnostics()
        assert report["status"] == "down" and report["store"]["reachable"] is False
        assert "database or disk is full" in report["store"]["error"]
        assert report["store"]["failedWrites"] >= 2  # retried with backoff, not given up
        campaign = await engine.service.get(cid)
        paused = report["campaigns"]["pausedByFault"]
        assert paused["campaigns"] == [str(campaign.external_id)]
        assert "store unavailable" in paused["reason"]
        # The SMSC got no answer for the receipts it sent meanwhile, so it sends them again.
        assert sim.stats.redeliveries > 0
        # The writer, routes and control loop are all still running: nothing crashed.
        assert campaign.status is CampaignStatus.SENDING

        store.fault_hook = None
        await _finish(engine, cid)
        assert not health.down and health.outages == 1
        report = await engine.diagnostics()
        assert report["store"]["reachable"] is True and "pausedByFault" not in report["campaigns"]
        errors = await engine.service.job_errors(cid)
        outage_errors = [e for e in errors.items if e.reason == "store_unavailable"]
        assert len(outage_errors) == 1
        assert outage_errors[0].message.startswith("store unavailable from ")
        assert "database or disk is full" in outage_errors[0].message
        print(f"submits before the fault {submits_at_fault}/{COUNT}, failed writes "
              f"{health.failures}, outage {outage_errors[0].message!r}, redeliveries "
              f"{sim.stats.redeliveries}")  # figures for RELIABILITY.md (-s)
        engine.stop()
        await engine.wait_stopped()
    _reconcile(engine, cid, numbers)


async def test_a_really_full_database_pauses_and_resumes(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL: the file may not grow by a page (PRAGMA max_page_count)."""
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=12)
    engine = Engine(_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.simulator is not None and engine.writer is not None
        assert engine.store is not None and engine.service is not None
        sim, health, astore = engine.simulator, engine.writer.health, engine.store
        store = astore.sync
        assert isinstance(store, SqliteStore)
        db = store._db  # the engine's own connection, used in its own thread slot

        def cap(pages: int | None) -> int:
            if pages is None:
                pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            return int(db.execute(f"PRAGMA max_page_count = {int(pages)}").fetchone()[0])

        cid = await _start_campaign(engine, tmp_path / "r.txt")
        await _wait_for(lambda: sim.stats.submits >= COUNT // 4, 30)
        full_at = await astore.run_sync(cap, None)
        await _wait_for(lambda: health.down, 10)
        assert "full" in health.statistics().last_error
        await trio.sleep(1.0)
        assert health.down and not (await engine.service.get(cid)).status.is_terminal
        assert await astore.run_sync(cap, 1 << 30) > full_at  # space freed
        await _finish(engine, cid)
        assert not health.down and health.outages >= 1
        errors = await engine.service.job_errors(cid)
        assert any(e.reason == "store_unavailable" for e in errors.items)
        print(f"max_page_count {full_at}: outages {health.outages}, failed writes "
              f"{health.failures}, redeliveries {sim.stats.redeliveries}")
        engine.stop()
        await engine.wait_stopped()
    _reconcile(engine, cid, numbers)


async def test_store_fault_while_building_retries_the_build(tmp_path: Path) -> None:
    """The build and the control loop's transitions fail too: the campaign stays where it was
    and goes on once the store takes writes again."""
    numbers = _numbers(tmp_path / "r.txt", 500, seed=13)
    engine = Engine(_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.writer is not None and engine.store is not None
        health, store = engine.writer.health, engine.store.sync
        assert isinstance(store, SqliteStore)
        # No checkpoint between the approval and the hook: the next control tick, which
        # begins the build, already meets the fault.
        cid = await _start_campaign(engine, tmp_path / "r.txt")
        store.fault_hook = _disk_full
        await _wait_for(lambda: health.down, 10)
        await trio.sleep(0.5)
        assert engine.service is not None
        assert (await engine.service.get(cid)).status is CampaignStatus.PENDING
        assert engine.statistics().control_errors >= 2
        store.fault_hook = None
        await _finish(engine, cid)
        assert not health.down
        engine.stop()
        await engine.wait_stopped()
    _reconcile(engine, cid, numbers)


async def test_a_failed_batch_leaves_nothing_and_its_retry_applies_once(tmp_path: Path) -> None:
    """What the writer's retry stands on, at the store: a write failing at COMMIT leaves no
    trace, the retry applies it once, and replaying an applied batch changes nothing."""
    sync = SqliteStore(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    store = AsyncStore(sync)
    service = CampaignService(store, ServiceConfig(), utc_now)
    c = await service.create(Campaign(sender="Shop", text="hi", author="t", esme="sim",
                                      source_path=str(tmp_path / "r.txt")))
    assert c.id is not None
    await service.approve(c.id, "mod")  # to Sending, as the engine would move it
    await service.begin_build(c.id)
    now = utc_now()
    rows = [RecipientRow(f"7900{i:07d}", i.to_bytes(16, "big"), f"*{i:04d}", None, i + 1)
            for i in range(50)]
    await store.add_recipients(c.id, rows, now)
    await service.mark_built(c.id)
    claimed = await store.claim_for_send(c.id, 50, now)
    outcomes = [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "sim", (f"m{r.id}",), "ESME_ROK")
                for r in claimed]
    receipts = [Receipt("sim", f"m{r.id}", "DELIVRD", "000", SmsResult.DELIVERED, now)
                for r in claimed]
    before = await store.counters(c.id)

    sync.fault_hook = _disk_full
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        await store.record_submit_results(outcomes, now)
    assert await store.counters(c.id) == before  # rolled back whole
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        await store.record_receipts(receipts, now)
    assert await store.counters(c.id) == before
    sync.fault_hook = None

    tally = await store.record_submit_results(outcomes, now)
    assert tally.accepted == 50 and tally.stale == 0
    assert await store.record_receipts(receipts, now) == 50
    once = await store.counters(c.id)
    assert once.sent == once.delivered == 50 and once.inflight == 0
    # A replay of the same batch (what a retry after an unreported success would be).
    assert (await store.record_submit_results(outcomes, now)).stale == 50
    await store.record_receipts(receipts, now)
    assert await store.counters(c.id) == once
    await store.aclose()


async def test_stop_during_an_outage_ends_and_a_restart_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graceful stop while the store cannot write waits SHUTDOWN_STORE_GRACE_S, then gives
    up the drain: what was not committed is what a kill -9 leaves, and the next start
    recovers it (at-most-once policy: counted ambiguous, never sent twice)."""
    import dispatch.engine.core as core

    monkeypatch.setattr(core, "SHUTDOWN_STORE_GRACE_S", 0.5)
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=14)
    submit_logs = []
    engine = Engine(_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.simulator is not None and engine.writer is not None
        assert engine.store is not None
        sim, store = engine.simulator, engine.store.sync
        assert isinstance(store, SqliteStore)
        cid = await _start_campaign(engine, tmp_path / "r.txt")
        await _wait_for(lambda: sim.stats.submits >= COUNT // 4, 30)
        store.fault_hook = _FailOnceInFlight(store, cid)
        await _wait_for(lambda: engine.writer is not None and engine.writer.health.down, 10)
        engine.stop()
        with trio.fail_after(20):
            await engine.wait_stopped()
    submit_logs.append(sim.stats.submit_log)

    engine = Engine(_config(tmp_path / "var"))  # the fault is gone with the old process
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.simulator is not None and engine.recovery is not None
        assert engine.recovery.marked_unknown > 0
        # Receipts the first simulator owed died with it (a real SMSC would redeliver them):
        # only the submits are reconciled here.
        await _finish(engine, cid, receipts=False)
        engine.stop()
        await engine.wait_stopped()
    submit_logs.append(engine.simulator.stats.submit_log)

    check = SqliteStore(engine.config.store)
    try:
        c = check.counters(cid)
        rows = check._db.execute(
            "SELECT number, stage, ambiguous FROM recipients WHERE campaign_id = ?",
            (cid,)).fetchall()
    finally:
        check.close()
    accepted = Counter(r.destination_hash for log in submit_logs for r in log
                       if r.command_status == 0)
    assert {r[0] for r in rows} == set(numbers) and c.total == COUNT
    assert max(accepted.values()) == 1, "a recipient was sent twice"
    ambiguous = sum(1 for r in rows if r[2])
    assert ambiguous == c.ambiguous == engine.recovery.marked_unknown
    assert ambiguous <= MAX_CLAIMED + 20_000  # claimed + what the writer could hold
    for number, stage, is_ambiguous in rows:
        if not is_ambiguous:
            assert stage == "Delivered" and accepted[destination_hash(number)] == 1
    assert c.sent == COUNT - ambiguous and c.pending == c.inflight == 0
    print(f"stopped mid-outage: {ambiguous} ambiguous, {sum(accepted.values())} accepted once")


async def test_a_claim_committed_with_its_answer_lost_is_sent_all_the_same(
        tmp_path: Path) -> None:
    """A claim commits but the call fails (on PostgreSQL: the connection dropped between the
    COMMIT and its answer). The rows are leased, stage Sending, and the route never got them:
    before the campaign claims again they go back to New, so every recipient is still sent,
    exactly once, and the campaign reaches Done."""
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=13)
    engine = Engine(_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.simulator is not None and engine.store is not None
        sim = engine.simulator
        store = engine.store.sync
        assert isinstance(store, SqliteStore)
        real_claim = store.claim_for_send
        lost: list[int] = []

        def claim_then_lose_the_answer(campaign_id: int, limit: int,
                                       now: Any) -> list[Any]:
            claimed = real_claim(campaign_id, limit, now)  # committed
            if claimed and not lost and sim.stats.submits > COUNT // 4:
                lost.extend(r.id for r in claimed)
                raise sqlite3.OperationalError("connection lost after COMMIT (injected)")
            return claimed

        store.claim_for_send = claim_then_lose_the_answer  # type: ignore[method-assign]
        cid = await _start_campaign(engine, tmp_path / "r.txt")
        await _finish(engine, cid, limit_s=40)
        assert lost, "the fault never fired"
        assert engine.routes["sim"].statistics().orphans_released == len(lost)
        engine.stop()
        await engine.wait_stopped()
    _reconcile(engine, cid, numbers)
