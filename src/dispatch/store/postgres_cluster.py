"""Cluster primitives of the PostgreSQL store: node heartbeats, liveness, takeover of a dead
node's in-flight rows, graceful leave (the model is in ``dispatch.store.cluster``).

Liveness is judged on the database server's clock (``clock_timestamp()``), never a node's own:
nodes on several machines then agree on who is silent whatever their clock skew.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from dispatch.store.base import COUNTER_FIELDS, RecoveryCounts, RecoveryPolicy, StoreConfig
from dispatch.store.cluster import NodeInfo, Takeover
from dispatch.store.postgres_batches import Cursor
from dispatch.store.postgres_dispatch import DB_NOW_US
from dispatch.store.rows import from_us, to_us

R = TypeVar("R")


_FIELDS = ", ".join(COUNTER_FIELDS)
_SUMMED = ", ".join(f"SUM({f})::bigint AS {f}" for f in COUNTER_FIELDS)


def fold_counter_rows(cur: Cursor, node_clause: str, params: Sequence[Any]) -> None:
    """Move the counter and daily-activity rows of the nodes matching ``node_clause`` (never
    the base rows, ``''``) into the base rows: the sums the views show do not change, and the
    number of rows per campaign stays the number of live nodes. A node that writes again
    afterwards (one declared dead that was only slow) starts a new row: still exact."""
    clause = f"node_id <> '' AND ({node_clause})"
    cur.execute(
        f"WITH moved AS (DELETE FROM campaign_counter_rows WHERE {clause} RETURNING *), "
        f"sums AS (SELECT campaign_id, {_SUMMED} FROM moved GROUP BY campaign_id) "
        f"INSERT INTO campaign_counter_rows (campaign_id, node_id, {_FIELDS}) "
        f"SELECT campaign_id, '', {_FIELDS} FROM sums ORDER BY campaign_id "
        "ON CONFLICT (campaign_id, node_id) DO UPDATE SET "
        + ", ".join(f"{f} = campaign_counter_rows.{f} + excluded.{f}" for f in COUNTER_FIELDS),
        params)
    cur.execute(
        f"WITH moved AS (DELETE FROM campaign_daily_rows WHERE {clause} RETURNING *) "
        "INSERT INTO campaign_daily_rows (campaign_id, day, node_id, sent, delivered, failed) "
        "SELECT campaign_id, day, '', SUM(sent), SUM(delivered), SUM(failed) FROM moved "
        "GROUP BY campaign_id, day ORDER BY campaign_id, day "
        "ON CONFLICT (campaign_id, day, node_id) DO UPDATE SET "
        "sent = campaign_daily_rows.sent + excluded.sent, "
        "delivered = campaign_daily_rows.delivered + excluded.delivered, "
        "failed = campaign_daily_rows.failed + excluded.failed", params)


def default_node_id() -> str:
    """host-pid-random: unique per process start, readable in ``pg_stat_activity``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class PostgresCluster:
    """Mixin of ``PostgresStore``: needs ``_transact``, ``node_id``, ``config`` and the
    dispatch path's ``_resolve_sending``."""

    node_id: str
    config: StoreConfig

    def _transact(self, body: Callable[[Cursor], R]) -> R:
        raise NotImplementedError

    def _resolve_sending(self, cur: Cursor, policy: RecoveryPolicy, now_us: int,
                         owner_clause: str, owner_params: Any) -> RecoveryCounts:
        raise NotImplementedError

    def _timeout_us(self) -> int:
        return int(self.config.node_timeout_s * 1_000_000)

    def register_node(self) -> None:
        def body(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO cluster_nodes (node_id, host, pid, started_at_us, heartbeat_at_us, "
                f"state) VALUES (%s, %s, %s, {DB_NOW_US}, {DB_NOW_US}, 'live') "
                "ON CONFLICT (node_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                "started_at_us = excluded.started_at_us, "
                "heartbeat_at_us = excluded.heartbeat_at_us, state = 'live'",
                (self.node_id, socket.gethostname(), os.getpid()))

        self._transact(body)

    def heartbeat(self) -> bool:
        def body(cur: Cursor) -> bool:
            cur.execute(f"UPDATE cluster_nodes SET heartbeat_at_us = {DB_NOW_US} "
                        "WHERE node_id = %s AND state = 'live'", (self.node_id,))
            return cur.rowcount == 1

        return self._transact(body)

    def live_nodes(self) -> list[NodeInfo]:
        def body(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute("SELECT node_id, host, pid, started_at_us, heartbeat_at_us, state "
                        "FROM cluster_nodes WHERE state = 'live' "
                        f"AND heartbeat_at_us >= {DB_NOW_US} - %s ORDER BY node_id",
                        (self._timeout_us(),))
            return cur.fetchall()

        return [NodeInfo(n, h, p, from_us(s), from_us(hb), st)
                for n, h, p, s, hb, st in self._transact(body)]

    def take_over_dead_nodes(self, policy: RecoveryPolicy, now: datetime) -> Takeover:
        """Mark live-but-silent nodes dead, then resolve the leases of every owner that
        is not live (those nodes, earlier dead or stopped ones, owners that never
        registered). Two nodes doing this at once serialise on the node rows and the
        lease rows: the second finds nothing left to do, so nothing is counted twice. The
        counter rows of nodes that are not live are folded into the base rows."""
        now_us = to_us(now)

        def body(cur: Cursor) -> Takeover:
            cur.execute("UPDATE cluster_nodes SET state = 'dead' WHERE state = 'live' "
                        f"AND heartbeat_at_us < {DB_NOW_US} - %s AND node_id <> %s "
                        "RETURNING node_id", (self._timeout_us(), self.node_id))
            dead = tuple(sorted(r[0] for r in cur.fetchall()))
            counts = self._resolve_sending(
                cur, policy, now_us,
                "owner <> '' AND owner <> %s AND owner NOT IN ("
                "SELECT node_id FROM cluster_nodes WHERE state = 'live')", (self.node_id,))
            fold_counter_rows(cur, "node_id <> %s AND node_id NOT IN (SELECT node_id "
                              "FROM cluster_nodes WHERE state = 'live')", (self.node_id,))
            return Takeover(dead, counts)

        return self._transact(body)

    def leave_cluster(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        """After the engine drained (unsent claims already went back to New as retries):
        whatever this node still has in Sending follows ``policy``; the node is stopped, so
        the others re-split the TPS contract at once instead of after the timeout."""
        now_us = to_us(now)

        def body(cur: Cursor) -> RecoveryCounts:
            counts = self._resolve_sending(cur, policy, now_us, "owner = %s",
                                           (self.node_id,))
            fold_counter_rows(cur, "node_id = %s", (self.node_id,))
            cur.execute("UPDATE cluster_nodes SET state = 'stopped', "
                        f"heartbeat_at_us = {DB_NOW_US} WHERE node_id = %s", (self.node_id,))
            return counts

        return self._transact(body)

    def claim_build(self, campaign_id: int) -> bool:
        """Take (or keep) the build lease of a campaign unless another live node holds it;
        a dead builder's lease passes to the next node that asks (its build restarts)."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                "INSERT INTO campaign_builders (campaign_id, node_id, claimed_at_us) "
                f"VALUES (%s, %s, {DB_NOW_US}) ON CONFLICT (campaign_id) DO UPDATE SET "
                "node_id = excluded.node_id, claimed_at_us = excluded.claimed_at_us "
                "WHERE campaign_builders.node_id = excluded.node_id "
                "OR campaign_builders.node_id NOT IN (SELECT node_id FROM cluster_nodes "
                f"WHERE state = 'live' AND heartbeat_at_us >= {DB_NOW_US} - %s) "
                "RETURNING node_id", (campaign_id, self.node_id, self._timeout_us()))
            return cur.fetchone() is not None

        return self._transact(body)
