"""A cancel of a campaign bigger than ``store.unsent_mark_rows``: its transition marks one
chunk, the engine marks the rest chunk by chunk (each chunk its own store call), and meanwhile
another campaign on the same engine goes on sending to Done. Real engine, real simulator,
real store: SQLite (in its own process, as by default) and PostgreSQL (a cluster node of
one, its store in a thread)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.config import EngineConfig
from dispatch.engine.core import Engine

from .helpers import approved, engine_config, parts, until, until_status, write_numbers

CHUNK = 100
BIG = 3000
SMALL = 200


def _unsent_by_error(config: EngineConfig, campaign_id: int) -> dict[str, int]:
    """The campaign's recipients not Delivered, by stage and error, as committed."""
    sql = ("SELECT stage || ':' || COALESCE(error, ''), COUNT(*) FROM recipients "
           "WHERE campaign_id = {} AND stage NOT IN ('Delivered') GROUP BY 1")
    if config.store.dsn:
        with psycopg.connect(config.store.dsn) as conn:
            return dict(conn.execute(sql.format("%s"), (campaign_id,)).fetchall())
    db = sqlite3.connect(config.store.path)
    try:
        return dict(db.execute(sql.format("?"), (campaign_id,)).fetchall())
    finally:
        db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_cancel_marks_the_rest_in_chunks_while_another_campaign_sends(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    write_numbers(tmp_path / "big.txt", BIG, seed=1)
    write_numbers(tmp_path / "small.txt", SMALL, seed=2, prefix="7901")
    # A slow SMSC (one bind, window 4, 20 ms an answer: ~200 msg/s): the big campaign is
    # built and Sending with nearly all of it still New when it is cancelled.
    config = engine_config(tmp_path / "var", response_latency_s=0.02)
    config = replace(config, simulator=replace(config.simulator, binds=1, window=4),
                     store=replace(config.store, unsent_mark_rows=CHUNK))
    if backend == "postgres":
        config = replace(config, store=replace(config.store,
                                               dsn=request.getfixturevalue("pg_dsn")))
    engine = Engine(config)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, sim = parts(engine)
            big = await approved(service, Campaign(sender="S", text="Sale", author="t",
                                                   esme="sim",
                                                   source_path=str(tmp_path / "big.txt")))

            async def sending() -> bool:
                return sim.stats.submits >= 10
            await until(sending, timeout_s=30)
            small = await approved(service, Campaign(sender="S", text="Hi", author="t",
                                                     esme="sim",
                                                     source_path=str(tmp_path / "small.txt")))
            await service.cancel(big, "ops")

            async def big_marked() -> bool:
                k = await store.counters(big)
                return k.pending == 0 and k.inflight == 0
            await until(big_marked, timeout_s=20)
            await until_status(service, small, CampaignStatus.DONE, timeout_s=30)

            k = await store.counters(big)
            assert (await service.get(big)).status is CampaignStatus.CANCELLED
            assert (k.total, k.pending, k.held, k.inflight, k.expired) == (BIG, 0, 0, 0, 0)
            assert k.failed == BIG - k.sent and k.sent < BIG - 2 * CHUNK
            # The transition marked one chunk (and the claims the route gave back were
            # marked as they came back): the engine's chunks marked most of the campaign.
            assert engine.unsent is not None
            assert engine.unsent.rows_marked >= BIG // 2, (engine.unsent.rows_marked, k)
            # ... and the metrics say so
            registry = engine.metrics_registry
            assert registry.get_sample_value("dispatch_engine_unsent_marked_rows_total") \
                == engine.unsent.rows_marked
            assert registry.get_sample_value(
                "dispatch_engine_unsent_marking_failures_total") == 0
            s = await store.counters(small)
            assert (s.total, s.sent, s.pending, s.inflight) == (SMALL, SMALL, 0, 0)
            engine.stop()
            await engine.wait_stopped()
    assert _unsent_by_error(config, big) == {"Failed:campaign cancelled": BIG - k.sent}
