"""PostgreSQL: the scans that take a campaign's lowest queued ids -- a claim, a trigger release
by count, a chunk of unsent marking -- read the rows they take, not the campaign's whole queue,
when the table's statistics do not know the campaign. That is every campaign between its build
and autovacuum's next ANALYZE (which comes once a tenth of the table changed): planned from
such statistics, the claim read the whole queue into a bitmap and sorted it for every batch
(a 2000-row claim of a 500k-recipient campaign took 140-195 ms instead of 17 ms).

The store's own calls run with ``auto_explain`` loaded into its connections (their DSN's
startup options), so the plans checked are those of the statements the store really ran."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pg_cluster import PgCluster
from store_fixtures import T0, move, rows, sending_campaign

from dispatch.campaigns.lifecycle import AuditEntry, Event
from dispatch.campaigns.model import CampaignMode
from dispatch.store.base import StoreConfig
from dispatch.store.postgres import PostgresStore

QUEUED = 20_000
TAKE = 300
_EXPLAIN = ("session_preload_libraries=auto_explain", "auto_explain.log_min_duration=0",
            "auto_explain.log_analyze=on", "auto_explain.log_format=json")
_ENTRY = re.compile(r"LOG:  duration: [0-9.]+ ms  plan:\n")


@pytest.fixture
def explained(pg_server: PgCluster, pg_dsn: str) -> Iterator[PostgresStore]:
    """A store on a fresh schema whose connections log the plan of every statement they run,
    with actual row counts, to the server's log."""
    options = "".join(f"%20-c{quote(o, safe='')}" for o in _EXPLAIN)
    store = PostgresStore(StoreConfig(path="", dsn=pg_dsn + options, insert_batch_rows=5000),
                          node_id="n1")
    yield store
    store.close()


def _plans_since(log: Path, offset: int) -> list[dict[str, Any]]:
    """The JSON plans auto_explain logged after ``offset`` (bytes into the server log)."""
    with log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    plans = []
    for chunk in _ENTRY.split(text)[1:]:
        plan, _ = decoder.raw_decode(chunk.lstrip())
        plans.append(plan)
    return plans


def _queue_reads(plans: list[dict[str, Any]], marker: str) -> list[tuple[str, int]]:
    """(node type, rows it returned) of every scan of ``recipient_queue`` in the plans of
    statements whose text contains ``marker``."""
    found: list[tuple[str, int]] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "recipient_queue":
            found.append((node["Node Type"], node["Actual Rows"] * node["Actual Loops"]))
        for child in node.get("Plans", ()):
            walk(child)

    for plan in plans:
        if marker in plan["Query Text"]:
            walk(plan["Plan"])
    assert found, f"no logged plan of a statement with {marker!r}"
    return found


def _assert_reads_what_it_takes(reads: list[tuple[str, int]]) -> None:
    # An ordered index scan stops after TAKE rows; a bitmap heap scan (then a sort) or a
    # sequential scan reads the campaign's whole queue.
    assert all(rows_read <= TAKE for _, rows_read in reads), reads
    assert not any(kind in ("Bitmap Heap Scan", "Seq Scan") for kind, _ in reads), reads


def _unanalyzed(store: PostgresStore) -> None:
    (reltuples,), = store._read("SELECT reltuples FROM pg_class "
                                "WHERE oid = 'recipient_queue'::regclass")
    assert reltuples < 0, "the queue table has statistics: the case tested is without"


def test_a_claim_reads_only_the_rows_it_leases(explained: PostgresStore,
                                               pg_server: PgCluster) -> None:
    cid = sending_campaign(explained).id or 0
    explained.add_recipients(cid, rows(QUEUED), T0)
    _unanalyzed(explained)
    offset = pg_server.log_path.stat().st_size
    claimed = explained.claim_for_send(cid, TAKE, T0)
    assert [c.id for c in claimed] == sorted(c.id for c in claimed)
    assert len(claimed) == TAKE
    _assert_reads_what_it_takes(
        _queue_reads(_plans_since(pg_server.log_path, offset), "WITH sending AS"))
    # and the next claim goes on from there
    assert explained.claim_for_send(cid, 1, T0)[0].id == claimed[-1].id + 1


def test_a_release_by_count_reads_only_the_rows_it_releases(explained: PostgresStore,
                                                            pg_server: PgCluster) -> None:
    cid = sending_campaign(explained, mode=CampaignMode.TRIGGER).id or 0
    explained.add_recipients(cid, rows(QUEUED), T0, held=True)
    _unanalyzed(explained)
    offset = pg_server.log_path.stat().st_size
    result = explained.release_held(cid, None, TAKE, AuditEntry("api", "trigger", "", T0))
    assert result.released == TAKE
    _assert_reads_what_it_takes(
        _queue_reads(_plans_since(pg_server.log_path, offset), "AND held ORDER BY id"))


def test_a_chunk_of_unsent_marking_reads_only_its_chunk(explained: PostgresStore,
                                                        pg_server: PgCluster) -> None:
    cid = sending_campaign(explained).id or 0
    explained.add_recipients(cid, rows(QUEUED), T0)
    _unanalyzed(explained)
    # a transition that ends the campaign marks its first chunk: make that chunk TAKE rows
    explained.config = StoreConfig(path="", dsn=explained.config.dsn, unsent_mark_rows=TAKE)
    offset = pg_server.log_path.stat().st_size
    move(explained, cid, Event.CANCEL)
    assert explained.mark_unsent(cid, T0, TAKE) == TAKE
    reads = _queue_reads(_plans_since(pg_server.log_path, offset), "ORDER BY held, id")
    assert len(reads) >= 2  # the transition's chunk and mark_unsent's
    _assert_reads_what_it_takes(reads)
