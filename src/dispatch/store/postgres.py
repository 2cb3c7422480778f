"""The PostgreSQL store: several engine nodes on one database (issue 8).

Same semantics as the SQLite store (``dispatch.store.base`` states them; the store test suite
runs on both), with what a shared server changes:

* Connections come from a ``psycopg_pool.ConnectionPool`` in autocommit mode; every write is one
  explicit transaction (``_transact``) that is retried from the start on a deadlock or a
  serialization failure, which N nodes writing the same counter rows can provoke. Retrying is
  safe because every write method decides everything from rows it reads (and locks) inside its
  own transaction.
* Rows are locked in a fixed order (recipients by id, then counter rows by campaign id, then
  daily rows by (campaign, day)), and every node writes its own counter and daily rows
  (``node_id``; the views ``campaign_counters`` and ``campaign_daily_activity`` sum them), so
  the nodes' transactions neither queue on a shared counter row nor deadlock in the common
  case.
* Bulk writes are one statement per kind of change: ``COPY`` for recipient inserts,
  ``UPDATE .. FROM unnest(arrays)`` for the dispatch path, ``= ANY(array)`` for lookups.
  psycopg prepares a statement on its fifth execution, so the hot statements are planned once
  per connection.
* The schema is migrated at open (``dispatch.store.migrations``; the shared tables come from
  ``dispatch.store.schema``), under an advisory lock so nodes starting together do not race.
* Cluster work (heartbeats, takeover of a dead node's leases, folding the counter rows of
  nodes that left) lives in ``postgres_cluster``; the dispatch path (claim queue, leases,
  the layout that keeps its updates HOT) in ``postgres_dispatch``.

Collation: the shared SQL compares and sorts text the way SQLite does (bytewise) only when the
database uses the ``C`` collation; docs/OPERATIONS-POSTGRES.md says to create it that way. The
external-id prefix search does not depend on it (``text_pattern_ops`` index, ``LIKE``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from dispatch.campaigns.errors import Conflict, NotFound
from dispatch.campaigns.lifecycle import AuditEntry, StateChange, Transition
from dispatch.campaigns.model import Campaign, CampaignKind, CampaignStatus
from dispatch.store import migrations
from dispatch.store.base import (
    COUNTER_FIELDS,
    CampaignFilter,
    CampaignSort,
    Counters,
    DayActivity,
    JobError,
    JobErrorView,
    Kpi,
    Page,
    RecipientFilter,
    RecipientRow,
    RecipientView,
    StoreConfig,
    TriggerRelease,
    marks_unsent,
)
from dispatch.store.postgres_batches import Cursor, Deltas
from dispatch.store.postgres_cluster import PostgresCluster, default_node_id
from dispatch.store.postgres_dispatch import PostgresDispatchPath, queue_scan
from dispatch.store.rows import (
    CAMPAIGN_COLUMNS,
    CAMPAIGN_INSERT_SQL,
    RECIPIENT_COLUMNS,
    campaign_from_row,
    campaign_params,
    from_us,
    pack_variables,
    recipient_from_row,
    to_us,
)

log = logging.getLogger(__name__)
R = TypeVar("R")

_SORT_COLUMN = {CampaignSort.SENDER: "sender_lower", CampaignSort.START: "start_at_us",
                CampaignSort.CREATED: "created_at_us"}
_ACTIVE = [s.value for s in (CampaignStatus.PENDING, CampaignStatus.BUILDING,
                             CampaignStatus.SENDING, CampaignStatus.PAUSED)]
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_TX_ATTEMPTS = 8
# How long the pool retries one lost connection (backoff 1, 2, 4 ... s) before giving it up;
# the next checkout then starts a fresh attempt at once. psycopg_pool's default (300 s) let
# the backoff grow with the outage: after a 25 s PostgreSQL crash the engine waited 5.5 s
# more for the pool's next attempt, after minutes up to ~2 min, with the server long back.
_RECONNECT_TIMEOUT_S = 2.0
_CAMPAIGN_INSERT = CAMPAIGN_INSERT_SQL.replace("?", "%s") + " RETURNING id"
# The identity sequence's name is looked up once per statement, not once per id (a catalog
# lookup per row cost more than the ids themselves).
_DRAW_IDS = ("WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('recipients', 'id')"
             "::regclass AS seq) SELECT nextval(s.seq) FROM s, generate_series(1, %s)")


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every statement of the store reaches its rows by key. A sequential scan is never the
    right plan here, yet the planner picks one (hash-joining the whole ``recipients`` table
    to a batch, O(table) per batch) when its statistics are from the tables' first minutes
    (the queue and lease tables churn, empty at start) or when it estimates a batch's array
    parameter at its real size. Tables without a usable index are still scanned. JIT off:
    these short statements never repay compiling, and a disabled scan's cost would trigger
    it. Text travels as UTF-8 whatever the database's encoding (the server converts): the
    array parameters are packed as UTF-8 (``pg_arrays``)."""
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET jit = off")
    conn.execute("SET client_encoding = 'UTF8'")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _q(sql: str) -> Any:
    """Our own composed SQL text, typed for psycopg (which wants ``LiteralString``)."""
    return sql


