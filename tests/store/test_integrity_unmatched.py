"""Integrity of parked receipts (``unmatched_receipts``): a receipt parked after the submit
result that stores its id was committed (on PostgreSQL, another node's commit raced past the
replay; ``retry_unmatched_receipts`` exists for it) is matched by the periodic retry however
many receipts that never match (other systems' ids, ids of submits a crash left unrecorded)
are parked before it. Nothing purges those on its own, so they pile up; the retry took the
oldest batch every time and never reached the newer rows. Runs on every backend."""

from __future__ import annotations

import sqlite3

import pytest
from store_fixtures import T0, query, rows, sending_campaign

from dispatch.campaigns.model import SmsResult
from dispatch.store import postgres_receipts, sqlite_dispatch
from dispatch.store.base import Receipt, Store, SubmitKind, SubmitOutcome
from dispatch.store.rows import to_us

BATCH = 4


def _park_directly(store: Store, esme: str, message_id: str) -> None:
    """Commit a parked receipt from another connection: what a node's ``record_receipts``
    that found no id leaves, committed after the other node's replay looked."""
    config = store.config  # type: ignore[attr-defined]
    sql = ("INSERT INTO unmatched_receipts (esme, message_id, stat, err, sms_result, "
           "done_at_us, received_at_us) VALUES (?, ?, 'DELIVRD', '000', 'delivered', NULL, ?)")
    params = (esme, message_id, to_us(T0))
    if config.dsn:
        import psycopg

        with psycopg.connect(config.dsn) as conn:
            conn.execute(sql.replace("?", "%s"), params)
        return
    db = sqlite3.connect(config.path)
    try:
        with db:
            db.execute(sql, params)
    finally:
        db.close()


def test_the_retry_reaches_receipts_behind_a_full_batch_of_unmatchable_ones(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_dispatch, "_REPLAY_BATCH", BATCH)
    monkeypatch.setattr(postgres_receipts, "_REPLAY_BATCH", BATCH)
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(1), T0)
    (r,) = store.claim_for_send(cid, 1, T0)
    # Receipts nobody will ever match, more than one retry batch of them.
    assert store.record_receipts(
        [Receipt("smsc1", f"other{i}", "DELIVRD", "000", SmsResult.DELIVERED)
         for i in range(2 * BATCH + 1)], T0) == 0
    store.record_submit_results([SubmitOutcome(r.id, SubmitKind.ACCEPTED, "smsc1", ("x1",))],
                                T0)
    _park_directly(store, "smsc1", "x1")
    assert store.unmatched_receipt_count() == 2 * BATCH + 2
    matched = sum(store.retry_unmatched_receipts(T0) for _ in range(4))
    assert matched == 1
    assert query(store, "SELECT sms_result FROM recipients WHERE id = ?", (r.id,)) == [
        ("delivered",)]
    assert store.counters(cid).delivered == 1
    assert store.unmatched_receipt_count() == 2 * BATCH + 1
