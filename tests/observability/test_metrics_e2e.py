"""/metrics scraped over real HTTP during a real engine run (embedded simulator, SQLite, API on
a free port): the counters agree with what the simulator saw, and the names pass promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import OneShotResult, run_one_shot
from dispatch.observability.registry import ObservabilityConfig
from dispatch.simulator import OutcomeRule, SubmitStatusRule

from .helpers import api_engine_config, http_get, parse, total, value, viewer_key, write_numbers

COUNT = 2000
TPS = 2000.0  # about a second of sending: scrapes land while the campaign is Sending


async def test_scrapes_during_a_run_agree_with_the_simulator(tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "r.txt", COUNT)
    config = api_engine_config(
        tmp_path / "var", tps=TPS,
        outcomes=(OutcomeRule("UNDELIV", pattern="7$"), OutcomeRule("DELIVRD", share=1.0)),
        submit_status_rules=(SubmitStatusRule("3$", 0x0B),))
    key = viewer_key(config)
    engine = Engine(config)
    # Sample campaigns often, so scrapes during a short run see it in flight.
    engine.observability = ObservabilityConfig(campaign_sample_interval_s=0.05)
    scrapes: list[bytes] = []
    result: list[OneShotResult] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.api_port is not None and engine.campaign_sampler is not None
        port = engine.api_port

        async def run() -> None:
            campaign = Campaign(sender="Shop", text="Metrics run", author="t", esme="sim",
                                source_path=str(tmp_path / "r.txt"))
            result.append(await run_one_shot(engine, campaign, progress=None,
                                             wait_receipts_s=30))

        with trio.fail_after(120):
            async with trio.open_nursery() as inner:
                inner.start_soon(run)
                for _ in range(2000):  # bounded; ends when the run does
                    status, body = await http_get(port, "/metrics")
                    assert status == 200
                    scrapes.append(body)
                    if result:
                        break
                    await trio.sleep(0.05)
            await engine.campaign_sampler.sample()
            status, final = await http_get(port, "/metrics")
            assert status == 200
            status, diag = await http_get(port, "/diagnostics", {"X-API-Key": key})
            assert status == 200
            status, _ = await http_get(port, "/api/v1/campaigns?limit=5", {"X-API-Key": key})
            assert status == 200
            assert (await http_get(port, "/no/such/path"))[0] == 404
            status, after_api = await http_get(port, "/metrics")
        engine.stop()
        await engine.wait_stopped()

    sim = engine.simulator
    assert sim is not None
    counters = result[0].counters
    assert result[0].campaign.status is CampaignStatus.DONE
    rejected = sum(1 for n in numbers if n.endswith("3"))
    undeliverable = sum(1 for n in numbers if n.endswith("7"))
    m = parse(final)

    # Submits and responses: what the pool wrote is what the simulator answered.
    assert value(m, "dispatch_smpp_submits_total", esme="sim") == sim.stats.submits == COUNT
    assert value(m, "dispatch_simulator_submits_total") == sim.stats.submits
    assert value(m, "dispatch_smpp_submit_responses_total", esme="sim",
                 command_status="ESME_ROK") == sim.stats.submits_by_status[0]
    assert value(m, "dispatch_smpp_submit_responses_total", esme="sim",
                 command_status="ESME_RINVDSTADR") == sim.stats.submits_by_status[0x0B] == rejected
    assert value(m, "dispatch_smpp_messages_total", esme="sim", outcome="accepted") \
        == counters.sent == COUNT - rejected
    assert value(m, "dispatch_smpp_messages_total", esme="sim", outcome="failed") \
        == counters.failed == rejected
    # Receipts: every one the simulator sent was counted, by stat, and matched in the store.
    assert total(m, "dispatch_smpp_receipts_total", esme="sim") == sim.stats.receipts_sent
    assert value(m, "dispatch_smpp_receipts_total", esme="sim", stat="UNDELIV") \
        == counters.undelivered == undeliverable
    assert value(m, "dispatch_smpp_receipts_total", esme="sim", stat="DELIVRD") \
        == counters.delivered
    assert value(m, "dispatch_store_receipts_matched_total") == sim.stats.receipts_sent
    assert value(m, "dispatch_store_written_rows_total", kind="outcome") == COUNT
    # Latency histograms are consistent: one latency per response, a sampled receipt delay.
    assert value(m, "dispatch_smpp_submit_latency_seconds_count", esme="sim") == COUNT
    assert value(m, "dispatch_smpp_submit_latency_seconds_bucket", esme="sim", le="+Inf") \
        == COUNT
    assert 0 < value(m, "dispatch_smpp_receipt_delay_seconds_count", esme="sim") \
        <= sim.stats.receipts_sent
    assert value(m, "dispatch_store_commit_duration_seconds_count") \
        == value(m, "dispatch_store_commits_total") > 0
    # Binds, window and the TPS contract.
    assert value(m, "dispatch_smpp_binds", esme="sim", state="up") == 2
    assert value(m, "dispatch_smpp_window_size", esme="sim") == 512
    assert value(m, "dispatch_smpp_tps_limit", esme="sim") == TPS
    # Campaigns, store, ingest.
    assert value(m, "dispatch_campaigns", status="Done") == 1
    assert value(m, "dispatch_store_up") == 1
    assert value(m, "dispatch_kpi_sms_sent") == counters.sent
    assert value(m, "dispatch_ingest_recipients_total") == COUNT
    assert value(m, "dispatch_ingest_files_total", format="txt", result="ok") == 1

    # Scrapes taken while sending saw the campaign in flight, and counters never went back.
    seen = [parse(s) for s in scrapes]
    mid = [s for s in seen if total(s, "dispatch_top_campaign_recipients") > 0]
    assert mid, "no scrape landed while the campaign was active"
    assert any(0 < total(s, "dispatch_smpp_submits_total") < COUNT for s in seen)
    submits = [total(s, "dispatch_smpp_submits_total") for s in [*seen, m]]
    assert submits == sorted(submits)
    for s in mid:
        progress = [v for (n, _), v in s.items() if n == "dispatch_top_campaign_progress_ratio"]
        assert len(progress) == 1 and 0.0 <= progress[0] <= 1.0

    # API metrics: by route template, never by concrete path; unmatched routes folded.
    a = parse(after_api)
    assert value(a, "dispatch_api_requests_total", method="GET", route="/metrics",
                 status="200") == len(scrapes) + 1
    assert value(a, "dispatch_api_requests_total", method="GET", route="/api/v1/campaigns",
                 status="200") == 1
    assert value(a, "dispatch_api_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(a, "dispatch_api_request_duration_seconds_count", method="GET",
                 route="/diagnostics") == 1

    report = json.loads(diag)
    assert report["status"] == "ok" and report["core"] == "up"
    assert report["store"]["reachable"] is True
    assert report["esmes"]["sim"]["bindsUp"] == 2 and report["esmes"]["sim"]["up"] is True

    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=final,
                               capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_a_real_scrape(tmp_path: Path) -> None:
    from dispatch.observability.scrape import scrape_running_engine

    body = trio.run(scrape_running_engine, tmp_path, 200)
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert b"dispatch_smpp_submits_total" in body
