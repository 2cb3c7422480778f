"""End to end: engine -> SMSC simulator over loopback, receipts and the SQLite store on.

The simulator runs in its own process (``python -m dispatch.simulator``) so engine and SMSC
each get a core, as they would in production. Reports messages/s from Sending to the last
submit result, receipts settled, and the engine's RSS per recipient. Run it for real with
``./dev bench -k e2e -s``; under ``--benchmark-disable`` (CI smoke) it sends a small campaign.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.config import EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import run_one_shot
from dispatch.transport.config import EsmeConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from engine.helpers import write_numbers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("simulator did not start")


def run_e2e(tmp: Path, count: int, binds: int = 2, window: int = 512) -> dict[str, float]:
    tmp.mkdir(parents=True, exist_ok=True)
    write_numbers(tmp / "r.txt", count, seed=3)
    port = _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "dispatch.simulator", "--port", str(port),
                            "--no-log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        config = EngineConfig(
            data_dir=str(tmp / "var"), api_enabled=False,
            hash_key_hex="00112233445566778899aabbccddeeff",
            esmes=(EsmeConfig(name="sim", host="127.0.0.1", port=port, system_id="dispatch",
                              password="secret", binds=binds, window=window),),
            scheduler=SchedulerConfig(max_claimed_per_route=4 * binds * window,
                                      claim_batch=2000)).resolved()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        async def main() -> dict[str, float]:
            engine = Engine(config)
            async with trio.open_nursery() as nursery:
                await nursery.start(engine.run)
                campaign = Campaign(sender="Bench", text="Bench message", author="bench",
                                    esme="sim", source_path=str(tmp / "r.txt"))
                result = await run_one_shot(engine, campaign, progress=None,
                                            wait_receipts_s=60)
                engine.stop()
                await engine.wait_stopped()
            assert result.campaign.status is CampaignStatus.DONE
            c = result.counters
            return {"messages": c.sent, "msgs_per_s": c.sent / result.send_s,
                    "send_s": result.send_s, "receipts_settled_s": result.receipts_wait_s,
                    "delivered": c.delivered}

        figures = trio.run(main)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        figures["rss_growth_bytes_per_recipient"] = max(0, rss_after - rss_before) * 1024 / count
        return figures
    finally:
        sim.terminate()
        sim.wait(timeout=10)


def test_bench_e2e_campaign(benchmark: pytest.FixtureRequest, tmp_path: Path,
                            request: pytest.FixtureRequest) -> None:
    disabled = request.config.getoption("benchmark_disable")
    count = 5_000 if disabled else 200_000
    figures: dict[str, float] = {}

    def once() -> None:
        figures.update(run_e2e(tmp_path / f"run{len(figures)}", count))

    benchmark.pedantic(once, rounds=1, iterations=1)  # type: ignore[attr-defined]
    benchmark.extra_info.update(figures)  # type: ignore[attr-defined]
    print(f"\ne2e: {figures}")
    assert figures["messages"] == count
    assert figures["delivered"] == count
