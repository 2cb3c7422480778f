"""Campaign-level figures for metrics and diagnostics, sampled from the store off the hot path.

Recipient counts live in the store (``campaign_counters``), not in memory, and a Prometheus
collector runs synchronously inside the scrape: it must not query the store (SQLite is used
from the store's own worker thread only, and a scrape must never wait on a big commit). So a
small task, ``CampaignSampler.run``, reads the store every ``interval_s`` through the
``AsyncStore`` (same thread slot as every other store call) and keeps the latest
``CampaignSnapshot``; collectors and /diagnostics read that snapshot.

Labels stay bounded: recipients are summed by *campaign status* and *stage* over all active
campaigns; per-campaign series exist only for the ``top_n`` active campaigns with the most
recipients left, labelled with their external UUID (at most ``top_n`` values at a time).
A failed sample keeps the previous figures and sets ``store_ok`` to False, which is what the
``dispatch_store_up`` gauge and the store-unreachable alert read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from dispatch.campaigns.model import ACTIVE_STATUSES, Campaign, CampaignStatus, PausedBy
from dispatch.logs import log_event
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import CampaignFilter, Counters, Kpi

log = logging.getLogger(__name__)

#: Recipient stages (``RecipientStage``) and the ``Counters`` field holding each.
STAGE_FIELDS = (("New", "pending"), ("Held", "held"), ("Sending", "inflight"),
                ("Delivered", "sent"), ("Failed", "failed"))
#: Receipt outcomes (``SmsResult``) and their ``Counters`` fields.
RESULT_FIELDS = (("delivered", "delivered"), ("failed", "undelivered"), ("unknown", "unknown"))
_INACTIVE = (CampaignStatus.NEW, CampaignStatus.DONE, CampaignStatus.CANCELLED,
             CampaignStatus.FAILED, CampaignStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class CampaignFigures:
    """One active campaign as the metrics show it."""

    external_id: str
    esme: str
    status: str
    paused_by: str | None
    counters: Counters

    @property
    def remaining(self) -> int:
        return self.counters.pending + self.counters.inflight + self.counters.held

    @property
    def progress_ratio(self) -> float:
        total = self.counters.total
        return 1.0 if total == 0 else self.counters.processed / total


@dataclass(frozen=True)
class CampaignSnapshot:
    """The last sample. ``taken_at`` is a Unix time; ``store_ok`` False after a failed one."""

    taken_at: float = 0.0
    duration_s: float = 0.0
    store_ok: bool = False
    error: str = ""
    samples: int = 0
    failures: int = 0
    campaigns_by_status: dict[str, int] = field(default_factory=dict)
    recipients: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, stage)
    results: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, sms_result)
    active: tuple[CampaignFigures, ...] = ()
    top: tuple[CampaignFigures, ...] = ()
    kpi: Kpi | None = None


class CampaignSampler:
    """``await nursery.start(sampler.run)``; then ``sampler.snapshot`` is at most
    ``interval_s`` old (plus the time one sample takes)."""

    def __init__(self, store: AsyncStore, *, interval_s: float = 5.0, top_n: int = 10,
                 timeout_s: float = 10.0) -> None:
        self._store = store
        self.interval_s = interval_s
        self.top_n = top_n
        self.timeout_s = timeout_s
        self.snapshot = CampaignSnapshot()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.sample()
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            await self.sample()

    async def sample(self) -> CampaignSnapshot:
        """Take one sample now (also called by tests and /diagnostics)."""
        prev = self.snapshot
        started = time.monotonic()
        try:
            with trio.fail_after(self.timeout_s):
                snap = await self._read(prev)
        except trio.TooSlowError:
            snap = self._failed(prev, f"store did not answer within {self.timeout_s:g} s")
        except Exception as exc:  # the store is a file or a server: any failure is "down"
            log_event(log, logging.WARNING, "campaign metrics sample failed",
                      error=type(exc).__name__, detail=str(exc)[:200])
            snap = self._failed(prev, f"{type(exc).__name__}: {exc}"[:200])
        self.snapshot = replace(snap, duration_s=time.monotonic() - started)
        return self.snapshot

    def _failed(self, prev: CampaignSnapshot, error: str) -> CampaignSnapshot:
        return replace(prev, store_ok=False, error=error, taken_at=time.time(),
                       samples=prev.samples + 1, failures=prev.failures + 1)

    async def _read(self, prev: CampaignSnapshot) -> CampaignSnapshot:
        store = self._store
        campaigns: list[Campaign] = await store.active_campaigns()
        by_status = {s.value: 0 for s in CampaignStatus}
        for status in _INACTIVE:
            page = await store.list_campaigns(CampaignFilter(statuses=frozenset({status}),
                                                             limit=1))
            by_status[status.value] = page.total
        recipients = {(s.value, stage): 0 for s in ACTIVE_STATUSES for stage, _ in STAGE_FIELDS}
        results = {(s.value, r): 0 for s in ACTIVE_STATUSES for r, _ in RESULT_FIELDS}
        figures: list[CampaignFigures] = []
        for c in campaigns:
            assert c.id is not None
            by_status[c.status.value] += 1
            counters = await store.counters(c.id)
            for stage, name in STAGE_FIELDS:
                recipients[c.status.value, stage] += getattr(counters, name)
            for result, name in RESULT_FIELDS:
                results[c.status.value, result] += getattr(counters, name)
            figures.append(CampaignFigures(
                str(c.external_id), c.esme, c.status.value,
                c.paused_by.value if isinstance(c.paused_by, PausedBy) else None, counters))
        kpi = await store.kpi()
        top = sorted(figures, key=lambda f: (f.status != CampaignStatus.SENDING.value,
                                             -f.remaining, f.external_id))[:self.top_n]
        return CampaignSnapshot(taken_at=time.time(), store_ok=True, samples=prev.samples + 1,
                                failures=prev.failures, campaigns_by_status=by_status,
                                recipients=recipients, results=results, active=tuple(figures),
                                top=tuple(top), kpi=kpi)
