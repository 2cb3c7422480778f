"""The result document: figures, ratios, percentiles, the schema check, the targets table."""

from __future__ import annotations

import json
import math

from dispatch.benchsuite.results import (
    SCHEMA,
    SectionResult,
    histogram_percentile,
    percentile,
    validate_result,
)
from dispatch.benchsuite.targets import BARS, evaluate


def test_ratio_needs_both_figures_and_a_positive_baseline():
    s = SectionResult("codec")
    s.add("encode submit_sm", "cython", 6e6, "PDU/s")
    assert s.ratio("encode submit_sm", "cython", "smpplib") is None
    s.add("encode submit_sm", "smpplib", 15e3, "PDU/s")
    r = s.ratio("encode submit_sm", "cython", "smpplib")
    assert r is not None and r.value == 400.0 and s.ratios == [r]
    s.add("decode", "zero", 0.0, "PDU/s")
    s.add("decode", "cython", 1.0, "PDU/s")
    assert s.ratio("decode", "cython", "zero") is None


def test_nearest_rank_percentile():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_histogram_percentile_is_the_bucket_upper_bound():
    bounds = (0.001, 0.01, 0.1, float("inf"))
    assert histogram_percentile(bounds, (90, 9, 1, 0), 50) == 0.001
    assert histogram_percentile(bounds, (90, 9, 1, 0), 99) == 0.01
    assert histogram_percentile(bounds, (90, 9, 0, 1), 99.5) == float("inf")
    assert math.isnan(histogram_percentile(bounds, (0, 0, 0, 0), 99))


def test_section_json_has_no_nan_and_round_trips():
    s = SectionResult("api")
    s.add("p99 latency", "campaign list", float("nan"), "ms")
    doc = json.loads(json.dumps(s.to_json(), allow_nan=False))
    assert doc["figures"][0]["value"] is None


def _doc(sections):
    return {"schema": SCHEMA, "started_at": "x", "duration_s": 1.0, "config": {},
            "machine": {"cpu_count": 2, "cpu_model": "m", "python": "3.11", "os": "Linux"},
            "versions": {}, "fastpath": {"implementation": "cython"}, "targets": [],
            "sections": {s.name: s.to_json() for s in sections}}


def test_validate_result_accepts_a_good_document_and_names_problems():
    s = SectionResult("codec")
    s.add("encode submit_sm", "cython", 1.0, "PDU/s")
    assert validate_result(_doc([s])) == []
    bad = _doc([s])
    del bad["machine"]["cpu_model"]
    bad["sections"]["codec"]["status"] = "maybe"
    bad["schema"] = "other"
    problems = validate_result(bad)
    assert len(problems) == 3
    assert any("cpu_model" in p for p in problems)


def test_targets_judge_figures_ratios_and_missing_sections():
    ingest = SectionResult("ingest")
    ingest.add("txt parse+dedupe+hash", "cython", 250.0, "MB/s")
    ingest.add("txt parse+dedupe+hash", "python", 5.0, "MB/s")
    ingest.ratio("txt parse+dedupe+hash", "cython", "python")
    api = SectionResult("api")
    api.add("p99 latency", "campaign detail", 80.0, "ms")
    rows = {r["label"]: r for r in evaluate({"ingest": ingest, "api": api})}
    assert len(rows) == len(BARS)
    assert rows["ingest txt (parse+normalise+dedupe+hash)"]["met"] is True
    assert rows["ingest txt vs pure-Python reference"]["measured"] == 50.0
    assert rows["API p99, campaign detail, while dispatching"]["met"] is False
    assert rows["submit_sm encoded"]["measured"] is None
    assert rows["submit_sm encoded"]["met"] is None
