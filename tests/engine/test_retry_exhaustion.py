"""Retry exhaustion is a job error (seeds/003): the SMSC answers a transient error
(ESME_RSYSERR) for some numbers every time; the pool retries each ``max_retries`` times, then
fails it, and the campaign's job errors name each such recipient by its file line. Real engine,
real simulator, real SQLite store."""

from __future__ import annotations

from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.smpp.constants import CommandStatus
from dispatch.store.base import RETRY_EXHAUSTED

from .helpers import (
    SubmitStatusRule,
    approved,
    engine_config,
    parts,
    until_status,
    write_numbers,
)


async def test_submits_failed_after_their_retries_are_job_errors(tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "r.txt", 200)
    failing = {i + 1 for i, n in enumerate(numbers) if n.endswith("7")}  # file lines
    assert failing
    engine = Engine(engine_config(tmp_path / "var", submit_status_rules=(
        SubmitStatusRule("7$", CommandStatus.ESME_RSYSERR),)))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, sim = parts(engine)
            cid = await approved(service, Campaign(sender="S", text="Hi", author="t",
                                                   esme="sim",
                                                   source_path=str(tmp_path / "r.txt")))

            await until_status(service, cid, CampaignStatus.DONE, timeout_s=50)
            k = await store.counters(cid)
            assert (k.total, k.failed, k.job_errors) == (200, len(failing), len(failing))
            page = await store.job_errors(cid, 0, 200)
            assert {e.line_no for e in page.items} == failing
            assert {(e.reason, e.message) for e in page.items} == {
                (RETRY_EXHAUSTED, "submit failed after 4 attempts: retries of ESME_RSYSERR "
                                  "exhausted")}
            assert sim.stats.submits == 200 + 3 * len(failing)  # 3 retries each
            engine.stop()
            await engine.wait_stopped()
