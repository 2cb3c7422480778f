"""Receipt figures a ``BindPool`` keeps for metrics: receipts by stat word, and a sampled
submit -> receipt delay histogram.

Both are updated inline on the pool's task (plain ints, no lock) and read at scrape time.

Stat words come from the SMSC (SMPP 3.4 Appendix B, ``stat:`` field): the known words are
counted as themselves and anything else as ``OTHER``, so a misbehaving SMSC cannot create an
unbounded number of label values.

Delay: the time from the submit_sm_resp that accepted a message to its first *final* receipt,
both on the engine's monotonic clock (the receipt's own ``submit date``/``done date`` have minute
resolution and the SMSC's clock, so they are not used). Remembering every accepted message id
until its receipt would cost memory per message in flight at the carrier, so one accepted
message in ``sample_every`` is remembered, at most ``max_tracked`` at a time (oldest dropped
first, counted in ``evicted``). The histogram is therefore a sample: its quantiles are right,
its ``_count`` is about ``receipts / sample_every``. Delays longer than the time it takes to
accept ``sample_every * max_tracked`` messages are dropped rather than observed (``evicted``).
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from dispatch.observability.buckets import RECEIPT_DELAY_BUCKETS_S, BucketCounts

#: Stat words of SMPP 3.4 Appendix B / section 5.2.28 message states.
KNOWN_STATS = frozenset({"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "SKIPPED",
                         "UNKNOWN", "ACCEPTD", "ENROUTE"})


def stat_label(stat: str | None) -> str:
    """A bounded label value for a receipt stat word (``NONE`` when the receipt had none)."""
    if stat is None:
        return "NONE"
    word = stat.upper()
    return word if word in KNOWN_STATS else "OTHER"


class ReceiptStatistics:
    """Counts by stat and a sampled delay histogram (see the module doc)."""

    __slots__ = ("_accepted_seen", "_max_tracked", "_sample_every", "_tracked", "by_stat",
                 "delay", "evicted")

    def __init__(self, *, sample_every: int = 64, max_tracked: int = 16384) -> None:
        if sample_every < 1 or max_tracked < 1:
            raise ValueError("sample_every and max_tracked must be at least 1")
        self._sample_every = sample_every
        self._max_tracked = max_tracked
        self._accepted_seen = 0
        self._tracked: OrderedDict[str, float] = OrderedDict()
        self.by_stat: Counter[str] = Counter()
        self.delay = BucketCounts(RECEIPT_DELAY_BUCKETS_S)
        self.evicted = 0

    def accepted(self, message_id: str, now_s: float) -> None:
        """The SMSC accepted a message (its last segment) under ``message_id`` at ``now_s``."""
        self._accepted_seen += 1
        if self._accepted_seen % self._sample_every:
            return
        tracked = self._tracked
        if len(tracked) >= self._max_tracked:
            tracked.popitem(last=False)
            self.evicted += 1
        tracked[message_id] = now_s

    def received(self, message_id: str | None, stat: str | None, final: bool,
                 now_s: float) -> None:
        """A receipt arrived; intermediate ones (ENROUTE, ACCEPTD) do not end the delay."""
        self.by_stat[stat if stat in KNOWN_STATS else stat_label(stat)] += 1
        if final and message_id is not None and self._tracked:
            sent_s = self._tracked.pop(message_id, None)
            if sent_s is not None:
                self.delay.observe(max(0.0, now_s - sent_s))

    @property
    def tracked(self) -> int:
        return len(self._tracked)
