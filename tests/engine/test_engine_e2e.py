"""The engine end to end: a real engine (SQLite store, fast path, trio pools) against the real
built-in simulator over loopback sockets; the simulator's own counts are the reference."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus, SmsResult
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import run_one_shot
from dispatch.simulator import destination_hash
from dispatch.store.base import RecipientFilter

from .helpers import OutcomeRule, SubmitStatusRule, engine_config, write_numbers


async def _run_campaign(tmp_path: Path, count: int, text: str = "Hello {name}",
                        **sim: object):
    numbers = write_numbers(tmp_path / "r.txt", count)
    engine = Engine(engine_config(tmp_path / "var", **sim))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        campaign = Campaign(sender="Shop", text=text, author="t", esme="sim",
                            source_path=str(tmp_path / "r.txt"))
        with trio.fail_after(120):
            result = await run_one_shot(engine, campaign, progress=None, wait_receipts_s=20)
        engine.stop()
        await engine.wait_stopped()
    return engine, result, numbers


async def test_campaign_reaches_done_with_counters_equal_to_simulator(tmp_path: Path) -> None:
    engine, result, numbers = await _run_campaign(tmp_path, 3000, text="Your code is 1234")
    c = result.counters
    stats = engine.simulator.stats  # type: ignore[union-attr]
    assert result.campaign.status is CampaignStatus.DONE
    assert c.total == c.sent == 3000
    assert stats.submits == 3000 and stats.receipts_sent == 3000
    assert c.delivered == 3000 and c.failed == 0 and c.ambiguous == 0
    # Exactly once per recipient, and exactly the recipients of the file.
    sent_to = Counter(r.destination_hash for r in stats.submit_log)
    assert set(sent_to.values()) == {1}
    assert set(sent_to) == {destination_hash(n) for n in numbers}
    # The window was honoured on every session.
    assert stats.max_outstanding <= 256


async def test_outcome_mix_and_rejections_are_counted(tmp_path: Path) -> None:
    engine, result, numbers = await _run_campaign(
        tmp_path, 2000,
        outcomes=(OutcomeRule("UNDELIV", pattern="7$"), OutcomeRule("DELIVRD", share=1.0)),
        submit_status_rules=(SubmitStatusRule("3$", 0x0B),))
    c = result.counters
    rejected = sum(1 for n in numbers if n.endswith("3"))
    undeliverable = sum(1 for n in numbers if n.endswith("7"))
    assert result.campaign.status is CampaignStatus.DONE
    assert c.failed == rejected
    assert c.sent == 2000 - rejected
    assert c.undelivered == undeliverable
    assert c.delivered == 2000 - rejected - undeliverable
    # The store knows why: the status name per recipient, the receipt stat per recipient.
    from dispatch.store.sqlite import SqliteStore

    store = SqliteStore(engine.config.store)
    try:
        cid = result.campaign.id
        assert cid is not None
        failed = store.list_recipients(cid, RecipientFilter(
            sms_results=frozenset({SmsResult.FAILED}), limit=200))
        assert failed.total == undeliverable
        assert {r.receipt_stat for r in failed.items} == {"UNDELIV"}
        assert all(r.number is None and r.masked.endswith(r.masked[-4:]) for r in failed.items)
    finally:
        store.close()


async def test_template_variables_and_multipart(tmp_path: Path) -> None:
    """A CSV with a name column fills the template; a long text goes out in parts whose
    receipts aggregate to one result per recipient."""
    rows = ["phone,name"] + [f"+7900{i:07d},Ann{i}" for i in range(200)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    engine = Engine(engine_config(tmp_path / "var"))
    long_text = "Dear {name}, " + "x" * 200
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        campaign = Campaign(sender="Shop", text=long_text, author="t", esme="sim",
                            source_path=str(tmp_path / "r.csv"))
        with trio.fail_after(60):
            result = await run_one_shot(engine, campaign, progress=None)
        engine.stop()
        await engine.wait_stopped()
    stats = engine.simulator.stats  # type: ignore[union-attr]
    assert result.campaign.status is CampaignStatus.DONE
    assert result.counters.sent == 200 and result.counters.delivered == 200
    assert stats.submits == 400  # two parts each
    texts = {t.decode() if isinstance(t, bytes) else t for _, _, t in stats.multipart_texts}
    assert "Dear Ann7, " + "x" * 200 in texts


@pytest.mark.slow
async def test_hundred_thousand_recipients(tmp_path: Path) -> None:
    engine, result, _ = await _run_campaign(tmp_path, 100_000, text="Sale today")
    stats = engine.simulator.stats  # type: ignore[union-attr]
    assert result.campaign.status is CampaignStatus.DONE
    assert result.counters.sent == stats.submits == 100_000
    assert result.counters.delivered == stats.receipts_sent == 100_000
    assert stats.duplicates == 0
