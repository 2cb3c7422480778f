"""BindPool alone against the simulator on loopback, vs a smpplib-based sender, in one run.

Each case sends N single-segment messages and reports messages/s and p50/p99
submit -> submit_sm_resp latency in ``extra_info`` (and prints a line; run with ``-s``)::

    .venv/bin/python -m pytest bench/test_bench_pool.py -s --benchmark-disable-gc \
        --benchmark-columns=min,max,rounds

With ``--benchmark-disable`` every case runs once with a tiny N (a smoke test).
The simulator runs in the same process and trio loop as the pool (2-core machine: the
numbers include the simulator's own cost; ``dispatch bench --only pool`` runs it in its own
process instead). The smpplib sender is smpplib's blocking client in a worker thread,
pipelining ``window`` submits before reading responses (``dispatch.benchsuite.pool``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
import trio

from dispatch.benchsuite.pool import smpplib_send
from dispatch.fastpath import IMPLEMENTATION
from dispatch.simulator import SimulatorConfig, SmscSimulator, run
from dispatch.smpp.text import split_text
from dispatch.transport.config import EsmeConfig
from dispatch.transport.pool import BindPool, OutboundMessage, SubmitOutcome, SubmitStatus

SIM = SimulatorConfig(port=0, receipts=False, log_submits=False)


def _count(benchmark: Any, full: int) -> int:
    return 200 if benchmark.disabled else full


def _report(benchmark: Any, name: str, sent: int, seconds: float,
            latencies_s: list[float]) -> None:
    latencies_s.sort()
    p50 = latencies_s[len(latencies_s) // 2] * 1e3
    p99 = latencies_s[min(len(latencies_s) - 1, int(len(latencies_s) * 0.99))] * 1e3
    rate = sent / seconds
    benchmark.extra_info.update(msgs_per_s=round(rate), p50_ms=round(p50, 3),
                                p99_ms=round(p99, 3), messages=sent,
                                codec=IMPLEMENTATION)
    print(f"\n{name:28s} {rate:10.0f} msg/s  p50 {p50:8.3f} ms  p99 {p99:8.3f} ms  "
          f"({sent} msgs, codec {IMPLEMENTATION})")


def _pool_run(count: int, window: int, binds: int) -> tuple[float, list[float]]:
    result: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim: SmscSimulator = await nursery.start(run, SIM)
            pool = BindPool(EsmeConfig(name="bench", host="127.0.0.1", port=sim.port,
                                       system_id="dispatch", password="secret", binds=binds,
                                       window=window, queue_size=max(10_000, window * binds)))
            await nursery.start(pool.run)
            await pool.wait_bound(binds)
            segments = split_text("benchmark message")
            msgs = [OutboundMessage(i, b"Shop", b"4915%09d" % i, segments, source_addr_ton=5)
                    for i in range(count)]
            latencies: list[float] = []
            with trio.fail_after(600):
                start = time.perf_counter()
                nursery.start_soon(pool.submit_many, msgs)
                while len(latencies) < count:
                    for ev in await pool.outcomes.receive():
                        if isinstance(ev, SubmitOutcome):
                            assert ev.status is SubmitStatus.ACCEPTED
                            latencies.append(ev.latency_s)
                result["seconds"] = time.perf_counter() - start
            result["latencies"] = latencies
            pool.close()
            nursery.cancel_scope.cancel()

    trio.run(main)
    return result["seconds"], result["latencies"]


@pytest.mark.parametrize("binds", [1, 2])
@pytest.mark.parametrize("window", [1, 10, 100, 1000])
def test_pool_throughput(benchmark: Any, window: int, binds: int) -> None:
    full = {1: 3_000, 10: 20_000, 100: 60_000, 1000: 100_000}[window]
    count = _count(benchmark, full)
    out: dict[str, Any] = {}

    def once() -> None:
        out["seconds"], out["latencies"] = _pool_run(count, window, binds)

    benchmark.pedantic(once, rounds=1, iterations=1)
    _report(benchmark, f"pool window={window} binds={binds}", count, out["seconds"],
            out["latencies"])


@pytest.mark.parametrize("window", [1, 10, 100])
def test_smpplib_sender_throughput(benchmark: Any, window: int) -> None:
    count = _count(benchmark, 3_000 if window == 1 else 10_000)
    out: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim: SmscSimulator = await nursery.start(run, SIM)
            seconds, latencies_ms = await trio.to_thread.run_sync(
                smpplib_send, sim.port, count, window, "dispatch", "secret")
            out["seconds"], out["latencies"] = seconds, [ms / 1e3 for ms in latencies_ms]
            nursery.cancel_scope.cancel()

    benchmark.pedantic(lambda: trio.run(main), rounds=1, iterations=1)
    _report(benchmark, f"smpplib window={window}", count, out["seconds"], out["latencies"])
    assert statistics.mean(out["latencies"]) > 0
