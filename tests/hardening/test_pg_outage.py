"""A PostgreSQL crash mid-campaign (issue 8): one engine in-process on a throwaway PostgreSQL
server (``tests/store/pg_cluster.py``), the real built-in simulator over loopback, and the
server killed with ``pg_ctl stop -m immediate`` while the campaign sends, then started again.

The engine must live through it as it lives through a full SQLite disk
(``test_store_faults.py``): every psycopg error of the outage (the pool's dead connections,
``connection refused`` while the server is down, the pool's timeout) is a store fault, so
the writer keeps its batch, the routes stop claiming, the cluster membership keeps its
heartbeat going, nothing crashes; once the server is back the pool reconnects, the campaign
resumes by itself, reaches Done, and every recipient was sent exactly once against the
simulator's submit log, except the ones the store counts as ambiguous.

Found by these tests:

* ``ClusterMembership.run`` (``dispatch/engine/membership.py``) let the psycopg error of a
  failed heartbeat (``PoolTimeout`` once the pool has no connection left, ``OperationalError``
  on a dead one) escape, which took the whole engine down -- with the default pool timeout
  (``busy_timeout_s``, 5 s) as soon as an outage outlasted it (fixed in 236e6b9: a failed
  beat is retried at the next one; ``test_cluster_membership_outlives_a_postgres_outage``).
* The store's pool came back slowly: psycopg_pool's reconnect backoff grew with the outage
  (fixed in ``dispatch/store/postgres.py``;
  ``test_postgres_errors_are_store_faults_and_the_pool_reconnects_promptly``).

The store side otherwise holds: every error of the outage is in ``STORE_FAULTS``.

The server runs with ``synchronous_commit = on`` (``pg_cluster`` switches it off for speed):
an immediate stop is a crash of the server process, and with it off the server acknowledges
commits that a crash then loses, which no client can be held to. ``fsync`` stays off: the
machine does not crash, so what reached the OS survives.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from psycopg_pool import PoolTimeout
from test_store_faults import _config, _finish, _numbers, _start_campaign, _wait_for

from dispatch.campaigns.model import CampaignStatus
from dispatch.engine.core import Engine, utc_now
from dispatch.engine.membership import ClusterMembership
from dispatch.simulator import destination_hash
from dispatch.store import cluster_of
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.faults import STORE_FAULTS
from dispatch.store.postgres import PostgresStore
from dispatch.store.process import ClusterStoreProcess

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.append(_STORE_TESTS)

from pg_cluster import PgCluster  # noqa: E402

COUNT = 5000  # at the route's 1500/s the campaign lasts ~3.5 s without the outage
OUTAGE_HOLD_S = 2.0  # how long the server stays down once the engine has drained
OUTAGE_S = 18.0  # the store-level outage (see its test)
POOL_TIMEOUT_S = 1.0  # busy_timeout_s: the pool's wait for a connection (the minimum)
NODE = "n1"


class EngineCrashed(Exception):
    """A task the test runs died of an exception instead of riding the outage out."""


async def _run_capturing(run: Any, crashed: list[BaseException], scope: trio.CancelScope,
                         *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run ``run(task_status=...)``; if it raises, keep the error and cancel ``scope`` (the
    test's nursery), so the test reports the crash itself rather than a timeout."""
    try:
        await run(task_status=task_status)
    except Exception as exc:
        crashed.append(exc)
        scope.cancel()


def _check_not_crashed(crashed: list[BaseException]) -> None:
    if crashed:
        raise EngineCrashed(repr(crashed[0])) from crashed[0]


def _pg_ctl(pg: PgCluster, *args: str) -> None:
    pg._run("pg_ctl", "-D", str(pg.data_dir), "-l", str(pg.log_path), "-w", "-t", "30",
            *args, timeout=40)


def _store_config(dsn: str) -> StoreConfig:
    return StoreConfig(path="", dsn=dsn, node_id=NODE, heartbeat_interval_s=0.2,
                       node_timeout_s=3.0, busy_timeout_s=POOL_TIMEOUT_S)


