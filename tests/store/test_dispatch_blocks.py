"""The SQLite dispatch path's batch writes (``sqlite_dispatch``): a batch's rows go in blocks of
up to 64 rows a statement (``WITH v (...) AS (VALUES ...) UPDATE ... FROM v``, multi-row
INSERTs), receipts find their recipients through one SELECT joining ``message_ids`` to
``recipients``, and the store process hands the store its outcomes as plain tuples. Each row
must still get its own values, whatever block it falls in; stale results, duplicates, multipart
receipts and parked receipts must do what they did one statement a row."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import T0, query, rows, sending_campaign

from dispatch.campaigns.model import SmsResult
from dispatch.store import sqlite_dispatch
from dispatch.store.base import (
    Receipt,
    RecipientRow,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.process import StoreProcess
from dispatch.store.rows import pack_variables, to_us
from dispatch.store.sqlite import SqliteStore

ACC, FAIL, RETRY, UNK = SubmitKind.ACCEPTED, SubmitKind.FAILED, SubmitKind.RETRY, SubmitKind.UNKNOWN
DLV, UND = SmsResult.DELIVERED, SmsResult.FAILED


@pytest.fixture(params=["update-from", "row-by-row"])
def lite(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An SQLite store, once writing its UPDATEs in blocks (``UPDATE ... FROM``) and once one
    statement a row, as on an SQLite older than 3.33."""
    monkeypatch.setattr(sqlite_dispatch, "UPDATE_FROM", request.param == "update-from")
    s = SqliteStore(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    yield s
    s.close()


def _claim(store: Store, n: int) -> tuple[int, list[int]]:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(n), T0)
    return cid, [r.id for r in store.claim_for_send(cid, n, T0)]


def _row(store: Store, rid: int) -> tuple[Any, ...]:
    return tuple(query(store, "SELECT stage, esme, submit_status, message_ids, segments, "
                       "error, sms_result, receipt_stat, receipt_err, dlr_mask, dlr_delivered, "
                       "done_at_us, ambiguous FROM recipients WHERE id = ?", (rid,))[0])


def test_each_row_of_a_batch_gets_its_own_values_in_whichever_block(lite: SqliteStore) -> None:
    # 150 rows: blocks of 64, 64, 16, 4, 1 and 1; every row's values differ from its
    # neighbours', so a value bound to the wrong row of a block would show.
    n = 150
    cid, ids = _claim(lite, n)
    kinds = [ACC, ACC, FAIL, UNK, RETRY]
    outcomes = []
    for i, rid in enumerate(ids):
        kind = kinds[i % 5]
        mids = tuple(f"m{rid}.{s}" for s in range(1 + i % 3)) if kind is ACC else ()
        outcomes.append(SubmitOutcome(rid, kind, f"smsc{i % 7}", mids, f"ST{i}", f"err {i}"))
    tally = lite.record_submit_results(outcomes, T0)
    assert (tally.accepted, tally.failed, tally.unknown, tally.retried, tally.stale) == \
        (60, 30, 30, 30, 0)
    now_us = to_us(T0)
    for i, o in enumerate(outcomes):
        got = _row(lite, o.recipient_id)
        if o.kind is ACC:
            assert got == ("Delivered", o.esme, o.submit_status, ",".join(o.message_ids),
                           len(o.message_ids), None, None, None, None, 0, 0, None, 0), i
        elif o.kind is FAIL:
            assert got == ("Failed", o.esme, o.submit_status, None, 0, o.error, None, None,
                           None, 0, 0, now_us, 0), i
        elif o.kind is UNK:
            assert got == ("Failed", o.esme, o.submit_status, None, 0, o.error, "unknown",
                           None, None, 0, 0, now_us, 1), i
        else:
            assert got == ("New", o.esme, o.submit_status, None, 0, o.error, None, None,
                           None, 0, 0, None, 0), i
    assert sorted(query(lite, "SELECT esme, message_id, recipient_id, segment "
                        "FROM message_ids")) == sorted(
        (o.esme, m, o.recipient_id, s) for o in outcomes for s, m in enumerate(o.message_ids))
    # Receipts for every segment, each its own stat, error and time.
    receipts = [Receipt(o.esme, m, f"S{i}", f"E{i}", DLV if i % 4 else UND,
                        T0.replace(minute=i % 60))
                for i, o in enumerate(o for o in outcomes if o.kind is ACC)
                for m in o.message_ids]
    assert lite.record_receipts(receipts, T0) == len(receipts)
    for i, o in enumerate(o for o in outcomes if o.kind is ACC):
        segments = len(o.message_ids)
        result = "delivered" if i % 4 else "failed"
        assert _row(lite, o.recipient_id)[6:12] == (
            result, f"S{i}", f"E{i}", (1 << segments) - 1, segments if i % 4 else 0,
            to_us(T0.replace(minute=i % 60))), i
    k = lite.counters(cid)
    assert (k.sent, k.delivered, k.undelivered, k.failed, k.inflight, k.pending) == \
        (60, 45, 15, 60, 0, 30)


