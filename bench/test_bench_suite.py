"""``dispatch bench --quick`` end to end, as CI runs it: a test of the suite's plumbing
(every section runs, the result JSON parses and has every section, the plots and the report
are written), not of its numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dispatch.benchsuite.options import SECTIONS
from dispatch.benchsuite.results import validate_result


def test_dispatch_bench_quick_writes_every_report_file(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "dispatch.cli", "bench", "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "result.json").read_text())
    assert validate_result(doc) == []
    assert list(doc["sections"]) == list(SECTIONS)
    for name, section in doc["sections"].items():
        assert section["status"] == "ok", (name, section["reason"])
        assert section["figures"], name
    assert doc["config"]["profile"] == "quick"
    assert doc["fastpath"]["implementation"] in ("cython", "python")
    assert {row["section"] for row in doc["targets"]} <= set(SECTIONS)
    for name in ("report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    plots = doc["plots"]
    titles = {p["title"] for p in plots}
    assert {"pool throughput", "pool window occupancy", "pool latency", "e2e throughput",
            "e2e window occupancy", "api latency"} <= titles
    for p in plots:
        assert (out / p["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p["file"] in (out / "report.md").read_text()
    # A pipe gets plain progress lines, one per section start and end at least.
    assert proc.stderr.count("starting") == len(SECTIONS)
