"""The dispatch path of the SQLite store: claim, submit results, receipts, recovery, expiry.

Every method is one ``BEGIN IMMEDIATE`` transaction over a whole batch: a SELECT that reads the
rows' current state, UPDATEs by primary key, and one counters UPDATE per campaign touched.
Counter deltas are computed from the rows' state read inside the same transaction, so a
replayed or stale result can never skew them.

The batch's rows are written in blocks, one statement for up to 64 rows (``_write_blocks``:
``WITH v (...) AS (VALUES (...), (...)) UPDATE recipients ... FROM v``, a multi-row INSERT),
not one statement per row: each execution costs the sqlite3 module about a microsecond of its
own (reset, binding, letting go of the GIL around the step and taking it back), about as much
as SQLite's rewrite of the row. Measured on a receipt batch's UPDATE: 3.2 us a row by
``executemany``, 2.4 us in blocks. ``UPDATE ... FROM`` needs SQLite 3.33; an older SQLite
updates one statement a row (``_RowUpdate``).
A receipt batch reads each message id's recipient with it, in one SELECT joining the two
tables.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from functools import cache
from itertools import chain
from typing import Any

from dispatch.store.base import (
    COUNTER_FIELDS,
    ENDED_UNSENT_SQL,
    RETRY_EXHAUSTED,
    ClaimedRecipient,
    Receipt,
    RecoveryCounts,
    RecoveryPolicy,
    StoreConfig,
    SubmitOutcome,
    SubmitTally,
    retry_exhausted_message,
    retry_exhausted_summary,
    unsent_errors,
)
from dispatch.store.rows import (
    ClaimedRow,
    ReceiptRow,
    SubmitRow,
    day_of,
    merge_receipts,
    message_id_key,
    receipt_rows,
    to_us,
    unpack_variables,
)

_MAX_SEGMENTS = 63  # bits of the per-recipient receipt mask (a signed 64-bit column)
_IN_CHUNK = 900  # ids per IN (...) list: under every SQLite build's variable limit
_REPLAY_BATCH = 10_000

_COUNTER_SQL = ("UPDATE campaign_counters SET "
                + ", ".join(f"{f} = {f} + ?" for f in COUNTER_FIELDS)
                + " WHERE campaign_id = ?")
_DAILY_SQL = (
    "INSERT INTO campaign_daily_activity (campaign_id, day, sent, delivered, failed) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign_id, day) DO UPDATE SET "
    "sent = campaign_daily_activity.sent + excluded.sent, "
    "delivered = campaign_daily_activity.delivered + excluded.delivered, "
    "failed = campaign_daily_activity.failed + excluded.failed")
# The ended campaigns with recipients still to mark (``marks_unsent``), from their counters.
_WITH_UNSENT_SQL = (
    "SELECT c.id, c.status FROM campaigns c JOIN campaign_counters k ON k.campaign_id = c.id "
    f"WHERE (c.status IN {ENDED_UNSENT_SQL} AND k.pending + k.held > 0) "
    "OR (c.status = 'Done' AND c.mode = 'Trigger' AND k.held > 0) ORDER BY c.id")


# The lengths an IN (...) list is padded up to. Each distinct length is another statement
# text, and the sqlite3 module keeps up to 128 prepared statements per connection: with the
# exact lengths of every batch, those cached statements (hundreds of placeholders each) grew the
# store's memory by ~8 MB over a 200k-recipient campaign. Padded to these, a call site has at
# most six statements.
_IN_LENGTHS = (1, 4, 16, 64, 256, _IN_CHUNK)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``items`` in IN-list chunks, the last one padded with its own last item up to one of
    ``_IN_LENGTHS`` (a value twice in an IN list matches as once)."""
    for i in range(0, len(items), _IN_CHUNK):
        chunk = items[i:i + _IN_CHUNK]
        size = next(n for n in _IN_LENGTHS if n >= len(chunk))
        yield chunk if size == len(chunk) else [*chunk, *[chunk[-1]] * (size - len(chunk))]


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


# The rows per statement of a block write (see the module doc), largest first. A batch goes in
# blocks of 64 and its tail in smaller ones (at most three of each size), so a call site has
# four statement texts whatever the batch's length (``_IN_LENGTHS`` says why few). Blocks of
# 200 measured no faster than 64.
_BLOCK_LENGTHS = (64, 16, 4, 1)


