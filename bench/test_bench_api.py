"""Control API latency under load while the engine dispatches at full rate (issue 5,
"Benchmark"): requests/s, p50/p99 of campaign detail and list over real HTTP, and the
dispatch rate with and without that load. Targets: p99 < 50 ms, slowdown < 10%.

Same code as ``dispatch bench --only api`` (``dispatch.benchsuite.api``): a fresh engine per
run with the simulator in its own process and the HTTP load generator in a third one::

    .venv/bin/python -m pytest bench/test_bench_api.py -s

The figures are reported (printed, ``extra_info``), not asserted: the bench measures. Under
``--benchmark-disable`` it runs a small campaign as a smoke test of the plumbing.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.benchsuite import api


def test_bench_api_latency_under_load(benchmark: Any, request: pytest.FixtureRequest) -> None:
    disabled = request.config.getoption("benchmark_disable")
    count, rps = (3_000, 40.0) if disabled else (100_000, 200.0)
    out: dict[str, Any] = {}

    def once() -> None:
        out["result"] = api.measure(count, rps, None)

    benchmark.pedantic(once, rounds=1, iterations=1)
    result = out["result"]
    benchmark.extra_info.update({f"{f.metric} [{f.variant}]": f.value for f in result.figures})
    print(f"\napi under load ({count} recipients, {rps:g} req/s offered):")
    for f in result.figures:
        print(f"  {f.metric:34s} {f.variant:16s} {f.value:12,.2f} {f.unit}")
    assert result.status == "ok", result.reason
    for variant in ("no API load", "under API load"):
        assert result.figure("dispatch rate", variant) is not None
    for endpoint in api.ENDPOINTS:
        served = result.figure("requests/s", endpoint)
        assert served is not None and served.detail["requests"] > 0
