"""The store seen from the trio loop: every call runs the synchronous store in a worker thread,
one at a time (``CapacityLimiter(1)``), so SQLite never blocks the event loop and the store
needs no locking of its own. SQLite releases the GIL while it works, so the loop keeps running.

Reads on a separate reader (SQLite's second connection) go to one long-lived thread of their
own (:class:`ReaderThread`) instead: ``trio.to_thread.run_sync`` with a limiter yields to the
scheduler once before the thread even starts (the limiter's checkpoint), and while the engine
dispatches every pass of the loop is a batch of route and pool work, so that yield alone added
a pass to every API read. The reader thread starts the call at once and wakes the caller
when it is done: measured with four tasks keeping the loop busy in 3 ms steps, a 0.3 ms read
took 48 ms (median) through the limiter and 28-34 ms this way.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import outcome
import trio

from dispatch.campaigns.lifecycle import AuditEntry, StateChange, Transition
from dispatch.campaigns.model import Campaign, CampaignKind
from dispatch.store.base import (
    CampaignFilter,
    ClaimedRecipient,
    Counters,
    DayActivity,
    JobError,
    JobErrorView,
    Kpi,
    Page,
    Receipt,
    RecipientFilter,
    RecipientRow,
    RecipientView,
    RecoveryCounts,
    RecoveryPolicy,
    Store,
    SubmitOutcome,
    SubmitTally,
    TriggerRelease,
)

R = TypeVar("R")


class CampaignSnapshot(NamedTuple):
    """Everything a campaign's detail page reads, from one thread hop (``campaign_detail``)."""

    campaign: Campaign
    counters: Counters
    daily_activity: list[DayActivity]
    state_history: list[StateChange]
    audit: list[AuditEntry]


def read_campaign_snapshot(store: Store, ref: uuid.UUID | int) -> CampaignSnapshot | None:
    """The detail reads one after the other on ``store`` (any backend: it uses only the
    ``Store`` interface), in the calling thread; ``None`` when no such campaign exists."""
    campaign = (store.get_campaign(ref) if isinstance(ref, int)
                else store.get_campaign_by_external_id(ref))
    if campaign is None or campaign.id is None:
        return None
    cid = campaign.id
    return CampaignSnapshot(campaign, store.counters(cid), store.daily_activity(cid),
                            store.state_history(cid), store.audit_trail(cid))


class ReaderThread:
    """One thread running read calls in order, for the trio tasks that await them.

    ``run`` queues the call and parks the calling task without a checkpoint first (a task
    that is already cancelled raises before queueing); the thread runs the call and
    reschedules the task through the run's token. Like ``trio.to_thread.run_sync`` without
    ``abandon_on_cancel``, a call once queued is waited for (it cannot be cancelled midway),
    which bounds the wait by the call itself. ``close`` ends the thread after the calls
    queued before it."""

    def __init__(self, name: str = "store-reader") -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                             trio.lowlevel.TrioToken,
                                             trio.lowlevel.Task] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, args, token, task = call
            result = outcome.capture(fn, *args)
            try:
                token.run_sync_soon(trio.lowlevel.reschedule, task, result)
            except trio.RunFinishedError:  # the caller's run is gone: nobody to wake
                pass

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._calls.put((fn, args, trio.lowlevel.current_trio_token(),
                         trio.lowlevel.current_task()))
        result: R = await trio.lowlevel.wait_task_rescheduled(
            lambda _: trio.lowlevel.Abort.FAILED)
        return result

    async def close(self) -> None:
        self._calls.put(None)
        await trio.to_thread.run_sync(self._thread.join)


