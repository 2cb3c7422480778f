"""Plots and summaries from a result document; the progress display on a TTY and a pipe."""

from __future__ import annotations

import io
import json
from pathlib import Path

from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.report import human, markdown, write_report
from dispatch.benchsuite.results import SCHEMA, SectionResult, Series
from dispatch.benchsuite.sampler import PoolSampler, distribution
from dispatch.benchsuite.targets import evaluate
from dispatch.transport.pool import LATENCY_BUCKETS_S, PoolStatistics


def _stats(accepted: int, in_flight: int, capacity: int, queued: int = 0) -> PoolStatistics:
    return PoolStatistics(
        esme="x", binds_configured=1, binds_up=1, queued=queued, in_flight=in_flight,
        window_capacity=capacity, submits=accepted, responses_by_status={}, accepted=accepted,
        failed=0, unknown=0, throttled=0, retries=0, inflight_retried=0, inflight_unknown=0,
        response_timeouts=0, late_responses=0, generic_nacks=0, protocol_errors=0,
        connection_drops=0, reconnects=0, bind_failures=0, last_bind_error="", receipts=0,
        mo_messages=0, rate_limiter_waits=0, latency_buckets_s=LATENCY_BUCKETS_S)


def test_sampler_turns_counters_into_throughput_and_occupancy():
    s = PoolSampler()
    for i, (accepted, used) in enumerate([(0, 0), (500, 50), (1000, 100), (1500, 25)]):
        s.sample(_stats(accepted, used, 100))
        s.t[-1] = i * 0.5  # exact sample times
    tp = s.throughput("run", "g", smooth_s=0.5)
    assert tp.y == [1000.0, 1000.0, 1000.0] and tp.x == [0.5, 1.0, 1.5]
    occ = s.occupancy("run", "g")
    assert occ.y == [0.0, 50.0, 100.0, 25.0]
    assert s.mean_occupancy_pct() == (50 + 100 + 25) / 3


def test_distribution_keeps_quantiles_and_the_maximum():
    d = distribution("lat", "g", [float(i) for i in range(10_000, 0, -1)], points=100)
    assert d.y == sorted(d.y) and d.y[0] == 1.0 and d.y[-1] == 10_000.0
    assert len(d.y) <= 102


def _doc() -> dict:
    s = SectionResult("pool", duration_s=1.5)
    s.add("throughput", "BindPool w=10 b=1", 20_000, "msg/s")
    s.add("throughput", "smpplib w=10", 2_000, "msg/s")
    s.ratio("throughput", "BindPool w=10 b=1", "smpplib w=10")
    s.series += [Series("BindPool w=10 b=1", "timeline", "msg/s", [0.5, 1.0], [1e4, 2e4],
                        group="pool throughput"),
                 distribution("BindPool w=10 b=1", "pool latency", [0.5, 1.0, 4.0])]
    skipped = SectionResult("api", status="skipped", reason="not today")
    return {"schema": SCHEMA, "command": "dispatch bench", "started_at": "2026-01-01T00:00:00",
            "duration_s": 2.0, "config": {"profile": "quick"},
            "machine": {"cpu_count": 2, "cpu_model": "cpu", "python": "3.11", "os": "Linux"},
            "versions": {"trio": "0.35"}, "fastpath": {"implementation": "cython",
                                                       "available": ["cython", "python"]},
            "targets": evaluate({"pool": s}),
            "sections": {"pool": s.to_json(), "api": skipped.to_json()}}


def test_write_report_makes_pngs_and_summaries_that_link_them(tmp_path: Path):
    doc = json.loads(json.dumps(_doc()))
    written = write_report(doc, tmp_path)
    files = {p["file"] for p in doc["plots"]}
    assert files == {"pool-throughput.png", "pool-latency.png", "ratios.png"}
    for name in files:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert tmp_path / "report.md" in written
    for name in files:
        assert f"]({name})" in md and f"src='{name}'" in html
    assert "| throughput | BindPool w=10 b=1 | 20 k msg/s |" in md
    assert "10x" in md and "Status: **skipped**: not today" in md


def test_markdown_without_plots():
    doc = _doc()
    assert "## Plots" not in markdown(doc)


def test_human_numbers():
    assert human(6_120_000, "PDU/s") == "6.12 M PDU/s"
    assert human(61_234, "msg/s") == "61.2 k msg/s"
    assert human(250.4, "MB/s") == "250 MB/s"
    assert human(0.01234, "ms") == "0.0123 ms"
    assert human(400.0, "x") == "400x"
    assert human(None, "ms") == "-" and human(float("nan")) == "-"


def test_progress_redraws_one_line_on_a_tty():
    out = io.StringIO()
    p = Progress(out, live=True, redraw_interval_s=0)
    p.begin("codec", 1, 2)
    p.update("encode")
    p.end("ok", "fast")
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 3 and text.count("\n") == 1
    assert text.endswith("ok in 0.0s: fast\n")


def test_progress_prints_plain_rate_limited_lines_on_a_pipe():
    out = io.StringIO()
    p = Progress(out, live=False, plain_interval_s=3600)
    p.begin("pool", 2, 5)
    for i in range(100):
        p.update(f"step {i}")
    p.end("ok")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[2/5] pool starting" and lines[-1].startswith("[2/5] pool ok in")
    assert len(lines) == 2 and "\r" not in out.getvalue()
