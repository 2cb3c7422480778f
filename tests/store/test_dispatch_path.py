"""claim -> submit results -> receipts, multipart aggregation, unmatched receipts, recovery and
expiry on each backend (a real SQLite file, a real PostgreSQL database); counters checked
against COUNT(*) over the rows, read on a second connection."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from store_fixtures import T0, new_campaign, query, rows, sending_campaign

from dispatch.campaigns.model import RecipientStage, SmsResult
from dispatch.smpp.receipt import MessageIdPolicy, normalize_message_id, parse_receipt
from dispatch.store.base import (
    COUNTER_FIELDS,
    JobError,
    Receipt,
    RecipientFilter,
    RecoveryPolicy,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.rows import day_of
from dispatch.store.sqlite import SqliteStore

ACC, FAIL, RETRY, UNK = SubmitKind.ACCEPTED, SubmitKind.FAILED, SubmitKind.RETRY, SubmitKind.UNKNOWN
DLV, UND = SmsResult.DELIVERED, SmsResult.FAILED


def counts_from_rows(store: Store, cid: int) -> dict[str, int]:
    """The counters recomputed with COUNT(*) over the recipient rows."""
    q = "SELECT COUNT(*) FROM recipients WHERE campaign_id = ? "
    one = lambda extra: query(store, q + extra, (cid,))[0][0]  # noqa: E731
    out = {
        "total": one(""), "pending": one("AND stage = 'New'"),
        "inflight": one("AND stage = 'Sending'"), "sent": one("AND stage = 'Delivered'"),
        "failed": one("AND stage = 'Failed'"),
        "expired": one("AND error IN ('campaign expired', 'not triggered')"),
        "held": one("AND stage = 'Held'"),
        "delivered": one("AND sms_result = 'delivered'"),
        "undelivered": one("AND sms_result = 'failed'"),
        "unknown": one("AND sms_result = 'unknown'"), "ambiguous": one("AND ambiguous = 1"),
        # a summary row counts each error it stands for
        "job_errors": query(store, "SELECT COALESCE(SUM(occurrences), 0) FROM "
                            "campaign_job_errors WHERE campaign_id = ?", (cid,))[0][0]}
    return out


def daily_from_rows(store: Store, cid: int) -> dict[str, tuple[int, int, int]]:
    acc: dict[str, Counter[str]] = {}
    for sent_at, done_at, stage, result in query(
            store, "SELECT sent_at_us, done_at_us, stage, sms_result FROM recipients "
            "WHERE campaign_id = ?", (cid,)):
        if sent_at is not None:
            acc.setdefault(day_of(sent_at), Counter())["sent"] += 1
        if result == "delivered":
            acc.setdefault(day_of(done_at), Counter())["delivered"] += 1
        if stage == "Failed" or result == "failed":
            acc.setdefault(day_of(done_at), Counter())["failed"] += 1
    return {d: (c["sent"], c["delivered"], c["failed"]) for d, c in acc.items()}


def assert_consistent(store: Store, cid: int) -> None:
    k = store.counters(cid)
    assert {f: getattr(k, f) for f in COUNTER_FIELDS} == counts_from_rows(store, cid)
    assert {d.day: (d.sent, d.delivered, d.failed) for d in store.daily_activity(cid)
            if (d.sent, d.delivered, d.failed) != (0, 0, 0)} == daily_from_rows(store, cid)


def stage_of(store: Store, rid: int) -> tuple[str, str | None, int]:
    return tuple(query(store, "SELECT stage, sms_result, attempts FROM recipients "  # type: ignore[return-value]
                       "WHERE id = ?", (rid,))[0])


def test_schema_created_and_reopened(tmp_path: Path) -> None:
    path = str(tmp_path / "x" / "s.sqlite3")
    s = SqliteStore(StoreConfig(path=path))
    c = new_campaign(s)
    s.close()
    s = SqliteStore(StoreConfig(path=path))
    assert s.get_campaign(c.id or 0) == c
    db = sqlite3.connect(path)
    assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == s.schema_version
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("INSERT INTO schema_version VALUES (999)")
    db.commit()
    db.close()
    s.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteStore(StoreConfig(path=path))


def test_claim_is_ordered_durable_and_counted(store: Store, tmp_path: Path) -> None:
    c = sending_campaign(store)
    cid = c.id or 0
    assert store.add_recipients(cid, rows(20), T0) == 20
    first = store.claim_for_send(cid, 8, T0)
    assert [r.attempts for r in first] == [1] * 8
    assert first[1].variables == {"name": "n1"} and first[0].variables is None
    second = store.claim_for_send(cid, 100, T0)
    assert len(second) == 12 and second[0].id > first[-1].id
    assert store.claim_for_send(cid, 5, T0) == []
    assert store.claim_for_send(cid, 0, T0) == []
    # Durable: a second connection (as after a crash) sees them in Sending.
    assert counts_from_rows(store, cid)["inflight"] == 20
    assert store.counters(cid).inflight == 20 and store.counters(cid).pending == 0


def test_submit_outcomes(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(5), T0)
    a, f, r, u, s = store.claim_for_send(cid, 5, T0)
    tally = store.record_submit_results([
        SubmitOutcome(a.id, ACC, "smsc1", ("a1", "a2"), "ESME_ROK"),
        SubmitOutcome(f.id, FAIL, "smsc1", (), "ESME_RINVDSTADR", "invalid destination"),
        SubmitOutcome(r.id, RETRY, "smsc1", (), "ESME_RTHROTTLED"),
        SubmitOutcome(u.id, UNK, "smsc1", (), None, "connection lost after write"),
        SubmitOutcome(a.id, FAIL, "smsc1"),  # duplicate in one batch: the first one counts
    ], T0)
    assert (tally.accepted, tally.failed, tally.retried, tally.unknown) == (1, 1, 1, 1)
    assert stage_of(store, a.id) == ("Delivered", None, 1)
    assert stage_of(store, f.id) == ("Failed", None, 1)
    assert stage_of(store, r.id) == ("New", None, 1)
    assert stage_of(store, u.id) == ("Failed", "unknown", 1)
    # A replay of results already applied changes nothing and is counted stale.
    replay = store.record_submit_results([SubmitOutcome(a.id, FAIL, "smsc1"),
                                          SubmitOutcome(f.id, ACC, "smsc1", ("z",))], T0)
    assert replay.stale == 2
    again = store.claim_for_send(cid, 10, T0)
    assert [x.id for x in again] == [r.id] and again[0].attempts == 2  # s is still in flight
    assert s.id not in {x.id for x in again}
    k = store.counters(cid)
    assert (k.sent, k.failed, k.unknown, k.ambiguous, k.inflight) == (1, 2, 1, 1, 2)
    view = store.list_recipients(cid, RecipientFilter(stages=frozenset({RecipientStage.FAILED}),
                                                      with_numbers=True)).items
    assert {v.id for v in view} == {f.id, u.id}
    failed = next(v for v in view if v.id == f.id)
    assert failed.submit_status == "ESME_RINVDSTADR" and failed.error == "invalid destination"
    assert failed.number is not None and failed.esme == "smsc1"
    assert_consistent(store, cid)


def test_in_flight_ids_are_the_claimed_rows_without_a_result(store: Store) -> None:
    """What a route checks after a claim failed (it may have committed unseen): the
    campaign's claimed rows with no submit result yet, and only this campaign's."""
    cid = sending_campaign(store).id or 0
    other = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(6), T0)
    store.add_recipients(other, rows(2), T0)
    assert store.in_flight_ids(cid) == []
    a, f, r, u = store.claim_for_send(cid, 4, T0)
    store.claim_for_send(other, 2, T0)
    assert store.in_flight_ids(cid) == [a.id, f.id, r.id, u.id]
    store.record_submit_results([SubmitOutcome(a.id, ACC, "smsc1", ("x1",)),
                                 SubmitOutcome(f.id, FAIL, "smsc1"),
                                 SubmitOutcome(r.id, RETRY, "smsc1")], T0)
    assert store.in_flight_ids(cid) == [u.id]
    store.record_submit_results([SubmitOutcome(u.id, RETRY, "smsc1", (), None, "released")],
                                T0)
    assert store.in_flight_ids(cid) == []
    assert len(store.in_flight_ids(other)) == 2
    assert_consistent(store, cid)


def _accept(store: Store, cid: int, n: int, segments: int = 1) -> list[int]:
    claimed = store.claim_for_send(cid, n, T0)
    store.record_submit_results(
        [SubmitOutcome(r.id, ACC, "smsc1", tuple(f"m{r.id}-{i}" for i in range(segments)))
         for r in claimed], T0)
    return [r.id for r in claimed]


def test_receipts_single_segment(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(3), T0)
    a, b, c = _accept(store, cid, 3)
    later = T0 + timedelta(days=1)
    matched = store.record_receipts([
        Receipt("smsc1", f"m{a}-0", "ENROUTE", "000", None, later),
        Receipt("smsc1", f"m{a}-0", "DELIVRD", "000", DLV, later),
        Receipt("smsc1", f"m{a}-0", "DELIVRD", "000", DLV, later),   # duplicate
        Receipt("smsc1", f"m{b}-0", "UNDELIV", "001", UND, later),
        Receipt("smsc2", f"m{c}-0", "DELIVRD", "000", DLV, later),   # other ESME: unknown id
    ], T0)
    assert matched == 4
    assert store.unmatched_receipt_count() == 1
    va, vb, vc = store.list_recipients(cid, RecipientFilter()).items
    assert (va.sms_result, va.receipt_stat, va.stage) == (DLV, "DELIVRD", RecipientStage.DELIVERED)
    assert (vb.sms_result, vb.receipt_stat, vb.receipt_err) == (UND, "UNDELIV", "001")
    assert vc.sms_result is None and vc.message_ids == (f"m{c}-0",)
    k = store.counters(cid)
    assert (k.delivered, k.undelivered, k.errors) == (1, 1, 1)
    assert_consistent(store, cid)


def test_multipart_delivered_only_when_every_segment_is(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(3), T0)
    a, b, c = _accept(store, cid, 3, segments=3)
    store.record_receipts([Receipt("smsc1", f"m{a}-0", "DELIVRD", "000", DLV),
                           Receipt("smsc1", f"m{a}-1", "DELIVRD", "000", DLV)], T0)
    assert stage_of(store, a)[1] is None
    store.record_receipts([Receipt("smsc1", f"m{a}-1", "DELIVRD", "000", DLV)], T0)  # dup
    assert stage_of(store, a)[1] is None
    store.record_receipts([Receipt("smsc1", f"m{a}-2", "DELIVRD", "000", DLV)], T0)
    assert stage_of(store, a)[1] == "delivered"
    # One failing segment fails the recipient at once; later deliveries do not undo it.
    store.record_receipts([Receipt("smsc1", f"m{b}-1", "EXPIRED", "002", UND)], T0)
    assert stage_of(store, b)[1] == "failed"
    store.record_receipts([Receipt("smsc1", f"m{b}-0", "DELIVRD", "000", DLV),
                           Receipt("smsc1", f"m{b}-2", "DELIVRD", "000", DLV)], T0)
    vb = store.list_recipients(cid, RecipientFilter(after_id=a)).items[0]
    assert (vb.sms_result, vb.receipt_stat) == (UND, "EXPIRED")
    # All segments reported, one unknown: unknown.
    store.record_receipts([Receipt("smsc1", f"m{c}-{i}", st, None, res) for i, (st, res) in
                           enumerate([("DELIVRD", DLV), ("UNKNOWN", SmsResult.UNKNOWN),
                                      ("DELIVRD", DLV)])], T0)
    assert stage_of(store, c)[1] == "unknown"
    assert_consistent(store, cid)


def test_a_receipt_whose_text_holds_nuls_is_stored_and_matched(store: Store) -> None:
    """The receipt parser drops the NULs an SMSC puts in a receipt; what it yields is stored
    on every backend (PostgreSQL refuses NUL in text: the batch, and the writer with it,
    used to fail there)."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(1), T0)
    (a,) = store.claim_for_send(cid, 1, T0)
    policy = MessageIdPolicy()
    store.record_submit_results(
        [SubmitOutcome(a.id, ACC, "smsc1", (policy.for_submit_resp(b"0A1B"),))], T0)
    parsed = parse_receipt(b"id:0A\x001B stat:UNDEL\x00IV err:0\x0001", None, policy)
    assert store.record_receipts([Receipt("smsc1", parsed.message_id or "", parsed.stat,
                                          parsed.err, parsed.sms_result)], T0) == 1
    assert query(store, "SELECT sms_result, receipt_stat, receipt_err FROM recipients "
                 "WHERE id = ?", (a.id,)) == [("failed", "UNDELIV", "001")]
    assert_consistent(store, cid)


