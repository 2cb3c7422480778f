"""The dispatch path of the PostgreSQL store: claim, submit results, recovery, expiry (receipts:
``postgres_receipts``; the batch plumbing both use: ``postgres_batches``).

The rules are the SQLite store's (``dispatch.store.base``); what differs is that several nodes
run them at once, and the layout (migration 5) that keeps the per-message updates of
``recipients`` HOT: nothing that changes per message is indexed there. Instead:

* ``recipient_queue`` holds what may be claimed (New rows; Held ones apart). ``claim_for_send``
  deletes the lowest ids of a campaign's queue with ``FOR UPDATE SKIP LOCKED``, marks the
  recipients Sending and inserts their leases, in one statement: two nodes claiming from one
  campaign get disjoint rows and neither waits for the other.
* ``recipient_leases`` (id, owner) holds what is in flight, per node. ``record_submit_results``
  applies an answer only to a recipient whose lease it deletes: a row a takeover already
  resolved (or re-leased to another node under ``RESEND``) is ``stale``, so a node that was
  presumed dead cannot overwrite what the cluster decided about its rows (fencing by lease).
* Counter and daily-activity changes go to this node's own rows (``node_id``), summed by the
  ``campaign_counters`` / ``campaign_daily_activity`` views: no row lock is shared by the
  nodes' hot transactions. Rows of nodes that left are folded into the base row (``''``).

A batch of submit results without retries is one statement (data-modifying CTEs) run in
autocommit: atomic, and one round trip. The claim is one statement too, in a transaction of
its own for the planner settings of the queue's ordered scans (``queue_scan``). Everything
else is one transaction through ``_transact`` (retried whole on deadlock).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from dispatch.store.base import (
    ENDED_UNSENT_SQL,
    RETRY_EXHAUSTED,
    ClaimedRecipient,
    RecoveryCounts,
    RecoveryPolicy,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
    SubmitTally,
    retry_exhausted_message,
    retry_exhausted_summary,
    unsent_errors,
)
from dispatch.store.pg_arrays import Texts
from dispatch.store.postgres_batches import I4, I8, TX, Cursor, Deltas, as_columns
from dispatch.store.postgres_receipts import PostgresReceiptPath
from dispatch.store.rows import day_of, message_id_key, to_us, unpack_variables

log = logging.getLogger(__name__)

_MAX_SEGMENTS = 63  # bits of the per-recipient receipt mask (a signed 64-bit column)
#: The first key of the advisory locks that serialise the retry-exhaustion job errors of a
#: campaign across nodes (the second is the campaign id): "disp" in ASCII.
_JOB_ERRORS_LOCK_CLASS = 0x64697370
#: The database server's clock in UTC microseconds: one clock for every node's heartbeat.
DB_NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

# The ended campaigns with recipients still to mark (``marks_unsent``): what an Expired,
# Cancelled or Failed campaign, or a Done Trigger one, still has queued (New or Held).
_WITH_UNSENT_SQL = (
    f"SELECT c.id, c.status FROM campaigns c WHERE (c.status IN {ENDED_UNSENT_SQL} "
    "OR (c.status = 'Done' AND c.mode = 'Trigger')) "
    "AND EXISTS (SELECT 1 FROM recipient_queue q WHERE q.campaign_id = c.id) ORDER BY c.id")

# One statement: take the lowest queued ids (skipping rows another node is claiming), mark
# the recipients Sending, lease them to this node, count them on this node's counter row.
# Only while the campaign is Sending: every node stops claiming from a paused or cancelled
# campaign at once, not at its next control tick.
#
# The status is read with the campaign row locked FOR SHARE (``sending``), before any queue
# row is touched: the uncorrelated EXISTS is an InitPlan, run once before the queue scan. Read
# from the statement's snapshot alone, a pause or cancel committing while the claim ran let
# that batch through. With the lock (READ COMMITTED), a status UPDATE under way makes the
# claim wait for its commit and then re-check the row's newest version (no longer Sending:
# nothing leased); a status UPDATE that comes while the claim holds the lock waits for the
# claim's commit, so the claim returned before the transition committed, and the cancel's
# marking finds the leased rows gone from the queue (in flight, like any claimed before it).
# FOR SHARE, not FOR KEY SHARE: only the former conflicts with a non-key UPDATE. No deadlock
# with the transition: it locks the campaign row first and the queue rows after, and the
# claim locks the campaign row first and queue rows only SKIP LOCKED (it never waits on them).
_CLAIM_SQL = """
WITH sending AS MATERIALIZED (
    SELECT id FROM campaigns WHERE id = %(cid)s AND status = 'Sending' FOR SHARE),
