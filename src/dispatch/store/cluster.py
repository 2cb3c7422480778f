"""Cluster primitives at the store level (issue 8): what N engine nodes sharing one PostgreSQL
need from it, and the single-node stand-in for the embedded SQLite store.

PostgreSQL is the coordinator; there is no protocol between nodes. Each node has a row in
``cluster_nodes`` that it heartbeats. Its lease on the recipients it claimed is that row: a
claim stamps the rows with the node id, and they stay the node's while its heartbeat is fresher
than ``node_timeout_s`` (renewing per-row expiries instead would rewrite thousands of rows per
interval to say the same thing). A live node periodically takes over dead nodes: their Sending
rows follow the ``RecoveryPolicy`` (``MARK_UNKNOWN`` by default: a submit whose answer was lost
with the node is never sent again, it is counted ambiguous). A node that was declared dead while
it was only slow learns it from its next ``heartbeat`` (False): it must drop what it claimed and
register again; its late submit results are stale for the store (fenced by lease owner).

The TPS contract of an ESME is split by ``len(live_nodes())``: every node sends at most
``tps / live`` so the SMSC never sees more than the contract across the cluster (a node joining
or dying changes the share at the next heartbeat).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from dispatch.store.base import RecoveryCounts, RecoveryPolicy


class NodeInfo(NamedTuple):
    node_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    state: str  # live | stopped | dead


class Takeover(NamedTuple):
    """What one takeover pass did: the nodes it declared dead, and what became of the rows
    they (or any other non-live owner) had in flight."""

    dead_nodes: tuple[str, ...]
    counts: RecoveryCounts


class Cluster(Protocol):
    """The cluster side of a store (``PostgresStore`` implements it; ``SingleNode`` for SQLite).
    Synchronous like ``Store``: run it in the store's thread slot."""

    node_id: str

    def register_node(self) -> None:
        """Join (or re-join) the cluster as live, heartbeat now."""
        ...

    def heartbeat(self) -> bool:
        """Renew this node's lease; False when the cluster declared it dead meanwhile."""
        ...

    def live_nodes(self) -> list[NodeInfo]:
        """Nodes whose heartbeat is fresher than ``node_timeout_s``, by node id."""
        ...

    def take_over_dead_nodes(self, policy: RecoveryPolicy, now: datetime) -> Takeover:
        """Declare silent nodes dead and resolve every Sending row no live node owns."""
        ...

    def leave_cluster(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        """Graceful shutdown: resolve this node's remaining Sending rows, mark it stopped."""
        ...

    def claim_build(self, campaign_id: int) -> bool:
        """Whether this node may build the campaign's recipient list: True when no live node
        holds the build (or this one does); the lease then stays this node's while it lives.
        Every node sees a Building campaign; only one may ingest its file."""
        ...


class SingleNode:
    """The embedded store's cluster: one node, always live, nothing to take over (SQLite's
    ``recover_inflight`` at startup already resolves everything left in flight)."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id

    def register_node(self) -> None:
        return None

    def heartbeat(self) -> bool:
        return True

    def live_nodes(self) -> list[NodeInfo]:
        return []  # nobody else; callers treat an empty list as "just me"

    def take_over_dead_nodes(self, policy: RecoveryPolicy, now: datetime) -> Takeover:
        return Takeover((), RecoveryCounts(0, 0, {}))

    def leave_cluster(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        return RecoveryCounts(0, 0, {})

    def claim_build(self, campaign_id: int) -> bool:
        return True


def share_of(rate: float, live_nodes: int) -> float:
    """This node's part of a cluster-wide rate (TPS contract): ``rate / live``, 0 = unlimited
    stays unlimited; with no node listed (not registered yet, SQLite) the whole rate."""
    if rate <= 0:
        return rate
    return rate / max(1, live_nodes)
