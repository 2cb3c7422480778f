"""The store seen from the trio loop: every call runs the synchronous store in a worker thread,
one at a time (``CapacityLimiter(1)``), so SQLite never blocks the event loop and the store
needs no locking of its own. SQLite releases the GIL while it works, so the loop keeps running.

``GroupCommitWriter`` is the dispatch path's writer: pool tasks hand it submit results and
receipts through a bounded channel (backpressure, never an unbounded buffer) and it commits
them in batches of up to ``group_commit_rows`` or every ``group_commit_interval_s``, whichever
comes first. Submit results of a batch are committed before its receipts, so a receipt that
overtook its submit_sm_resp on the wire still matches at once. A caller that must not answer the
SMSC before its data is durable (deliver_sm_resp after a receipt) awaits ``wait_durable(seq)``.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import trio

from dispatch.campaigns.lifecycle import AuditEntry, StateChange, Transition
from dispatch.campaigns.model import Campaign, CampaignKind
from dispatch.observability.buckets import (
    BATCH_ROWS_BUCKETS,
    DURATION_BUCKETS_S,
    BucketCounts,
    HistogramSnapshot,
)
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
    StoreConfig,
    SubmitOutcome,
    SubmitTally,
    TriggerRelease,
)
from dispatch.store.faults import STORE_FAULTS, StoreHealth

R = TypeVar("R")


class AsyncStore:
    """Async facade over a ``Store``: same methods, awaited, serialised on one thread slot.

    ``reader``: an optional second store on the same data (for SQLite, a second connection:
    WAL readers never wait for the writer) with its own thread slot. The read methods that
    the API and the control loop use go there, so a campaign detail does not queue behind
    group commits, and reads do not delay them. Every write returns after its commit, so a
    read that follows it on the reader sees it."""

    def __init__(self, store: Store, reader: Store | None = None) -> None:
        self.sync = store
        self.reader = reader if reader is not None else store
        self._limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1) if reader is not None else self._limiter

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """Run any store callable in the store's thread slot (for calls not wrapped below)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def run_read(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a read-only store callable on the reader's thread slot."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._read_limiter)

    async def aclose(self) -> None:
        await self.run_sync(self.sync.close)
        if self.reader is not self.sync:
            await self.run_read(self.reader.close)

    # campaigns
    async def create_campaign(self, campaign: Campaign, change: StateChange,
                              audit: AuditEntry) -> Campaign:
        return await self.run_sync(self.sync.create_campaign, campaign, change, audit)

    async def get_campaign(self, campaign_id: int) -> Campaign | None:
        return await self.run_read(self.reader.get_campaign, campaign_id)

    async def get_campaign_by_external_id(self, external_id: uuid.UUID) -> Campaign | None:
        return await self.run_read(self.reader.get_campaign_by_external_id, external_id)

    async def apply_transition(self, campaign_id: int, transition: Transition,
                               change: StateChange, audit: AuditEntry | None,
                               auto_start: bool | None = None) -> Campaign:
        return await self.run_sync(self.sync.apply_transition, campaign_id, transition, change,
                                   audit, auto_start)

    async def list_campaigns(self, flt: CampaignFilter) -> Page[Campaign]:
        return await self.run_read(self.reader.list_campaigns, flt)

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

    async def record_submit_results(self, outcomes: Sequence[SubmitOutcome],
                                    now: datetime) -> SubmitTally:
        return await self.run_sync(self.sync.record_submit_results, outcomes, now)

    async def record_receipts(self, receipts: Sequence[Receipt], now: datetime) -> int:
        return await self.run_sync(self.sync.record_receipts, receipts, now)

    async def retry_unmatched_receipts(self, now: datetime) -> int:
        return await self.run_sync(self.sync.retry_unmatched_receipts, now)

    async def recover_inflight(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts:
        return await self.run_sync(self.sync.recover_inflight, policy, now)

    async def expire_remaining(self, campaign_id: int, now: datetime) -> int:
        return await self.run_sync(self.sync.expire_remaining, campaign_id, now)

    # counters
    async def counters(self, campaign_id: int) -> Counters:
        return await self.run_read(self.reader.counters, campaign_id)

    async def daily_activity(self, campaign_id: int) -> list[DayActivity]:
        return await self.run_read(self.reader.daily_activity, campaign_id)

    async def pending_messages(self, kind: CampaignKind | None = None) -> int:
        return await self.run_sync(self.sync.pending_messages, kind)


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    batches: int
    outcomes: int
    receipts: int
    receipts_matched: int
    stale_outcomes: int
    queued: int
    last_batch_rows: int
    last_commit_s: float
    commit_duration: HistogramSnapshot | None = None  # seconds per commit
    batch_rows: HistogramSnapshot | None = None  # rows per commit


class GroupCommitWriter:
    """Collects submit results and receipts and commits them in batches (see module doc).

    Start with ``await nursery.start(writer.run)``; stop with ``await writer.aclose()``, which
    lets ``run`` commit everything already queued and return. A store outage (``STORE_FAULTS``:
    a full disk, a lost connection) does not stop it: the failed batch is kept and applied again
    with backoff until it commits, reported to ``health`` (source ``"writer"``) meanwhile, so
    the routes stop claiming and the SMSC keeps the receipts it has not had an answer for
    (``dispatch.store.faults``). Other errors propagate out of ``run``.
    """

    def __init__(self, store: AsyncStore, config: StoreConfig,
                 clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self.health = StoreHealth(clock)  # shared with the routes and the control loop
        self._max_rows = max(1, config.group_commit_rows)
        self._interval_s = config.group_commit_interval_s
        self._send, self._recv = trio.open_memory_channel[tuple[int, SubmitOutcome | Receipt]](
            max(1, config.group_commit_queue_rows))
        self._seq = 0
        self._durable_upto = 0  # every item with seq <= this is committed
        self._committed_ahead: set[int] = set()  # committed seqs above it (queue reordering)
        self._flushed = trio.Event()
        self._on_durable: deque[tuple[int, Callable[[], None]]] = deque()
        self._batches = self._outcomes = self._receipts = 0
        self._matched = self._stale = self._last_rows = 0
        self._last_commit_s = 0.0
        self._commit_hist = BucketCounts(DURATION_BUCKETS_S)  # read by metrics at scrape
        self._rows_hist = BucketCounts(BATCH_ROWS_BUCKETS)

    async def submit_result(self, outcome: SubmitOutcome) -> int:
        """Queue one outcome (waits while the queue is full); returns its sequence number."""
        return await self._put(outcome)

    async def receipt(self, receipt: Receipt) -> int:
        """Queue one receipt (waits while the queue is full); returns its sequence number."""
        return await self._put(receipt)

    async def _put(self, item: SubmitOutcome | Receipt) -> int:
        self._seq += 1
        seq = self._seq
        await self._send.send((seq, item))
        return seq

    @property
    def backlog(self) -> int:
        """Items queued or being committed, not yet durable."""
        return self._seq - self._durable_upto

    async def wait_backlog_below(self, limit: int) -> None:
        """Return once fewer than ``limit`` items wait for a commit (admission control)."""
        while self.backlog >= limit:
            await self._flushed.wait()

    @property
    def last_seq(self) -> int:
        """The sequence number of the last item queued (0: none yet)."""
        return self._seq

    def call_when_durable(self, seq: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` (synchronous, quick: e.g. queue a deliver_sm_resp) once every item
        up to ``seq`` is committed; at once if they already are. Callbacks run in ``seq``
        order, in the writer's task. Never run if the store fails first: an SMSC then keeps
        the unanswered deliver_sm and sends it again, which is the point."""
        if seq <= self._durable_upto:
            callback()
        else:
            self._on_durable.append((seq, callback))

    async def wait_durable(self, seq: int) -> None:
        """Return once item ``seq`` and every item numbered before it are committed."""
        while self._durable_upto < seq:
            await self._flushed.wait()

    async def aclose(self) -> None:
        await self._send.aclose()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        # ``Any``: the installed trio-stubs package shadows trio's own annotations and has no
        # ``trio.TaskStatus``; with it removed this becomes ``trio.TaskStatus[None]``.
        task_status.started()
        async with self._recv:
            while True:
                try:
                    first = await self._recv.receive()
                except trio.EndOfChannel:
                    return
                batch: list[tuple[int, SubmitOutcome | Receipt]] = [first]
                closed = False
                with trio.move_on_after(self._interval_s):
                    while len(batch) < self._max_rows:
                        try:
                            batch.append(await self._recv.receive())
                        except trio.EndOfChannel:
                            closed = True
                            break
                await self._commit(batch)
                if closed:
                    return

    async def _commit(self, batch: list[tuple[int, SubmitOutcome | Receipt]]) -> None:
        outcomes = [i for _, i in batch if isinstance(i, SubmitOutcome)]
        receipts = [i for _, i in batch if isinstance(i, Receipt)]
        started = trio.current_time()
        now = self._clock()  # kept across retries: the time the results came in
        if outcomes:
            tally = await self._until_committed(self._store.record_submit_results, outcomes, now)
            self._matched += tally.receipts_matched
            self._stale += tally.stale
        if receipts:  # its own transaction: a retry never applies the outcomes twice
            self._matched += await self._until_committed(self._store.record_receipts, receipts,
                                                         now)
        self._batches += 1
        self._outcomes += len(outcomes)
        self._receipts += len(receipts)
        self._last_rows = len(batch)
        self._last_commit_s = trio.current_time() - started
        self._commit_hist.observe(self._last_commit_s)
        self._rows_hist.observe(len(batch))
        ahead = self._committed_ahead
        ahead.update(seq for seq, _ in batch)
        while self._durable_upto + 1 in ahead:
            self._durable_upto += 1
            ahead.discard(self._durable_upto)
        waiting = self._on_durable
        while waiting and waiting[0][0] <= self._durable_upto:
            waiting.popleft()[1]()
        self._flushed.set()
        self._flushed = trio.Event()

    async def _until_committed(self, write: Callable[[Any, datetime], Any], rows: Any,
                               now: datetime) -> Any:
        """Apply one store write, again and again with backoff while the store is out.

        The transaction is all-or-nothing (a failed one rolled back), so each retry is the
        first application; it runs shielded so a cancel never abandons it half-way. Only the
        waits between attempts are cancellable: an engine stopped during an outage loses the
        uncommitted batch from memory, exactly as a kill -9 would, and recovery applies."""
        while True:
            try:
                with trio.CancelScope(shield=True):
                    result = await write(rows, now)
            except STORE_FAULTS as exc:
                await trio.sleep(self.health.fault("writer", exc))
                continue
            self.health.ok("writer")
            return result

    def statistics(self) -> WriterStatistics:
        queued = self._recv.statistics().current_buffer_used
        return WriterStatistics(self._batches, self._outcomes, self._receipts, self._matched,
                                self._stale, queued, self._last_rows,
                                self._last_commit_s if math.isfinite(self._last_commit_s)
                                else 0.0, commit_duration=self._commit_hist.snapshot(),
                                batch_rows=self._rows_hist.snapshot())
