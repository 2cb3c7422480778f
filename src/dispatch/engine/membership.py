"""This engine node's membership in a PostgreSQL cluster (issue 8; the model is in
``dispatch.store.cluster``).

One task, every ``heartbeat_interval_s``: renew the node's lease (its heartbeat row), re-split
each ESME's TPS contract (and each campaign's TPS cap and Spread rate) by the number of live
nodes, take over the in-flight rows of nodes that went silent (following the recovery policy:
by default an ambiguous submit is counted, never resent), and retry parked receipts (a receipt whose message id another node stored in a
transaction that raced ours). A node that finds it was declared dead (its heartbeat stalled
past ``node_timeout_s``) stops the engine: the rows it holds in memory were given away, and a
fresh start rejoins cleanly. At graceful shutdown ``leave`` marks the node stopped so the others
take its share of the TPS at once.

The embedded SQLite store has no cluster: the engine does not start this task for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import trio

from dispatch.engine.route import Route
from dispatch.logs import log_event
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.cluster import Cluster
from dispatch.store.faults import STORE_FAULTS, describe

log = logging.getLogger(__name__)


class ClusterMembership:
    def __init__(self, store: AsyncStore, cluster: Cluster, config: StoreConfig,
                 routes: Mapping[str, Route], clock: Callable[[], datetime],
                 on_fenced: Callable[[], None]) -> None:
        self._store = store
        self._cluster = cluster
        self._config = config
        self._routes = routes  # each sends its share of its contract and campaigns' rates
        self._clock = clock
        self._on_fenced = on_fenced
        self.live_nodes = 0
        self.taken_over = 0  # rows of dead nodes resolved by this node (plain-int statistic)
        self._beats = trio.CancelScope()  # the heartbeat loop; ``leave`` ends it first
        self._beats_done = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Register and take the TPS share before the first claim, then keep the lease."""
        try:
            await self._store.run_sync(self._cluster.register_node)
            await self._resplit()
            task_status.started()
            with self._beats:
                await self._keep_lease()
        finally:
            self._beats_done.set()

    async def _keep_lease(self) -> None:
        failing_since: float | None = None
        back_at = float("-inf")  # when our heartbeat last came back after failing
        while True:
            await trio.sleep(self._config.heartbeat_interval_s)
            # Back from an outage, the other nodes' heartbeats are as stale as ours was: give
            # them node_timeout_s to beat again before taking anything (rows, TPS) from them.
            take_over = (failing_since is None
                         and trio.current_time() - back_at >= self._config.node_timeout_s)
            try:
                fenced = not await self._beat(take_over)
            except STORE_FAULTS as exc:
                # The store is out (the writer and the routes wait for it too): try again at
                # the next beat. If the outage outlasts node_timeout_s for the other nodes as
                # well, nobody can declare us dead meanwhile; if only we lost the store, the
                # first beat back finds out we were declared dead and stops (below).
                if failing_since is None:
                    failing_since = trio.current_time()
                    log_event(log, logging.WARNING, "cluster heartbeat failed; retrying",
                              node=self._cluster.node_id, error=describe(exc))
                continue
            if failing_since is not None:
                log_event(log, logging.INFO, "cluster heartbeat back", node=self._cluster.node_id,
                          after_s=round(trio.current_time() - failing_since, 1))
                failing_since = None
                back_at = trio.current_time()
            if fenced:
                log_event(log, logging.ERROR, "cluster declared this node dead; stopping",
                          node=self._cluster.node_id)
                self._on_fenced()
                return

    async def _beat(self, take_over: bool) -> bool:
        """One heartbeat's work; False when the cluster declared this node dead."""
        if not await self._store.run_sync(self._cluster.heartbeat):
            return False
        await self._resplit(allow_fewer=take_over)
        if take_over:
            await self._take_over()
        await self._store.retry_unmatched_receipts(self._clock())
        return True

    async def _take_over(self) -> None:
        result = await self._store.run_sync(self._cluster.take_over_dead_nodes,
                                            self._config.recovery_policy, self._clock())
        moved = result.counts.resent + result.counts.marked_unknown
        if result.dead_nodes or moved:
            self.taken_over += moved
            log_event(log, logging.WARNING, "took over dead nodes",
                      dead=list(result.dead_nodes), resent=result.counts.resent,
                      marked_unknown=result.counts.marked_unknown,
                      policy=self._config.recovery_policy.value)

    async def _resplit(self, allow_fewer: bool = True) -> None:
        """Split each TPS contract by the live nodes. ``allow_fewer=False`` (just back from
        an outage, the others' heartbeats still stale): a larger share waits for them, so
        the cluster never sends above the contract."""
        live = len(await self._store.run_sync(self._cluster.live_nodes))
        if live != self.live_nodes and (allow_fewer or live > self.live_nodes):
            log_event(log, logging.INFO, "live nodes changed", node=self._cluster.node_id,
                      live=live)
            self.live_nodes = live
            for route in self._routes.values():
                route.set_live_nodes(live)

    async def claim_build(self, campaign_id: int) -> bool:
        """Whether this node builds the campaign (one builder per campaign in the cluster)."""
        return await self._store.run_sync(self._cluster.claim_build, campaign_id)

    async def leave(self) -> None:
        # The heartbeat loop ends first, its beat in flight included: a beat that ran after
        # (or while) the node was marked stopped would find it not live and take that for
        # being declared dead.
        self._beats.cancel()
        await self._beats_done.wait()
        counts = await self._store.run_sync(self._cluster.leave_cluster,
                                            self._config.recovery_policy, self._clock())
        log_event(log, logging.INFO, "left the cluster", node=self._cluster.node_id,
                  unresolved=counts.resent + counts.marked_unknown)