picked AS (
    DELETE FROM recipient_queue
    WHERE ctid = ANY(ARRAY(SELECT ctid FROM recipient_queue
                           WHERE campaign_id = %(cid)s AND NOT held
                             AND EXISTS (SELECT 1 FROM sending)
                           ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED))
    RETURNING id),
claimed AS (
    UPDATE recipients r SET stage = 'Sending', attempts = r.attempts + 1, lease_owner = %(me)s
    WHERE r.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING r.id, r.number, r.variables, r.attempts),
leased AS (
    INSERT INTO recipient_leases (owner, id, campaign_id)
    SELECT %(me)s, id, %(cid)s FROM picked),
counted AS (
    INSERT INTO campaign_counter_rows (campaign_id, node_id, pending, inflight)
    SELECT %(cid)s, %(me)s, -count(*), count(*) FROM picked HAVING count(*) > 0
    ON CONFLICT (campaign_id, node_id) DO UPDATE SET
        pending = campaign_counter_rows.pending + excluded.pending,
        inflight = campaign_counter_rows.inflight + excluded.inflight)
SELECT id, number, variables, attempts FROM claimed"""

# One statement for a batch of submit results: delete this node's leases (what is not found
# is stale), apply each answer, re-queue retries, store message ids, count on this node's
# rows. Returns (campaign, kind, n) for what was applied, and whether any receipt is parked.
_SUBMIT_SQL = """
WITH v AS (
    SELECT * FROM unnest(%(ids)b::bigint[], %(kinds)b::text[], %(esmes)b::text[],
                         %(statuses)b::text[], %(mids)b::text[], %(segs)b::int[],
                         %(errors)b::text[]) AS v(id, kind, esme, status, mids, segs, error)),
gone AS (
    DELETE FROM recipient_leases l
    WHERE l.owner = ANY(%(owners)b::text[]) AND l.id = ANY(%(ids)b::bigint[])
    RETURNING l.id, l.campaign_id),
done AS (
    SELECT v.*, gone.campaign_id FROM v JOIN gone USING (id)),
applied AS (
    UPDATE recipients r SET
        stage = CASE d.kind WHEN 'accepted' THEN 'Delivered' WHEN 'retry' THEN 'New'
                ELSE 'Failed' END,
        esme = d.esme, submit_status = d.status, error = d.error,
        message_ids = CASE WHEN d.kind = 'accepted' THEN d.mids ELSE r.message_ids END,
        segments = CASE WHEN d.kind = 'accepted' THEN d.segs ELSE r.segments END,
        sent_at_us = CASE WHEN d.kind = 'accepted' THEN %(now)s ELSE r.sent_at_us END,
        done_at_us = CASE WHEN d.kind IN ('failed', 'unknown') THEN %(now)s
                     ELSE r.done_at_us END,
        sms_result = CASE WHEN d.kind = 'unknown' THEN 'unknown' ELSE r.sms_result END,
        ambiguous = CASE WHEN d.kind = 'unknown' THEN 1 ELSE r.ambiguous END,
        lease_owner = CASE WHEN d.kind = 'retry' THEN NULL ELSE r.lease_owner END
    FROM done d WHERE r.id = d.id),
requeued AS (
    INSERT INTO recipient_queue (campaign_id, held, id)
    SELECT campaign_id, false, id FROM done WHERE kind = 'retry'),
stored AS (
    INSERT INTO message_ids (esme, message_id, recipient_id, segment)
    SELECT DISTINCT ON (m.esme, m.mid) m.esme, m.mid, m.rid, m.seg
    FROM unnest(%(m_esme)b::text[], %(m_mid)b::text[], %(m_rid)b::bigint[], %(m_seg)b::int[],
                %(m_ord)b::int[]) AS m(esme, mid, rid, seg, ord) JOIN gone ON gone.id = m.rid
    ORDER BY m.esme, m.mid, m.ord DESC
    ON CONFLICT (esme, message_id) DO UPDATE SET
        recipient_id = excluded.recipient_id, segment = excluded.segment),