def test_receipt_racing_the_submit_result_is_parked_then_matched(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(2), T0)
    a, b = store.claim_for_send(cid, 2, T0)
    assert store.record_receipts([Receipt("smsc1", "abc", "DELIVRD", "000", DLV),
                                  Receipt("smsc1", "zzz", "DELIVRD", "000", DLV)], T0) == 0
    assert store.unmatched_receipt_count() == 2
    tally = store.record_submit_results([SubmitOutcome(a.id, ACC, "smsc1", ("abc",)),
                                         SubmitOutcome(b.id, ACC, "smsc1", ("def",))], T0)
    assert tally.receipts_matched == 1
    assert stage_of(store, a.id)[1] == "delivered"
    assert store.unmatched_receipt_count() == 1
    assert store.retry_unmatched_receipts(T0) == 0
    assert store.purge_unmatched_receipts(T0 + timedelta(seconds=1)) == 1
    assert store.unmatched_receipt_count() == 0
    assert_consistent(store, cid)


@pytest.mark.parametrize("policy", list(RecoveryPolicy))
def test_recover_inflight(store: Store, open_more: Callable[..., Store],
                          policy: RecoveryPolicy) -> None:
    s = store
    cid = sending_campaign(s).id or 0
    other = sending_campaign(s).id or 0
    s.add_recipients(cid, rows(10), T0)
    s.add_recipients(other, rows(4), T0)
    claimed = s.claim_for_send(cid, 6, T0)
    s.claim_for_send(other, 1, T0)
    s.record_submit_results([SubmitOutcome(claimed[0].id, ACC, "smsc1", ("x",))], T0)
    s.close()  # "crash": 5 + 1 recipients left in Sending
    s = open_more()  # the restarted process (on PostgreSQL: another node id, never live)
    counts = s.recover_inflight(policy, T0)
    assert counts.by_campaign == {cid: 5, other: 1}
    k = s.counters(cid)
    if policy is RecoveryPolicy.RESEND:
        assert counts.resent == 6 and counts.marked_unknown == 0
        assert (k.pending, k.inflight, k.ambiguous) == (9, 0, 0)
        again = s.claim_for_send(cid, 100, T0)
        assert len(again) == 9
        assert claimed[0].id not in {r.id for r in again}  # acknowledged: never resent
    else:
        assert counts.marked_unknown == 6 and counts.resent == 0
        assert (k.pending, k.inflight, k.ambiguous, k.unknown, k.failed) == (4, 0, 5, 5, 5)
        assert len(s.claim_for_send(cid, 100, T0)) == 4
    s.recover_inflight(policy, T0)  # what the claims above left in flight
    assert s.recover_inflight(policy, T0).by_campaign == {}  # nothing left: a no-op
    assert_consistent(s, cid)
    assert_consistent(s, other)


