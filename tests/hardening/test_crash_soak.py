"""Crash soak, bounded for CI: a real engine process SIGKILLed at random moments over one long
campaign, N times (``DISPATCH_SOAK_KILLS``, default 20; ``DISPATCH_SOAK_COUNT`` recipients,
default 60000; ~30-60 s on 2 cores), then an exact reconciliation against the simulator's log:
nothing lost, nothing accepted twice, ambiguous submits counted and bounded, every receipt the
SMSC sent stored. The long version: ``tests/hardening/soak.py crash`` (see its doc).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from soak import GROUP_COMMIT_ROWS, MAX_CLAIMED, crash_soak

KILLS = int(os.environ.get("DISPATCH_SOAK_KILLS", "20"))
COUNT = int(os.environ.get("DISPATCH_SOAK_COUNT", "60000"))
SEED = int(os.environ.get("DISPATCH_SOAK_SEED", "7"))


@pytest.mark.slow
async def test_kill_restart_loop_reconciles_exactly_with_the_smsc(tmp_path: Path) -> None:
    report = await crash_soak(tmp_path, kills=KILLS, count=COUNT, seed=SEED,
                              limit_s=60 + 20 * KILLS)
    print(report)  # shown with -s / on failure: the figures RELIABILITY.md quotes
    assert report.problems == []
    assert report.lost == report.sent_twice == report.wrong_stage == 0
    assert report.counters_ok
    assert report.ambiguous <= KILLS * (MAX_CLAIMED + GROUP_COMMIT_ROWS)
    assert report.ambiguous_sent <= report.ambiguous
    # Every receipt the SMSC sent is in the store: matched, or parked for a message id that
    # died with an engine (those recipients are the ambiguous ones the SMSC had accepted).
    assert report.receipts_missing == 0 and report.receipts_abandoned == 0
    assert report.receipts_parked <= report.ambiguous_sent
    assert report.receipts_matched + report.receipts_parked == report.smsc_accepted
    assert report.tracebacks == 0
