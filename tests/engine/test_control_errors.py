"""The control loop contains a campaign's failure to that campaign: an unexpected error in one
campaign's step is logged (no clear phone number) and counted, and the other campaigns still
advance; and a campaign whose route no configured ESME serves is failed before its recipient
file is ingested. Real engine, real simulator, real SQLite store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine

from .helpers import approved, engine_config, parts, until_status, write_numbers

NUMBER = "79001234567"  # in the injected error's text: must never reach a log in clear


async def test_one_campaigns_error_does_not_stop_the_others(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_numbers(tmp_path / "a.txt", 50, seed=1)
    write_numbers(tmp_path / "b.txt", 50, seed=2, prefix="7901")
    engine = Engine(engine_config(tmp_path / "var"))
    caplog.set_level(logging.INFO, logger="dispatch.engine.core")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, _ = parts(engine)
            real_counters = store.counters
            broken: set[int] = set()

            async def counters(campaign_id: int) -> Any:
                if campaign_id in broken:  # a defect met by this campaign's step only
                    raise ValueError(f"cannot read the counters of +{NUMBER}")
                return await real_counters(campaign_id)

            store.counters = counters  # type: ignore[method-assign]
            bad = await approved(service, Campaign(sender="S", text="A", author="t",
                                                   esme="sim",
                                                   source_path=str(tmp_path / "a.txt")))
            broken.add(bad)  # its first Sending step meets the error, and every one after
            good = await approved(service, Campaign(sender="S", text="B", author="t",
                                                    esme="sim",
                                                    source_path=str(tmp_path / "b.txt")))

            await until_status(service, good, CampaignStatus.DONE)
            assert (await real_counters(good)).sent == 50
            assert engine.statistics().control_errors >= 1
            assert (await service.get(bad)).status is CampaignStatus.SENDING
            engine.stop()
            await engine.wait_stopped()
    failed = [r for r in caplog.records if r.getMessage() == "control step failed for a campaign"]
    assert failed, [r.getMessage() for r in caplog.records]
    fields = failed[0].fields  # type: ignore[attr-defined]
    assert fields["status"] == "Sending" and "ValueError" in fields["error"]
    for record in caplog.records:
        assert NUMBER not in repr(getattr(record, "fields", None)) + record.getMessage()


async def test_a_campaign_on_an_unknown_route_fails_before_its_file_is_built(
        tmp_path: Path) -> None:
    write_numbers(tmp_path / "r.txt", 2000)
    engine = Engine(engine_config(tmp_path / "var"))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, _ = parts(engine)
            cid = await approved(service, Campaign(sender="S", text="Hi", author="t",
                                                   esme="nowhere",
                                                   source_path=str(tmp_path / "r.txt")))

            await until_status(service, cid, CampaignStatus.FAILED)
            history = await store.state_history(cid)
            assert history[-1].phase is CampaignStatus.FAILED
            assert history[-1].reason == "unknown ESME route 'nowhere'"
            assert CampaignStatus.SENDING not in {h.phase for h in history}
            k = await store.counters(cid)
            assert (k.total, k.pending) == (0, 0)  # the file was never ingested
            errors = await store.job_errors(cid, 0, 10)
            assert [(e.reason, e.message) for e in errors.items] == [
                ("unknown_route", "unknown ESME route 'nowhere'")]
            engine.stop()
            await engine.wait_stopped()