def test_each_recipient_of_a_batch_is_stored_with_its_own_values(tmp_path: Path) -> None:
    store = SqliteStore(StoreConfig(path=str(tmp_path / "s.sqlite3"), insert_batch_rows=150))
    try:
        cid = sending_campaign(store).id or 0
        given = rows(301)  # batches of 150, 150 and 1; blocks of 64, 64, 16, 4, 1, 1
        assert store.add_recipients(cid, given, T0) == 301
        stored = query(store, "SELECT line_no, ctn_hash, masked, number, variables, stage "
                       "FROM recipients WHERE campaign_id = ? ORDER BY id", (cid,))
        assert stored == [(r.line_no, r.ctn_hash, r.masked, r.number, pack_variables(r.variables),
                           "New") for r in given]
        assert [c.variables for c in store.claim_for_send(cid, 301, T0)] == \
            [r.variables for r in given]
    finally:
        store.close()


def test_a_multipart_recipient_is_found_through_each_of_its_message_ids(
        lite: SqliteStore) -> None:
    cid, (three, two, one) = _claim(lite, 3)
    lite.record_submit_results(
        [SubmitOutcome(three, ACC, "smsc1", ("a0", "a1", "a2")),
         SubmitOutcome(two, ACC, "smsc1", ("b0", "b1")),
         SubmitOutcome(one, ACC, "smsc1", ("c0",))], T0)
    # Two segments of one recipient in one batch (the join brings its row twice), one of
    # them twice; an intermediate state; another recipient's failing segment.
    assert lite.record_receipts(
        [Receipt("smsc1", "a0", "DELIVRD", "000", DLV, T0),
         Receipt("smsc1", "a2", "DELIVRD", "000", DLV, T0),
         Receipt("smsc1", "a2", "DELIVRD", "000", DLV, T0),
         Receipt("smsc1", "b1", "ENROUTE", None, None, T0),
         Receipt("smsc1", "b0", "UNDELIV", "005", UND, T0)], T0) == 5
    assert _row(lite, three)[6:11] == (None, "DELIVRD", "000", 0b101, 2)
    assert _row(lite, two)[6:11] == ("failed", "UNDELIV", "005", 0b01, 0)
    assert lite.record_receipts(
        [Receipt("smsc1", "a1", "DELIVRD", "000", DLV, T0),
         Receipt("smsc1", "b1", "DELIVRD", "000", DLV, T0),  # the failed segment decides
         Receipt("smsc1", "c0", "DELIVRD", "000", DLV, T0)], T0) == 3
    assert _row(lite, three)[6:11] == ("delivered", "DELIVRD", "000", 0b111, 3)
    assert _row(lite, two)[6:11] == ("failed", "UNDELIV", "005", 0b11, 1)
    assert _row(lite, one)[6:11] == ("delivered", "DELIVRD", "000", 1, 1)
    k = lite.counters(cid)
    assert (k.delivered, k.undelivered) == (2, 1)
    assert lite.unmatched_receipt_count() == 0


