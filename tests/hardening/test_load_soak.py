"""Load soak, bounded for CI: campaign after campaign at full rate on one real engine process
(``python -m dispatch.cli serve``) against the simulator, its RSS and open file descriptors
sampled from /proc (``DISPATCH_LOAD_CAMPAIGNS`` x ``DISPATCH_LOAD_PER_CAMPAIGN``, default
4 x 15000; ~25 s on 2 cores). The long version: ``tests/hardening/soak.py load``.

Bounds asserted, measured from the idle point after the first (warm-up) campaign to the idle
point after the last: descriptors back to that baseline (+2: a recipient file or an export may
be open at the sampling instant); RSS growth no larger than what SQLite's page cache may take
for the database's own growth (it caches up to 64 MiB of pages), plus 16 MiB.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from soak import load_soak

CAMPAIGNS = int(os.environ.get("DISPATCH_LOAD_CAMPAIGNS", "4"))
PER_CAMPAIGN = int(os.environ.get("DISPATCH_LOAD_PER_CAMPAIGN", "15000"))


@pytest.mark.slow
async def test_rss_and_descriptors_stay_bounded_over_campaigns_at_full_rate(
        tmp_path: Path) -> None:
    report = await load_soak(tmp_path, campaigns=CAMPAIGNS, per_campaign=PER_CAMPAIGN,
                             rss_margin_bytes=16 << 20, fd_slack=2,
                             limit_s=60 + CAMPAIGNS * PER_CAMPAIGN / 500)
    report.samples = report.samples[-3:]
    print(report)  # shown with -s / on failure: the figures RELIABILITY.md quotes
    assert report.problems == []
    assert report.messages == report.delivered == CAMPAIGNS * PER_CAMPAIGN
    assert report.sent_twice == 0
    assert report.final_fds <= report.baseline_fds + 2
    assert report.rss_growth_beyond_cache_bytes <= 16 << 20
