"""The dispatch path of the PostgreSQL store: claim, submit results, receipts, recovery, expiry.

The rules are the SQLite store's (``dispatch.store.base``); what differs is that several nodes
run them at once on the same rows:

* ``claim_for_send`` picks New rows with ``FOR UPDATE SKIP LOCKED`` and stamps them with this
  node's id (``lease_owner``) in the same statement: two nodes claiming from one campaign get
  disjoint rows and neither waits for the other.
* ``record_submit_results`` locks the rows (id order) and applies an answer only to a row that
  is still Sending *and* leased by this node. A row a takeover already resolved (or re-leased to
  another node under ``RESEND``) is ``stale``: a node that was presumed dead cannot overwrite
  what the cluster decided about its rows (fencing by lease owner).
* ``record_receipts`` locks the recipients it changes (id order) before the read-modify-write
  of the per-segment mask, since receipts of one multipart message can arrive on two nodes'
  binds at once; each receipt bit is applied once, so a replay is harmless.
* Parked receipts (their message id not stored yet) are claimed with ``SKIP LOCKED``, so two
  nodes never apply the same parked receipt; one another node's commit raced past is matched by
  the next ``retry_unmatched_receipts`` (the cluster maintenance loop calls it).

Every write is one transaction through ``_transact`` (retried whole on deadlock). Counter and
daily rows are updated last, in key order, keeping their row locks short.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from dispatch.store.base import (
    COUNTER_FIELDS,
    ClaimedRecipient,
    Receipt,
    RecoveryCounts,
    RecoveryPolicy,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
    SubmitTally,
)
from dispatch.store.rows import ReceiptRow, day_of, merge_receipts, opt_us, to_us, unpack_variables

Cursor = psycopg.Cursor[tuple[Any, ...]]
R = TypeVar("R")

_MAX_SEGMENTS = 63  # bits of the per-recipient receipt mask (a signed 64-bit column)
_REPLAY_BATCH = 10_000
#: The database server's clock in UTC microseconds: one clock for every node's heartbeat.
DB_NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

_COUNTER_SQL = ("UPDATE campaign_counters SET "
                + ", ".join(f"{f} = {f} + %s" for f in COUNTER_FIELDS)
                + " WHERE campaign_id = %s")
_DAILY_SQL = (
    "INSERT INTO campaign_daily_activity (campaign_id, day, sent, delivered, failed) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (campaign_id, day) DO UPDATE SET "
    "sent = campaign_daily_activity.sent + excluded.sent, "
    "delivered = campaign_daily_activity.delivered + excluded.delivered, "
    "failed = campaign_daily_activity.failed + excluded.failed")


_CLAIM_SQL = (
    "WITH picked AS (SELECT id FROM recipients WHERE campaign_id = %s AND stage = 'New' "
    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
    "UPDATE recipients r SET stage = 'Sending', attempts = r.attempts + 1, lease_owner = %s "
    "FROM picked WHERE r.id = picked.id RETURNING r.id, r.number, r.variables, r.attempts")
_ACCEPTED_SQL = (
    "UPDATE recipients r SET stage = 'Delivered', esme = v.esme, submit_status = v.status, "
    "message_ids = v.mids, sent_at_us = %s, segments = v.segs, error = NULL "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::int[]) "
    "AS v(id, esme, status, mids, segs) WHERE r.id = v.id")
_FAILED_SQL = (
    "UPDATE recipients r SET stage = 'Failed', esme = v.esme, submit_status = v.status, "
    "error = v.error, done_at_us = %s {extra} "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
    "AS v(id, esme, status, error) WHERE r.id = v.id")
_RETRY_SQL = (
    "UPDATE recipients r SET stage = 'New', esme = v.esme, submit_status = v.status, "
    "error = v.error, lease_owner = NULL "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
    "AS v(id, esme, status, error) WHERE r.id = v.id")
_MIDS_SQL = (
    "INSERT INTO message_ids (esme, message_id, recipient_id, segment) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[]) "
    "ON CONFLICT (esme, message_id) DO UPDATE SET "
    "recipient_id = excluded.recipient_id, segment = excluded.segment")
_RECEIPT_UPDATE_SQL = (
    "UPDATE recipients r SET sms_result = v.result, receipt_stat = v.stat, "
    "receipt_err = v.err, dlr_mask = v.mask, dlr_delivered = v.dlv, done_at_us = v.done "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::int[], "
    "%s::bigint[]) AS v(id, result, stat, err, mask, dlv, done) WHERE r.id = v.id")
_PARK_SQL = (
    "INSERT INTO unmatched_receipts (esme, message_id, stat, err, sms_result, done_at_us, "
    "received_at_us) SELECT *, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::bigint[])")
_PARKED_COLUMNS = "id, esme, message_id, stat, err, sms_result, done_at_us"


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Row tuples -> one list per column (the arrays ``unnest`` turns back into rows)."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[]] * width


class Deltas:
    """Counter and daily-activity changes of one transaction, flushed once at its end in key
    order (campaign id, then (campaign id, day)) so concurrent nodes lock them in one order."""

    def __init__(self) -> None:
        self.counters: dict[int, Counter[str]] = defaultdict(Counter)
        self.daily: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)

    def flush(self, cur: Cursor) -> None:
        rows = [(*(c[f] for f in COUNTER_FIELDS), cid)
                for cid, c in sorted(self.counters.items()) if any(c.values())]
        if rows:
            cur.executemany(_COUNTER_SQL, rows)
        daily = [(cid, day, c["sent"], c["delivered"], c["failed"])
                 for (cid, day), c in sorted(self.daily.items()) if any(c.values())]
        if daily:
            cur.executemany(_DAILY_SQL, daily)


class PostgresDispatchPath:
    """Mixin of ``PostgresStore``: needs ``_transact``, ``node_id`` and ``config``."""

    node_id: str
    config: StoreConfig

    def _transact(self, body: Callable[[Cursor], R]) -> R:
        raise NotImplementedError

    # ------------------------------------------------------------------ claim

    def claim_for_send(self, campaign_id: int, limit: int,
                       now: datetime) -> list[ClaimedRecipient]:
        """Lease up to ``limit`` New recipients (lowest id first, skipping rows another node
        is claiming right now) to this node: stage Sending, attempts + 1, committed before
        returning."""
        if limit <= 0:
            return []

        def body(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(_CLAIM_SQL, (campaign_id, limit, self.node_id))
            rows = cur.fetchall()
            if rows:
                n = len(rows)
                cur.execute("UPDATE campaign_counters SET pending = pending - %s, "
                            "inflight = inflight + %s WHERE campaign_id = %s",
                            (n, n, campaign_id))
            return rows

        rows = sorted(self._transact(body))
        return [ClaimedRecipient(r[0], r[1], unpack_variables(r[2]), r[3]) for r in rows]

    # ------------------------------------------------------------------ submit results

    def record_submit_results(self, outcomes: Sequence[SubmitOutcome],
                              now: datetime) -> SubmitTally:
        """Apply the SMSC's answers (see ``dispatch.store.base``) to this node's Sending rows;
        any other row is ``stale``. Receipts that arrived before their message id was stored
        are applied here, in the same transaction."""
        now_us = to_us(now)
        day = day_of(now_us)
        first: dict[int, SubmitOutcome] = {}
        for o in outcomes:
            first.setdefault(o.recipient_id, o)
        if not first:
            return SubmitTally()
        ids = sorted(first)
        for o in first.values():
            if len(o.message_ids) > _MAX_SEGMENTS:
                raise ValueError(f"{len(o.message_ids)} segments exceed {_MAX_SEGMENTS}")

        def body(cur: Cursor) -> SubmitTally:
            tally: Counter[str] = Counter()
            cur.execute("SELECT id, campaign_id, stage, lease_owner FROM recipients "
                        "WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,))
            state = {rid: (cid, stage, owner) for rid, cid, stage, owner in cur.fetchall()}
            accepted: list[tuple[Any, ...]] = []
            mids: dict[tuple[str, str], tuple[int, int]] = {}
            failed: list[tuple[Any, ...]] = []
            retried: list[tuple[Any, ...]] = []
            unknown: list[tuple[Any, ...]] = []
            per_kind: Counter[tuple[int, SubmitKind]] = Counter()
            me = self.node_id
            for rid, o in first.items():
                st = state.get(rid)
                if st is None or st[1] != "Sending" or (st[2] is not None and st[2] != me):
                    tally["stale"] += 1
                    continue
                kind = o.kind
                per_kind[(st[0], kind)] += 1
                if kind is SubmitKind.ACCEPTED:
                    msg_ids = o.message_ids
                    accepted.append((rid, o.esme, o.submit_status or "ESME_ROK",
                                     ",".join(msg_ids) or None, len(msg_ids)))
                    for i, m in enumerate(msg_ids):
                        mids[(o.esme, m)] = (rid, i)  # a reused id: the latest submit wins
                elif kind is SubmitKind.RETRY:
                    retried.append((rid, o.esme, o.submit_status, o.error))
                elif kind is SubmitKind.UNKNOWN:
                    unknown.append((rid, o.esme, o.submit_status,
                                    o.error or "submit outcome unknown"))
                else:
                    failed.append((rid, o.esme, o.submit_status, o.error))
            deltas = Deltas()
            for (cid, kind), n in per_kind.items():
                c = deltas.counters[cid]
                c["inflight"] -= n
                tally[kind.value if kind is not SubmitKind.RETRY else "retried"] += n
                if kind is SubmitKind.ACCEPTED:
                    c["sent"] += n
                    deltas.daily[(cid, day)]["sent"] += n
                elif kind is SubmitKind.RETRY:
                    c["pending"] += n
                else:
                    c["failed"] += n
                    deltas.daily[(cid, day)]["failed"] += n
                    if kind is SubmitKind.UNKNOWN:
                        c["unknown"] += n
                        c["ambiguous"] += n
            if accepted:
                cur.execute(_ACCEPTED_SQL, (now_us, *_columns(accepted, 5)))
            if mids:
                cur.execute(_MIDS_SQL, _columns(
                    [(e, m, rid, seg) for (e, m), (rid, seg) in sorted(mids.items())], 4))
            if failed:
                cur.execute(_FAILED_SQL.format(extra=""),
                            (now_us, *_columns(failed, 4)))
            if unknown:
                cur.execute(_FAILED_SQL.format(
                    extra=", sms_result = 'unknown', ambiguous = 1"),
                    (now_us, *_columns(unknown, 4)))
            if retried:
                cur.execute(_RETRY_SQL, _columns(retried, 4))
                # A retry (or a release of messages never sent) that comes back after its
                # campaign expired must not leave a New row in an Expired campaign.
                cids = sorted({cid for cid, kind in per_kind if kind is SubmitKind.RETRY})
                cur.execute("SELECT id FROM campaigns WHERE id = ANY(%s) "
                            "AND status = 'Expired'", (cids,))
                for (cid,) in cur.fetchall():
                    cur.execute("UPDATE recipients SET stage = 'Failed', "
                                "error = 'campaign expired', done_at_us = %s "
                                "WHERE campaign_id = %s AND stage = 'New'", (now_us, cid))
                    n = cur.rowcount
                    deltas.counters[cid].update(pending=-n, failed=n, expired=n)
                    deltas.daily[(cid, day)]["failed"] += n
            if mids:
                tally["receipts_matched"] = self._replay_unmatched(cur, list(mids), now_us,
                                                                   deltas)
            deltas.flush(cur)
            return SubmitTally(**tally)

        return self._transact(body)

    # ------------------------------------------------------------------ receipts

    def record_receipts(self, receipts: Sequence[Receipt], now: datetime) -> int:
        """Match receipts to recipients by (esme, message id) through the shared table, so a
        receipt may arrive on any node's bind; return how many matched. Unmatched ones are
        parked in ``unmatched_receipts`` (not lost)."""
        now_us = to_us(now)
        rows: list[ReceiptRow] = [
            (r.esme, r.message_id, r.stat, r.err,
             None if r.sms_result is None else r.sms_result.value, opt_us(r.done_at))
            for r in receipts]
        if not rows:
            return 0

        def body(cur: Cursor) -> int:
            deltas = Deltas()
            matched, unmatched = self._apply_receipts(cur, rows, now_us, deltas)
            if unmatched:
                cur.execute(_PARK_SQL, (now_us, *_columns(unmatched, 6)))
            deltas.flush(cur)
            return matched

        return self._transact(body)

    def _apply_receipts(self, cur: Cursor, receipts: Sequence[ReceiptRow], now_us: int,
                        deltas: Deltas) -> tuple[int, list[ReceiptRow]]:
        by_esme: dict[str, set[str]] = defaultdict(set)
        for r in receipts:
            by_esme[r[0]].add(r[1])
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for esme, ids in by_esme.items():
            # One primary-key probe per id: a LATERAL subquery with LIMIT 1 cannot be
            # flattened into a join, so neither a stale-statistics range scan
            # (``message_id = ANY(..)``) nor a generic plan's hash join over the whole
            # table (a plain join, once psycopg prepares it) can be chosen; both cost
            # O(table) per batch, which grows with every message sent.
            cur.execute("SELECT k.mid, m.recipient_id, m.segment "
                        "FROM unnest(%s::text[]) AS k(mid), LATERAL (SELECT recipient_id, "
                        "segment FROM message_ids WHERE esme = %s AND message_id = k.mid "
                        "LIMIT 1) AS m", (list(ids), esme))
            for mid, rid, seg in cur.fetchall():
                found[(esme, mid)] = (rid, seg)
        unmatched = [r for r in receipts if (r[0], r[1]) not in found]
        if not found:
            return 0, unmatched
        # recipient id -> [campaign_id, segments, dlr_mask, delivered_segs, sms_result, stat,
        #                  err, done_at_us]
        cur.execute("SELECT id, campaign_id, segments, dlr_mask, dlr_delivered, sms_result, "
                    "receipt_stat, receipt_err, done_at_us FROM recipients "
                    "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                    (sorted({v[0] for v in found.values()}),))
        state: dict[int, list[Any]] = {row[0]: list(row[1:]) for row in cur.fetchall()}
        matched, changed = merge_receipts(receipts, found, state, now_us, deltas.counters,
                                          deltas.daily)
        if changed:
            cur.execute(_RECEIPT_UPDATE_SQL, _columns(
                [(rid, s[4], s[5], s[6], s[2], s[3], s[7])
                 for rid in sorted(changed) for s in (state[rid],)], 7))
        return matched, unmatched

    def _replay_unmatched(self, cur: Cursor, keys: Sequence[tuple[str, str]], now_us: int,
                          deltas: Deltas) -> int:
        """Apply parked receipts whose (esme, message id) is in ``keys``; delete them."""
        by_esme: dict[str, list[str]] = defaultdict(list)
        for esme, mid in keys:
            by_esme[esme].append(mid)
        parked: list[tuple[Any, ...]] = []
        for esme, ids in by_esme.items():
            cur.execute(f"SELECT {_PARKED_COLUMNS} FROM unmatched_receipts "
                        "WHERE esme = %s AND message_id = ANY(%s::text[]) "
                        "ORDER BY id FOR UPDATE SKIP LOCKED", (esme, ids))
            parked.extend(cur.fetchall())
        return self._apply_parked(cur, parked, now_us, deltas)

    def _apply_parked(self, cur: Cursor, parked: Sequence[tuple[Any, ...]], now_us: int,
                      deltas: Deltas) -> int:
        if not parked:
            return 0
        matched, still = self._apply_receipts(cur, [tuple(p[1:]) for p in parked],
                                              now_us, deltas)
        still_keys = {(u[0], u[1]) for u in still}
        done = [p[0] for p in parked if (p[1], p[2]) not in still_keys]
        if done:
            cur.execute("DELETE FROM unmatched_receipts WHERE id = ANY(%s)", (done,))
        return matched

    def retry_unmatched_receipts(self, now: datetime) -> int:
        """Try parked receipts again (up to 10000 per call, rows another node is retrying
        are skipped); return how many matched now."""
        now_us = to_us(now)

        def body(cur: Cursor) -> int:
            cur.execute(f"SELECT {_PARKED_COLUMNS} FROM unmatched_receipts ORDER BY id "
                        "LIMIT %s FOR UPDATE SKIP LOCKED", (_REPLAY_BATCH,))
            deltas = Deltas()
            matched = self._apply_parked(cur, cur.fetchall(), now_us, deltas)
            deltas.flush(cur)
            return matched

        return self._transact(body)

    def purge_unmatched_receipts(self, older_than: datetime) -> int:
        def body(cur: Cursor) -> int:
            cur.execute("DELETE FROM unmatched_receipts WHERE received_at_us < %s",
                        (to_us(older_than),))
            return cur.rowcount

        return self._transact(body)

    def unmatched_receipt_count(self) -> int:
        def body(cur: Cursor) -> int:
            cur.execute("SELECT COUNT(*) FROM unmatched_receipts")
            row = cur.fetchone()
            return int(row[0]) if row else 0

        return self._transact(body)

    # ------------------------------------------------------------------ recovery and expiry

    def recover_inflight(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        """Startup recovery (before any claim) of the Sending rows no live node is working
        on: this node's own (an earlier run with the same ``node_id``), those of nodes whose
        heartbeat is older than ``node_timeout_s`` or that stopped, and unowned ones. The rows
        of live nodes are theirs: a node starting next to them must not touch them.
        ``RESEND``: back to New; ``MARK_UNKNOWN``: Failed, unknown, ambiguous."""
        return self._transact(lambda cur: self._resolve_sending(
            cur, policy, to_us(now),
            "(lease_owner IS NULL OR lease_owner = %s OR lease_owner NOT IN ("
            "SELECT node_id FROM cluster_nodes WHERE state = 'live' "
            f"AND heartbeat_at_us >= {DB_NOW_US} - %s))",
            (self.node_id, int(self.config.node_timeout_s * 1_000_000))))

    @staticmethod
    def _resolve_sending(cur: Cursor, policy: RecoveryPolicy, now_us: int, owner_clause: str,
                         owner_params: Sequence[Any]) -> RecoveryCounts:
        """Apply ``policy`` to the Sending rows matching ``owner_clause``; counters and daily
        rows follow in the caller's transaction."""
        if policy is RecoveryPolicy.RESEND:
            cur.execute(f"UPDATE recipients SET stage = 'New', lease_owner = NULL "
                        f"WHERE stage = 'Sending' AND {owner_clause} RETURNING campaign_id",
                        owner_params)
        else:
            cur.execute(
                "UPDATE recipients SET stage = 'Failed', sms_result = 'unknown', "
                "ambiguous = 1, done_at_us = %s, "
                "error = 'in flight at restart: submit outcome unknown' "
                f"WHERE stage = 'Sending' AND {owner_clause} RETURNING campaign_id",
                (now_us, *owner_params))
        by_campaign: Counter[int] = Counter(cid for (cid,) in cur.fetchall())
        deltas = Deltas()
        day = day_of(now_us)
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

    def expire_remaining(self, campaign_id: int, now: datetime) -> int:
        """Mark the campaign's unsent recipients Failed: New ones "campaign expired", Held ones
        (a Trigger campaign's, never triggered) "not triggered". Both count as expired."""
        now_us = to_us(now)

        def body(cur: Cursor) -> int:
            cur.execute("UPDATE recipients SET stage = 'Failed', error = CASE stage "
                        "WHEN 'New' THEN 'campaign expired' ELSE 'not triggered' END, "
                        "done_at_us = %s WHERE campaign_id = %s AND stage IN ('New', 'Held') "
                        "RETURNING stage = 'Failed' AND error = 'campaign expired'",
                        (now_us, campaign_id))
            was_new = [r[0] for r in cur.fetchall()]
            n_new = sum(was_new)
            n = len(was_new)
            deltas = Deltas()
            deltas.counters[campaign_id].update(pending=-n_new, held=-(n - n_new), failed=n,
                                                expired=n)
            deltas.daily[(campaign_id, day_of(now_us))]["failed"] += n
            deltas.flush(cur)
            return n

        return self._transact(body)
