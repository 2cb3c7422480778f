"""The receipt path of the PostgreSQL store: receipts matched to recipients by message id
through the shared ``message_ids`` table, so a receipt may arrive on any node's bind.

``record_receipts`` locks the recipients it changes (id order) before the read-modify-write of
the per-segment mask, since receipts of one multipart message can arrive on two nodes' binds
at once; each receipt bit is applied once, so a replay is harmless. Parked receipts (their
message id not stored yet) are claimed with ``SKIP LOCKED``, so two nodes never apply the same
parked receipt; one another node's commit raced past is matched by the next
``retry_unmatched_receipts`` (the cluster maintenance loop calls it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from dispatch.store.base import Receipt
from dispatch.store.postgres_batches import (
    I4,
    I8,
    TX,
    Cursor,
    Deltas,
    Write,
    as_columns,
    combined,
)
from dispatch.store.rows import ReceiptRow, merge_receipts, receipt_rows, to_us

R = TypeVar("R")

_REPLAY_BATCH = 10_000

# Receipts: the message-id lookup and the recipients' state, locked in id order. One
# primary-key probe per id (a LATERAL subquery with LIMIT 1 cannot be flattened into a join),
# so neither a stale-statistics range scan nor a generic plan's hash join over the whole
# ``message_ids`` table (O(table) per batch) can be chosen.
_RECEIPT_LOOKUP_SQL = (
    "SELECT k.esme, k.mid, m.recipient_id, m.segment, r.campaign_id, r.segments, r.dlr_mask, "
    "r.dlr_delivered, r.sms_result, r.receipt_stat, r.receipt_err, r.done_at_us "
    "FROM unnest(%b::text[], %b::text[]) AS k(esme, mid), "
    "LATERAL (SELECT recipient_id, segment FROM message_ids "
    "WHERE esme = k.esme AND message_id = k.mid LIMIT 1) AS m "
    "JOIN recipients r ON r.id = m.recipient_id ORDER BY r.id FOR UPDATE OF r")
_RECEIPT_UPDATE_SQL = (
    "UPDATE recipients r SET sms_result = v.result, receipt_stat = v.stat, "
    "receipt_err = v.err, dlr_mask = v.mask, dlr_delivered = v.dlv, done_at_us = v.done "
    "FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::int[], "
    "%b::bigint[]) AS v(id, result, stat, err, mask, dlv, done) WHERE r.id = v.id")
_PARK_SQL = (
    "INSERT INTO unmatched_receipts (esme, message_id, stat, err, sms_result, done_at_us, "
    "received_at_us) SELECT *, %s FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::text[], %b::bigint[])")
_PARKED_COLUMNS = "id, esme, message_id, stat, err, sms_result, done_at_us"


class PostgresReceiptPath:
    """Mixin of ``PostgresStore`` (through ``PostgresDispatchPath``): needs ``_transact`` and
    ``node_id``."""

    node_id: str

    def _transact(self, body: Callable[[Cursor], R]) -> R:
        raise NotImplementedError

    def record_receipts(self, receipts: Sequence[Receipt], now: datetime) -> int:
        """Match receipts to recipients by (esme, message id) through the shared table, so a
        receipt may arrive on any node's bind; return how many matched. Unmatched ones are
        parked in ``unmatched_receipts`` (not lost)."""
        return self.record_receipt_rows(receipt_rows(receipts), now)

    def record_receipt_rows(self, rows: Sequence[ReceiptRow], now: datetime) -> int:
        """``record_receipts`` of rows already in the stores' form (``rows.receipt_rows``)."""
        now_us = to_us(now)
        if not rows:
            return 0

        def body(cur: Cursor) -> int:
            deltas = Deltas(self.node_id)
            matched, unmatched, writes = self._apply_receipts(cur, rows, now_us, deltas)
            if unmatched:
                writes.append((_PARK_SQL,
                               [now_us, *as_columns(unmatched, (TX, TX, TX, TX, TX, I8))]))
            combined(cur, writes + deltas.writes())
            return matched

        return self._transact(body)

    def _apply_receipts(self, cur: Cursor, receipts: Sequence[ReceiptRow], now_us: int,
                        deltas: Deltas) -> tuple[int, list[ReceiptRow], list[Write]]:
        """Match and merge; returns (matched, unmatched, the recipient update to run)."""
        keys = sorted({(r[0], r[1]) for r in receipts})
        cur.execute(_RECEIPT_LOOKUP_SQL, as_columns(keys, (TX, TX)))
        found: dict[tuple[str, str], tuple[int, int]] = {}
        # recipient id -> [campaign_id, segments, dlr_mask, delivered_segs, sms_result, stat,
        #                  err, done_at_us]
        state: dict[int, list[Any]] = {}
        for esme, mid, rid, seg, *rest in cur.fetchall():
            found[(esme, mid)] = (rid, seg)
            state.setdefault(rid, rest)
        unmatched = [r for r in receipts if (r[0], r[1]) not in found]
        if not found:
            return 0, unmatched, []
        matched, changed = merge_receipts(receipts, found, state, now_us, deltas.counters,
                                          deltas.daily)
        if not changed:
            return matched, unmatched, []
        columns = as_columns([(rid, s[4], s[5], s[6], s[2], s[3], s[7])
                              for rid in sorted(changed) for s in (state[rid],)],
                             (I8, TX, TX, TX, I8, I4, I8))
        return matched, unmatched, [(_RECEIPT_UPDATE_SQL, columns)]

    def _replay_unmatched(self, cur: Cursor, keys: Sequence[tuple[str, str]], now_us: int,
                          deltas: Deltas) -> int:
        """Apply parked receipts whose (esme, message id) is in ``keys``; delete them."""
        esmes, mids = as_columns(sorted(keys), (TX, TX))
        cur.execute(f"SELECT {_PARKED_COLUMNS} FROM unmatched_receipts u "
                    "WHERE (esme, message_id) IN (SELECT * FROM unnest(%b::text[], %b::text[])) "
                    "ORDER BY id FOR UPDATE SKIP LOCKED", (esmes, mids))
        return self._apply_parked(cur, cur.fetchall(), now_us, deltas)

    def _apply_parked(self, cur: Cursor, parked: Sequence[tuple[Any, ...]], now_us: int,
                      deltas: Deltas) -> int:
        if not parked:
            return 0
        matched, still, writes = self._apply_receipts(
            cur, [tuple(p[1:]) for p in parked], now_us, deltas)
        still_keys = {(u[0], u[1]) for u in still}
        done = [p[0] for p in parked if (p[1], p[2]) not in still_keys]
        if done:
            writes.append(("DELETE FROM unmatched_receipts WHERE id = ANY(%s)", [done]))
        combined(cur, writes)
        return matched

    #: Where the next ``retry_unmatched_receipts`` goes on (a parked id; 0: from the start).
    _retry_after = 0

    def retry_unmatched_receipts(self, now: datetime) -> int:
        """Try parked receipts again (up to 10000 per call, rows another node is retrying
        are skipped); return how many matched now. Successive calls walk the whole table in
        id order and then start over, so receipts that never match (as many as they may be)
        cannot keep newer ones from a retry."""
        now_us = to_us(now)

        def body(cur: Cursor) -> tuple[int, int]:
            cur.execute(f"SELECT {_PARKED_COLUMNS} FROM unmatched_receipts WHERE id > %s "
                        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                        (self._retry_after, _REPLAY_BATCH))
            parked = cur.fetchall()
            deltas = Deltas(self.node_id)
            matched = self._apply_parked(cur, parked, now_us, deltas)
            deltas.flush(cur)
            return matched, parked[-1][0] if len(parked) >= _REPLAY_BATCH else 0

        matched, self._retry_after = self._transact(body)
        return matched

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
