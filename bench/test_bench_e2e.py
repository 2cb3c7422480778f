"""End to end: engine -> SMSC simulator over loopback, receipts and the SQLite store on.

The simulator runs in its own process (``python -m dispatch.simulator``) so engine and SMSC
each get a core, as they would in production. Reports messages/s from Sending to the last
submit result, receipts settled, p99 submit->resp and the engine's RSS growth per recipient
(the same code as ``dispatch bench --only e2e``: ``dispatch.benchsuite.e2e``). Run it for
real with ``./dev bench -k e2e -s``; under ``--benchmark-disable`` (CI smoke) it sends a
small campaign.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.benchsuite import e2e


def test_bench_e2e_campaign(benchmark: Any, request: pytest.FixtureRequest) -> None:
    disabled = request.config.getoption("benchmark_disable")
    count = 3_000 if disabled else 200_000
    out: dict[str, Any] = {}

    def once() -> None:
        out["result"] = e2e.measure(count, None)

    benchmark.pedantic(once, rounds=1, iterations=1)
    result = out["result"]
    figures = {f.metric: f.value for f in result.figures}
    benchmark.extra_info.update(figures)
    print(f"\ne2e ({count} recipients): " + ", ".join(
        f"{f.metric} {f.value:,.3f} {f.unit}" for f in result.figures))
    assert result.status == "ok", result.reason
    throughput = result.figure("throughput", e2e.VARIANT)
    assert throughput is not None
    assert throughput.detail["sent"] == count and throughput.detail["delivered"] == count