def test_a_receipt_whose_recipient_is_gone_matches_and_changes_nothing(
        lite: SqliteStore) -> None:
    cid, (gone, kept) = _claim(lite, 2)
    lite.record_submit_results([SubmitOutcome(gone, ACC, "smsc1", ("g",)),
                                SubmitOutcome(kept, ACC, "smsc1", ("k",))], T0)
    db = sqlite3.connect(lite.config.path)
    db.execute("DELETE FROM recipients WHERE id = ?", (gone,))
    db.commit()
    db.close()
    assert lite.record_receipts([Receipt("smsc1", "g", "DELIVRD", "000", DLV, T0),
                                 Receipt("smsc1", "k", "DELIVRD", "000", DLV, T0)], T0) == 2
    assert lite.unmatched_receipt_count() == 0  # matched, so not parked
    assert lite.counters(cid).delivered == 1


def test_stale_results_change_nothing_and_are_counted_stale(lite: SqliteStore) -> None:
    cid, (done, retried, live) = _claim(lite, 3)
    lite.record_submit_results([SubmitOutcome(done, ACC, "smsc1", ("d",)),
                                SubmitOutcome(retried, RETRY, "smsc1")], T0)
    before = {rid: _row(lite, rid) for rid in (done, retried)}
    too_many = tuple(f"x{i}" for i in range(64))  # over the 63-segment receipt mask
    tally = lite.record_submit_results(
        [SubmitOutcome(done, FAIL, "smsc1", (), "ESME_RSYSERR", "late"),  # settled already
         SubmitOutcome(retried, ACC, "smsc1", too_many),  # back in New: stale, no error
         SubmitOutcome(10_000, ACC, "smsc1", ("nobody",)),  # no such recipient
         SubmitOutcome(live, ACC, "smsc1", ("l",)),
         SubmitOutcome(live, FAIL, "smsc1")], T0)  # the first result of a recipient counts
    assert (tally.accepted, tally.failed, tally.stale) == (1, 0, 3)
    assert {rid: _row(lite, rid) for rid in (done, retried)} == before
    assert _row(lite, live)[0] == "Delivered"
    assert sorted(query(lite, "SELECT message_id, recipient_id FROM message_ids")) == \
        [("d", done), ("l", live)]
    k = lite.counters(cid)
    assert (k.sent, k.inflight, k.pending, k.failed) == (2, 0, 1, 0)


def test_an_empty_message_id_is_stored_as_none_in_the_recipient_row(lite: SqliteStore) -> None:
    _, (one, none) = _claim(lite, 2)
    lite.record_submit_results([SubmitOutcome(one, ACC, "smsc1", ("",)),
                                SubmitOutcome(none, ACC, "smsc1", ())], T0)
    assert [_row(lite, rid)[3:5] for rid in (one, none)] == [(None, 1), (None, 0)]
    assert query(lite, "SELECT message_id, recipient_id FROM message_ids") == [("", one)]


def test_a_live_result_over_63_segments_fails_the_whole_batch(lite: SqliteStore) -> None:
    cid, (a, b) = _claim(lite, 2)
    too_many = tuple(f"x{i}" for i in range(64))
    with pytest.raises(ValueError, match="segments"):
        lite.record_submit_results([SubmitOutcome(a, ACC, "smsc1", ("y",)),
                                    SubmitOutcome(b, ACC, "smsc1", too_many)], T0)
    assert [_row(lite, rid)[0] for rid in (a, b)] == ["Sending", "Sending"]
    assert query(lite, "SELECT COUNT(*) FROM message_ids") == [(0,)]
    assert lite.counters(cid).inflight == 2


