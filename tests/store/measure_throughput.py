"""Quick store-only throughput check, SQLite and PostgreSQL side by side in one run (not a
test; bench/ owns the real benches).

    .venv/bin/python tests/store/measure_throughput.py [N] [BATCH]
        [--backend sqlite|postgres|both] [--procs 1,2,3] [--pg-durability production|off]

Inserts N recipients into one campaign, then loops claim(BATCH) -> record_submit_results ->
record_receipts until the campaign is drained, and prints messages/s of the whole cycle (wall
clock) and CPU per message: of the client processes (process time, which other load on a
shared machine does not inflate) and, for PostgreSQL, of the server's processes (read from
/proc). ``--procs 2`` runs two client processes ("nodes") on the same campaign, each with its
own node id, as a cluster does.

PostgreSQL runs in a throwaway server (``pg_cluster``) with ``--pg-durability production``
(default: fsync, full_page_writes and synchronous_commit on, as docs/OPERATIONS-POSTGRES.md
recommends) or ``off`` (the test suite's settings). SQLite runs as the store configures it
(WAL, synchronous=NORMAL: a commit is in the OS before it returns, fsync at checkpoints).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_cluster import PgCluster, find_bin_dir
from store_fixtures import TO_SENDING, move

from dispatch.campaigns.lifecycle import AuditEntry, StateChange
from dispatch.campaigns.model import Campaign, CampaignStatus, SmsResult
from dispatch.store import open_store
from dispatch.store.base import (
    Receipt,
    RecipientRow,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
PRODUCTION = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}


@dataclass
class Result:
    backend: str
    procs: int
    messages: int
    insert_rows_per_s: float
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float | None
    hot: str = ""

    def line(self) -> str:
        server = ("" if self.server_cpu_s is None else
                  f"  server {self.server_cpu_s / self.messages * 1e6:6.1f} us/msg")
        return (f"{self.backend:9s} procs={self.procs}  insert {self.insert_rows_per_s:8.0f} "
                f"rows/s  cycle {self.messages / self.wall_s:8.0f} msg/s  "
                f"client {self.client_cpu_s / self.messages * 1e6:6.1f} us/msg{server}"
                + (f"  ({self.hot})" if self.hot else ""))


def server_cpu_s(postmaster_pid: int) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster with its reaped children
    (exited backends) plus every live child process (backends, walwriter, checkpointer)."""
    def fields(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2:].split()

    own = fields(postmaster_pid)
    ticks = sum(int(own[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            f = fields(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(f[1]) == postmaster_pid:  # ppid
            ticks += int(f[11]) + int(f[12])
    return ticks / _CLK_TCK


def postmaster_pid(pg: PgCluster) -> int:
    return int((pg.data_dir / "postmaster.pid").read_text().split()[0])


def make_campaign(store: Store, n: int) -> tuple[int, float]:
    c = store.create_campaign(
        Campaign(sender="ACME", text="Hello {name}", author="a", esme="e1"),
        StateChange(CampaignStatus.NEW, "create", "created", NOW),
        AuditEntry("a", "create", "", NOW))
    assert c.id is not None
    for event in TO_SENDING:  # only a Sending campaign is claimed from
        move(store, c.id, event)
    rows = (RecipientRow(f"+4917{i:09d}", i.to_bytes(16, "big"), f"******{i % 10000:04d}",
                         {"name": "x"} if i % 2 else None, i + 1) for i in range(n))
    t0 = time.perf_counter()
    store.add_recipients(c.id, rows, NOW)
    return c.id, n / (time.perf_counter() - t0)


def drain(store: Store, campaign_id: int, batch: int) -> int:
    """The dispatch cycle until nothing is left to claim; returns messages done."""
    done = 0
    while True:
        claimed = store.claim_for_send(campaign_id, batch, NOW)
        if not claimed:
            return done
        store.record_submit_results(
            [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e1", (f"{r.id:x}",), "ESME_ROK")
             for r in claimed], NOW)
        store.record_receipts(
            [Receipt("e1", f"{r.id:x}", "DELIVRD", "000", SmsResult.DELIVERED, NOW)
             for r in claimed], NOW)
        done += len(claimed)


def _worker(config: StoreConfig, node: str, campaign_id: int, batch: int,
            start: Any, out: Any) -> None:
    store = open_store(config, node_id=node)
    start.wait()
    cpu0 = time.process_time()
    done = drain(store, campaign_id, batch)
    out.put((done, time.process_time() - cpu0, time.perf_counter()))
    store.close()


def run(config: StoreConfig, backend: str, n: int, batch: int, procs: int,
        pg_pid: int | None = None) -> Result:
    store = open_store(config, node_id="setup")
    campaign_id, insert_rate = make_campaign(store, n)
    if procs == 1 and pg_pid is None:  # SQLite: one writer process, in this one
        cpu0, t0 = time.process_time(), time.perf_counter()
        done = drain(store, campaign_id, batch)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        server = None
    else:
        ctx = mp.get_context("fork")
        start, out = ctx.Event(), ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(config, f"node{i}", campaign_id, batch,
                                                     start, out)) for i in range(procs)]
        for w in workers:
            w.start()
        time.sleep(1.0)  # connections open, schema checked
        server0 = server_cpu_s(pg_pid) if pg_pid else 0.0
        t0 = time.perf_counter()
        start.set()
        results = [out.get(timeout=600) for _ in workers]
        wall = max(r[2] for r in results) - t0
        for w in workers:
            w.join(timeout=60)
        # Read the server's CPU once the workers' backends have exited and been reaped
        # (their time is then in the postmaster's cutime; reading while one exits could
        # miss it).
        time.sleep(0.5)
        server = server_cpu_s(pg_pid) - server0 if pg_pid else None
        done, cpu = sum(r[0] for r in results), sum(r[1] for r in results)
    k = store.counters(campaign_id)
    assert k.delivered == n == k.sent == done, (k, done)
    store.close()
    result = Result(backend, procs, done, insert_rate, wall, cpu, server)
    if config.dsn:
        result.hot = hot_updates(config.dsn)
    return result


def hot_updates(dsn: str) -> str:
    """Updates of ``recipients`` and how many of them were HOT (statistics are flushed by
    the backends at the end of their transactions, give them a moment)."""
    import psycopg

    time.sleep(1.0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                           "WHERE relname = 'recipients'").fetchone()
    return f"recipients updates {row[0]}, HOT {row[1]}" if row else "no statistics"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int, nargs="?", default=200_000)
    p.add_argument("batch", type=int, nargs="?", default=1000)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--procs", default="1,2", help="client processes for PostgreSQL")
    p.add_argument("--pg-durability", choices=["production", "off"], default="production")
    a = p.parse_args()
    results: list[Result] = []
    print(f"n={a.n} batch={a.batch} pg durability={a.pg_durability}", flush=True)
    if a.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(StoreConfig(path=str(Path(tmp) / "s.sqlite3")), "sqlite",
                               a.n, a.batch, 1))
            print(results[-1].line(), flush=True)
    if a.backend in ("postgres", "both"):
        if find_bin_dir() is None:
            sys.exit("PostgreSQL binaries not found")
        settings = PRODUCTION if a.pg_durability == "production" else {}
        with PgCluster.start_new(settings=settings) as pg:
            for procs in (int(x) for x in a.procs.split(",")):
                dsn = pg.create_database(f"measure{procs}")
                config = StoreConfig(path="", dsn=dsn, pool_max_size=2)
                results.append(run(config, "postgres", a.n, a.batch, procs,
                                   postmaster_pid(pg)))
                print(results[-1].line(), flush=True)


if __name__ == "__main__":
    main()
