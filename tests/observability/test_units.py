"""The plain-int pieces behind the collectors: histograms, receipt stats, label bounds."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dispatch.ingest import IngestSummary
from dispatch.observability.buckets import BucketCounts
from dispatch.observability.collectors import IngestCollector, PoolCollector, status_label
from dispatch.observability.ingest import IngestStatistics
from dispatch.observability.receipts import ReceiptStatistics, stat_label
from dispatch.transport.config import EsmeConfig
from dispatch.transport.pool import BindPool

from .helpers import parse, value


def test_bucket_counts_are_cumulative_at_scrape() -> None:
    h = BucketCounts((0.1, 1.0, math.inf))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap.counts == (2, 1, 1) and snap.count == 4 and snap.sum == pytest.approx(3.65)
    assert snap.cumulative() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]
    with pytest.raises(ValueError):
        BucketCounts((1.0, 2.0))  # no +Inf bucket


def test_receipt_delay_is_sampled_bounded_and_ends_on_final_receipts() -> None:
    rs = ReceiptStatistics(sample_every=2, max_tracked=2)
    for i, mid in enumerate("abcdef"):
        rs.accepted(mid, float(i))  # b, d, f sampled; b evicted when f came
    assert rs.tracked == 2 and rs.evicted == 1
    rs.received("d", "ENROUTE", False, 10.0)  # intermediate: the delay goes on
    rs.received("d", "DELIVRD", True, 13.0)
    rs.received("f", "delivrd", True, 6.5)
    rs.received("b", "UNDELIV", True, 20.0)  # evicted: not observed
    rs.received(None, "WHATEVER", True, 21.0)
    snap = rs.delay.snapshot()
    assert snap.count == 2 and snap.sum == pytest.approx(10.0 + 1.5)
    assert rs.by_stat == {"ENROUTE": 1, "DELIVRD": 2, "UNDELIV": 1, "OTHER": 1}
    assert stat_label(None) == "NONE"


def test_status_labels_stay_bounded() -> None:
    assert status_label("ESME_RTHROTTLED") == "ESME_RTHROTTLED"
    assert status_label("0x00000401") == "0x00000401"  # vendor range, SMPP 3.4 5.1.3
    assert status_label("0x7FFFFFFF") == "other"
    assert status_label("garbage") == "other"


def test_pool_collector_folds_unknown_statuses() -> None:
    pool = BindPool(EsmeConfig(name="op", host="127.0.0.1", port=1, system_id="a",
                               password="b", binds=3))
    pool._resps_by_status.update({0: 5, 0x58: 2, 0x12345: 1, 0x7654321: 1})
    pool.receipt_stats.received("x", "DELIVRD", True, 1.0)
    registry = CollectorRegistry()
    registry.register(PoolCollector(lambda: [pool.statistics()]))
    m = parse(generate_latest(registry))
    assert value(m, "dispatch_smpp_submit_responses_total", esme="op",
                 command_status="ESME_ROK") == 5
    assert value(m, "dispatch_smpp_submit_responses_total", esme="op",
                 command_status="ESME_RTHROTTLED") == 2
    assert value(m, "dispatch_smpp_submit_responses_total", esme="op",
                 command_status="other") == 2
    assert value(m, "dispatch_smpp_binds", esme="op", state="down") == 3
    assert value(m, "dispatch_smpp_receipts_total", esme="op", stat="DELIVRD") == 1


def test_ingest_statistics_sum_files_and_bound_reasons() -> None:
    st = IngestStatistics()
    st.started()
    st.finished(IngestSummary(format="csv", implementation="python", bytes_total=1000,
                              lines=20, valid=15, invalid=4, duplicates=1, errors=(),
                              error_counts={"too_short": 2, "new_reason": 1}), 0.02)
    st.started()
    st.finished(None, 0.001)
    registry = CollectorRegistry()
    registry.register(IngestCollector(st))
    m = parse(generate_latest(registry))
    assert value(m, "dispatch_ingest_files_total", format="csv", result="ok") == 1
    assert value(m, "dispatch_ingest_files_total", format="unknown", result="failed") == 1
    assert value(m, "dispatch_ingest_invalid_lines_total", reason="too_short") == 2
    assert value(m, "dispatch_ingest_invalid_lines_total", reason="other") == 2
    assert value(m, "dispatch_ingest_read_bytes_total") == 1000
    assert value(m, "dispatch_ingest_duration_seconds_count") == 2
    assert value(m, "dispatch_ingest_in_progress") == 0
