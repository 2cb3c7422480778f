"""A build that meets an unexpected error fails its own campaign only: the engine and the other
campaigns go on. Real engine, real simulator, real SQLite store; the error is a real one of
the store: a constraint (an SQLite trigger added to the engine's database by the test) that
rejects the rows of one campaign's numbers, which the store raises as ``IntegrityError`` (no
store outage, so no retry)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.store.base import RecipientFilter

from .helpers import approved, engine_config, parts, until, until_status, write_numbers

BAD_PREFIX = "7911"  # the rejected campaign's numbers; the good one's start with 7900


def reject_rows_of(db_path: str, prefix: str) -> None:
    """Make the engine's database refuse recipient rows whose number starts with ``prefix``."""
    db = sqlite3.connect(db_path, timeout=10)
    try:
        db.execute("CREATE TRIGGER reject_test_numbers BEFORE INSERT ON recipients "
                   f"WHEN NEW.number LIKE '{prefix}%' "
                   "BEGIN SELECT RAISE(ABORT, 'recipient rejected by the test'); END")
        db.commit()
    finally:
        db.close()


async def test_an_unexpected_build_error_fails_only_that_campaign(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad_numbers = write_numbers(tmp_path / "bad.txt", 40, seed=3, prefix=BAD_PREFIX)
    write_numbers(tmp_path / "good.txt", 60, seed=4)
    engine = Engine(engine_config(tmp_path / "var"))
    caplog.set_level(logging.INFO, logger="dispatch.engine.core")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, sim = parts(engine)
            reject_rows_of(engine.config.store.path, BAD_PREFIX)
            bad_campaign = Campaign(sender="S", text="A", author="t", esme="sim",
                                    source_path=str(tmp_path / "bad.txt"))
            bad = await approved(service, bad_campaign)
            good = await approved(service, Campaign(sender="S", text="B", author="t",
                                                    esme="sim",
                                                    source_path=str(tmp_path / "good.txt")))

            async def settled() -> bool:
                return ((await service.get(bad)).status is CampaignStatus.FAILED
                        and (await service.get(good)).status is CampaignStatus.DONE)
            await until(settled)
            assert (await store.counters(good)).sent == 60
            assert sim.stats.submits == 60  # nothing of the failed campaign went out
            history = await store.state_history(bad)
            assert history[-1].phase is CampaignStatus.FAILED
            assert "IntegrityError" in history[-1].reason
            errors = await store.job_errors(bad, 0, 10)
            assert [e.reason for e in errors.items] == ["build_error"]
            assert "IntegrityError" in errors.items[0].message
            # The engine still takes and completes new work after the failure.
            again = await approved(service, Campaign(sender="S", text="C", author="t",
                                                     esme="sim",
                                                     source_path=str(tmp_path / "good.txt")))

            await until_status(service, again, CampaignStatus.DONE)
            assert engine.statistics().control_errors == 1
            external_id = str((await service.get(bad)).external_id)
            engine.stop()
            await engine.wait_stopped()
    failed = [r for r in caplog.records
              if r.getMessage() == "build failed with an unexpected error"]
    assert len(failed) == 1, [r.getMessage() for r in caplog.records]
    assert failed[0].levelno == logging.ERROR
    fields = failed[0].fields  # type: ignore[attr-defined]
    assert fields["campaign"] == external_id
    assert fields["error_type"] == "IntegrityError"
    for record in caplog.records:
        text = repr(getattr(record, "fields", None)) + record.getMessage()
        assert not any(n in text for n in bad_numbers)


async def test_a_build_failing_part_way_leaves_nothing_pending(tmp_path: Path) -> None:
    """The rows a build stored before its error (here the first 5 000-row slice) are marked
    Failed "campaign failed" in the transition to Failed: nothing is left pending in a
    campaign that will never send (its counters showed them pending for ever)."""
    good = write_numbers(tmp_path / "good.txt", 6000, seed=5)
    write_numbers(tmp_path / "bad.txt", 40, seed=6, prefix=BAD_PREFIX)
    (tmp_path / "mixed.txt").write_text((tmp_path / "good.txt").read_text()
                                        + (tmp_path / "bad.txt").read_text())
    engine = Engine(engine_config(tmp_path / "var"))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, sim = parts(engine)
            reject_rows_of(engine.config.store.path, BAD_PREFIX)
            cid = await approved(service, Campaign(sender="S", text="A", author="t",
                                                   esme="sim",
                                                   source_path=str(tmp_path / "mixed.txt")))

            await until_status(service, cid, CampaignStatus.FAILED)
            k = await store.counters(cid)
            assert 0 < k.total < len(good) + 40  # a part was stored before the error
            assert (k.pending, k.inflight, k.sent) == (0, 0, 0)
            assert k.failed == k.total and k.expired == 0
            page = await store.list_recipients(cid, RecipientFilter(limit=200))
            assert page.items and {r.error for r in page.items} == {"campaign failed"}
            assert sim.stats.submits == 0
            engine.stop()
            await engine.wait_stopped()
