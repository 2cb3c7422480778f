"""Section ``api``: control API latency under load while the engine dispatches at full rate,
and what that load costs the dispatch rate (issue 5, "Benchmark"; DESIGN.md "Bars").

Two runs of the same campaign, each on a fresh engine (same store contents: the campaign plus
``LIST_CAMPAIGNS`` others so the list has something to sort), one simulator process shared:

1. baseline: the API is up but idle; the dispatch rate is measured;
2. loaded: a load process (``dispatch.benchsuite.httpload``, its own process so its CPU is
   not charged to the engine's loop) offers ``rps`` requests/s, alternating campaign detail
   (``GET /api/v1/campaigns/{id}``, the one being sent) and list
   (``GET /api/v1/campaigns?limit=50``) over real HTTP/1.1 keep-alive connections. The load
   first runs ``IDLE_S`` against the engine before the campaign is approved: those requests
   are the latency baseline ("engine idle"); then the dispatch rate and the latencies of the
   requests due inside the Sending period are measured. The engine's event-loop lag is
   sampled in both runs (how late a 10 ms sleep wakes: a floor under every request).

Targets: p99 < 50 ms on both endpoints, and the loaded dispatch rate within 10% of the
baseline. The load is open-loop at a fixed offered rate (a Message Center with many operators
polling), not a saturation test: the question is whether the API stays responsive and cheap
while sending, not how many requests the engine's one loop can serve instead of sending.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from control.keys import KeyStore
from dispatch.benchsuite.campaign import (
    ACTOR,
    ROUTE,
    CampaignRun,
    engine_config,
    run_campaign,
    with_engine,
    write_recipients,
)
from dispatch.benchsuite.httpload import KEY_ENV, MAX_CONNECTIONS
from dispatch.benchsuite.options import SuiteConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult, Series, percentile
from dispatch.benchsuite.sampler import distribution
from dispatch.benchsuite.simproc import SimulatorProcess
from dispatch.campaigns.model import Campaign
from dispatch.engine.core import Engine

RECIPIENTS = {"quick": 6_000, "full": 100_000}
DEFAULT_RPS = {"quick": 50.0, "full": 200.0}
LIST_CAMPAIGNS = 50
ENDPOINTS = ("campaign detail", "campaign list")
P99_TARGET_MS = 50.0
SLOWDOWN_TARGET_PCT = 10.0
LOAD_START_TIMEOUT_S = 30.0
#: seconds of API load on the idle engine before the campaign starts: the latency baseline
IDLE_S = {"quick": 1.0, "full": 5.0}


@dataclass(slots=True)
class LoadResult:
    records: list[list[float]] = field(default_factory=list)
    errors: int = 0
    idle: tuple[float, float] = (0.0, 0.0)  # the idle-engine window (time.monotonic())


class LoadProcess:
    """The httpload child: started before the campaign, stopped by closing its stdin."""

    def __init__(self, port: int, key: str, rps: float, paths: list[str]) -> None:
        self.argv = [sys.executable, "-m", "dispatch.benchsuite.httpload", "--port", str(port),
                     "--rps", str(rps), *paths]
        self.env = dict(os.environ, **{KEY_ENV: key})
        self.proc: trio.Process | None = None
        self.idle_from = 0.0  # the idle-engine baseline window (time.monotonic())
        self.idle_until = 0.0

    async def start(self) -> None:
        self.proc = await trio.lowlevel.open_process(self.argv, env=self.env,
                                                     stdin=subprocess.PIPE,
                                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        with trio.fail_after(LOAD_START_TIMEOUT_S):
            line = await self._read_line()
        if line.strip() != b"ready":
            raise RuntimeError(f"load generator did not start: {line[:200]!r}")

    async def _read_line(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        out = bytearray()
        while not out.endswith(b"\n"):
            chunk = await self.proc.stdout.receive_some(1)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    async def stop(self) -> LoadResult:
        assert self.proc is not None and self.proc.stdin is not None
        assert self.proc.stdout is not None
        await self.proc.stdin.aclose()
        data = bytearray()
        with trio.fail_after(60):
            while chunk := await self.proc.stdout.receive_some(1 << 16):
                data += chunk
            await self.proc.wait()
        doc = json.loads(data)
        return LoadResult(doc["records"], int(doc["errors"]), (self.idle_from, self.idle_until))

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


async def _populate(engine: Engine) -> None:
    """Campaigns in New beside the measured one, so the list query sorts a real page."""
    assert engine.service is not None
    for i in range(LIST_CAMPAIGNS):
        await engine.service.create(Campaign(sender=f"Shop{i % 7}", text="Sale today",
                                             author=ACTOR, esme=ROUTE, name=f"other {i}"))


def one_run(work: Path, sim_port: int, source: Path, progress: Progress | None, label: str,
            rps: float, idle_s: float = 0.0) -> tuple[CampaignRun, LoadResult | None]:
    """One campaign on a fresh engine; with ``rps`` > 0 the load runs ``idle_s`` against the
    idle engine first (the latency baseline), then through the whole campaign."""
    config = engine_config(work / "var", sim_port, api=True)
    key, _ = KeyStore(config.control.keys_path).create_key("viewer", label="bench")
    load: list[LoadProcess] = []

    async def body(engine: Engine) -> tuple[CampaignRun, LoadResult | None]:
        await _populate(engine)
        assert engine.api_port is not None

        async def start_load(external_id: str) -> None:
            if rps > 0:
                proc = LoadProcess(engine.api_port or 0, key, rps,
                                   [f"/api/v1/campaigns/{external_id}",
                                    "/api/v1/campaigns?limit=50"])
                load.append(proc)
                await proc.start()
                proc.idle_from = time.monotonic()
                if progress is not None:
                    progress.update(f"{label}: API load on the idle engine")
                await trio.sleep(idle_s)
                proc.idle_until = time.monotonic()

        try:
            run = await run_campaign(engine, source, progress, label, on_created=start_load)
            result = await load[0].stop() if load else None
        finally:
            for proc in load:
                proc.kill()
        return run, result

    return trio.run(with_engine, config, body)


def _latency_figures(result: SectionResult, rows: list[list[float]], endpoint: str,
                     window_s: float, rps: float, group: str) -> list[float]:
    """requests/s served, dropped, p50/p99/max of the successful ones; their latencies."""
    ok = sorted(r[1] * 1e3 for r in rows if r[1] >= 0 and 200 <= int(r[3]) < 300)
    result.add("requests/s", endpoint, len(ok) / max(1e-9, window_s), "req/s",
               offered_rps=rps / len(ENDPOINTS), requests=len(rows))
    result.add("requests dropped or failed", endpoint, len(rows) - len(ok), "requests",
               share_pct=round(100 * (len(rows) - len(ok)) / max(1, len(rows)), 1))
    result.add("p50 latency", endpoint, percentile(ok, 50), "ms")
    result.add("p99 latency", endpoint, percentile(ok, 99), "ms")
    result.add("max latency", endpoint, ok[-1] if ok else float("nan"), "ms")
    result.series.append(distribution(endpoint, group, ok))
    return ok


def _api_figures(result: SectionResult, run: CampaignRun, load: LoadResult,
                 rps: float) -> None:
    idle = load.idle
    inside = [r for r in load.records if run.sending_at <= r[0] <= run.ended_at]
    before = [r for r in load.records if idle[0] <= r[0] < idle[1]]
    for index, endpoint in enumerate(ENDPOINTS):
        idle_variant = f"{endpoint} (engine idle)"
        _latency_figures(result, [r for r in before if int(r[2]) == index], idle_variant,
                         idle[1] - idle[0], rps, "api latency")
        rows = [r for r in inside if int(r[2]) == index]
        _latency_figures(result, rows, endpoint, run.ended_at - run.sending_at, rps,
                         "api latency")
        result.ratio("p99 latency", endpoint, idle_variant)
        timeline = Series(endpoint, "timeline", "ms", group="api latency over time")
        for r in rows:
            if r[1] >= 0:
                timeline.x.append(round(r[0] - run.sending_at, 3))
                timeline.y.append(round(r[1] * 1e3, 3))
        result.series.append(timeline)
    if load.errors:
        result.notes.append(f"{load.errors} request(s) were dropped (all {MAX_CONNECTIONS} "
                            "connections of the generator busy: the server fell behind the "
                            "offered rate) or failed; latencies are of the answered ones")


def run(config: SuiteConfig, progress: Progress) -> SectionResult:
    return measure(RECIPIENTS[config.profile], config.api_rps or DEFAULT_RPS[config.profile],
                   progress, seed=config.seed, profile=config.profile)


def measure(count: int, rps: float, progress: Progress | None, *,
            seed: int = 3, profile: str = "quick") -> SectionResult:
    """The section's figures: a campaign of ``count`` recipients without and with ``rps``
    requests/s of API load."""
    result = SectionResult("api")
    result.config = {"recipients": count, "offered_rps": rps, "endpoints": list(ENDPOINTS),
                     "list_campaigns": LIST_CAMPAIGNS + 1, "load": "open loop, own process",
                     "p99_target_ms": P99_TARGET_MS, "slowdown_target_pct": SLOWDOWN_TARGET_PCT}
    runs: dict[str, CampaignRun] = {}
    idle_s = IDLE_S[profile]
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-api-") as tmp:
        work = Path(tmp)
        source = work / "recipients.txt"
        write_recipients(source, count, seed)
        with SimulatorProcess(receipts=True) as sim:
            runs["no API load"], _ = one_run(work / "baseline", sim.port, source, progress,
                                             "no API load", 0.0)
            runs["under API load"], load = one_run(work / "loaded", sim.port, source,
                                                   progress, "under API load", rps, idle_s)
    for variant, r in runs.items():
        c = r.counters
        result.add("dispatch rate", variant, r.msgs_per_s, "msg/s", sent=c.sent, total=c.total,
                   status=r.status, send_s=round(r.send_s, 3))
        result.series.append(r.sampler.throughput(variant, "api dispatch throughput"))
        if r.status != "Done" or c.sent != count:
            result.status = "failed"
            result.reason = f"{variant}: campaign ended {r.status}, sent {c.sent}/{count}"
    ratio = result.ratio("dispatch rate", "under API load", "no API load")
    if ratio is not None:
        result.add("dispatch slowdown under API load", "engine", (1 - ratio.value) * 100, "%")
    for variant, r in runs.items():
        lags = sorted(r.loop_lag.lags_ms)
        result.add("p99 event-loop lag", variant, percentile(lags, 99), "ms")
        result.add("max event-loop lag", variant, lags[-1] if lags else float("nan"), "ms")
    assert load is not None
    _api_figures(result, runs["under API load"], load, rps)
    return result
