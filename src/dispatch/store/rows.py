"""Mapping between domain records and table rows (times as UTC microseconds, enums as their
values, variables as msgpack), shared by the SQL backends."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any

import msgpack

from dispatch.campaigns.model import (
    Campaign,
    CampaignKind,
    CampaignMode,
    CampaignStatus,
    DailyWindow,
    DataCoding,
    PausedBy,
    RecipientStage,
    SmsResult,
)
from dispatch.store.base import Receipt, RecipientView

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY = 86_400_000_000


def to_us(t: datetime) -> int:
    """An aware datetime as integer UTC microseconds since the epoch (exact)."""
    if t.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def opt_us(t: datetime | None) -> int | None:
    return None if t is None else to_us(t)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def opt_dt(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def day_of(us: int) -> str:
    """The UTC calendar day of a time, as the activity table's key."""
    return _day_name(us // _US_PER_DAY)


@lru_cache(maxsize=64)
def _day_name(day_number: int) -> str:
    # Cached: receipts for one batch fall on one or two days.
    return (_EPOCH + timedelta(days=day_number)).date().isoformat()


def pack_variables(variables: dict[str, Any] | None) -> bytes | None:
    return None if not variables else msgpack.packb(variables, use_bin_type=True)


def unpack_variables(blob: bytes | None) -> dict[str, Any] | None:
    return None if blob is None else msgpack.unpackb(blob, raw=False)


CAMPAIGN_COLUMNS = (
    "id, external_id, name, sender, text, data_coding, mode, kind, start_at_us, end_at_us, "
    "window_start, window_end, window_tz, auto_start, priority, tps_cap, validity_period_s, "
    "registered_delivery, esme, source_path, author, created_at_us, status, archived, paused_by")


def campaign_params(c: Campaign, now_us: int) -> tuple[Any, ...]:
    """Insert parameters, in the order of ``campaign_insert_sql``."""
    w = c.window
    created = c.created_at
    return (str(c.external_id), c.name, c.sender, c.sender.lower(), c.text, c.data_coding.value,
            c.mode.value, c.kind.value, opt_us(c.start_at), opt_us(c.end_at),
            None if w is None else w.start.isoformat(), None if w is None else w.end.isoformat(),
            None if w is None else w.tz, int(c.auto_start), c.priority, c.tps_cap,
            c.validity_period_s, int(c.registered_delivery), c.esme, c.source_path, c.author,
            to_us(created) if created is not None else now_us, c.status.value, int(c.archived),
            None if c.paused_by is None else c.paused_by.value, now_us)


CAMPAIGN_INSERT_SQL = (
    "INSERT INTO campaigns (external_id, name, sender, sender_lower, text, data_coding, mode, "
    "kind, start_at_us, end_at_us, window_start, window_end, window_tz, auto_start, priority, "
    "tps_cap, validity_period_s, registered_delivery, esme, source_path, author, created_at_us, "
    "status, archived, paused_by, status_changed_at_us) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


# Enum members by stored value: a dict lookup instead of ``Enum(value)`` (~1.5 us each, five a
# row; a campaign list and every control-loop tick read whole pages of rows).
_DATA_CODINGS = {m.value: m for m in DataCoding}
_MODES = {m.value: m for m in CampaignMode}
_KINDS = {m.value: m for m in CampaignKind}
_STATUSES = {m.value: m for m in CampaignStatus}
_PAUSED_BY = {m.value: m for m in PausedBy}


def campaign_from_row(r: Sequence[Any]) -> Campaign:
    window = None
    if r[10] is not None:
        # Wall-clock edges in the window's zone. An edge stored with a UTC offset (accepted
        # before validation refused offsets) is read as the wall-clock time it names: an
        # aware edge would fail every comparison with the engine's naive wall time.
        window = DailyWindow(time.fromisoformat(r[10]).replace(tzinfo=None),
                             time.fromisoformat(r[11]).replace(tzinfo=None), r[12])
    return Campaign(
        id=r[0], external_id=uuid.UUID(r[1]), name=r[2], sender=r[3], text=r[4],
        data_coding=_DATA_CODINGS[r[5]], mode=_MODES[r[6]], kind=_KINDS[r[7]],
        start_at=opt_dt(r[8]), end_at=opt_dt(r[9]), window=window, auto_start=bool(r[13]),
        priority=r[14], tps_cap=r[15], validity_period_s=r[16],
        registered_delivery=bool(r[17]), esme=r[18], source_path=r[19], author=r[20],
        created_at=from_us(r[21]), status=_STATUSES[r[22]], archived=bool(r[23]),
        paused_by=None if r[24] is None else _PAUSED_BY[r[24]])


RECIPIENT_COLUMNS = (
    "id, campaign_id, line_no, ctn_hash, masked, number, stage, esme, submit_status, "
    "message_ids, created_at_us, sent_at_us, done_at_us, sms_result, receipt_stat, receipt_err, "
    "error, attempts, segments, ambiguous")


def recipient_from_row(r: Sequence[Any], with_number: bool) -> RecipientView:
    return RecipientView(
        id=r[0], campaign_id=r[1], line_no=r[2], ctn_hash=bytes(r[3]), masked=r[4],
        number=r[5] if with_number else None, stage=RecipientStage(r[6]), esme=r[7],
        submit_status=r[8], message_ids=tuple(r[9].split(",")) if r[9] else (),
        created_at=from_us(r[10]), sent_at=opt_dt(r[11]), done_at=opt_dt(r[12]),
        sms_result=None if r[13] is None else SmsResult(r[13]), receipt_stat=r[14],
        receipt_err=r[15], error=r[16], attempts=r[17], segments=r[18], ambiguous=bool(r[19]))


#: Longest message id kept as its own key. Longer ones (no SMSC issues them; a broken
#: submit_sm_resp or receipt text can carry one) are keyed by a digest: PostgreSQL's B-tree
#: refuses an index entry over ~2.7 kB, and SQLite must key them the same way.
_MAX_ID_KEY = 200


def message_id_key(message_id: str) -> str:
    """The ``message_ids`` / ``unmatched_receipts`` key of a (normalised) message id: the id
    itself, or for an id over ``_MAX_ID_KEY`` characters a digest of it (the recipient's
    ``message_ids`` column keeps the id as given)."""
    if len(message_id) <= _MAX_ID_KEY:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()


#: sms_result -> the counter that counts it
_RESULT_COUNTER = {"delivered": "delivered", "failed": "undelivered", "unknown": "unknown"}

#: A receipt as the backends handle it: (esme, message_id, stat, err, sms_result, done_at_us).
ReceiptRow = tuple[str, str, str | None, str | None, str | None, int | None]


#: A submit outcome as a plain tuple: ``SubmitOutcome``'s fields in their order, the kind as its
#: value: (recipient_id, kind, esme, message_ids, submit_status, error, exhausted_after); a
#: ``SubmitOutcome`` is one. The SQLite store takes these, and gives its claims back as
#: ``ClaimedRow``, so its process builds no NamedTuple for a row only to take it apart or pack
#: it again (0.4-0.5 us a row; ``dispatch.store.process``).
SubmitRow = tuple[int, str, str, tuple[str, ...], str | None, str | None, int]

#: A claimed recipient as a plain tuple: ``ClaimedRecipient``'s fields in their order (id,
#: number, variables, attempts).
ClaimedRow = tuple[int, str, dict[str, Any] | None, int]


def receipt_rows(receipts: Sequence[Receipt]) -> list[ReceiptRow]:
    """Receipts as the stores apply them: (esme, message id key, stat, err, sms_result value,
    done_at in us)."""
    return [(r.esme, message_id_key(r.message_id), r.stat, r.err,
             None if r.sms_result is None else r.sms_result.value, opt_us(r.done_at))
            for r in receipts]


def keyed_receipt_rows(rows: list[ReceiptRow]) -> list[ReceiptRow]:
    """``rows`` with each message id replaced by its key (``message_id_key``): ``rows``
    itself when every id is its own key, as nearly always."""
    if max(map(len, map(itemgetter(1), rows)), default=0) <= _MAX_ID_KEY:
        return rows
    return [(esme, message_id_key(mid), stat, err, result, done)
            for esme, mid, stat, err, result, done in rows]


def merge_receipts(receipts: Sequence[ReceiptRow],
                   found: Mapping[tuple[str, str], tuple[int, int]],
                   state: Mapping[int, list[Any]], now_us: int,
                   counters: Mapping[int, Counter[str]],
                   daily: Mapping[tuple[int, str], Counter[str]]) -> tuple[int, set[int]]:
    """Apply matched receipts to recipient state in memory, the same for every backend.

    ``found``: (esme, message id) -> (recipient id, segment). ``state``: recipient id ->
    [campaign_id, segments, dlr_mask, delivered_segs, sms_result, stat, err, done_at_us],
    updated in place. A multipart recipient is delivered when every segment's receipt says
    so, failed at the first failing segment (whose stat it keeps), unknown when all reported
    and some are unknown; intermediate states (result ``None``) keep the stat only; a second
    receipt for a resolved segment changes nothing. Counter and daily-activity changes are
    added to ``counters`` / ``daily``. Returns (receipts matched, recipient ids changed)."""
    matched = 0
    changed: set[int] = set()
    # (campaign id, old result, new result, UTC day number) of each recipient whose result
    # moved, counted into the deltas after the loop, which is the hot path (a Counter
    # incremented here, a dict subclass, cost 0.15 us a receipt more).
    moves: list[tuple[int, str | None, str | None, int]] = []
    for esme, mid, stat, err, result, done_us in receipts:
        entry = found.get((esme, mid))
        if entry is None:
            continue
        matched += 1
        rid, segment = entry
        s = state.get(rid)
        bit = 1 << segment
        if s is None or s[2] & bit:
            continue  # recipient gone, or this segment already resolved (duplicate receipt)
        changed.add(rid)
        old = s[4]
        if result is None:  # intermediate state (ENROUTE, ACCEPTED): keep the stat only
            if old is None:
                s[5], s[6] = stat, err
            continue
        s[2] |= bit
        if result == "delivered":
            s[3] += 1
        if old == "failed":
            continue  # the first failing segment decides; keep its stat
        s[5], s[6] = stat, err
        new: str | None
        if result == "failed":
            new = "failed"
        elif s[2].bit_count() >= s[1]:
            new = "delivered" if s[3] >= s[1] else "unknown"
        else:
            new = None
        if new != old:
            s[4] = new
            s[7] = done_us if done_us is not None else now_us
            moves.append((s[0], old, new, s[7] // _US_PER_DAY))
    for (cid, old, new, day_number), n in Counter(moves).items():
        if old is not None:
            counters[cid][_RESULT_COUNTER[old]] -= n
        if new is not None:
            counters[cid][_RESULT_COUNTER[new]] += n
            if new in ("delivered", "failed"):
                daily[(cid, _day_name(day_number))][new] += n
    return matched, changed