per_campaign AS (
    SELECT campaign_id, count(*) AS n,
           count(*) FILTER (WHERE kind = 'accepted') AS sent,
           count(*) FILTER (WHERE kind = 'retry') AS retried,
           count(*) FILTER (WHERE kind IN ('failed', 'unknown')) AS failed,
           count(*) FILTER (WHERE kind = 'unknown') AS unknown
    FROM done GROUP BY campaign_id),
counted AS (
    INSERT INTO campaign_counter_rows (campaign_id, node_id, pending, inflight, sent, failed,
                                       unknown, ambiguous)
    SELECT campaign_id, %(me)s, retried, -n, sent, failed, unknown, unknown FROM per_campaign
    ON CONFLICT (campaign_id, node_id) DO UPDATE SET
        pending = campaign_counter_rows.pending + excluded.pending,
        inflight = campaign_counter_rows.inflight + excluded.inflight,
        sent = campaign_counter_rows.sent + excluded.sent,
        failed = campaign_counter_rows.failed + excluded.failed,
        unknown = campaign_counter_rows.unknown + excluded.unknown,
        ambiguous = campaign_counter_rows.ambiguous + excluded.ambiguous),
daily AS (
    INSERT INTO campaign_daily_rows (campaign_id, day, node_id, sent, delivered, failed)
    SELECT campaign_id, %(day)s, %(me)s, sent, 0, failed FROM per_campaign
    WHERE sent + failed > 0
    ON CONFLICT (campaign_id, day, node_id) DO UPDATE SET
        sent = campaign_daily_rows.sent + excluded.sent,
        failed = campaign_daily_rows.failed + excluded.failed)
SELECT d.campaign_id, d.kind, count(*)::int,
       EXISTS (SELECT 1 FROM unmatched_receipts) AS parked