@cache
def _block_sql(template: str, width: int, rows: int) -> str:
    """``template`` with ``{values}`` made ``rows`` value tuples of ``width`` placeholders."""
    one = "(" + _placeholders(width) + ")"
    return template.format(values=",".join([one] * rows))


def _write_blocks(cur: sqlite3.Cursor, template: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``template`` (SQL with ``{values}`` where a VALUES list goes) once per block of
    ``rows``, block after block in their order."""
    i, total = 0, len(rows)
    while i < total:
        size = next(n for n in _BLOCK_LENGTHS if n <= total - i)
        cur.execute(_block_sql(template, len(rows[i]), size),
                    list(chain.from_iterable(rows[i:i + size])))
        i += size


#: SQLite 3.33 added ``UPDATE ... FROM``. An older one (RHEL 8's is 3.26) updates one statement
#: a row, as before the block writes: the same rows, ~0.8 us a row slower.
UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)


class _RowUpdate:
    """An UPDATE of ``recipients`` by id giving each row its own values: ``columns`` set from
    the row (whose first value is the id), ``fixed`` the assignments the same for every row.
    ``write`` runs it in blocks of rows (``UPDATE ... FROM`` a VALUES list), or one statement
    a row on an SQLite without ``UPDATE ... FROM``."""

    def __init__(self, columns: tuple[str, ...], fixed: str = "") -> None:
        assigns = ", ".join([*(f"{c} = v.{c}" for c in columns), *([fixed] if fixed else [])])
        self.block = (f"WITH v (rid, {', '.join(columns)}) AS (VALUES {{values}}) "
                      f"UPDATE recipients SET {assigns} FROM v WHERE recipients.id = v.rid")
        assigns = ", ".join([*(f"{c} = ?" for c in columns), *([fixed] if fixed else [])])
        self.one = f"UPDATE recipients SET {assigns} WHERE id = ?"

    def write(self, cur: sqlite3.Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
        if UPDATE_FROM:
            _write_blocks(cur, self.block, rows)
        elif rows:
            cur.executemany(self.one, [(*r[1:], r[0]) for r in rows])


# The submit results' writes to rows read in stage Sending: (id, values...) each.
_ACCEPTED = _RowUpdate(("esme", "submit_status", "message_ids", "sent_at_us", "segments"),
                       "stage = 'Delivered', error = NULL")
_FAILED = _RowUpdate(("esme", "submit_status", "error", "done_at_us"), "stage = 'Failed'")
_UNKNOWN = _RowUpdate(("esme", "submit_status", "error", "done_at_us"),
                      "stage = 'Failed', sms_result = 'unknown', ambiguous = 1")
_RETRIED = _RowUpdate(("esme", "submit_status", "error"), "stage = 'New'")
_RECEIPT = _RowUpdate(("sms_result", "receipt_stat", "receipt_err", "dlr_mask",
                       "dlr_delivered", "done_at_us"))
_MESSAGE_IDS_SQL = (
    "INSERT INTO message_ids (esme, message_id, recipient_id, segment) VALUES {values} "
    "ON CONFLICT (esme, message_id) DO UPDATE SET "
    "recipient_id = excluded.recipient_id, segment = excluded.segment")
#: SubmitTally's field of each kind of result
_TALLY_FIELDS = {"accepted": "accepted", "failed": "failed", "retry": "retried",
                 "unknown": "unknown"}


class _Deltas:
    """Counter and daily-activity changes of one transaction, flushed once at its end."""

    def __init__(self) -> None:
        self.counters: dict[int, Counter[str]] = defaultdict(Counter)
        self.daily: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)

    def flush(self, cur: sqlite3.Cursor) -> None:
        rows = [(*(c[f] for f in COUNTER_FIELDS), cid)
                for cid, c in self.counters.items() if any(c.values())]
        if rows:
            cur.executemany(_COUNTER_SQL, rows)
        daily = [(cid, day, c["sent"], c["delivered"], c["failed"])
                 for (cid, day), c in self.daily.items() if any(c.values())]
        if daily:
            cur.executemany(_DAILY_SQL, daily)


class SqliteDispatchPath:
    """Mixin of ``SqliteStore``: needs ``_tx()`` (a cursor inside BEGIN IMMEDIATE .. COMMIT)
    and ``config``."""

    config: StoreConfig
    _db: sqlite3.Connection

    def _tx(self) -> AbstractContextManager[sqlite3.Cursor]:
        raise NotImplementedError

    # ------------------------------------------------------------------ claim

    def claim_for_send(self, campaign_id: int, limit: int,
                       now: datetime) -> list[ClaimedRecipient]:
        """Lease up to ``limit`` New recipients (lowest id first): stage Sending, attempts + 1,
        committed before returning. The selected rows are exactly the New rows of the campaign
        within [first id, last id], so one range UPDATE moves them. Nothing is leased unless
        the campaign is Sending: a claim that races a pause or a cancel (the route learns of
        it only at the control loop's next tick) sends nothing more."""
        return list(map(ClaimedRecipient._make, self.claim_rows(campaign_id, limit, now)))

    def claim_rows(self, campaign_id: int, limit: int, now: datetime) -> list[ClaimedRow]:
        """``claim_for_send`` as plain tuples (``rows.ClaimedRow``: what the store process
        packs and sends, without a ``ClaimedRecipient`` built for each)."""
        if limit <= 0:
            return []
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT id, number, variables, attempts FROM recipients "
                "WHERE campaign_id = ? AND stage = 'New' AND EXISTS (SELECT 1 FROM campaigns "
                "WHERE id = ? AND status = 'Sending') ORDER BY id LIMIT ?",
                (campaign_id, campaign_id, limit)).fetchall()
            if not rows:
                return []
            cur.execute(
                "UPDATE recipients SET stage = 'Sending', attempts = attempts + 1 "
                "WHERE campaign_id = ? AND stage = 'New' AND id BETWEEN ? AND ?",
                (campaign_id, rows[0][0], rows[-1][0]))
            if cur.rowcount != len(rows):  # pragma: no cover - would mean a broken transaction
                raise RuntimeError("claim moved a different number of rows than it selected")
            n = len(rows)
            cur.execute("UPDATE campaign_counters SET pending = pending - ?, "
                        "inflight = inflight + ? WHERE campaign_id = ?", (n, n, campaign_id))
        return [(rid, number, unpack_variables(variables), attempts + 1)
                for rid, number, variables, attempts in rows]

    def in_flight_ids(self, campaign_id: int) -> list[int]:
        """Ids of the campaign's claimed recipients with no submit result yet (stage
        Sending): what a route must hold in memory once its writes are durable."""
        with self._tx() as cur:  # rare (after a failed claim): the writer's connection is fine
            return [r[0] for r in cur.execute(
                "SELECT id FROM recipients WHERE campaign_id = ? AND stage = 'Sending' "
                "ORDER BY id", (campaign_id,))]

    # ------------------------------------------------------------------ submit results

    def record_submit_results(self, outcomes: Sequence[SubmitOutcome],
                              now: datetime) -> SubmitTally:
        """Apply the SMSC's answers (see ``dispatch.store.base``). Only recipients in stage
        Sending change; others are counted ``stale``. Receipts that arrived before their
        message id was stored are applied here, in the same transaction."""
        return self.record_submit_rows(outcomes, now)

    def record_submit_rows(self, outcomes: Sequence[SubmitRow], now: datetime) -> SubmitTally:
        """``record_submit_results`` of outcomes as plain tuples (``rows.SubmitRow``: what the
        store process receives, without a ``SubmitOutcome`` built for each)."""
        now_us = to_us(now)
        day = day_of(now_us)
        first = {o[0]: o for o in outcomes}
        if len(first) < len(outcomes):  # a recipient twice: its first outcome is the one
            first = {}
            for o in outcomes:
                first.setdefault(o[0], o)
        tally: Counter[str] = Counter()
        with self._tx() as cur:
            live: dict[int, int] = {}  # recipient id -> campaign id, of the rows in Sending
            for chunk in _chunks(list(first)):
                live.update(cur.execute(
                    "SELECT id, campaign_id FROM recipients "
                    f"WHERE id IN ({_placeholders(len(chunk))}) AND stage = 'Sending'", chunk))
            accepted: list[tuple[Any, ...]] = []
            mids: list[tuple[str, str, int, int]] = []
            failed: list[tuple[Any, ...]] = []
            retried: list[tuple[Any, ...]] = []
            unknown: list[tuple[Any, ...]] = []
            exhausted: list[tuple[int, int, str]] = []  # failed once their retries ran out
            # (campaign id, kind) of each row; counted into counter deltas once, after the
            # loop (this loop is the hot path: keep it to a few operations per row; a Counter
            # incremented here, a dict subclass, cost 0.15 us a row more).
            applied: list[tuple[int, str]] = []
            for o in first.values():
                rid, kind, esme, ids, status, error, exhausted_after = o
                cid = live.get(rid)
                if cid is None:
                    tally["stale"] += 1
                    continue
                applied.append((cid, kind))
                if kind == "accepted":
                    if len(ids) == 1:
                        accepted.append((rid, esme, status or "ESME_ROK", ids[0] or None,
                                         now_us, 1))
                        mids.append((esme, message_id_key(ids[0]), rid, 0))
                        continue
                    if len(ids) > _MAX_SEGMENTS:
                        raise ValueError(f"{len(ids)} segments exceed {_MAX_SEGMENTS}")
                    accepted.append((rid, esme, status or "ESME_ROK", ",".join(ids) or None,
                                     now_us, len(ids)))
                    mids.extend((esme, message_id_key(m), rid, i) for i, m in enumerate(ids))
                elif kind == "retry":
                    retried.append((rid, esme, status, error))
                elif kind == "unknown":
                    unknown.append((rid, esme, status, error or "submit outcome unknown",
                                    now_us))
                else:
                    failed.append((rid, esme, status, error, now_us))
                    if exhausted_after:
                        exhausted.append((cid, rid,
                                          retry_exhausted_message(SubmitOutcome._make(o))))
            deltas = _Deltas()
            per_kind = Counter(applied)
            for (cid, kind), n in per_kind.items():
                c = deltas.counters[cid]
                c["inflight"] -= n
                tally[_TALLY_FIELDS[kind]] += n
                if kind == "accepted":
                    c["sent"] += n
                    deltas.daily[(cid, day)]["sent"] += n
                elif kind == "retry":
                    c["pending"] += n
                else:
                    c["failed"] += n
                    deltas.daily[(cid, day)]["failed"] += n
                    if kind == "unknown":
                        c["unknown"] += n
                        c["ambiguous"] += n
            _ACCEPTED.write(cur, accepted)
            # in the outcomes' order: an id given twice belongs to the later result
            _write_blocks(cur, _MESSAGE_IDS_SQL, mids)
            _FAILED.write(cur, failed)
            if exhausted:
                self._record_exhausted(cur, exhausted, now_us, deltas)
            _UNKNOWN.write(cur, unknown)
            if retried:
                _RETRIED.write(cur, retried)
                # A retry (or a release of messages never sent) that comes back after its
                # campaign expired or was cancelled must not leave a New row in it: nothing
                # claims from it any more.
                cids = sorted({cid for cid, kind in per_kind if kind == "retry"})
                for cid, status in cur.execute(
                        "SELECT id, status FROM campaigns WHERE id IN "
                        f"({_placeholders(len(cids))}) AND status IN {ENDED_UNSENT_SQL}",
                        cids).fetchall():
                    self._mark_unsent(cur, cid, status, now_us, deltas, held=False,
                                      limit=self.config.unsent_mark_rows)
            if mids and cur.execute("SELECT 1 FROM unmatched_receipts LIMIT 1").fetchone():
                tally["receipts_matched"] = self._replay_unmatched(
                    cur, [(e, m) for e, m, _, _ in mids], now_us, deltas)
            deltas.flush(cur)
        return SubmitTally(**tally)

    def _record_exhausted(self, cur: sqlite3.Cursor, exhausted: Sequence[tuple[int, int, str]],
                          now_us: int, deltas: _Deltas) -> None:
        """Job errors for the retry exhaustions just applied ((campaign, recipient, message)
        of each): listed one by one, with the recipient's line, up to
        ``retry_exhausted_errors_listed`` per campaign; the rest counted in its summary row."""
        cap = self.config.retry_exhausted_errors_listed
        by_campaign: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for cid, rid, message in exhausted:
            by_campaign[cid].append((rid, message))
        for cid, items in sorted(by_campaign.items()):
            deltas.counters[cid]["job_errors"] += len(items)
            summary = cur.execute(
                "SELECT id, occurrences FROM campaign_job_errors WHERE campaign_id = ? "
                "AND reason = ? AND line_no = 0", (cid, RETRY_EXHAUSTED)).fetchone()
            room = 0
            if summary is None:
                listed = cur.execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM campaign_job_errors "
                    "WHERE campaign_id = ? AND reason = ? AND line_no > 0 LIMIT ?)",
                    (cid, RETRY_EXHAUSTED, cap)).fetchone()[0]
                room = max(0, cap - listed)
            if room:
                cur.executemany(
                    "INSERT INTO campaign_job_errors (campaign_id, at_us, line_no, reason, "
                    "message) SELECT campaign_id, ?, line_no, ?, ? FROM recipients "
                    "WHERE id = ?",
                    [(now_us, RETRY_EXHAUSTED, message, rid) for rid, message in items[:room]])
            more = len(items) - min(room, len(items))
            if not more:
                continue
            if summary is None:
                cur.execute("INSERT INTO campaign_job_errors (campaign_id, at_us, line_no, "
                            "reason, message, occurrences) VALUES (?, ?, 0, ?, ?, ?)",
                            (cid, now_us, RETRY_EXHAUSTED, retry_exhausted_summary(more, cap),
                             more))
            else:
                n = summary[1] + more
                cur.execute("UPDATE campaign_job_errors SET occurrences = ?, message = ?, "
                            "at_us = ? WHERE id = ?",
                            (n, retry_exhausted_summary(n, cap), now_us, summary[0]))

    # ------------------------------------------------------------------ receipts

    def record_receipts(self, receipts: Sequence[Receipt], now: datetime) -> int:
        """Match receipts to recipients by (esme, message id); return how many matched.
        Unmatched ones are parked in ``unmatched_receipts`` (not lost)."""
        return self.record_receipt_rows(receipt_rows(receipts), now)

    def record_receipt_rows(self, rows: Sequence[ReceiptRow], now: datetime) -> int:
        """``record_receipts`` of rows already in the stores' form (``rows.receipt_rows``)."""
        now_us = to_us(now)
        with self._tx() as cur:
            deltas = _Deltas()
            matched, unmatched = self._apply_receipts(cur, rows, now_us, deltas)
            if unmatched:
                cur.executemany(
                    "INSERT INTO unmatched_receipts (esme, message_id, stat, err, sms_result, "
                    "done_at_us, received_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*u, now_us) for u in unmatched])
            deltas.flush(cur)
        return matched

    def _apply_receipts(self, cur: sqlite3.Cursor, receipts: Sequence[ReceiptRow], now_us: int,
                        deltas: _Deltas) -> tuple[int, list[ReceiptRow]]:
        by_esme: dict[str, set[str]] = defaultdict(set)
        for r in receipts:
            by_esme[r[0]].add(r[1])
        # (esme, message_id) -> (recipient_id, segment); recipient id -> [campaign_id,
        # segments, dlr_mask, delivered_segs, sms_result, stat, err, done_at_us], read with
        # its message ids (each segment of a recipient brings the same state; none when the
        # recipient is gone: its receipts match and change nothing, as ``merge_receipts`` says)
        found: dict[tuple[str, str], tuple[int, int]] = {}
        state: dict[int, list[Any]] = {}
        for esme, ids in by_esme.items():
            for chunk in _chunks(list(ids)):
                for mid, rid, seg, *recipient in cur.execute(
                        "SELECT m.message_id, m.recipient_id, m.segment, r.campaign_id, "
                        "r.segments, r.dlr_mask, r.dlr_delivered, r.sms_result, r.receipt_stat, "
                        "r.receipt_err, r.done_at_us FROM message_ids m "
                        "LEFT JOIN recipients r ON r.id = m.recipient_id WHERE m.esme = ? "
                        f"AND m.message_id IN ({_placeholders(len(chunk))})", (esme, *chunk)):
                    found[(esme, mid)] = (rid, seg)
                    if recipient[0] is not None:  # (campaign_id is NOT NULL)
                        state[rid] = recipient
        if len(found) < sum(map(len, by_esme.values())):
            unmatched = [r for r in receipts if (r[0], r[1]) not in found]
        else:
            unmatched = []
        if not found:
            return 0, unmatched
        matched, changed = merge_receipts(receipts, found, state, now_us, deltas.counters,
                                          deltas.daily)
        _RECEIPT.write(cur, [(rid, s[4], s[5], s[6], s[2], s[3], s[7])
                                          for rid in changed for s in (state[rid],)])
        return matched, unmatched

    def _replay_unmatched(self, cur: sqlite3.Cursor, keys: Sequence[tuple[str, str]],
                          now_us: int, deltas: _Deltas) -> int:
        """Apply parked receipts whose (esme, message id) is in ``keys``; delete them."""
        by_esme: dict[str, list[str]] = defaultdict(list)
        for esme, mid in keys:
            by_esme[esme].append(mid)
        parked: list[tuple[Any, ...]] = []
        for esme, ids in by_esme.items():
            for chunk in _chunks(ids):
                parked.extend(cur.execute(
                    "SELECT id, esme, message_id, stat, err, sms_result, done_at_us "
                    "FROM unmatched_receipts "
                    f"WHERE esme = ? AND message_id IN ({_placeholders(len(chunk))}) ORDER BY id",
                    (esme, *chunk)).fetchall())
        return self._apply_parked(cur, parked, now_us, deltas)

    def _apply_parked(self, cur: sqlite3.Cursor, parked: Sequence[tuple[Any, ...]],
                      now_us: int, deltas: _Deltas) -> int:
        if not parked:
            return 0
        matched, still = self._apply_receipts(cur, [tuple(p[1:]) for p in parked],
                                              now_us, deltas)
        still_keys = {(u[0], u[1]) for u in still}
        done = [(p[0],) for p in parked if (p[1], p[2]) not in still_keys]
        cur.executemany("DELETE FROM unmatched_receipts WHERE id = ?", done)
        return matched

    #: Where the next ``retry_unmatched_receipts`` goes on (a parked id; 0: from the start).
    _retry_after = 0

    def retry_unmatched_receipts(self, now: datetime) -> int:
        """Try parked receipts again (up to 10000 per call); return how many matched now.
        Successive calls walk the whole table in id order and then start over, so receipts
        that never match (as many as they may be) cannot keep newer ones from a retry."""
        now_us = to_us(now)
        with self._tx() as cur:
            parked = cur.execute(
                "SELECT id, esme, message_id, stat, err, sms_result, done_at_us "
                "FROM unmatched_receipts WHERE id > ? ORDER BY id LIMIT ?",
                (self._retry_after, _REPLAY_BATCH)).fetchall()
            deltas = _Deltas()
            matched = self._apply_parked(cur, parked, now_us, deltas)
            deltas.flush(cur)
        self._retry_after = parked[-1][0] if len(parked) >= _REPLAY_BATCH else 0
        return matched

    def purge_unmatched_receipts(self, older_than: datetime) -> int:
        with self._tx() as cur:
            cur.execute("DELETE FROM unmatched_receipts WHERE received_at_us < ?",
                        (to_us(older_than),))
            return cur.rowcount

    def unmatched_receipt_count(self) -> int:
        with self._tx() as cur:
            return int(cur.execute("SELECT COUNT(*) FROM unmatched_receipts").fetchone()[0])

    # ------------------------------------------------------------------ recovery and expiry

    def recover_inflight(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        """Startup recovery of recipients a crash left in stage Sending (before any claim).

        ``RESEND``: back to New (at-least-once). ``MARK_UNKNOWN``: stage Failed, sms_result
        unknown, ambiguous (at-most-once). Counters follow in the same transaction. Campaigns
        are found from their counters (``inflight > 0``), which are exact by construction.
        Expired, Cancelled and Failed campaigns' New and Held recipients are then marked (RESEND
        sends some back to New; a database written by older code may hold a marking that a
        crash cut short: it marked in a second transaction after the status).
        """
        now_us = to_us(now)
        day = day_of(now_us)
        by_campaign: dict[int, int] = {}
        with self._tx() as cur:
            cids = [r[0] for r in cur.execute(
                "SELECT campaign_id FROM campaign_counters WHERE inflight > 0 "
                "ORDER BY campaign_id")]
            deltas = _Deltas()
            for cid in cids:
                if policy is RecoveryPolicy.RESEND:
                    cur.execute("UPDATE recipients SET stage = 'New' "
                                "WHERE campaign_id = ? AND stage = 'Sending'", (cid,))
                    n = cur.rowcount
                    deltas.counters[cid].update(inflight=-n, pending=n)
                else:
                    cur.execute(
                        "UPDATE recipients SET stage = 'Failed', sms_result = 'unknown', "
                        "ambiguous = 1, done_at_us = ?, "
                        "error = 'in flight at restart: submit outcome unknown' "
                        "WHERE campaign_id = ? AND stage = 'Sending'", (now_us, cid))
                    n = cur.rowcount
                    deltas.counters[cid].update(inflight=-n, failed=n, unknown=n, ambiguous=n)
                    deltas.daily[(cid, day)]["failed"] += n
                by_campaign[cid] = n
            deltas.flush(cur)
            deltas = _Deltas()
            # Nothing claims from an Expired or Cancelled campaign or ends it again: what it
            # still has New or Held (sent back above under RESEND, left by a crash before the
            # engine marked it all, or by older code) is marked now, up to unsent_mark_rows
            # each; the engine marks the rest in chunks. So are the Held rows of a Done
            # Trigger campaign (the same, between its finish and the marking).
            for cid, status in cur.execute(_WITH_UNSENT_SQL).fetchall():
                self._mark_unsent(cur, cid, status, now_us, deltas,
                                  limit=self.config.unsent_mark_rows)
            deltas.flush(cur)
        total = sum(by_campaign.values())
        if policy is RecoveryPolicy.RESEND:
            return RecoveryCounts(total, 0, by_campaign)
        return RecoveryCounts(0, total, by_campaign)

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
        with self._tx() as cur:
            row = cur.execute("SELECT status FROM campaigns WHERE id = ?",
                              (campaign_id,)).fetchone()
            if row is None:
                return 0
            return self._mark_unsent_of(cur, campaign_id, row[0], now_us, limit)

    def campaigns_with_unsent(self) -> list[int]:
        """The ended campaigns that still hold recipients to mark (``marks_unsent``): an
        Expired, Cancelled or Failed one with New or Held rows, a Done Trigger one with Held
        rows. Read from the counters, which are exact."""
        return [r[0] for r in self._db.execute(_WITH_UNSENT_SQL).fetchall()]

    @classmethod
    def _mark_unsent_of(cls, cur: sqlite3.Cursor, campaign_id: int, status: str,
                        now_us: int, limit: int | None) -> int:
        """``mark_unsent`` inside the caller's transaction, counters included."""
        deltas = _Deltas()
        n = cls._mark_unsent(cur, campaign_id, status, now_us, deltas, limit=limit)
        deltas.flush(cur)
        return n

    @classmethod
    def _mark_unsent(cls, cur: sqlite3.Cursor, campaign_id: int, status: str, now_us: int,
                     deltas: _Deltas, held: bool = True, limit: int | None = None) -> int:
        """``mark_unsent`` for a campaign in ``status``, inside the caller's transaction, at
        most ``limit`` rows (None: all); ``held=False`` leaves its Held recipients alone."""
        errors = unsent_errors(status)
        n = cls._expire_stage(cur, campaign_id, "New", "pending", errors.new, now_us, deltas,
                              errors.expired, limit)
        if held and (limit is None or n < limit):
            n += cls._expire_stage(cur, campaign_id, "Held", "held", errors.held, now_us,
                                   deltas, errors.expired, None if limit is None else limit - n)
        return n

    @staticmethod
    def _expire_stage(cur: sqlite3.Cursor, campaign_id: int, stage: str, counter: str,
                      error: str, now_us: int, deltas: _Deltas, expired: bool = True,
                      limit: int | None = None) -> int:
        """Mark the campaign's recipients in ``stage`` Failed with ``error``, at most
        ``limit`` of them, lowest ids first (None: all); they count as failed, and as
        expired when ``expired`` (``counter`` is the stage's own counter)."""
        # ``stage`` as a literal (it is one of ours), so SQLite sees the partial index of the
        # stage (recipients_new, recipients_held) applies: the chunk walks that index.
        # (SQLite reads a negative LIMIT as none.)
        assert stage in ("New", "Held")
        cur.execute("UPDATE recipients SET stage = 'Failed', error = ?, done_at_us = ? "
                    "WHERE id IN (SELECT id FROM recipients WHERE campaign_id = ? "
                    f"AND stage = '{stage}' ORDER BY id LIMIT ?)",
                    (error, now_us, campaign_id, -1 if limit is None else max(0, limit)))
        n = cur.rowcount
        deltas.counters[campaign_id].update({counter: -n, "failed": n,
                                             "expired": n if expired else 0})
        deltas.daily[(campaign_id, day_of(now_us))]["failed"] += n
        return n
