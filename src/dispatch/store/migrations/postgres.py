"""The PostgreSQL migration steps and their runner (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from dispatch.store import schema

# pg_advisory_xact_lock key: "dispatch" in ASCII, so other applications' keys are unlikely to
# collide with ours.
_LOCK_KEY = 0x6469737061746368


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[], list[str]]


def _shared(index: int) -> Callable[[], list[str]]:
    """Step ``index`` (1-based) of the schema both backends share, in PostgreSQL's words."""
    return lambda: schema.statements(schema.MIGRATIONS[index - 1], schema.POSTGRES_WORDS)


_CLUSTER = """
CREATE TABLE cluster_nodes (
    node_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at_us BIGINT NOT NULL,
    heartbeat_at_us BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('live', 'stopped', 'dead'))
);
ALTER TABLE recipients ADD COLUMN lease_owner TEXT;
CREATE INDEX recipients_sending ON recipients (lease_owner, campaign_id) WHERE stage = 'Sending';
CREATE INDEX campaigns_external_prefix ON campaigns (external_id text_pattern_ops)
"""


def _split(sql: str) -> Callable[[], list[str]]:
    return lambda: [s.strip() for s in sql.split(";") if s.strip()]


_COUNTER_SUMS = ", ".join(f"SUM({f})::bigint AS {f}" for f in (
    "total", "pending", "inflight", "sent", "failed", "expired", "delivered", "undelivered",
    "unknown", "ambiguous", "job_errors", "held"))

# Version 5: the hot path's updates of ``recipients`` become HOT, and nodes stop sharing hot
# rows. PostgreSQL makes an update HOT (no new index entries, the new version on the same
# page) only when no column of any index key or partial-index predicate changes, so nothing
# that changes per message may be indexed on ``recipients``:
#   * what is claimable lives in ``recipient_queue`` (New rows, and Held ones with ``held``):
#     a claim deletes its rows there (SKIP LOCKED); a retry, a RESEND recovery or a trigger
#     inserts them again;
#   * what is in flight lives in ``recipient_leases`` (id, owner): the submit result deletes
#     the lease (a result whose lease is gone, or is another owner's, is stale: fencing);
#     takeover and recovery scan this small table instead of the recipients;
#   * the stage/result/stat listings walk (campaign_id, id) with a filter;
#   * counters and daily activity get one row per (campaign, node): each node adds to its own
#     rows (no lock shared between nodes), ``node_id = ''`` is the base row the build and
#     folds write; the views keep the old names and shapes (sums), so readers are unchanged.
# ``fillfactor`` leaves room on each page for the new versions of HOT updates.
_HOT_LAYOUT = f"""
CREATE TABLE recipient_queue (
    campaign_id BIGINT NOT NULL,
    held BOOLEAN NOT NULL,
    id BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, held, id)
);
INSERT INTO recipient_queue (campaign_id, held, id)
    SELECT campaign_id, stage = 'Held', id FROM recipients WHERE stage IN ('New', 'Held');
CREATE TABLE recipient_leases (
    id BIGINT PRIMARY KEY,
    owner TEXT NOT NULL,
    campaign_id BIGINT NOT NULL
);
INSERT INTO recipient_leases (id, owner, campaign_id)
    SELECT id, COALESCE(lease_owner, ''), campaign_id FROM recipients WHERE stage = 'Sending';
DROP INDEX recipients_new;
DROP INDEX recipients_held;
DROP INDEX recipients_failed;
DROP INDEX recipients_bad_result;
DROP INDEX recipients_stat;
DROP INDEX recipients_sending;
ALTER TABLE recipients SET (fillfactor = 50);
ALTER TABLE recipient_queue SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE recipient_leases SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE campaign_counters RENAME TO campaign_counter_rows;
ALTER TABLE campaign_counter_rows ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
ALTER TABLE campaign_counter_rows DROP CONSTRAINT campaign_counters_pkey;
ALTER TABLE campaign_counter_rows ADD PRIMARY KEY (campaign_id, node_id);
ALTER TABLE campaign_counter_rows SET (fillfactor = 50);
CREATE VIEW campaign_counters AS SELECT campaign_id, {_COUNTER_SUMS}
    FROM campaign_counter_rows GROUP BY campaign_id;
ALTER TABLE campaign_daily_activity RENAME TO campaign_daily_rows;
ALTER TABLE campaign_daily_rows ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
ALTER TABLE campaign_daily_rows DROP CONSTRAINT campaign_daily_activity_pkey;
ALTER TABLE campaign_daily_rows ADD PRIMARY KEY (campaign_id, day, node_id);
ALTER TABLE campaign_daily_rows SET (fillfactor = 50);
CREATE VIEW campaign_daily_activity AS SELECT campaign_id, day, SUM(sent)::bigint AS sent,
    SUM(delivered)::bigint AS delivered, SUM(failed)::bigint AS failed
    FROM campaign_daily_rows GROUP BY campaign_id, day
"""


#: Version N is ``MIGRATIONS[N - 1]``. Append, never edit.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "campaigns, recipients, counters, receipts (shared schema v1)", _shared(1)),
    # Node heartbeats and the per-recipient lease owner (claims stamp it; a dead node's
    # Sending rows are found by it); a pattern-ops index for the external-id prefix search,
    # whatever the database's collation.
    Migration(2, "cluster nodes and recipient leases", _split(_CLUSTER)),
    Migration(3, "Trigger mode: Held stage, held counter (shared schema v2)", _shared(2)),
    # Which node builds a campaign's recipient list (one builder per campaign in a cluster).
    Migration(4, "campaign build leases", _split(
        "CREATE TABLE campaign_builders (campaign_id BIGINT PRIMARY KEY "
        "REFERENCES campaigns (id), node_id TEXT NOT NULL, claimed_at_us BIGINT NOT NULL)")),
    Migration(5, "HOT recipient updates: claim queue, lease table, per-node counter rows",
              _split(_HOT_LAYOUT)),
    Migration(6, "capped retry-exhaustion job errors (shared schema v3)", _shared(3)),
)


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The applied version (0 on an empty database)."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection[Any], now_us: int,
            target: int | None = None) -> tuple[int, int]:
    """Apply the pending steps up to ``target`` (default: all) in one transaction under the
    advisory lock; returns (version before, version after). Refuses a database newer than
    this code (a rollback to an older release must not write to a schema it does not know)."""
    latest = len(MIGRATIONS) if target is None else target
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)")
        before = current_version(conn)
        if before > len(MIGRATIONS):
            raise RuntimeError(f"store schema version {before} is newer than this code "
                               f"({len(MIGRATIONS)})")
        for step in MIGRATIONS[before:latest]:
            for stmt in step.statements():
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_version (version, name, applied_at_us) "
                         "VALUES (%s, %s, %s)", (step.version, step.name, now_us))
    return before, max(before, latest)