FROM done d GROUP BY d.campaign_id, d.kind"""

# The scans that take a campaign's lowest queued ids (``ORDER BY id LIMIT n``: a claim, a
# release by count, a chunk of unsent marking) are planned with these. From statistics that
# do not know the campaign yet -- one just built, before autovacuum analyzes the table, which
# it does only once a tenth of the table changed -- PostgreSQL expects a few rows, reads the
# campaign's whole queue into a bitmap and sorts it, for every batch: a 2000-row claim of a
# 500k-recipient campaign took 140-195 ms instead of 17 ms, and a campaign's claims were
# quadratic in its size. Without bitmap scans and sorts the plan left is the primary key's
# order (campaign_id, held, id), which stops after n rows whatever the statistics say.
_QUEUE_ORDER_ON = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"
_QUEUE_ORDER_OFF = "RESET enable_bitmapscan; RESET enable_sort"


def queue_scan(cur: Cursor, sql: str, params: Any, *,
               last: bool = False) -> list[tuple[Any, ...]]:
    """Run ``sql``, one of the queue's ordered scans (see ``_QUEUE_ORDER_ON``), in the
    caller's transaction; return its rows. The rest of the transaction is planned as usual
    again, unless ``last`` (nothing follows before the commit)."""
    cur.execute(_QUEUE_ORDER_ON)
    cur.execute(sql, params)
    rows = cur.fetchall() if cur.description else []
    if not last:
        cur.execute(_QUEUE_ORDER_OFF)
    return rows


class PostgresDispatchPath(PostgresReceiptPath):
    """Mixin of ``PostgresStore``: needs ``_transact``, ``_statement``, ``node_id``, ``config``
    (the receipt path is ``PostgresReceiptPath``'s)."""

    config: StoreConfig

    def _statement(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # ------------------------------------------------------------------ claim

    def claim_for_send(self, campaign_id: int, limit: int,
                       now: datetime) -> list[ClaimedRecipient]:
        """Lease up to ``limit`` New recipients (lowest id first, skipping rows another node
        is claiming right now) to this node: stage Sending, attempts + 1, committed before
        returning. Nothing is leased unless the campaign is Sending, and never after a pause
        or cancel has committed (``_CLAIM_SQL``)."""
        if limit <= 0:
            return []
        params = {"cid": campaign_id, "n": limit, "me": self.node_id}
        rows = sorted(self._transact(lambda cur: queue_scan(cur, _CLAIM_SQL, params,
                                                            last=True)))
        return [ClaimedRecipient(r[0], r[1], unpack_variables(r[2]), r[3]) for r in rows]

    def in_flight_ids(self, campaign_id: int) -> list[int]:
        """Ids of the campaign's recipients this node holds the lease of (claimed, no
        submit result yet): what its route must hold in memory once its writes are durable."""
        return [r[0] for r in self._statement(
            "SELECT id FROM recipient_leases WHERE owner = %(me)s AND campaign_id = %(cid)s "
            "ORDER BY id", {"me": self.node_id, "cid": campaign_id})]

    # ------------------------------------------------------------------ submit results

    def record_submit_results(self, outcomes: Sequence[SubmitOutcome],
                              now: datetime) -> SubmitTally:
        """Apply the SMSC's answers (see ``dispatch.store.base``) to the recipients this node
        holds the lease of; any other row is ``stale``. Receipts that arrived before their
        message id was stored are applied right after, in a second transaction (a crash or a
        failure in between leaves them parked for ``retry_unmatched_receipts``); an exception
        from this method means no result was applied."""
        now_us = to_us(now)
        day = day_of(now_us)
        first: dict[int, SubmitOutcome] = {}
        for o in outcomes:
            first.setdefault(o.recipient_id, o)
        if not first:
            return SubmitTally()
        rows: list[tuple[Any, ...]] = []
        # (esme, id, recipient, segment, position in the batch). A reused id (recycled, or
        # folded by normalisation) belongs to the latest *applied* submit in the batch's order
        # (the order the answers came), as on SQLite: the statement keeps, per id, the last
        # row whose lease it deleted (a stale result stores nothing).
        mids: list[tuple[str, str, int, int, int]] = []
        for rid, o in first.items():
            if o.kind is SubmitKind.ACCEPTED:
                base = len(mids)
                mids.extend((o.esme, message_id_key(m), rid, i, base + i)
                            for i, m in enumerate(o.message_ids))
        for rid in sorted(first):
            o = first[rid]
            kind = o.kind
            if kind is SubmitKind.ACCEPTED:
                msg_ids = o.message_ids
                if len(msg_ids) > _MAX_SEGMENTS:
                    raise ValueError(f"{len(msg_ids)} segments exceed {_MAX_SEGMENTS}")
                rows.append((rid, kind.value, o.esme, o.submit_status or "ESME_ROK",
                             ",".join(msg_ids) or None, len(msg_ids), None))
            elif kind is SubmitKind.UNKNOWN:
                rows.append((rid, kind.value, o.esme, o.submit_status, None, 0,
                             o.error or "submit outcome unknown"))
            else:
                rows.append((rid, kind.value, o.esme, o.submit_status, None, 0, o.error))
        ids, kinds, esmes, statuses, mid_text, segs, errors = as_columns(
            rows, (I8, TX, TX, TX, TX, I4, TX))
        m_esme, m_mid, m_rid, m_seg, m_ord = as_columns(mids, (TX, TX, I8, I4, I4))
        params = {"ids": ids, "kinds": kinds, "esmes": esmes, "statuses": statuses,
                  "mids": mid_text, "segs": segs, "errors": errors,
                  "owners": Texts([self.node_id, ""]), "now": now_us, "day": day, "me": self.node_id,
                  "m_esme": m_esme, "m_mid": m_mid, "m_rid": m_rid, "m_seg": m_seg,
                  "m_ord": m_ord}

        def tally_of(result: list[tuple[Any, ...]]) -> tuple[Counter[str], set[int], bool]:
            tally: Counter[str] = Counter()
            retried: set[int] = set()
            parked = False
            for cid, kind, n, any_parked in result:
                tally["retried" if kind == "retry" else kind] += n
                if kind == "retry":
                    retried.add(cid)
                parked = parked or bool(any_parked)
            tally["stale"] = len(first) - sum(tally.values())
            return tally, retried, parked

        exhausted = {rid: o for rid, o in first.items()
                     if o.kind is SubmitKind.FAILED and o.exhausted_after}
        if not exhausted and not any(o.kind is SubmitKind.RETRY for o in first.values()):
            tally, _, parked = tally_of(self._statement(_SUBMIT_SQL, params))
        else:
            def body(cur: Cursor) -> tuple[Counter[str], bool]:
                leased: list[tuple[Any, ...]] = []
                if exhausted:
                    # The leases this batch will apply (held from here to the commit): only
                    # an applied failure, not a stale replay, is recorded as a job error.
                    cur.execute("SELECT l.id, l.campaign_id, r.line_no FROM recipient_leases l "
                                "JOIN recipients r ON r.id = l.id WHERE l.owner = ANY(%s) "
                                "AND l.id = ANY(%s) ORDER BY l.id FOR UPDATE OF l",
                                (params["owners"], sorted(exhausted)))
                    leased = cur.fetchall()
                cur.execute(_SUBMIT_SQL, params)
                tally, retried, parked = tally_of(cur.fetchall())
                if retried:
                    self._fail_expired_retries(cur, sorted(retried), now_us)
                if leased:
                    self._record_exhausted(cur, leased, exhausted, now_us)
                return tally, parked

            tally, parked = self._transact(body)
        if parked and mids:
            keys = sorted({(e, m) for e, m, _, _, _ in mids})

            def replay(cur: Cursor) -> int:
                deltas = Deltas(self.node_id)
                matched = self._replay_unmatched(cur, keys, now_us, deltas)
                deltas.flush(cur)
                return matched

            try:
                tally["receipts_matched"] = self._transact(replay)
            except psycopg.Error as exc:
                # The results are committed: raising now would make the caller apply them
                # again (and count them stale). The parked receipts stay parked for
                # ``retry_unmatched_receipts``.
                log.warning("parked receipts not replayed after submit results (%s); "
                            "the periodic retry will match them", type(exc).__name__)
        return SubmitTally(**{k: v for k, v in tally.items() if v})

    def _record_exhausted(self, cur: Cursor, leased: Sequence[tuple[Any, ...]],
                          outcomes: dict[int, SubmitOutcome], now_us: int) -> None:
        """Job errors for the retry exhaustions just applied ((id, campaign, line) of each):
        listed one by one up to ``retry_exhausted_errors_listed`` per campaign, the rest
        counted in its summary row. Nodes recording exhaustions of one campaign at once take
        turns (a transaction-scoped advisory lock per campaign, in campaign order), so the
        cap is exact and the summary row one."""
        cap = self.config.retry_exhausted_errors_listed
        by_campaign: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for rid, cid, line_no in leased:
            by_campaign[cid].append((rid, line_no))
        deltas = Deltas(self.node_id)
        for cid, items in sorted(by_campaign.items()):
            deltas.counters[cid]["job_errors"] += len(items)
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                        (_JOB_ERRORS_LOCK_CLASS, cid % 2**31))
            cur.execute("SELECT id, occurrences FROM campaign_job_errors WHERE campaign_id = %s "
                        "AND reason = %s AND line_no = 0", (cid, RETRY_EXHAUSTED))
            summary = cur.fetchone()
            room = 0
            if summary is None:
                cur.execute("SELECT COUNT(*) FROM (SELECT 1 FROM campaign_job_errors "
                            "WHERE campaign_id = %s AND reason = %s AND line_no > 0 LIMIT %s) x",
                            (cid, RETRY_EXHAUSTED, cap))
                row = cur.fetchone()
                room = max(0, cap - (int(row[0]) if row else 0))
            if room:
                cur.executemany(
                    "INSERT INTO campaign_job_errors (campaign_id, at_us, line_no, reason, "
                    "message) VALUES (%s, %s, %s, %s, %s)",
                    [(cid, now_us, line_no, RETRY_EXHAUSTED,
                      retry_exhausted_message(outcomes[rid])) for rid, line_no in items[:room]])
            more = len(items) - min(room, len(items))
            if not more:
                continue
            if summary is None:
                cur.execute("INSERT INTO campaign_job_errors (campaign_id, at_us, line_no, "
                            "reason, message, occurrences) VALUES (%s, %s, 0, %s, %s, %s)",
                            (cid, now_us, RETRY_EXHAUSTED, retry_exhausted_summary(more, cap),
                             more))
            else:
                n = int(summary[1]) + more
                cur.execute("UPDATE campaign_job_errors SET occurrences = %s, message = %s, "
                            "at_us = %s WHERE id = %s",
                            (n, retry_exhausted_summary(n, cap), now_us, summary[0]))
        deltas.flush(cur)

    def _fail_expired_retries(self, cur: Cursor, cids: Sequence[int], now_us: int) -> None:
        """A retry (or a release of messages never sent) that comes back after its campaign
        expired or was cancelled must not leave a New row in it: nothing claims from it."""
        cur.execute("SELECT id, status FROM campaigns WHERE id = ANY(%s) "
                    f"AND status IN {ENDED_UNSENT_SQL} ORDER BY id", (list(cids),))
        for cid, status in cur.fetchall():
            self._mark_unsent(cur, cid, status, now_us, held=False,
                              limit=self.config.unsent_mark_rows)

    # ------------------------------------------------------------------ recovery and expiry

    def recover_inflight(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        """Startup recovery (before any claim) of the Sending rows no live node is working
        on: this node's own (an earlier run with the same ``node_id``), those of nodes whose
        heartbeat is older than ``node_timeout_s`` or that stopped, and unowned ones. The rows
        of live nodes are theirs: a node starting next to them must not touch them.
        ``RESEND``: back to New; ``MARK_UNKNOWN``: Failed, unknown, ambiguous. Expired,
        Cancelled and Failed campaigns' New and Held recipients are then marked (RESEND sends
        some back; a database written by older code may hold a marking a crash cut short: it
        marked in a second transaction after the status)."""
        now_us = to_us(now)

        def body(cur: Cursor) -> RecoveryCounts:
            counts = self._resolve_sending(
                cur, policy, now_us,
                "(owner = '' OR owner = %s OR owner NOT IN ("
                "SELECT node_id FROM cluster_nodes WHERE state = 'live' "
                f"AND heartbeat_at_us >= {DB_NOW_US} - %s))",
                (self.node_id, int(self.config.node_timeout_s * 1_000_000)))
            # Also a Done Trigger campaign's Held rows (a crash between its finish and the
            # marking); it has nothing New left (it was finished with all released sent).
            # Up to unsent_mark_rows each: the engine marks the rest in chunks.
            cur.execute(_WITH_UNSENT_SQL)
            for cid, status in cur.fetchall():
                self._mark_unsent(cur, cid, status, now_us, limit=self.config.unsent_mark_rows)
            return counts

        return self._transact(body)

    def _resolve_sending(self, cur: Cursor, policy: RecoveryPolicy, now_us: int,
                         owner_clause: str, owner_params: Sequence[Any]) -> RecoveryCounts:
        """Apply ``policy`` to the in-flight rows whose lease owner matches ``owner_clause``
        (the leases are deleted); counters and daily rows follow in the caller's
        transaction."""
        cur.execute(f"DELETE FROM recipient_leases WHERE {owner_clause} "
                    "RETURNING id, campaign_id", owner_params)
        leased = sorted(cur.fetchall())
        ids = [rid for rid, _ in leased]
        if ids and policy is RecoveryPolicy.RESEND:
            cur.execute("UPDATE recipients SET stage = 'New', lease_owner = NULL "
                        "WHERE id = ANY(%s)", (ids,))
            cur.execute("INSERT INTO recipient_queue (campaign_id, held, id) "
                        "SELECT c, false, i FROM unnest(%b::bigint[], %b::bigint[]) AS v(i, c)",
                        as_columns(leased, (I8, I8)))
        elif ids:
            cur.execute(
                "UPDATE recipients SET stage = 'Failed', sms_result = 'unknown', "
                "ambiguous = 1, done_at_us = %s, "
                "error = 'in flight at restart: submit outcome unknown' WHERE id = ANY(%s)",
                (now_us, ids))
        by_campaign: Counter[int] = Counter(cid for _, cid in leased)
        day = day_of(now_us)
        if ids and policy is RecoveryPolicy.RESEND:
            # As for a late retry: nothing claims from an Expired or Cancelled campaign, so
            # what goes back to New there is marked.
            self._fail_expired_retries(cur, sorted(by_campaign), now_us)
        deltas = Deltas(self.node_id)
        for cid, n in by_campaign.items():
            if policy is RecoveryPolicy.RESEND:
                deltas.counters[cid].update(inflight=-n, pending=n)
            else:
                deltas.counters[cid].update(inflight=-n, failed=n, unknown=n, ambiguous=n)
                deltas.daily[(cid, day)]["failed"] += n
        deltas.flush(cur)
        total = sum(by_campaign.values())
        counts = dict(sorted(by_campaign.items()))
        if policy is RecoveryPolicy.RESEND:
            return RecoveryCounts(total, 0, counts)
        return RecoveryCounts(0, total, counts)

    def mark_unsent(self, campaign_id: int, now: datetime, limit: int | None = None) -> int:
        """Mark the campaign's unsent recipients Failed, as its status says (``unsent_errors``):
        an Expired one's New recipients "campaign expired" and Held ones (a Trigger campaign's,
        never triggered) "not triggered", both counted as expired; a Cancelled one's New and
        Held recipients "campaign cancelled". At most ``limit`` of them (None: all), New
        first, then Held, lowest ids first; returns how many (0: none left). The transition
        that ends a campaign marks the first ``unsent_mark_rows`` (``apply_transition``);
        this marks the rest chunk by chunk, and what was stored after the end (a build that
        raced a cancel)."""
        now_us = to_us(now)

        def body(cur: Cursor) -> int:
            cur.execute("SELECT status FROM campaigns WHERE id = %s", (campaign_id,))
            row = cur.fetchone()
            return (0 if row is None
                    else self._mark_unsent(cur, campaign_id, row[0], now_us, limit=limit))

        return self._transact(body)

    def campaigns_with_unsent(self) -> list[int]:
        """The ended campaigns that still hold recipients to mark (``marks_unsent``): an
        Expired, Cancelled or Failed one, or a Done Trigger one, with rows in
        ``recipient_queue`` (one index probe each)."""
        def body(cur: Cursor) -> list[int]:
            cur.execute(_WITH_UNSENT_SQL)
            return [int(r[0]) for r in cur.fetchall()]

        return self._transact(body)

    def _mark_unsent(self, cur: Cursor, campaign_id: int, status: str, now_us: int,
                     held: bool = True, limit: int | None = None) -> int:
        """``mark_unsent`` for a campaign in ``status``, inside the caller's transaction, at
        most ``limit`` rows (None: all); ``held=False`` leaves its Held recipients alone.
        One statement: the queue rows it takes (New before Held, lowest ids first: the
        queue's primary key order) mark their recipients and are counted in the server; no
        id comes to Python."""
        errors = unsent_errors(status)
        only_new = "" if held else " AND NOT held"
        # FOR UPDATE waits for a queue row another transaction holds (a release, a claim that
        # took it before the campaign ended) instead of marking it twice. LIMIT NULL: no limit.
        picked = ("DELETE FROM recipient_queue WHERE ctid = ANY(ARRAY("
                  "SELECT ctid FROM recipient_queue WHERE campaign_id = %(cid)s"
                  + only_new + " ORDER BY held, id LIMIT %(n)s FOR UPDATE)) "
                  "RETURNING id, held")
        row = queue_scan(
            cur, f"WITH picked AS ({picked}), "
            "marked AS (UPDATE recipients r SET stage = 'Failed', done_at_us = %(now)s, "
            "error = CASE WHEN p.held THEN %(held_error)s ELSE %(new_error)s END "
            "FROM picked p WHERE r.id = p.id) "
            "SELECT count(*), count(*) FILTER (WHERE held) FROM picked",
            {"cid": campaign_id, "n": limit, "now": now_us, "held_error": errors.held,
             "new_error": errors.new})
        n, n_held = (int(row[0][0]), int(row[0][1])) if row else (0, 0)
        if n:
            deltas = Deltas(self.node_id)
            deltas.counters[campaign_id].update(pending=-(n - n_held), held=-n_held,
                                                failed=n, expired=n if errors.expired else 0)
            deltas.daily[(campaign_id, day_of(now_us))]["failed"] += n
            deltas.flush(cur)
        return n
