"""Ingest figures of one engine: every recipient file it built into a campaign, summed.

The engine's builder parses files in a worker thread and returns an ``IngestSummary``; the
engine records it here on its trio thread when the build ends (plain ints, read at scrape).
Line-error reasons are the parser's fixed set (``REASONS``, the same in the extension and its
reference); anything else is counted as ``other`` so the label stays bounded.
"""

from __future__ import annotations

from collections import Counter

from dispatch._reference.ingest import REASONS
from dispatch.ingest import IngestSummary
from dispatch.observability.buckets import DURATION_BUCKETS_S, BucketCounts

KNOWN_REASONS = frozenset(REASONS)


class IngestStatistics:
    """Totals over the files ingested since the engine started."""

    def __init__(self) -> None:
        self.files: Counter[tuple[str, str]] = Counter()  # (format, "ok" | "failed")
        self.bytes = 0
        self.lines = 0
        self.valid = 0
        self.duplicates = 0
        self.invalid_by_reason: Counter[str] = Counter()
        self.duration = BucketCounts(DURATION_BUCKETS_S)
        self.in_progress = 0

    def started(self) -> None:
        self.in_progress += 1

    def finished(self, summary: IngestSummary | None, duration_s: float) -> None:
        """One build ended: ``summary`` is None when the file could not be read at all."""
        self.in_progress = max(0, self.in_progress - 1)
        self.duration.observe(duration_s)
        if summary is None:
            self.files["unknown", "failed"] += 1
            return
        self.files[summary.format, "ok" if summary.valid else "failed"] += 1
        self.bytes += summary.bytes_total
        self.lines += summary.lines
        self.valid += summary.valid
        self.duplicates += summary.duplicates
        counted = 0
        for reason, n in summary.error_counts.items():
            self.invalid_by_reason[reason if reason in KNOWN_REASONS else "other"] += n
            counted += n
        if summary.invalid > counted:
            self.invalid_by_reason["other"] += summary.invalid - counted
