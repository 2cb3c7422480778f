"""Running one campaign through a real engine for the e2e and api sections.

The engine runs in this process's trio loop (as ``dispatch serve`` would) and talks to the
simulator in its own process over loopback; receipts and the SQLite store are on. While the
campaign runs, the route's ``BindPool`` is sampled (throughput, window occupancy, RSS).
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from control.config import ControlConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import histogram_percentile
from dispatch.benchsuite.sampler import LoopLagProbe, PoolSampler, rss_bytes
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.config import EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.store.base import Counters
from dispatch.transport.config import EsmeConfig

ROUTE = "sim"
ACTOR = "bench"
HASH_KEY_HEX = "00112233445566778899aabbccddeeff"
POLL_S = 0.25


def write_recipients(path: Path, count: int, seed: int = 3) -> None:
    """``count`` distinct valid numbers, one a line, in mixed spellings (+, none, 00)."""
    rng = random.Random(seed)
    picked: set[int] = set()
    while len(picked) < count:
        picked.add(rng.randrange(10**8))
    styles = ("+4917{:08d}", "4917{:08d}", "004917{:08d}")
    with path.open("w") as fh:
        for i, n in enumerate(picked):
            fh.write(styles[i % 3].format(n) + "\n")


def engine_config(data_dir: Path, port: int, *, binds: int = 2, window: int = 512,
                  api: bool = False, system_id: str = "dispatch",
                  password: str = "secret") -> EngineConfig:
    control = ControlConfig(data_dir=str(data_dir), port=0, rate_limit_per_s=1e6,
                            rate_limit_burst=1_000_000)
    return EngineConfig(
        data_dir=str(data_dir), api_enabled=api, hash_key_hex=HASH_KEY_HEX,
        log_level="warning", control=control,
        esmes=(EsmeConfig(name=ROUTE, host="127.0.0.1", port=port, system_id=system_id,
                          password=password, binds=binds, window=window),),
        scheduler=SchedulerConfig(max_claimed_per_route=4 * binds * window, claim_batch=2000),
    ).resolved()


@dataclass(slots=True)
class CampaignRun:
    external_id: str = ""
    status: str = ""
    counters: Counters = field(default_factory=Counters)
    send_s: float = 0.0  # Sending -> terminal
    sending_at: float = 0.0  # time.monotonic() when Sending was seen
    ended_at: float = 0.0  # time.monotonic() when the terminal status was seen
    receipts_settled_s: float = 0.0  # after the end, until every sent message had a result
    rss_growth_bytes: int = 0
    # from the moment the campaign is Sending: the building (the ingest's dedupe table, the
    # insert batches) is behind it, what grows now grows with the queue being worked
    rss_sending_growth_bytes: int = 0
    p50_submit_resp_ms: float = 0.0
    p99_submit_resp_ms: float = 0.0
    sampler: PoolSampler = field(default_factory=PoolSampler)
    loop_lag: LoopLagProbe = field(default_factory=LoopLagProbe)

    @property
    def msgs_per_s(self) -> float:
        return self.counters.sent / self.send_s if self.send_s > 0 else 0.0


def store_pid(engine: Engine) -> int | None:
    """The engine's store process (``dispatch.store.process``), counted as part of the engine
    in CPU and RSS figures; None when the store runs in a thread."""
    return getattr(engine.store.sync, "pid", None) if engine.store is not None else None


async def run_campaign(engine: Engine, source: Path, progress: Progress | None, label: str, *,
                       on_created: Callable[[str], Awaitable[Any]] | None = None,
                       timeout_s: float = 1800.0, wait_receipts_s: float = 60.0) -> CampaignRun:
    """Create + approve (auto-start) a campaign from ``source`` on a running ``engine`` and
    follow it to the end, sampling the route's pool. ``on_created(external_id)`` is awaited
    before approval (the api section starts its load there)."""
    service = engine.service
    assert service is not None
    out = CampaignRun()
    pool = engine.routes[ROUTE].pool
    created = await service.create(Campaign(sender="Bench", text="Bench message", author=ACTOR,
                                            esme=ROUTE, source_path=str(source),
                                            name=f"bench {label}"))
    assert created.id is not None
    out.external_id = str(created.external_id)
    if on_created is not None:
        await on_created(out.external_id)
    gc.collect()
    pid = store_pid(engine)
    out.sampler.pids = pids = (pid,) if pid else ()
    rss_before = rss_bytes(pids)
    rss_at_sending, samples_at_sending = rss_before, 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(out.sampler.run, pool.statistics)
        nursery.start_soon(out.loop_lag.run)
        await service.approve(created.id, ACTOR, auto_start=True, note="bench")
        with trio.fail_after(timeout_s):
            while True:
                current = await service.get(created.id)
                counters = await service.counters(created.id)
                now = time.monotonic()
                if current.status is CampaignStatus.SENDING and not out.sending_at:
                    out.sending_at = now
                    rss_at_sending, samples_at_sending = rss_bytes(pids), len(out.sampler.rss)
                if progress is not None:
                    rate = counters.processed / max(1e-3, now - (out.sending_at or now))
                    progress.update(f"{label}: {current.status.value} "
                                    f"{counters.processed}/{counters.total} "
                                    f"{rate:,.0f} msg/s")
                if current.status.is_terminal:
                    out.ended_at = now
                    break
                await trio.sleep(POLL_S)
        with trio.move_on_after(wait_receipts_s):
            while True:
                counters = await service.counters(created.id)
                if counters.delivered + counters.undelivered + counters.unknown >= counters.sent:
                    break
                await trio.sleep(0.05)
        out.receipts_settled_s = time.monotonic() - out.ended_at
        nursery.cancel_scope.cancel()
    out.status = current.status.value
    out.counters = await service.counters(created.id)
    out.send_s = out.ended_at - (out.sending_at or out.ended_at)
    out.rss_growth_bytes = max(0, max(out.sampler.rss, default=rss_before) - rss_before)
    if out.sending_at:
        out.rss_sending_growth_bytes = max(0, max(out.sampler.rss[samples_at_sending:],
                                                  default=rss_at_sending) - rss_at_sending)
    st = pool.statistics()
    out.p50_submit_resp_ms = histogram_percentile(st.latency_buckets_s, st.latency_counts,
                                                  50) * 1e3
    out.p99_submit_resp_ms = histogram_percentile(st.latency_buckets_s, st.latency_counts,
                                                  99) * 1e3
    return out


async def with_engine(config: EngineConfig, body: Callable[[Engine], Awaitable[Any]]) -> Any:
    """Start an engine, run ``body(engine)``, stop the engine gracefully; body's result."""
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        try:
            with trio.fail_after(30):
                await engine.routes[ROUTE].pool.wait_bound()
            result = await body(engine)
        finally:
            engine.stop()
        with trio.fail_after(60):
            await engine.wait_stopped()
    return result
