"""Quick throughput check of the SQLite dispatch path (not a test; bench/ owns the real bench).

    .venv/bin/python tests/store/measure_throughput.py [N] [BATCH]

Inserts N recipients, then loops claim(BATCH) -> record_submit_results -> record_receipts
and prints rows/s for each phase and for the whole cycle, plus the CPU time per message
(process time, which the other load on a shared machine does not inflate).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dispatch.campaigns.lifecycle import AuditEntry, StateChange
from dispatch.campaigns.model import Campaign, CampaignStatus, SmsResult
from dispatch.store.base import Receipt, RecipientRow, StoreConfig, SubmitKind, SubmitOutcome
from dispatch.store.sqlite import SqliteStore


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(StoreConfig(path=str(Path(tmp) / "s.sqlite3")))
        c = store.create_campaign(
            Campaign(sender="ACME", text="Hello {name}", author="a", esme="e1"),
            StateChange(CampaignStatus.NEW, "create", "created", now), AuditEntry("a", "create", "", now))
        assert c.id is not None
        rows = (RecipientRow(f"+4917{i:09d}", i.to_bytes(16, "big"), f"******{i % 10000:04d}",
                             {"name": "x"} if i % 2 else None, i + 1) for i in range(n))
        t0 = time.perf_counter()
        store.add_recipients(c.id, rows, now)
        t_ins = time.perf_counter() - t0
        t_claim = t_rec = t_dlr = 0.0
        done = 0
        cpu0 = time.process_time()
        for _ in range(n // batch + 1):
            t0 = time.perf_counter()
            claimed = store.claim_for_send(c.id, batch, now)
            t1 = time.perf_counter()
            if not claimed:
                break
            outcomes = [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e1", (f"{r.id:x}",), "ESME_ROK")
                        for r in claimed]
            receipts = [Receipt("e1", f"{r.id:x}", "DELIVRD", "000", SmsResult.DELIVERED, now)
                        for r in claimed]
            t1 = time.perf_counter()
            store.record_submit_results(outcomes, now)
            t2 = time.perf_counter()
            store.record_receipts(receipts, now)
            t3 = time.perf_counter()
            t_claim += t1 - t0
            t_rec += t2 - t1
            t_dlr += t3 - t2
            done += len(claimed)
        cpu = time.process_time() - cpu0
        k = store.counters(c.id)
        assert k.delivered == n and k.sent == n, k
        total = t_claim + t_rec + t_dlr
        print(f"n={n} batch={batch}")
        print(f"add_recipients        {n / t_ins:10.0f} rows/s")
        print(f"claim_for_send        {done / t_claim:10.0f} rows/s")
        print(f"record_submit_results {done / t_rec:10.0f} rows/s")
        print(f"record_receipts       {done / t_dlr:10.0f} rows/s")
        print(f"full cycle            {done / total:10.0f} messages/s (wall clock)")
        print(f"CPU per message       {cpu / done * 1e6:10.1f} us (claim + result + receipt; "
              f"{done / cpu:.0f} messages/s per core)")
        store.close()


if __name__ == "__main__":
    main()