def test_an_id_given_twice_in_different_blocks_belongs_to_the_later_result(
        lite: SqliteStore) -> None:
    _, ids = _claim(lite, 100)
    mids = [f"m{i}" for i in range(100)]
    mids[99] = "m0"  # the first row's id again, in the batch's second block
    lite.record_submit_results(
        [SubmitOutcome(rid, ACC, "smsc1", (m,)) for rid, m in zip(ids, mids, strict=True)], T0)
    assert query(lite, "SELECT recipient_id FROM message_ids WHERE message_id = 'm0'") == \
        [(ids[99],)]


def test_parked_receipts_are_applied_with_a_batch_of_results(lite: SqliteStore) -> None:
    cid, ids = _claim(lite, 70)
    early = [Receipt("smsc1", f"m{rid}", "DELIVRD", "000", DLV, T0) for rid in ids[::3]]
    assert lite.record_receipts(early, T0) == 0
    assert lite.unmatched_receipt_count() == len(early)
    tally = lite.record_submit_results(
        [SubmitOutcome(rid, ACC, "smsc1", (f"m{rid}",)) for rid in ids], T0)
    assert (tally.accepted, tally.receipts_matched) == (70, len(early))
    assert lite.unmatched_receipt_count() == 0
    assert lite.counters(cid).delivered == len(early)


def _round(store: Store) -> tuple[object, ...]:
    """One campaign through every kind of result and receipt on ``store``: what it returns
    and what the database then holds."""
    c = sending_campaign(store)
    assert c.id is not None
    store.add_recipients(
        c.id, [*rows(80), RecipientRow("+49170", b"\x01" * 16, "+49***", {"a": 1}, 81)], T0)
    claimed = store.claim_for_send(c.id, 90, T0)
    long_id = "".join(f"{i:x}" for i in range(300))  # over the length kept as its own key
    out: list[object] = [[tuple(r) for r in claimed]]
    out.append(store.record_receipts(
        [Receipt("smsc1", f"m{claimed[0].id}", "DELIVRD", "000", DLV, T0)], T0))  # parked
    outcomes = []
    for i, r in enumerate(claimed):
        kind = [ACC, ACC, ACC, FAIL, RETRY, UNK][i % 6]
        mids = ((long_id,) if i == 1 else (f"m{r.id}", f"m{r.id}b") if i % 12 == 2
                else (f"m{r.id}",)) if kind is ACC else ()
        outcomes.append(SubmitOutcome(r.id, kind, "smsc1", mids, f"S{i % 3}",
                                      None if i % 2 else "why", 3 if i % 18 == 3 else 0))
    outcomes.append(outcomes[5]._replace(kind=ACC))  # a duplicate: the first one counts
    outcomes.append(SubmitOutcome(10_000, ACC, "smsc1", ("stale",)))  # no such recipient
    out.append(store.record_submit_results(outcomes, T0))
    out.append(store.record_receipts(
        [Receipt("smsc1", m, "DELIVRD" if j % 3 else "UNDELIV", f"{j}", DLV if j % 3 else UND,
                 None if j % 5 else T0)
         for j, o in enumerate(outcomes) for m in o.message_ids]
        + [Receipt("smsc1", "nobody", "DELIVRD", None, DLV)], T0))
    out.append(store.counters(c.id))
    out.append(store.unmatched_receipt_count())
    for table in ("recipients", "message_ids", "campaign_daily_activity",
                  "campaign_job_errors", "unmatched_receipts"):
        out.append(query(store, f"SELECT * FROM {table} ORDER BY 1, 2"))
    return tuple(out)


def test_the_store_process_applies_the_plain_rows_as_the_store_applies_its_records(
        tmp_path: Path) -> None:
    direct = SqliteStore(StoreConfig(path=str(tmp_path / "direct.sqlite3")))
    proxied = StoreProcess(StoreConfig(path=str(tmp_path / "proxied.sqlite3")))
    try:
        expected = _round(direct)
        assert expected[2].accepted == 42 and expected[2].stale == 1  # type: ignore[attr-defined]
        assert _round(proxied) == expected  # type: ignore[arg-type]
    finally:
        direct.close()
        proxied.close()