class PostgresStore(PostgresDispatchPath, PostgresCluster):
    """``dispatch.store.base.Store`` on PostgreSQL, one instance per engine node.

    ``node_id`` stamps this node's claims (``config.node_id``, else a new host-pid-random id);
    ``migrate=False`` opens without migrating (the schema must then be current)."""

    def __init__(self, config: StoreConfig, node_id: str | None = None,
                 migrate: bool = True) -> None:
        if not config.dsn:
            raise ValueError("PostgresStore needs StoreConfig.dsn")
        self.config = config
        self.node_id = node_id or config.node_id or default_node_id()
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            config.dsn, min_size=1, max_size=max(1, config.pool_max_size),
            kwargs={"autocommit": True, "application_name": f"dispatch {self.node_id}"[:63]},
            timeout=max(1.0, config.busy_timeout_s), open=False, name="dispatch-store",
            configure=_configure, reconnect_timeout=_RECONNECT_TIMEOUT_S)
        self._pool.open(wait=True, timeout=max(5.0, config.busy_timeout_s))
        try:
            with self._pool.connection() as conn:
                if migrate:
                    migrations.migrate(conn, to_us(datetime.now(UTC)))
                version = migrations.postgres.current_version(conn)
            if version != len(migrations.MIGRATIONS):
                raise RuntimeError(f"store schema version {version}, this code needs "
                                   f"{len(migrations.MIGRATIONS)}: run `dispatch migrate`")
        except BaseException:
            self._pool.close()
            raise
        self.schema_version = version

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------------ plumbing

    #: Fault injection for tests of store outages, as ``SqliteStore.fault_hook``: when set,
    #: called inside every ``_transact`` transaction just before its COMMIT (whatever it
    #: raises rolls the transaction back and reaches the caller) and before every autocommit
    #: ``_statement`` (which then does nothing). ``None`` (the default) costs one attribute
    #: test per transaction.
    fault_hook: Callable[[], None] | None = None

    def _transact(self, body: Callable[[Cursor], R]) -> R:
        """Run ``body`` in one transaction; retry it whole on deadlock/serialization failure
        (the transaction was rolled back, nothing of it is visible)."""
        for attempt in range(_TX_ATTEMPTS):
            try:
                with self._pool.connection() as conn, conn.transaction(), \
                        conn.cursor() as cur:
                    result = body(cur)
                    if self.fault_hook is not None:
                        self.fault_hook()
                    return result
            except _RETRYABLE as exc:
                if attempt == _TX_ATTEMPTS - 1:
                    raise
                log.debug("store transaction retried after %s", type(exc).__name__)
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _statement(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """One statement in autocommit (atomic by itself, one round trip: no BEGIN/COMMIT);
        retried like ``_transact``. For the hot single-statement writes."""
        for attempt in range(_TX_ATTEMPTS):
            try:
                with self._pool.connection() as conn, conn.cursor() as cur:
                    if self.fault_hook is not None:
                        self.fault_hook()
                    cur.execute(_q(sql), params)
                    return cur.fetchall() if cur.description else []
            except _RETRYABLE as exc:
                if attempt == _TX_ATTEMPTS - 1:
                    raise
                log.debug("store statement retried after %s", type(exc).__name__)
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(_q(sql), params).fetchall()

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            return conn.execute(_q(sql), params).fetchone()

    # ------------------------------------------------------------------ campaigns

    def create_campaign(self, campaign: Campaign, change: StateChange,
                        audit: AuditEntry) -> Campaign:
        now_us = to_us(change.at)

        def body(cur: Cursor) -> tuple[Any, ...]:
            cur.execute(_CAMPAIGN_INSERT, campaign_params(campaign, now_us))
            cid = _one(cur)[0]
            cur.execute("INSERT INTO campaign_counter_rows (campaign_id) VALUES (%s)", (cid,))
            self._write_history(cur, cid, change, audit)
            cur.execute(_q(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = %s"), (cid,))
            return _one(cur)

        return campaign_from_row(self._transact(body))

    @staticmethod
    def _write_history(cur: Cursor, cid: int, change: StateChange,
                       audit: AuditEntry | None) -> None:
        cur.execute(
            "INSERT INTO campaign_state_history (campaign_id, at_us, from_status, phase, event, "
            "reason) VALUES (%s, %s, %s, %s, %s, %s)",
            (cid, to_us(change.at), None if change.from_status is None else
             change.from_status.value, change.phase.value, change.event, change.reason))
        if audit is not None:
            cur.execute("INSERT INTO campaign_audit (campaign_id, at_us, actor, action, note) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (cid, to_us(audit.at), audit.actor, audit.action, audit.note))

    def get_campaign(self, campaign_id: int) -> Campaign | None:
        row = self._read_one(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = %s",
                             (campaign_id,))
        return None if row is None else campaign_from_row(row)

    def get_campaign_by_external_id(self, external_id: uuid.UUID) -> Campaign | None:
        row = self._read_one(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE external_id = %s",
                             (str(external_id),))
        return None if row is None else campaign_from_row(row)

    def apply_transition(self, campaign_id: int, transition: Transition, change: StateChange,
                         audit: AuditEntry | None, auto_start: bool | None = None) -> Campaign:
        """Compare-and-set on (status, archived); history and audit in the same transaction.
        A pause or cancel from the API of any node is one row here, so every node's
        scheduler sees it on its next read: cluster-wide by construction, and no claim leases
        after its commit (a claim holds the row FOR SHARE: the UPDATE waits for the claims
        under way, later ones see the new status). A transition that ends the campaign with
        recipients unsent (``marks_unsent``) marks up to ``unsent_mark_rows`` of them in this
        transaction too; the engine marks the rest in chunks (``campaigns_with_unsent``)."""
        t = transition

        def body(cur: Cursor) -> Campaign:
            cur.execute(
                "UPDATE campaigns SET status = %s, archived = %s, paused_by = %s, "
                "status_changed_at_us = %s, auto_start = COALESCE(%s, auto_start) "
                "WHERE id = %s AND status = %s AND archived = %s",
                (t.to_status.value, int(t.to_archived),
                 None if t.paused_by is None else t.paused_by.value, to_us(change.at),
                 None if auto_start is None else int(auto_start),
                 campaign_id, t.from_status.value, int(t.from_archived)))
            if cur.rowcount != 1:
                cur.execute("SELECT 1 FROM campaigns WHERE id = %s", (campaign_id,))
                if cur.fetchone() is None:
                    raise NotFound("Campaign not found")
                raise Conflict("Campaign status changed concurrently; retry")
            self._write_history(cur, campaign_id, change, audit)
            cur.execute(_q(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = %s"),
                        (campaign_id,))
            campaign = campaign_from_row(_one(cur))
            if t.to_status is not t.from_status and marks_unsent(campaign.status,
                                                                 campaign.mode):
                self._mark_unsent(cur, campaign_id, campaign.status.value, to_us(change.at),
                                  limit=self.config.unsent_mark_rows)
            return campaign

        return self._transact(body)

    def list_campaigns(self, flt: CampaignFilter) -> Page[Campaign]:
        where = ["archived = %s"]
        params: list[Any] = [int(flt.archived)]
        if flt.since is not None:
            where.append("created_at_us >= %s")
            params.append(to_us(flt.since))
        for column, values in (("status", flt.statuses), ("mode", flt.modes),
                               ("kind", flt.kinds)):
            if values:
                where.append(f"{column} = ANY(%s)")
                params.append(sorted(v.value for v in values))
        if flt.search:
            term = flt.search.strip().lower()
            escaped = _like_escape(term)
            where.append("(external_id LIKE %s OR sender_lower LIKE %s)")
            params.extend([f"{escaped}%", f"%{escaped}%"])
        clause = " AND ".join(where)
        total = self._read_one(f"SELECT COUNT(*) FROM campaigns WHERE {clause}", params)
        direction = "DESC" if flt.descending else "ASC"
        column = _SORT_COLUMN[flt.sort]
        # NULL start times sort last either way; id breaks ties so pages never overlap.
        rows = self._read(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE {clause} "
            f"ORDER BY ({column} IS NULL), {column} {direction}, id {direction} "
            "LIMIT %s OFFSET %s", [*params, flt.limit, flt.offset])
        return Page([campaign_from_row(r) for r in rows], int(total[0]) if total else 0)

    def active_campaigns(self) -> list[Campaign]:
        rows = self._read(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status = ANY(%s) "
                          "AND archived = 0 ORDER BY id", (_ACTIVE,))
        return [campaign_from_row(r) for r in rows]

    def kpi(self) -> Kpi:
        counts = dict(self._read("SELECT status, COUNT(*) FROM campaigns GROUP BY status"))
        sums = self._read_one("SELECT COALESCE(SUM(sent), 0), COALESCE(SUM(delivered), 0) "
                              "FROM campaign_counters") or (0, 0)
        return Kpi(total=int(sum(counts.values())),
                   active=int(sum(counts.get(s, 0) for s in _ACTIVE)),
                   completed=int(counts.get(CampaignStatus.DONE.value, 0)),
                   errors=int(counts.get(CampaignStatus.FAILED.value, 0)),
                   sms_sent=int(sums[0]), sms_delivered=int(sums[1]))

    def state_history(self, campaign_id: int) -> list[StateChange]:
        rows = self._read(
            "SELECT phase, event, reason, at_us, from_status FROM campaign_state_history "
            "WHERE campaign_id = %s ORDER BY id", (campaign_id,))
        return [StateChange(CampaignStatus(p), e, r, from_us(at),
                            None if f is None else CampaignStatus(f)) for p, e, r, at, f in rows]

    def audit_trail(self, campaign_id: int) -> list[AuditEntry]:
        rows = self._read("SELECT actor, action, note, at_us FROM campaign_audit "
                          "WHERE campaign_id = %s ORDER BY id", (campaign_id,))
        return [AuditEntry(a, act, n, from_us(at)) for a, act, n, at in rows]

    # ------------------------------------------------------------------ recipients, errors

    def add_recipients(self, campaign_id: int, rows: Iterable[RecipientRow],
                       now: datetime, held: bool = False) -> int:
        """Bulk insert with ``COPY``, ``insert_batch_rows`` per transaction (counters with
        it), so a huge file never holds the campaign's counter row locked for long. The ids
        are drawn from the sequence first (ascending in file order), so the same ids go into
        ``recipient_queue`` by a second ``COPY``.
        ``held``: stage Held (a Trigger campaign's recipients wait for a trigger)."""
        now_us = to_us(now)
        stage, counter = ("Held", "held") if held else ("New", "pending")
        held_text = "t" if held else "f"
        it = iter(rows)
        total = 0
        while True:
            batch = list(islice(it, self.config.insert_batch_rows))
            if not batch:
                return total

            def body(cur: Cursor, batch: list[RecipientRow] = batch) -> None:
                cur.execute(_DRAW_IDS, (len(batch),))
                ids = sorted(r[0] for r in cur.fetchall())
                with cur.copy("COPY recipients (id, campaign_id, line_no, ctn_hash, masked, "
                              "number, variables, stage, created_at_us) FROM STDIN") as copy:
                    for rid, r in zip(ids, batch, strict=True):
                        copy.write_row((rid, campaign_id, r[4], r[1], r[2], r[0],
                                        pack_variables(r[3]), stage, now_us))
                with cur.copy("COPY recipient_queue (campaign_id, held, id) FROM STDIN") as copy:
                    for rid in ids:
                        copy.write_row((campaign_id, held_text, rid))
                cur.execute(_q(f"UPDATE campaign_counter_rows SET total = total + %s, "
                               f"{counter} = {counter} + %s "
                               "WHERE campaign_id = %s AND node_id = ''"),
                            (len(batch), len(batch), campaign_id))

            self._transact(body)
            total += len(batch)

    def release_held(self, campaign_id: int, ctn_hashes: Sequence[bytes] | None, count: int,
                     audit: AuditEntry) -> TriggerRelease:
        """A trigger event: Held -> New, the named recipients (by keyed hash) or the next
        ``count`` in file order; the audit row (note completed with the result) in the same
        transaction. The held part of ``recipient_queue`` decides: a release deletes the
        rows there (SKIP LOCKED when by count), so concurrent triggers on two nodes never
        release one recipient twice, and a row already New is counted, never released
        again."""

        def body(cur: Cursor) -> TriggerRelease:
            if ctn_hashes is None:
                ids = sorted(r[0] for r in queue_scan(
                    cur, "DELETE FROM recipient_queue WHERE ctid = ANY(ARRAY(SELECT ctid "
                    "FROM recipient_queue WHERE campaign_id = %s AND held ORDER BY id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED)) RETURNING id", (campaign_id, max(0, count))))
                already, not_found = 0, 0
            else:
                wanted = sorted(set(ctn_hashes))
                cur.execute("SELECT id FROM recipients WHERE campaign_id = %s "
                            "AND ctn_hash = ANY(%s::bytea[])", (campaign_id, wanted))
                found = sorted(r[0] for r in cur.fetchall())
                cur.execute("DELETE FROM recipient_queue WHERE campaign_id = %s AND held "
                            "AND id = ANY(%s) RETURNING id", (campaign_id, found))
                ids = sorted(r[0] for r in cur.fetchall())
                already, not_found = len(found) - len(ids), len(wanted) - len(found)
            released = len(ids)
            if released:
                cur.execute("UPDATE recipients SET stage = 'New' WHERE id = ANY(%s)", (ids,))
                cur.execute("INSERT INTO recipient_queue (campaign_id, held, id) "
                            "SELECT %s, false, i FROM unnest(%s::bigint[]) AS i",
                            (campaign_id, ids))
                deltas = Deltas(self.node_id)
                deltas.counters[campaign_id].update(held=-released, pending=released)
                deltas.flush(cur)
            result = TriggerRelease(released, already, not_found)
            full = result.audited(audit)
            cur.execute("INSERT INTO campaign_audit (campaign_id, at_us, actor, action, note) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (campaign_id, to_us(full.at), full.actor, full.action, full.note))
            return result

        return self._transact(body)

    def delete_recipients(self, campaign_id: int) -> int:
        """Drop a campaign's recipients and reset its counters (rebuilding after a crash in
        Building). Refuses when any recipient has left stage New (or Held)."""

        def body(cur: Cursor) -> int:
            counters = self._counters_locked(cur, campaign_id)
            if counters.total != counters.pending + counters.held:
                raise Conflict("Recipients already dispatched; cannot rebuild")
            cur.execute("DELETE FROM recipient_queue WHERE campaign_id = %s", (campaign_id,))
            cur.execute("DELETE FROM recipients WHERE campaign_id = %s", (campaign_id,))
            n = cur.rowcount
            cur.execute("DELETE FROM campaign_job_errors WHERE campaign_id = %s",
                        (campaign_id,))
            # Every node's rows fold into the base row, with the build's fields reset.
            cur.execute("DELETE FROM campaign_counter_rows WHERE campaign_id = %s "
                        "AND node_id <> ''", (campaign_id,))
            reset = {"total", "pending", "held", "job_errors"}
            cur.execute(_q("UPDATE campaign_counter_rows SET " + ", ".join(
                f"{f} = %s" for f in COUNTER_FIELDS) + " WHERE campaign_id = %s "
                "AND node_id = ''"), [0 if f in reset else getattr(counters, f)
                                       for f in COUNTER_FIELDS] + [campaign_id])
            return n

        return self._transact(body)

    def add_job_errors(self, campaign_id: int, errors: Iterable[JobError],
                       now: datetime) -> int:
        now_us = to_us(now)
        batch = [(campaign_id, now_us, e[0], e[1], e[2]) for e in errors]
        if not batch:
            return 0

        def body(cur: Cursor) -> None:
            cur.executemany("INSERT INTO campaign_job_errors (campaign_id, at_us, line_no, "
                            "reason, message) VALUES (%s, %s, %s, %s, %s)", batch)
            cur.execute("UPDATE campaign_counter_rows SET job_errors = job_errors + %s "
                        "WHERE campaign_id = %s AND node_id = ''", (len(batch), campaign_id))

        self._transact(body)
        return len(batch)

    def job_errors(self, campaign_id: int, offset: int, limit: int) -> Page[JobErrorView]:
        """A page of the campaign's job errors in the order they came; ``total`` counts every
        error, those a summary row stands for (``occurrences``) included."""
        rows = self._read(
            "SELECT id, line_no, reason, message, at_us, occurrences FROM campaign_job_errors "
            "WHERE campaign_id = %s ORDER BY id LIMIT %s OFFSET %s",
            (campaign_id, limit, offset))
        total = self.counters(campaign_id).job_errors
        return Page([JobErrorView(i, ln, r, m, from_us(at), n)
                     for i, ln, r, m, at, n in rows], total)

    def list_recipients(self, campaign_id: int, flt: RecipientFilter) -> Page[RecipientView]:
        where = ["campaign_id = %s"]
        params: list[Any] = [campaign_id]
        for column, values in (("stage", flt.stages), ("sms_result", flt.sms_results)):
            if values:
                where.append(f"{column} = ANY(%s)")
                params.append(sorted(v.value for v in values))
        if flt.stats:
            stat_in = "receipt_stat = ANY(%s)"
            where.append(f"({stat_in} OR receipt_stat IS NULL)" if flt.include_null_stat
                         else stat_in)
            params.append(sorted(flt.stats))
        elif not flt.include_null_stat:
            where.append("receipt_stat IS NOT NULL")
        if flt.ctn_hash is not None:
            where.append("ctn_hash = %s")
            params.append(flt.ctn_hash)
        clause = " AND ".join(where)
        total_row = self._read_one(f"SELECT COUNT(*) FROM recipients WHERE {clause}", params)
        rows = self._read(
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE {clause} AND id > %s "
            "ORDER BY id LIMIT %s", [*params, flt.after_id, flt.limit + 1])
        more = len(rows) > flt.limit
        items = [recipient_from_row(r, flt.with_numbers) for r in rows[:flt.limit]]
        return Page(items, int(total_row[0]) if total_row else 0,
                    items[-1].id if more and items else None)

    def find_by_ctn_hash(self, ctn_hash: bytes,
                         campaign_id: int | None = None) -> list[RecipientView]:
        sql = f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE ctn_hash = %s"
        params: list[Any] = [ctn_hash]
        if campaign_id is not None:
            sql += " AND campaign_id = %s"
            params.append(campaign_id)
        rows = self._read(sql + " ORDER BY id LIMIT 1000", params)
        return [recipient_from_row(r, False) for r in rows]

    # ------------------------------------------------------------------ counters

    @staticmethod
    def _counters_locked(cur: Cursor, campaign_id: int) -> Counters:
        """The campaign's counters with every node's row of it locked."""
        cur.execute(_q(f"SELECT {', '.join(COUNTER_FIELDS)} FROM campaign_counter_rows "
                       "WHERE campaign_id = %s ORDER BY node_id FOR UPDATE"), (campaign_id,))
        rows = cur.fetchall()
        if not rows:
            raise NotFound("Campaign not found")
        return Counters(*(sum(col) for col in zip(*rows, strict=True)))

    def counters(self, campaign_id: int) -> Counters:
        row = self._read_one(f"SELECT {', '.join(COUNTER_FIELDS)} FROM campaign_counters "
                             "WHERE campaign_id = %s", (campaign_id,))
        if row is None:
            raise NotFound("Campaign not found")
        return Counters(*row)

    def counters_many(self, campaign_ids: Sequence[int]) -> dict[int, Counters]:
        """The counters of each campaign in ``campaign_ids`` that exists (a list page's)."""
        rows = self._read(f"SELECT campaign_id, {', '.join(COUNTER_FIELDS)} "
                          "FROM campaign_counters WHERE campaign_id = ANY(%s)",
                          (sorted(set(campaign_ids)),))
        return {r[0]: Counters(*r[1:]) for r in rows}

    def daily_activity(self, campaign_id: int) -> list[DayActivity]:
        rows = self._read("SELECT day, sent, delivered, failed FROM campaign_daily_activity "
                          "WHERE campaign_id = %s ORDER BY day", (campaign_id,))
        return [DayActivity(*r) for r in rows]

    def pending_messages(self, kind: CampaignKind | None = None) -> int:
        """Messages queued but not yet answered (New + Sending) in active campaigns."""
        sql = ("SELECT COALESCE(SUM(k.pending + k.inflight), 0) FROM campaign_counters k "
               "JOIN campaigns c ON c.id = k.campaign_id WHERE c.status = ANY(%s)")
        params: list[Any] = [_ACTIVE]
        if kind is not None:
            sql += " AND c.kind = %s"
            params.append(kind.value)
        row = self._read_one(sql, params)
        return int(row[0]) if row else 0


def _one(cur: Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:  # pragma: no cover - the statement always returns a row
        raise RuntimeError("expected a row")
    return row
