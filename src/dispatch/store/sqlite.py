"""The SQLite store: the embedded default, one file under the data directory.

WAL journal with ``synchronous=NORMAL``: a commit is durable against a process crash (kill -9)
at once and against power loss from the next checkpoint, at a fraction of FULL's fsync cost.
The schema is created or migrated at open (``schema_version`` holds the applied version). Each
write is one ``BEGIN IMMEDIATE`` transaction, so the write lock is taken up front and a writer
never fails half-way on a lock upgrade. The connection is used from one worker thread at a time
(``dispatch.store.asyncstore`` serialises calls), hence ``check_same_thread=False``.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from typing import Any

from dispatch.campaigns.errors import Conflict, NotFound
from dispatch.campaigns.lifecycle import AuditEntry, StateChange, Transition
from dispatch.campaigns.model import Campaign, CampaignKind, CampaignStatus
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
from dispatch.store.schema import MIGRATIONS, SQLITE_WORDS, statements
from dispatch.store.sqlite_dispatch import (
    SqliteDispatchPath,
    _chunks,
    _placeholders,
    _write_blocks,
)

# Written in blocks of rows (``sqlite_dispatch._write_blocks``)
_RECIPIENTS_INSERT_SQL = (
    "INSERT INTO recipients (campaign_id, line_no, ctn_hash, masked, number, variables, stage, "
    "created_at_us) VALUES {values}")

_SORT_COLUMN = {CampaignSort.SENDER: "sender_lower", CampaignSort.START: "start_at_us",
                CampaignSort.CREATED: "created_at_us"}
_ACTIVE = tuple(s.value for s in (CampaignStatus.PENDING, CampaignStatus.BUILDING,
                                  CampaignStatus.SENDING, CampaignStatus.PAUSED))


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (for an
    index-friendly ``col >= prefix AND col < bound`` instead of LIKE), or None when there is
    none (a prefix of U+10FFFF only). Never a surrogate code point (no store can encode one)."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000
    return stripped[:-1] + chr(following)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqliteStore(SqliteDispatchPath):
    """``dispatch.store.base.Store`` on one SQLite file."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        directory = os.path.dirname(os.path.abspath(config.path))
        os.makedirs(directory, exist_ok=True)
        self._db = sqlite3.connect(config.path, isolation_level=None, check_same_thread=False,
                                   timeout=config.busy_timeout_s)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute(f"PRAGMA cache_size={-1024 * max(1, config.sqlite_cache_mib)}")
        self._db.execute("PRAGMA temp_store=MEMORY")
        self.schema_version = self._migrate()

    def close(self) -> None:
        self._db.close()

    #: Fault injection for tests of store outages (tests/hardening/test_store_faults.py):
    #: when set, called inside every write transaction just before its COMMIT; whatever it
    #: raises (e.g. ``sqlite3.OperationalError("database or disk is full")``) takes the path a
    #: real failing commit takes: the transaction's writes are rolled back, the error reaches
    #: the caller. ``None`` (the default) costs one attribute test per transaction.
    fault_hook: Callable[[], None] | None = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            if self.fault_hook is not None:
                self.fault_hook()
            cur.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (SQLITE_FULL, SQLITE_BUSY, an I/O error) may leave the
            # transaction open; roll it back so the next BEGIN starts clean and the caller's
            # retry is the first application of its writes.
            if self._db.in_transaction:
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def _migrate(self) -> int:
        with self._tx() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > len(MIGRATIONS):
                raise RuntimeError(f"store schema version {current} is newer than this code "
                                   f"({len(MIGRATIONS)})")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for stmt in statements(MIGRATIONS[version - 1], SQLITE_WORDS):
                    cur.execute(stmt)
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        return len(MIGRATIONS)

    # ------------------------------------------------------------------ campaigns

    def create_campaign(self, campaign: Campaign, change: StateChange,
                        audit: AuditEntry) -> Campaign:
        now_us = to_us(change.at)
        with self._tx() as cur:
            cur.execute(CAMPAIGN_INSERT_SQL, campaign_params(campaign, now_us))
            cid = int(cur.lastrowid or 0)
            cur.execute("INSERT INTO campaign_counters (campaign_id) VALUES (?)", (cid,))
            self._write_history(cur, cid, change, audit)
            row = cur.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?",
                              (cid,)).fetchone()
        return campaign_from_row(row)

    @staticmethod
    def _write_history(cur: sqlite3.Cursor, cid: int, change: StateChange,
                       audit: AuditEntry | None) -> None:
        cur.execute(
            "INSERT INTO campaign_state_history (campaign_id, at_us, from_status, phase, event, "
            "reason) VALUES (?, ?, ?, ?, ?, ?)",
            (cid, to_us(change.at), None if change.from_status is None else
             change.from_status.value, change.phase.value, change.event, change.reason))
        if audit is not None:
            SqliteStore._write_audit(cur, cid, audit)

    @staticmethod
    def _write_audit(cur: sqlite3.Cursor, cid: int, audit: AuditEntry) -> None:
        cur.execute("INSERT INTO campaign_audit (campaign_id, at_us, actor, action, note) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (cid, to_us(audit.at), audit.actor, audit.action, audit.note))

    def get_campaign(self, campaign_id: int) -> Campaign | None:
        row = self._db.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?",
                               (campaign_id,)).fetchone()
        return None if row is None else campaign_from_row(row)

    def get_campaign_by_external_id(self, external_id: uuid.UUID) -> Campaign | None:
        row = self._db.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE external_id = ?",
                               (str(external_id),)).fetchone()
        return None if row is None else campaign_from_row(row)

    def apply_transition(self, campaign_id: int, transition: Transition, change: StateChange,
                         audit: AuditEntry | None, auto_start: bool | None = None) -> Campaign:
        """Compare-and-set on (status, archived); history and audit in the same transaction.
        ``auto_start`` (approve) is stored with the transition when given. A transition that
        ends the campaign with recipients unsent (``marks_unsent``) marks up to
        ``unsent_mark_rows`` of them in this transaction too (all of a campaign that size or
        smaller: a failure after its commit cannot leave them New or Held); the engine marks
        the rest of a bigger one in chunks (``campaigns_with_unsent``)."""
        t = transition
        with self._tx() as cur:
            cur.execute(
                "UPDATE campaigns SET status = ?, archived = ?, paused_by = ?, "
                "status_changed_at_us = ? WHERE id = ? AND status = ? AND archived = ?",
                (t.to_status.value, int(t.to_archived),
                 None if t.paused_by is None else t.paused_by.value, to_us(change.at),
                 campaign_id, t.from_status.value, int(t.from_archived)))
            if cur.rowcount != 1:
                exists = cur.execute("SELECT 1 FROM campaigns WHERE id = ?",
                                     (campaign_id,)).fetchone()
                if exists is None:
                    raise NotFound("Campaign not found")
                raise Conflict("Campaign status changed concurrently; retry")
            if auto_start is not None:
                cur.execute("UPDATE campaigns SET auto_start = ? WHERE id = ?",
                            (int(auto_start), campaign_id))
            self._write_history(cur, campaign_id, change, audit)
            row = cur.execute(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?",
                              (campaign_id,)).fetchone()
            campaign = campaign_from_row(row)
            if t.to_status is not t.from_status and marks_unsent(campaign.status,
                                                                 campaign.mode):
                self._mark_unsent_of(cur, campaign_id, campaign.status.value, to_us(change.at),
                                     self.config.unsent_mark_rows)
        return campaign

    def list_campaigns(self, flt: CampaignFilter) -> Page[Campaign]:
        where = ["archived = ?"]
        params: list[Any] = [int(flt.archived)]
        if flt.since is not None:
            where.append("created_at_us >= ?")
            params.append(to_us(flt.since))
        for column, values in (("status", flt.statuses), ("mode", flt.modes),
                               ("kind", flt.kinds)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(sorted(v.value for v in values))
        term = (flt.search or "").strip().lower()
        if term:  # a blank search filters nothing
            bound = _prefix_upper_bound(term)
            where.append("((external_id >= ?" + ("" if bound is None else " AND external_id < ?")
                         + ") OR sender_lower LIKE ? ESCAPE '\\')")
            params.extend([term, *(() if bound is None else (bound,)),
                           f"%{_like_escape(term)}%"])
        clause = " AND ".join(where)
        total = self._db.execute(f"SELECT COUNT(*) FROM campaigns WHERE {clause}",
                                 params).fetchone()[0]
        direction = "DESC" if flt.descending else "ASC"
        column = _SORT_COLUMN[flt.sort]
        # NULL start times sort last either way; id breaks ties so pages never overlap.
        rows = self._db.execute(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE {clause} "
            f"ORDER BY ({column} IS NULL), {column} {direction}, id {direction} "
            "LIMIT ? OFFSET ?", [*params, flt.limit, flt.offset]).fetchall()
        return Page([campaign_from_row(r) for r in rows], int(total))

    def active_campaigns(self) -> list[Campaign]:
        rows = self._db.execute(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status IN "
            f"({','.join('?' * len(_ACTIVE))}) AND archived = 0 ORDER BY id", _ACTIVE).fetchall()
        return [campaign_from_row(r) for r in rows]

    def kpi(self) -> Kpi:
        counts = dict(self._db.execute(
            "SELECT status, COUNT(*) FROM campaigns GROUP BY status").fetchall())
        sent, delivered = self._db.execute(
            "SELECT COALESCE(SUM(sent), 0), COALESCE(SUM(delivered), 0) "
            "FROM campaign_counters").fetchone()
        return Kpi(total=sum(counts.values()),
                   active=sum(counts.get(s, 0) for s in _ACTIVE),
                   completed=counts.get(CampaignStatus.DONE.value, 0),
                   errors=counts.get(CampaignStatus.FAILED.value, 0),
                   sms_sent=int(sent), sms_delivered=int(delivered))

    def state_history(self, campaign_id: int) -> list[StateChange]:
        rows = self._db.execute(
            "SELECT phase, event, reason, at_us, from_status FROM campaign_state_history "
            "WHERE campaign_id = ? ORDER BY id", (campaign_id,)).fetchall()
        return [StateChange(CampaignStatus(p), e, r, from_us(at),
                            None if f is None else CampaignStatus(f)) for p, e, r, at, f in rows]

    def audit_trail(self, campaign_id: int) -> list[AuditEntry]:
        rows = self._db.execute(
            "SELECT actor, action, note, at_us FROM campaign_audit WHERE campaign_id = ? "
            "ORDER BY id", (campaign_id,)).fetchall()
        return [AuditEntry(a, act, n, from_us(at)) for a, act, n, at in rows]

    # ------------------------------------------------------------------ recipients, errors

    def add_recipients(self, campaign_id: int, rows: Iterable[RecipientRow],
                       now: datetime, held: bool = False) -> int:
        """Bulk insert in batches of ``insert_batch_rows`` (one transaction each, counters
        with it), so a huge file never holds the write lock for long. ``held``: stage Held
        (a Trigger campaign's recipients wait for their trigger) instead of New."""
        now_us = to_us(now)
        stage, counter = ("Held", "held") if held else ("New", "pending")
        it = iter(rows)
        total = 0
        while True:
            batch = [(campaign_id, r[4], r[1], r[2], r[0], pack_variables(r[3]), stage, now_us)
                     for r in islice(it, self.config.insert_batch_rows)]
            if not batch:
                return total
            with self._tx() as cur:
                _write_blocks(cur, _RECIPIENTS_INSERT_SQL, batch)  # 8.7 -> 7.3 us a row
                cur.execute(f"UPDATE campaign_counters SET total = total + ?, "
                            f"{counter} = {counter} + ? WHERE campaign_id = ?",
                            (len(batch), len(batch), campaign_id))
            total += len(batch)

    def release_held(self, campaign_id: int, ctn_hashes: Sequence[bytes] | None, count: int,
                     audit: AuditEntry) -> TriggerRelease:
        """A trigger event: move Held recipients to New so the route claims them. With
        ``ctn_hashes`` the named recipients (by keyed hash: numbers are never looked up in
        clear); without, the next ``count`` Held recipients in file order. The audit row (its
        note completed with the result) is written in the same transaction."""
        with self._tx() as cur:
            if ctn_hashes is None:
                ids = [r[0] for r in cur.execute(
                    "SELECT id FROM recipients WHERE campaign_id = ? AND stage = 'Held' "
                    "ORDER BY id LIMIT ?", (campaign_id, max(0, count)))]
                already = not_found = 0
            else:
                wanted = set(ctn_hashes)
                found: dict[bytes, tuple[int, str]] = {}
                for chunk in _chunks(list(wanted)):
                    for rid, h, stage in cur.execute(
                            "SELECT id, ctn_hash, stage FROM recipients WHERE ctn_hash IN "
                            f"({_placeholders(len(chunk))}) AND campaign_id = ?",
                            (*chunk, campaign_id)):
                        found[bytes(h)] = (rid, stage)
                ids = [rid for rid, stage in found.values() if stage == "Held"]
                already = len(found) - len(ids)
                not_found = len(wanted) - len(found)
            for chunk in _chunks(ids):
                cur.execute("UPDATE recipients SET stage = 'New' WHERE stage = 'Held' AND id IN "
                            f"({_placeholders(len(chunk))})", chunk)
            if ids:
                cur.execute("UPDATE campaign_counters SET held = held - ?, pending = pending + ? "
                            "WHERE campaign_id = ?", (len(ids), len(ids), campaign_id))
            result = TriggerRelease(len(ids), already, not_found)
            self._write_audit(cur, campaign_id, result.audited(audit))
        return result

    def delete_recipients(self, campaign_id: int) -> int:
        """Drop a campaign's recipients and reset its counters (rebuilding after a crash in
        Building). Refuses when any recipient has left stage New."""
        with self._tx() as cur:
            counters = self._counters(cur, campaign_id)
            if counters.total != counters.pending + counters.held:
                raise Conflict("Recipients already dispatched; cannot rebuild")
            cur.execute("DELETE FROM recipients WHERE campaign_id = ?", (campaign_id,))
            n = cur.rowcount
            cur.execute("DELETE FROM campaign_job_errors WHERE campaign_id = ?", (campaign_id,))
            cur.execute("UPDATE campaign_counters SET total = 0, pending = 0, held = 0, "
                        "job_errors = 0 "
                        "WHERE campaign_id = ?", (campaign_id,))
        return n

    def add_job_errors(self, campaign_id: int, errors: Iterable[JobError],
                       now: datetime) -> int:
        now_us = to_us(now)
        batch = [(campaign_id, now_us, e[0], e[1], e[2]) for e in errors]
        if not batch:
            return 0
        with self._tx() as cur:
            cur.executemany("INSERT INTO campaign_job_errors (campaign_id, at_us, line_no, "
                            "reason, message) VALUES (?, ?, ?, ?, ?)", batch)
            cur.execute("UPDATE campaign_counters SET job_errors = job_errors + ? "
                        "WHERE campaign_id = ?", (len(batch), campaign_id))
        return len(batch)

    def job_errors(self, campaign_id: int, offset: int, limit: int) -> Page[JobErrorView]:
        """A page of the campaign's job errors in the order they came; ``total`` counts every
        error, those a summary row stands for (``occurrences``) included."""
        rows = self._db.execute(
            "SELECT id, line_no, reason, message, at_us, occurrences FROM campaign_job_errors "
            "WHERE campaign_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (campaign_id, limit, offset)).fetchall()
        total = self.counters(campaign_id).job_errors
        return Page([JobErrorView(i, ln, r, m, from_us(at), n)
                     for i, ln, r, m, at, n in rows], total)

    def list_recipients(self, campaign_id: int, flt: RecipientFilter) -> Page[RecipientView]:
        where = ["campaign_id = ?"]
        params: list[Any] = [campaign_id]
        for column, values in (("stage", flt.stages), ("sms_result", flt.sms_results)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(sorted(v.value for v in values))
        if flt.stats:
            stat_in = f"receipt_stat IN ({','.join('?' * len(flt.stats))})"
            where.append(f"({stat_in} OR receipt_stat IS NULL)" if flt.include_null_stat
                         else stat_in)
            params.extend(sorted(flt.stats))
        elif not flt.include_null_stat:
            where.append("receipt_stat IS NOT NULL")
        if flt.ctn_hash is not None:
            where.append("ctn_hash = ?")
            params.append(flt.ctn_hash)
        clause = " AND ".join(where)
        total = int(self._db.execute(f"SELECT COUNT(*) FROM recipients WHERE {clause}",
                                     params).fetchone()[0])
        rows = self._db.execute(
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE {clause} AND id > ? "
            "ORDER BY id LIMIT ?", [*params, flt.after_id, flt.limit + 1]).fetchall()
        more = len(rows) > flt.limit
        items = [recipient_from_row(r, flt.with_numbers) for r in rows[:flt.limit]]
        return Page(items, total, items[-1].id if more and items else None)

    def find_by_ctn_hash(self, ctn_hash: bytes,
                         campaign_id: int | None = None) -> list[RecipientView]:
        sql = f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE ctn_hash = ?"
        params: list[Any] = [ctn_hash]
        if campaign_id is not None:
            sql += " AND campaign_id = ?"
            params.append(campaign_id)
        rows = self._db.execute(sql + " ORDER BY id LIMIT 1000", params).fetchall()
        return [recipient_from_row(r, False) for r in rows]

    # ------------------------------------------------------------------ counters

    def _counters(self, cur: sqlite3.Cursor | sqlite3.Connection,
                  campaign_id: int) -> Counters:
        row = cur.execute(f"SELECT {', '.join(COUNTER_FIELDS)} FROM campaign_counters "
                          "WHERE campaign_id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise NotFound("Campaign not found")
        return Counters(*row)

    def counters(self, campaign_id: int) -> Counters:
        return self._counters(self._db, campaign_id)

    def counters_many(self, campaign_ids: Sequence[int]) -> dict[int, Counters]:
        """The counters of each campaign in ``campaign_ids`` that exists (a list page's)."""
        out: dict[int, Counters] = {}
        for chunk in _chunks(sorted(set(campaign_ids))):
            for row in self._db.execute(
                    f"SELECT campaign_id, {', '.join(COUNTER_FIELDS)} FROM campaign_counters "
                    f"WHERE campaign_id IN ({_placeholders(len(chunk))})", chunk):
                out[row[0]] = Counters(*row[1:])
        return out

    def daily_activity(self, campaign_id: int) -> list[DayActivity]:
        rows = self._db.execute(
            "SELECT day, sent, delivered, failed FROM campaign_daily_activity "
            "WHERE campaign_id = ? ORDER BY day", (campaign_id,)).fetchall()
        return [DayActivity(*r) for r in rows]

    def pending_messages(self, kind: CampaignKind | None = None) -> int:
        """Messages queued but not yet answered (New + Sending) in active campaigns."""
        sql = ("SELECT COALESCE(SUM(k.pending + k.inflight), 0) FROM campaign_counters k "
               "JOIN campaigns c ON c.id = k.campaign_id WHERE c.status IN "
               f"({','.join('?' * len(_ACTIVE))})")
        params: list[Any] = list(_ACTIVE)
        if kind is not None:
            sql += " AND c.kind = ?"
            params.append(kind.value)
        return int(self._db.execute(sql, params).fetchone()[0])
