"""A cluster node's graceful leave against its own heartbeat (issue 8), on a real PostgreSQL.

Found by CI (``test_pg_outage_cluster.py``, once in a pure-Python run): at shutdown a node
logged "cluster declared this node dead; stopping" right after "left the cluster". ``leave``
marked the node stopped while the membership's heartbeat loop still ran, so a beat in flight
(or the next one) found the node not live and took that for having been declared dead. Now
``leave`` ends the heartbeat loop, waiting for a beat in flight, before it marks the node.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import trio
from pg_cluster import PgCluster

from dispatch.engine.core import utc_now
from dispatch.engine.membership import ClusterMembership
from dispatch.store import cluster_of
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.postgres import PostgresStore

HEARTBEAT_S = 0.05


class _HeldBeat:
    """The real cluster, except that once ``hold`` is set the next heartbeat waits (on its
    store thread) until ``release`` is: a beat in flight when the node leaves."""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)

    def heartbeat(self) -> bool:
        if self.hold.is_set() and not self.holding.is_set():
            self.holding.set()
            if not self.release.wait(10):
                raise TimeoutError("the held heartbeat was never released")
        return bool(self._cluster.heartbeat())


async def test_leave_waits_for_the_heartbeat_in_flight_and_the_node_is_not_fenced(
        pg: PgCluster) -> None:
    dsn = pg.create_database("leave")
    config = StoreConfig(path="", dsn=dsn, node_id="n1", heartbeat_interval_s=HEARTBEAT_S,
                         node_timeout_s=3.0)
    store = AsyncStore(PostgresStore(config))
    cluster = _HeldBeat(cluster_of(store.sync))
    fenced: list[bool] = []
    membership = ClusterMembership(store, cluster, config, {}, utc_now,  # type: ignore[arg-type]
                                   lambda: fenced.append(True))
    left = trio.Event()

    async def leave() -> None:
        await membership.leave()
        left.set()

    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(membership.run)
                cluster.hold.set()
                while not cluster.holding.is_set():
                    await trio.sleep(HEARTBEAT_S / 5)
                nursery.start_soon(leave)
                await trio.sleep(4 * HEARTBEAT_S)  # leave is waiting on the beat in flight
                assert not left.is_set()
                cluster.release.set()
                await left.wait()
                # The old loop beat on after the leave and fenced the node within one beat.
                await trio.sleep(5 * HEARTBEAT_S)
                assert fenced == []
                nursery.cancel_scope.cancel()
    finally:
        await store.aclose()
    with psycopg.connect(dsn, autocommit=True) as conn:
        state = conn.execute("SELECT state FROM cluster_nodes WHERE node_id = 'n1'").fetchone()
    assert state == ("stopped",)