def test_expire_marks_unsent_recipients(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(10), T0)
    _accept(store, cid, 3)
    store.claim_for_send(cid, 2, T0)
    assert store.mark_unsent(cid, T0) == 5
    k = store.counters(cid)
    assert (k.pending, k.expired, k.failed, k.inflight) == (0, 5, 5, 2)
    assert_consistent(store, cid)


def test_random_operations_keep_counters_equal_to_rows(store: Store) -> None:
    rng = random.Random(1234)
    cids = [sending_campaign(store).id or 0 for _ in range(3)]
    accepted: list[tuple[int, int]] = []  # (recipient id, segments)
    kinds = [ACC, ACC, ACC, FAIL, RETRY, UNK]
    results = [DLV, DLV, UND, SmsResult.UNKNOWN, None]
    for step in range(150):
        now = T0 + timedelta(hours=7 * step)
        cid = rng.choice(cids)
        op = rng.random()
        if op < 0.2:
            store.add_recipients(cid, rows(rng.randint(1, 15), start=step * 100), now)
        elif op < 0.5:
            claimed = store.claim_for_send(cid, rng.randint(1, 10), now)
            outcomes = []
            for r in claimed:
                kind = rng.choice(kinds)
                segs = rng.randint(1, 3) if kind is ACC else 0
                mids = tuple(f"{r.id}.{i}" for i in range(segs))
                if kind is ACC:
                    accepted.append((r.id, segs))
                outcomes.append(SubmitOutcome(r.id, kind, "smsc1", mids))
            if rng.random() < 0.8:  # sometimes the results never come (crash later)
                store.record_submit_results(outcomes, now)
        elif op < 0.85 and accepted:
            batch = []
            for _ in range(rng.randint(1, 10)):
                rid, segs = rng.choice(accepted)
                res = rng.choice(results)
                batch.append(Receipt("smsc1", f"{rid}.{rng.randrange(segs)}",
                                     None if res is None else res.value.upper(), None, res,
                                     now if rng.random() < 0.5 else None))
            if rng.random() < 0.2:
                batch.append(Receipt("smsc1", f"nope{step}", "DELIVRD", None, DLV))
            store.record_receipts(batch, now)
        elif op < 0.9:
            store.recover_inflight(rng.choice(list(RecoveryPolicy)), now)
        elif op < 0.95:
            if rng.random() < 0.3:
                store.mark_unsent(cid, now)
        else:
            store.add_job_errors(cid, [JobError(step, "parse", "bad line")], now)
        if step % 25 == 0:
            for c in cids:
                assert_consistent(store, c)
    for c in cids:
        assert_consistent(store, c)


def test_normalize_message_id() -> None:
    assert normalize_message_id(b"00A1\x00") == "a1"
    assert normalize_message_id(" 0 ") == "0"
    assert normalize_message_id("") == ""
