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
