"""A PostgreSQL crash under a two-node cluster (issue 8): two engine nodes in-process on one
throwaway PostgreSQL server (``tests/store/pg_cluster.py``), one campaign shared by both, one
built-in SMSC simulator over loopback that both nodes bind to with the same account (one TPS
contract for the cluster), and the server killed with ``pg_ctl stop -m immediate`` mid-campaign
for longer than ``node_timeout_s``, then started again.

After such an outage every node's heartbeat in ``cluster_nodes`` is older than
``node_timeout_s``. The first node whose heartbeat comes back must not take that for the others
being dead: it gives them ``node_timeout_s`` to beat again before it takes over their rows
(``take_over_dead_nodes``) or a larger share of the TPS contract (``ClusterMembership.run``,
236e6b9). So that the test does not depend on which node happens to beat first, the second
node (``LATE``) is made to find the server ``LAG_S`` (< ``node_timeout_s``) after the first: the
test holds its store slots (``AsyncStore`` runs a bounded number of store calls at once, its
heartbeat among them) from the outage on until ``LAG_S`` after the first node's heartbeat is back. Checked:

* neither engine crashes nor stops itself (a node declared dead is fenced and stops);
* neither node declares the other dead: ``membership.taken_over == 0`` on both, no
  "took over dead nodes" / "cluster declared this node dead" event, both nodes still ``live``
  in ``cluster_nodes`` once the campaign is Done, and both send after the outage;
* neither node ever counts fewer than two live nodes (so neither ever sends above half the
  contract), and the contract holds at the simulator in every one-second window, before,
  during and after the outage;
* the campaign reaches Done and, against the simulator's submit log, every recipient was
  accepted exactly once, except the ones the store counts as ambiguous (none expected here:
  nobody takes anything over).

Found by this test, fixed in ``dispatch/engine/membership.py``: the grace did not cover
the first beat back. ``run`` computed ``take_over`` from ``back_at`` *before* the beat and set
``back_at`` only *after* the first successful one, so that beat still ran with
``take_over=True``: it re-split with ``allow_fewer=True`` (live 1: the whole contract) and
``take_over_dead_nodes`` declared the still-silent node dead, which was fenced at its next
beat and stopped. Now a beat while the heartbeat was failing never takes anything over.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from test_pg_outage import (
    _assert_sent_once,
    _check_not_crashed,
    _pg_ctl,
    _query,
    _run_capturing,
)
from test_store_faults import _config, _finish, _numbers, _start_campaign, _wait_for

from dispatch.campaigns.model import CampaignStatus
from dispatch.engine.config import EmbeddedSimulator
from dispatch.engine.core import Engine
from dispatch.simulator import SimulatorConfig
from dispatch.simulator.server import SmscSimulator
from dispatch.store.base import StoreConfig
from dispatch.store.postgres import PostgresStore
from dispatch.transport.config import EsmeConfig

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.append(_STORE_TESTS)

from pg_cluster import PgCluster  # noqa: E402

NODES = ("n1", "n2")
CONTRACT_TPS = 1000  # the account's contract across the cluster: 500/s per node
COUNT = 6000  # ~6 s of sending without the outage
HEARTBEAT_S = 0.3
NODE_TIMEOUT_S = 1.5
OUTAGE_S = 3.0  # server down this long: > node_timeout_s + heartbeat_interval_s
POOL_TIMEOUT_S = 1.0  # busy_timeout_s: the pool's wait for a connection (the minimum)
# The limiters count a submit when it is written, the simulator when it is read: scheduling
# jitter on a loaded 2-core machine stretches a simulator second over a bit more sending time
# (as in tests/engine/test_cluster_crash_pg.py).
JITTER_ALLOWANCE = 0.10
MEMBERSHIP_LOG = "dispatch.engine.membership"
LATE = "n2"  # the node whose heartbeat comes back second
LAG_S = 0.4  # how much later (< NODE_TIMEOUT_S: the first must wait for it)


class NodeStopped(Exception):
    """An engine stopped itself (fenced: the other node declared it dead)."""


def _check_not_stopped(stopped: list[str]) -> None:
    if stopped:
        raise NodeStopped(f"{stopped} stopped itself: declared dead by the other node")


def _node_config(tmp_path: Path, node: str, dsn: str, sim_port: int) -> Any:
    base = _config(tmp_path / node)  # same hash key for both nodes
    esme = EsmeConfig(name="sim", host="127.0.0.1", port=sim_port, system_id="dispatch",
                      password="secret", binds=2, window=64, tps=CONTRACT_TPS)
    store = StoreConfig(path="", dsn=dsn, node_id=node, heartbeat_interval_s=HEARTBEAT_S,
                        node_timeout_s=NODE_TIMEOUT_S, busy_timeout_s=POOL_TIMEOUT_S)
    return replace(base, store=store, esmes=(esme,),
                   simulator=EmbeddedSimulator(enabled=False)).resolved()


def _events(caplog: pytest.LogCaptureFixture, msg: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == MEMBERSHIP_LOG and r.getMessage() == msg]


def _field(record: logging.LogRecord, name: str) -> Any:
    return getattr(record, "fields", {}).get(name)


async def _hold_store(engine: Engine, held: trio.Event, release: trio.Event) -> None:
    """Take every one of ``engine``'s store slots (its ``AsyncStore`` runs a bounded number of
    store calls at once, the heartbeat's among them: one for a store in a thread, a few for
    the store process) and keep them until ``release``: its calls, heartbeats included, wait."""
    assert engine.store is not None
    limiter = engine.store._limiter
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        await limiter.acquire_on_behalf_of(borrower)
    try:
        held.set()
        await release.wait()
    finally:
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)


@pytest.mark.slow
async def test_two_nodes_ride_out_a_postgres_crash_longer_than_the_node_timeout(
        tmp_path: Path, pg: PgCluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=MEMBERSHIP_LOG)
    dsn = pg.create_database("outage_cluster")
    PostgresStore(StoreConfig(path="", dsn=dsn, node_id="test-migrate")).close()  # schema once
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=33)
    sim = SmscSimulator(SimulatorConfig(
        port=0, response_latency_s=0.001, receipt_delay_s=0.05,
        # an unanswered receipt comes back after 1 s, like a real SMSC's
        deliver_resp_timeout_s=1.0, redelivery_delay_s=0.2, deliver_max_attempts=0))
    crashed: list[BaseException] = []
    engines: dict[str, Engine] = {}
    min_live: dict[str, int] = {}
    stopped: list[str] = []

    async def watch(scope: trio.CancelScope) -> None:
        """From the campaign's start on: the least live nodes each node counted (its TPS
        share is contract / live), and whether one stopped itself (fenced)."""
        while True:
            for name, engine in engines.items():
                assert engine.membership is not None
                min_live[name] = min(min_live.get(name, 99), engine.membership.live_nodes)
                if engine._stop.is_set() and name not in stopped:
                    stopped.append(name)
                    scope.cancel()
            await trio.sleep(0.01)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            for node in NODES:
                engine = Engine(_node_config(tmp_path, node, dsn, sim.port))
                await nursery.start(_run_capturing, engine.run, crashed, nursery.cancel_scope)
                engines[node] = engine
            members = {n: e.membership for n, e in engines.items()}
            assert all(m is not None for m in members.values())
            # Both nodes count two live nodes (each sends half the contract) before the
            # campaign exists.
            await _wait_for(lambda: all(m.live_nodes == 2 for m in members.values()), 15)
            pools = {n: e.routes["sim"].pool for n, e in engines.items()}
            healths = {n: e.writer.health for n, e in engines.items()}  # type: ignore[union-attr]
            watch_scope = trio.CancelScope()

            async def run_watch() -> None:
                with watch_scope:
                    await watch(nursery.cancel_scope)

            nursery.start_soon(run_watch)
            cid = await _start_campaign(engines["n1"], tmp_path / "r.txt")
            await _wait_for(lambda: sim.stats.submits >= COUNT // 4
                            and all(p.stats_submits > 0 for p in pools.values()), 30)

            await trio.to_thread.run_sync(_pg_ctl, pg, "-m", "immediate", "stop")
            stopped_at = trio.current_time()
            # n2 comes back LAG_S after n1: its store thread is kept busy from the outage on
            # until LAG_S after n1's heartbeat is back (a node that is slower to find the
            # server again, deterministically).
            await _wait_for(lambda: all(h.down for h in healths.values()), 15)
            await _wait_for(lambda: {_field(r, "node") for r in _events(
                caplog, "cluster heartbeat failed; retrying")} == set(NODES), 15)
            held, release = trio.Event(), trio.Event()
            nursery.start_soon(_hold_store, engines[LATE], held, release)
            await _wait_for(held.is_set, 15)
            await trio.sleep_until(stopped_at + OUTAGE_S)
            assert not stopped and not crashed
            await trio.to_thread.run_sync(_pg_ctl, pg, "start")
            restarted_at = trio.current_time()
            down_s = restarted_at - stopped_at
            assert down_s > NODE_TIMEOUT_S + HEARTBEAT_S
            submits_at_restart = {n: p.stats_submits for n, p in pools.items()}
            assert sim.stats.submits < COUNT, "the campaign ended before the outage did"
            await _wait_for(lambda: _events(caplog, "cluster heartbeat back"), 15)
            assert _field(_events(caplog, "cluster heartbeat back")[0], "node") == "n1"
            await trio.sleep(LAG_S)
            release.set()

            await _wait_for(lambda: not any(h.down for h in healths.values()), 30)
            # Both nodes send again after the outage, each still at its half share.
            await _wait_for(lambda: all(p.stats_submits > submits_at_restart[n]
                                        for n, p in pools.items()), 20)
            await _finish(engines["n1"], cid, limit_s=60)
            # Past the grace: every heartbeat since the restart went through the takeover pass.
            await trio.sleep_until(restarted_at + NODE_TIMEOUT_S + 3 * HEARTBEAT_S)
            assert engines["n1"].service is not None
            assert (await engines["n1"].service.get(cid)).status is CampaignStatus.DONE
            nodes_after = dict(await trio.to_thread.run_sync(
                _query, dsn, "SELECT node_id, state FROM cluster_nodes"))
            watch_scope.cancel()
            _check_not_stopped(stopped)
            takeovers = {n: m.taken_over for n, m in members.items()}
            live_now = {n: m.live_nodes for n, m in members.items()}
            sent_after = {n: p.stats_submits - submits_at_restart[n] for n, p in pools.items()}
            for engine in engines.values():
                engine.stop()
            with trio.fail_after(20):
                for engine in engines.values():
                    await engine.wait_stopped()
            nursery.cancel_scope.cancel()
    _check_not_stopped(stopped)  # first: a fenced node's stop is the cause of what follows
    _check_not_crashed(crashed)

    back = {_field(r, "node"): r.created for r in _events(caplog, "cluster heartbeat back")}
    print(f"\nserver down {down_s:.1f} s, heartbeat back per node "
          f"{ {n: round(t - min(back.values()), 2) for n, t in back.items()} } s after the "
          f"first, sent after the restart {sent_after}, least live nodes seen {min_live}")
    assert _events(caplog, "took over dead nodes") == []
    assert _events(caplog, "cluster declared this node dead; stopping") == []
    assert set(back) == set(NODES)  # both heartbeats failed during the outage and came back
    assert LAG_S <= back[LATE] - back["n1"] < NODE_TIMEOUT_S
    assert takeovers == {n: 0 for n in NODES}
    assert nodes_after == {n: "live" for n in NODES}
    assert live_now == {n: 2 for n in NODES}
    assert min_live == {n: 2 for n in NODES}, "a node took more than its share of the TPS"

    ambiguous, _ = _assert_sent_once(dsn, cid, numbers, sim, COUNT)
    assert dict(_query(dsn, "SELECT node_id, state FROM cluster_nodes")) == {
        n: "stopped" for n in NODES}

    # The contract held across the cluster in every one-second window at the simulator.
    per_second = Counter(int(r.time) for r in sim.stats.submit_log)
    limit = CONTRACT_TPS * (1 + JITTER_ALLOWANCE)
    print(f"ambiguous {len(ambiguous)}, max submits/s at the SMSC "
          f"{sim.stats.max_tps_by_account['dispatch']} (contract {CONTRACT_TPS}), "
          f"busiest seconds {sorted(per_second.values())[-5:]}")
    assert sim.stats.max_tps_by_account["dispatch"] <= limit
    assert max(per_second.values()) <= limit