def _query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _assert_sent_once(dsn: str, cid: int, numbers: list[str], sim: Any,
                      count: int) -> tuple[list[tuple[Any, ...]], Counter[str]]:
    """Against the simulator's submit log: every recipient accepted exactly once, except the
    rows the store counts as ambiguous (Failed, sent at most once); counters equal to the
    rows. Returns the ambiguous rows and the accepted counts."""
    rows = _query(dsn, "SELECT number, stage, ambiguous, sms_result FROM recipients "
                  "WHERE campaign_id = %s", (cid,))
    (total, sent, delivered, pending, inflight, ambiguous_count), = _query(
        dsn, "SELECT total, sent, delivered, pending, inflight, ambiguous "
        "FROM campaign_counters WHERE campaign_id = %s", (cid,))
    accepted = Counter(r.destination_hash for r in sim.stats.submit_log if r.command_status == 0)
    assert len(rows) == total == count
    assert {r[0] for r in rows} == set(numbers)
    assert max(accepted.values()) == 1, "a recipient was sent twice"
    ambiguous = [r for r in rows if r[2]]
    for number, stage, is_ambiguous, result in rows:
        got = accepted.get(destination_hash(number), 0)
        if is_ambiguous:
            assert stage == "Failed" and got in (0, 1)
        else:
            assert (stage, result, got) == ("Delivered", "delivered", 1)
    assert ambiguous_count == len(ambiguous)
    assert sent == delivered == count - len(ambiguous)
    assert pending == inflight == 0
    return ambiguous, accepted


