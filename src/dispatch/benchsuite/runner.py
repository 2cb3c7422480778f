"""Runs the selected sections in order, shows progress, writes ``result.json``, the plots and
the report. A failing section is recorded (status ``failed`` with the error) and the others
still run; the exit status is 1 when any section failed.

    dispatch bench --quick --out /tmp/bench       # CI smoke test, under a minute
    dispatch bench --out bench-results            # the full profile
    dispatch bench --only pool --target smsc.example:2775 --system-id X --password Y \
        --to 4915112345678 --max-messages 50 --tps-cap 10 [--dry-run]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dispatch.benchsuite import api, codec, e2e, ingest, pool
from dispatch.benchsuite.machine import fastpath_info, machine_info, package_versions
from dispatch.benchsuite.options import SECTIONS, SuiteConfig, config_from_args
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.report import human, write_report
from dispatch.benchsuite.results import SCHEMA, SectionResult
from dispatch.benchsuite.target import (
    LOCAL_SECTIONS,
    TARGET_SECTIONS,
    MessageBudget,
    describe_plan,
)
from dispatch.benchsuite.targets import evaluate

RESULT_FILE = "result.json"


def _sections(budget: MessageBudget) -> dict[str, Callable[[SuiteConfig, Progress],
                                                           SectionResult]]:
    return {
        "ingest": ingest.run,
        "codec": codec.run,
        "pool": lambda config, progress: pool.run(config, progress, budget),
        "e2e": e2e.run,
        "api": api.run,
    }


def _summary(section: SectionResult) -> str:
    """The headline of a section for the progress line."""
    parts = []
    for r in section.ratios[:3]:
        parts.append(f"{r.metric} {r.numerator}/{r.denominator} {human(r.value, 'x')}")
    if not parts:
        parts = [f"{f.variant} {f.metric} {human(f.value, f.unit)}" for f in section.figures[:2]]
    return "; ".join(parts)


def _cross_section_ratios(results: dict[str, SectionResult]) -> None:
    """e2e beside the pool alone (same run): what the store, scheduler and receipts cost."""
    pool_section, e2e_section = results.get("pool"), results.get("e2e")
    if pool_section is None or e2e_section is None:
        return
    if pool_section.status != "ok" or e2e_section.status != "ok":
        return
    pools = [f for f in pool_section.figures
             if f.metric == "throughput" and f.variant.startswith("BindPool")]
    if not pools or e2e_section.figure("throughput", e2e.VARIANT) is None:
        return
    best = max(pools, key=lambda f: f.value)
    e2e_section.add("throughput", "BindPool alone (best pool case)", best.value, "msg/s",
                    case=best.variant)
    e2e_section.ratio("throughput", e2e.VARIANT, "BindPool alone (best pool case)")


def run_suite(config: SuiteConfig, progress: Progress,
              command: str = "dispatch bench") -> dict[str, Any]:
    """Run the sections; return the result document (not yet written)."""
    started = time.monotonic()
    doc: dict[str, Any] = {
        "schema": SCHEMA, "command": command,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(), "versions": package_versions(), "fastpath": fastpath_info(),
        "config": asdict(config), "sections": {}, "targets": [], "duration_s": 0.0,
    }
    budget = MessageBudget(config.max_messages if config.target is not None else 0)
    runners = _sections(budget)
    results: dict[str, SectionResult] = {}
    selected = [name for name in SECTIONS if name in config.sections]
    for index, name in enumerate(selected, start=1):
        progress.begin(name, index, len(selected))
        t0 = time.monotonic()
        if config.target is not None and name not in LOCAL_SECTIONS + TARGET_SECTIONS:
            section = SectionResult(name, status="skipped",
                                    reason="needs the built-in simulator (not run with --target)")
        else:
            try:
                section = runners[name](config, progress)
            except Exception as exc:  # a broken section must not hide the others' figures
                section = SectionResult(name, status="failed",
                                        reason=f"{type(exc).__name__}: {exc}")
                section.notes.append(traceback.format_exc(limit=8))
        section.duration_s = round(time.monotonic() - t0, 3)
        results[name] = section
        doc["sections"][name] = section.to_json()
        progress.end(section.status, section.reason if section.status != "ok"
                     else _summary(section))
        gc.collect()
    _cross_section_ratios(results)
    for name, section in results.items():
        doc["sections"][name] = section.to_json()
    if config.target is not None:
        doc["target_messages_granted"] = budget.granted
    doc["targets"] = evaluate(results)
    doc["duration_s"] = round(time.monotonic() - started, 3)
    return doc


def write_outputs(doc: dict[str, Any], out: Path, *, plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = write_report(doc, out, plots=plots)  # adds doc["plots"]
    (out / RESULT_FILE).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return [out / RESULT_FILE, *written]


def main(config: SuiteConfig, *, stream: TextIO | None = None,
         command: str = "dispatch bench") -> int:
    stream = stream if stream is not None else sys.stderr
    for line in describe_plan(config):
        print(line, file=stream)
    if config.dry_run:
        return 0
    # The engine logs at INFO; a benchmark prints its own progress instead.
    logging.getLogger("dispatch").setLevel(logging.WARNING)
    logging.getLogger("control").setLevel(logging.WARNING)
    progress = Progress(stream)
    doc = run_suite(config, progress, command)
    written = write_outputs(doc, Path(config.out_dir), plots=config.plots)
    failed = [n for n, s in doc["sections"].items() if s["status"] == "failed"]
    progress.message(f"done in {doc['duration_s']:.1f} s: {written[0]} and "
                     f"{Path(config.out_dir) / 'report.md'}"
                     + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_from_args(args: argparse.Namespace) -> int:
    return main(config_from_args(args), command=shlex.join(["dispatch", *sys.argv[1:]]))
