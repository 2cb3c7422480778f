"""The runner: sections in canonical order, a failing section recorded while the others run,
the exit status, and the files written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dispatch.benchsuite import runner
from dispatch.benchsuite.options import SuiteConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult, validate_result


def _fake(name: str):
    def run(config: SuiteConfig, progress: Progress) -> SectionResult:
        if name == "codec":
            raise RuntimeError("encoder exploded")
        s = SectionResult(name)
        s.add("throughput", "ours", 10.0, "msg/s")
        s.add("throughput", "baseline", 5.0, "msg/s")
        s.ratio("throughput", "ours", "baseline")
        return s
    return run


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner, "_sections",
                        lambda budget: {n: _fake(n) for n in ("ingest", "codec", "pool")})
    out = tmp_path / "out"
    config = SuiteConfig(profile="quick", sections=("pool", "codec", "ingest"),
                         out_dir=str(out), plots=False)
    stream = io.StringIO()
    assert runner.main(config, stream=stream) == 1
    doc = json.loads((out / "result.json").read_text())
    assert validate_result(doc) == []
    assert list(doc["sections"]) == ["ingest", "codec", "pool"]  # canonical order
    codec = doc["sections"]["codec"]
    assert codec["status"] == "failed" and codec["reason"] == "RuntimeError: encoder exploded"
    assert "Traceback" in codec["notes"][-1]
    assert doc["sections"]["pool"]["ratios"][0]["value"] == 2.0
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert "FAILED: codec" in stream.getvalue()


def test_dry_run_without_target_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner, "_sections", lambda budget: pytest.fail("ran a section"))
    config = SuiteConfig(profile="quick", out_dir=str(tmp_path / "out"), dry_run=True)
    stream = io.StringIO()
    assert runner.main(config, stream=stream) == 0
    assert not (tmp_path / "out").exists()
    assert "dry run" in stream.getvalue()
