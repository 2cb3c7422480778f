"""The SQLite store's statements stay few whatever the batch sizes: its IN (...) lists are
padded to a handful of lengths. The sqlite3 module keeps up to 128 prepared statements per
connection, and one text per batch length filled that cache with one-off statements of
hundreds of placeholders each (~8 MB in the store process over a 200k-recipient campaign).
Correctness of the padded lists is covered by the dispatch-path tests; this checks the
number of distinct texts, through the connection's own trace of what it ran."""

from __future__ import annotations

import re
from pathlib import Path

from store_fixtures import T0, rows, sending_campaign

from dispatch.campaigns.model import SmsResult
from dispatch.store.base import Receipt, StoreConfig, SubmitKind, SubmitOutcome
from dispatch.store.sqlite import SqliteStore


def test_batches_of_every_size_run_a_bounded_set_of_statement_texts(tmp_path: Path) -> None:
    store = SqliteStore(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    try:
        cid = sending_campaign(store).id or 0
        sizes = range(1, 181)
        store.add_recipients(cid, rows(sum(sizes)), T0)
        texts: set[str] = set()
        store._db.set_trace_callback(texts.add)
        delivered = 0
        for size in sizes:
            claimed = store.claim_for_send(cid, size, T0)
            assert len(claimed) == size
            mids = [f"m{r.id}" for r in claimed]
            store.record_submit_results(
                [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "smsc1", (m,))
                 for r, m in zip(claimed, mids, strict=True)], T0)
            delivered += store.record_receipts(
                [Receipt("smsc1", m, "DELIVRD", "000", SmsResult.DELIVERED) for m in mids], T0)
        store._db.set_trace_callback(None)
        assert delivered == sum(sizes)
        assert store.counters(cid).delivered == sum(sizes)
        # The trace shows each statement with its values written in: back to its shape.
        shapes = {re.sub(r"'[^']*'|\b\d+\b|X'[0-9A-F]*'", "?", t) for t in texts}
        with_in_lists = {t for t in shapes if "IN (?," in t}
        assert 0 < len(with_in_lists) <= 6 * 4, len(with_in_lists)
        assert len(shapes) < 60, len(shapes)
    finally:
        store.close()