class AsyncStore:
    """Async facade over a ``Store``: same methods, awaited, serialised on one thread slot.

    ``reader``: an optional second store on the same data (for SQLite, a second connection:
    WAL readers never wait for the writer), or the store itself when it is safe to call from
    two threads at once (a connection pool), with its own thread. The read methods that
    the API and the control loop use go there, so a campaign detail does not queue behind
    group commits, and reads do not delay them. Every write returns after its commit, so a
    read that follows it on the reader sees it."""

    def __init__(self, store: Store, reader: Store | None = None) -> None:
        self.sync = store
        self.reader = reader if reader is not None else store
        # One call at a time in the store's thread (a store is not thread-safe); a store in
        # its own process takes several in flight and runs them in order
        # (``dispatch.store.process.StoreProcess.calls_in_flight``).
        self.calls_in_flight: int = getattr(store, "calls_in_flight", 1)
        self._limiter = trio.CapacityLimiter(self.calls_in_flight)
        # A separate reader gets its own thread (see the module doc); without one, reads
        # share the store's thread slot.
        self._reader_thread = ReaderThread() if reader is not None else None
        #: Bumped after every campaign create and lifecycle transition through this store: the
        #: API's read cache (``control.readcache``) never serves a body read before a change.
        self.campaigns_generation = 0
        self._campaigns_changed = trio.Event()  # set (and replaced) at every bump

    def _campaigns_bumped(self) -> None:
        self.campaigns_generation += 1
        self._campaigns_changed.set()
        self._campaigns_changed = trio.Event()

    async def wait_campaigns_changed(self, generation: int) -> None:
        """Return once a campaign was created or changed status since ``generation`` (a
        ``campaigns_generation`` read earlier) was current."""
        while self.campaigns_generation == generation:
            await self._campaigns_changed.wait()

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """Run any store callable in the store's thread slot (for calls not wrapped below)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def run_read(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a read-only store callable on the reader's thread."""
        if self._reader_thread is None:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        return await self._reader_thread.run(fn, *args)

    async def aclose(self) -> None:
        await self.run_sync(self.sync.close)
        if self._reader_thread is not None:
            if self.reader is not self.sync:
                await self.run_read(self.reader.close)
            await self._reader_thread.close()

    # campaigns
    async def create_campaign(self, campaign: Campaign, change: StateChange,
                              audit: AuditEntry) -> Campaign:
        try:
            return await self.run_sync(self.sync.create_campaign, campaign, change, audit)
        finally:
            self._campaigns_bumped()

    async def get_campaign(self, campaign_id: int) -> Campaign | None:
        return await self.run_read(self.reader.get_campaign, campaign_id)

    async def get_campaign_by_external_id(self, external_id: uuid.UUID) -> Campaign | None:
        return await self.run_read(self.reader.get_campaign_by_external_id, external_id)

    async def apply_transition(self, campaign_id: int, transition: Transition,
                               change: StateChange, audit: AuditEntry | None,
                               auto_start: bool | None = None) -> Campaign:
        try:
            return await self.run_sync(self.sync.apply_transition, campaign_id, transition,
                                       change, audit, auto_start)
        finally:
            self._campaigns_bumped()

    async def campaign_detail(self, ref: uuid.UUID | int) -> CampaignSnapshot | None:
        """The campaign (by store id or external UUID) with its counters, daily activity,
        state history and audit trail, read on the reader in *one* thread hop: each hop costs
        the event loop a thread hand-off and a wake-up, and while the engine dispatches a
        detail request of five hops waited five times for the loop."""
        return await self.run_read(read_campaign_snapshot, self.reader, ref)

    async def list_campaigns(self, flt: CampaignFilter) -> Page[Campaign]:
        return await self.run_read(self.reader.list_campaigns, flt)

    async def counters_many(self, campaign_ids: Sequence[int]) -> dict[int, Counters]:
        return await self.run_read(self.reader.counters_many, campaign_ids)

    async def active_campaigns(self) -> list[Campaign]:
        return await self.run_sync(self.sync.active_campaigns)

    async def kpi(self) -> Kpi:
        return await self.run_read(self.reader.kpi)

    async def state_history(self, campaign_id: int) -> list[StateChange]:
        return await self.run_read(self.reader.state_history, campaign_id)

    async def audit_trail(self, campaign_id: int) -> list[AuditEntry]:
        return await self.run_read(self.reader.audit_trail, campaign_id)

    # recipients and errors
    async def add_recipients(self, campaign_id: int, rows: Iterable[RecipientRow],
                             now: datetime, held: bool = False) -> int:
        return await self.run_sync(self.sync.add_recipients, campaign_id, rows, now, held)

    async def release_held(self, campaign_id: int, ctn_hashes: Sequence[bytes] | None,
                           count: int, audit: AuditEntry) -> TriggerRelease:
        return await self.run_sync(self.sync.release_held, campaign_id, ctn_hashes, count,
                                   audit)

    async def delete_recipients(self, campaign_id: int) -> int:
        return await self.run_sync(self.sync.delete_recipients, campaign_id)

    async def add_job_errors(self, campaign_id: int, errors: Iterable[JobError],
                             now: datetime) -> int:
        return await self.run_sync(self.sync.add_job_errors, campaign_id, errors, now)

    async def job_errors(self, campaign_id: int, offset: int,
                         limit: int) -> Page[JobErrorView]:
        return await self.run_read(self.reader.job_errors, campaign_id, offset, limit)

    async def list_recipients(self, campaign_id: int,
                              flt: RecipientFilter) -> Page[RecipientView]:
        return await self.run_read(self.reader.list_recipients, campaign_id, flt)

    async def find_by_ctn_hash(self, ctn_hash: bytes,
                               campaign_id: int | None = None) -> list[RecipientView]:
        return await self.run_read(self.reader.find_by_ctn_hash, ctn_hash, campaign_id)

    # dispatch path
    async def claim_for_send(self, campaign_id: int, limit: int,
                             now: datetime) -> list[ClaimedRecipient]:
        return await self.run_sync(self.sync.claim_for_send, campaign_id, limit, now)

    async def in_flight_ids(self, campaign_id: int) -> list[int]:
        return await self.run_sync(self.sync.in_flight_ids, campaign_id)

    async def record_submit_results(self, outcomes: Sequence[SubmitOutcome],
                                    now: datetime) -> SubmitTally:
        return await self.run_sync(self.sync.record_submit_results, outcomes, now)

    async def record_receipts(self, receipts: Sequence[Receipt], now: datetime) -> int:
        return await self.run_sync(self.sync.record_receipts, receipts, now)

    async def retry_unmatched_receipts(self, now: datetime) -> int:
        return await self.run_sync(self.sync.retry_unmatched_receipts, now)

    async def purge_unmatched_receipts(self, older_than: datetime) -> int:
        return await self.run_sync(self.sync.purge_unmatched_receipts, older_than)

    async def recover_inflight(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        return await self.run_sync(self.sync.recover_inflight, policy, now)

    async def mark_unsent(self, campaign_id: int, now: datetime,
                          limit: int | None = None) -> int:
        return await self.run_sync(self.sync.mark_unsent, campaign_id, now, limit)

    async def campaigns_with_unsent(self) -> list[int]:
        return await self.run_read(self.reader.campaigns_with_unsent)

    # counters
    async def counters(self, campaign_id: int) -> Counters:
        return await self.run_read(self.reader.counters, campaign_id)

    async def daily_activity(self, campaign_id: int) -> list[DayActivity]:
        return await self.run_read(self.reader.daily_activity, campaign_id)

    async def pending_messages(self, kind: CampaignKind | None = None) -> int:
        return await self.run_sync(self.sync.pending_messages, kind)