@pytest.mark.slow
@pytest.mark.parametrize("in_process", [False, True], ids=["store-thread", "store-process"])
async def test_postgres_crash_mid_campaign_pauses_resumes_and_sends_once(
        tmp_path: Path, pg: PgCluster, in_process: bool) -> None:
    dsn = pg.create_database("outage")
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=21)
    config = _config(tmp_path / "var")
    # in_process False is the default for PostgreSQL (StoreConfig.process unset)
    store = _store_config(dsn) if not in_process else replace(_store_config(dsn), process=True)
    config = replace(config, store=store).resolved()
    engine = Engine(config)
    crashed: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(_run_capturing, engine.run, crashed, nursery.cancel_scope)
        assert engine.simulator is not None and engine.writer is not None
        assert engine.service is not None and engine.membership is not None
        sim, health, pool = engine.simulator, engine.writer.health, engine.routes["sim"].pool
        assert isinstance(engine.store and engine.store.sync, ClusterStoreProcess) == in_process
        cid = await _start_campaign(engine, tmp_path / "r.txt")
        await _wait_for(lambda: sim.stats.submits >= COUNT // 4, 30)

        await trio.to_thread.run_sync(_pg_ctl, pg, "-m", "immediate", "stop")
        stopped_at = trio.current_time()
        await _wait_for(lambda: health.down, 15)
        # What was claimed before the crash still goes out (those rows are committed
        # Sending), then nothing more: wait for the pool to drain, then watch it stay idle.
        await _wait_for(lambda: (s := pool.statistics()).queued == 0 and s.in_flight == 0, 15)
        submits_at_fault = sim.stats.submits
        assert submits_at_fault < COUNT
        with trio.move_on_after(OUTAGE_HOLD_S):
            while True:
                assert sim.stats.submits == submits_at_fault, "dispatching went on without a store"
                await trio.sleep(0.05)
        assert health.down
        assert engine.writer.backlog > 0  # the results it could not write, kept to retry
        with trio.fail_after(20):
            report = await engine.diagnostics()
        assert report["status"] == "down" and report["store"]["reachable"] is False
        assert report["store"]["failedWrites"] >= 2  # retried with backoff, not given up
        assert report["campaigns"]["pausedByFault"]["count"] == 1
        # The SMSC got no answer for the receipts it sent meanwhile, so it sends them again.
        assert sim.stats.redeliveries > 0
        fault_stats = health.statistics()

        await trio.to_thread.run_sync(_pg_ctl, pg, "start")
        restarted_at = trio.current_time()
        down_s = restarted_at - stopped_at
        await _wait_for(lambda: not health.down, 30)
        recovered_s = trio.current_time() - restarted_at
        # The engine carried on: still a live cluster node, and the campaign resumes.
        assert not engine._stop.is_set(), "the engine stopped itself during the outage"
        assert engine.membership.live_nodes == 1
        await _wait_for(lambda: sim.stats.submits > submits_at_fault, 15)
        await _finish(engine, cid, limit_s=40)
        assert (await engine.service.get(cid)).status is CampaignStatus.DONE
        assert health.outages >= 1
        errors = await engine.service.job_errors(cid)
        outage_errors = [e for e in errors.items if e.reason == "store_unavailable"]
        assert outage_errors and outage_errors[0].message.startswith("store unavailable from ")
        print(f"\nsubmits before the fault {submits_at_fault}/{COUNT}, server down "
              f"{down_s:.1f} s, writes again {recovered_s:.2f} s after the restart, outages "
              f"{health.outages}, failed writes {health.failures}, last error "
              f"{fault_stats.last_error!r}, redeliveries {sim.stats.redeliveries}")
        engine.stop()
        with trio.fail_after(20):
            await engine.wait_stopped()
    _check_not_crashed(crashed)

    ambiguous, accepted = _assert_sent_once(dsn, cid, numbers, sim, COUNT)
    assert sim.stats.deliver_abandoned == 0
    nodes = dict(_query(dsn, "SELECT node_id, state FROM cluster_nodes"))
    assert nodes == {NODE: "stopped"}
    print(f"ambiguous {len(ambiguous)}, accepted once {sum(accepted.values())}")


def _until_back(call: Any, limit_s: float) -> Any:
    """``call()`` again and again while it fails as a store fault, for at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return call()
        except STORE_FAULTS:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_postgres_errors_are_store_faults_and_the_pool_reconnects_promptly(
        pg: PgCluster) -> None:
    """What the engine's fault handling stands on, at the store: while the server is down every
    call fails with an error in ``STORE_FAULTS`` (the pooled connection found dead, then the
    pool's timeout), and once it is back the same store object works again by itself, soon.

    Regression: with psycopg_pool's default ``reconnect_timeout`` (300 s) the pool's attempts
    to replace a lost connection back off 1, 2, 4, 8, 16 ... s (+-10%) and nothing else
    connects meanwhile: the attempts fall near 1, 3, 7, 15, 31 s into the outage, so with the
    server back after ~19 s the store stayed unusable for 8 s or more, the longer the longer
    the outage. Now a lost connection's attempts give up after 2 s and the next checkout
    connects at once."""
    store = PostgresStore(_store_config(pg.create_database("faults")))
    try:
        store.register_node()
        assert store.heartbeat()
        _pg_ctl(pg, "-m", "immediate", "stop")
        down_at = time.monotonic()
        errors: list[BaseException] = []
        for _ in range(100):  # bounded; each failing call takes up to the pool's timeout
            if time.monotonic() - down_at >= OUTAGE_S:
                break
            with pytest.raises(STORE_FAULTS) as info:
                store.heartbeat()
            errors.append(info.value)
            time.sleep(0.2)
        with pytest.raises(STORE_FAULTS):
            store.active_campaigns()
        assert all(isinstance(e, psycopg.OperationalError) for e in errors), errors
        assert isinstance(errors[0], psycopg.OperationalError)  # the dead pooled connection
        assert any(isinstance(e, PoolTimeout) for e in errors), errors
        _pg_ctl(pg, "start")
        started = time.monotonic()
        assert _until_back(store.heartbeat, 20)
        back_s = time.monotonic() - started
        assert store.active_campaigns() == []
        print(f"\n{len(errors)} failed calls ({sorted({type(e).__name__ for e in errors})}), "
              f"back {back_s:.2f} s after the restart")
        assert back_s < 4.0, f"the pool took {back_s:.1f} s to reconnect"
    finally:
        store.close()


@pytest.mark.slow
async def test_cluster_membership_outlives_a_postgres_outage(pg: PgCluster) -> None:
    """The focused case of the membership bug: the membership task alone, on a real store, across an
    outage longer than the pool's timeout. It must keep running (not fence itself: nobody
    declared the node dead) and heartbeat again once the server is back."""
    dsn = pg.create_database("membership")
    config = _store_config(dsn)
    store = AsyncStore(PostgresStore(config))
    cluster = cluster_of(store.sync)
    fenced: list[bool] = []
    membership = ClusterMembership(store, cluster, config, {}, utc_now,
                                   lambda: fenced.append(True))
    crashed: list[BaseException] = []

    def last_beat() -> int:
        return int(_query(dsn, "SELECT heartbeat_at_us FROM cluster_nodes WHERE node_id = %s",
                          (NODE,))[0][0])

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_run_capturing, membership.run, crashed, nursery.cancel_scope)
            assert membership.live_nodes == 1
            await trio.to_thread.run_sync(_pg_ctl, pg, "-m", "immediate", "stop")
            # The pool has no connection left: the membership's heartbeats meet the same.
            with trio.fail_after(15):
                while True:
                    try:
                        await store.run_sync(cluster.heartbeat)
                    except PoolTimeout:
                        break
                    except STORE_FAULTS:
                        pass
            await trio.sleep(2 * config.heartbeat_interval_s)
            await trio.to_thread.run_sync(_pg_ctl, pg, "start")
            before = await trio.to_thread.run_sync(last_beat)
            with trio.fail_after(20):
                while await trio.to_thread.run_sync(last_beat) <= before:
                    await trio.sleep(0.05)
            assert not fenced and membership.live_nodes == 1
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()
    _check_not_crashed(crashed)
