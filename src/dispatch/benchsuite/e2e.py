"""Section ``e2e``: a whole campaign, engine -> SMSC simulator over loopback, receipts and
the SQLite store on.

The simulator runs in its own process (engine and SMSC each get a core). Measured: msg/s from
Sending to the end (every recipient submitted and its submit_sm_resp recorded), how long the
receipts (deliver_sm, SMPP 3.4 section 4.6.1) trail the last submit, msg/s until the last
receipt is stored (the rate a campaign sustains with its receipts), p50/p99
submit -> submit_sm_resp from the pool's histogram (bucket upper bounds: conservative), the
engine's RSS growth per recipient, and the throughput and window occupancy over time.
DESIGN.md "Bars": >= 30k msg/s sustained, RSS < 150 bytes per queued recipient.

Baselines in the same run: the pool alone (section ``pool``) is what the SMPP side can do
without the store; the ratio e2e / pool-alone shows what the store and scheduler cost.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from dispatch.benchsuite.campaign import CampaignRun, engine_config, run_campaign, with_engine
from dispatch.benchsuite.campaign import write_recipients as write_recipients
from dispatch.benchsuite.options import SuiteConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult, percentile
from dispatch.benchsuite.simproc import SimulatorProcess
from dispatch.engine.core import Engine
from dispatch.fastpath import IMPLEMENTATION

RECIPIENTS = {"quick": 5_000, "full": 200_000}
BINDS = 2
WINDOW = 512
VARIANT = f"engine+sqlite ({BINDS}x{WINDOW})"


def run_e2e(work: Path, count: int, progress: Progress | None, *, binds: int = BINDS,
            window: int = WINDOW, seed: int = 3) -> CampaignRun:
    """One campaign of ``count`` recipients in a fresh data directory under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "recipients.txt"
    write_recipients(source, count, seed)
    with SimulatorProcess(receipts=True) as sim:
        config = engine_config(work / "var", sim.port, binds=binds, window=window)

        async def body(engine: Engine) -> CampaignRun:
            return await run_campaign(engine, source, progress, f"{count} recipients")

        run: CampaignRun = trio.run(with_engine, config, body)
    return run


def measure(count: int, progress: Progress | None, *, seed: int = 3) -> SectionResult:
    """The section's figures for one campaign of ``count`` recipients."""
    result = SectionResult("e2e")
    result.config = {"recipients": count, "binds": BINDS, "window": WINDOW,
                     "store": "sqlite", "receipts": True, "simulator": "own process",
                     "codec": IMPLEMENTATION}
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-e2e-") as tmp:
        run = run_e2e(Path(tmp), count, progress, seed=seed)
    c = run.counters
    variant = VARIANT
    result.add("throughput", variant, run.msgs_per_s, "msg/s", recipients=c.total, sent=c.sent,
               failed=c.failed, delivered=c.delivered, status=run.status,
               send_s=round(run.send_s, 3),
               mean_window_occupancy_pct=round(run.sampler.mean_occupancy_pct(), 1))
    result.add("receipts settled after the last submit", variant, run.receipts_settled_s, "s")
    # What a campaign sustains with its receipts: sending start to the last receipt stored.
    # (A send rate the receipts cannot follow only piles them up at the SMSC.)
    result.add("throughput with receipts settled", variant,
               count / max(1e-9, run.send_s + run.receipts_settled_s), "msg/s")
    result.add("p50 submit->resp", variant, run.p50_submit_resp_ms, "ms", estimate="bucket bound")
    result.add("p99 submit->resp", variant, run.p99_submit_resp_ms, "ms", estimate="bucket bound")
    lags = sorted(run.loop_lag.lags_ms)
    result.add("p99 event-loop lag", variant, percentile(lags, 99), "ms")
    result.add("max event-loop lag", variant, lags[-1] if lags else float("nan"), "ms")
    result.add("RSS growth per recipient", variant, run.rss_growth_bytes / max(1, count), "B",
               while_sending=round(run.rss_sending_growth_bytes / max(1, count), 1))
    result.series.append(run.sampler.throughput(variant, "e2e throughput"))
    result.series.append(run.sampler.occupancy(variant, "e2e window occupancy"))
    if run.status != "Done" or c.sent != count or c.delivered != c.sent:
        result.status = "failed"
        result.reason = (f"campaign ended {run.status} with sent {c.sent}/{count}, "
                         f"delivered {c.delivered}")
    return result


def run(config: SuiteConfig, progress: Progress) -> SectionResult:
    return measure(RECIPIENTS[config.profile], progress, seed=config.seed)
