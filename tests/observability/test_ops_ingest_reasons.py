"""Every reason the recipient parser gives a rejected line is its own value of
``dispatch_ingest_invalid_lines_total{reason}``: a real file through the real parser."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from dispatch.ingest import IngestOptions, ingest_file
from dispatch.observability.collectors import IngestCollector
from dispatch.observability.ingest import IngestStatistics

from .helpers import parse, value


def test_each_parser_reason_is_its_own_label(tmp_path: Path) -> None:
    """``bad_country_code`` (a number starting with 0) was counted as ``other``."""
    path = tmp_path / "r.txt"
    path.write_text("+79001234567\n0791234567890\n0812345678901\n12345\n+7 900 ABC 45 67\n")
    summary = ingest_file(str(path), IngestOptions(hash_key=b"k" * 16), lambda batch: None)
    assert summary.invalid == 4
    stats = IngestStatistics()
    stats.started()
    stats.finished(summary, 0.01)
    registry = CollectorRegistry()
    registry.register(IngestCollector(stats))
    m = parse(generate_latest(registry))
    for reason, n in summary.error_counts.items():
        assert value(m, "dispatch_ingest_invalid_lines_total", reason=reason) == n, reason
    assert summary.error_counts.get("bad_country_code") == 2
    assert ("dispatch_ingest_invalid_lines_total", frozenset({("reason", "other")})) not in m
