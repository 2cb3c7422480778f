"""The dispatch path's writer.

``GroupCommitWriter``: a route hands it the submit results and receipts of a whole pool batch
at once (``add``, no wait per item) and then waits while the queue is over its bound
(``wait_for_room``: backpressure, never an unbounded buffer). It commits them in batches: a
batch closes when it has ``group_commit_rows`` items, ``group_commit_interval_s`` after its
first item, or as soon as no item came for ``group_commit_quiet_s``. Submit results of a batch
are committed before its receipts, so a receipt that overtook its submit_sm_resp on the wire
still matches at once. A caller that must not answer the SMSC before its data is durable
(deliver_sm_resp after a receipt) uses ``call_when_durable(seq)`` or awaits
``wait_durable(seq)``.

Two batches may be committing at once (``COMMITS_IN_FLIGHT``): the store answers one call
at a time, and with one batch in flight it sat idle between the calls while the answer went
back through the event loop and the next call came (a quarter of each cycle, measured: 40 ms
per 2000-row batch of which ~30 ms were the store's work). A batch finishing before the one
taken ahead of it is durable at once, but ``durable up to seq`` (and every callback) moves
only once all items before it are committed too. Order between two batches in flight does
not matter to the data: a receipt committed ahead of its submit result is parked unmatched
and applied by that result's commit, and a result for a recipient no longer in Sending is
stale either way.

Per item this costs a list append: an item through a trio memory channel was a send and a
receive, two checkpoints, and at 10k+ messages/s (an outcome and a receipt each) those task
switches were a large part of the engine loop's time.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from dispatch.logs import log_event
from dispatch.observability.buckets import (
    BATCH_ROWS_BUCKETS,
    DURATION_BUCKETS_S,
    BucketCounts,
    HistogramSnapshot,
)
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import Receipt, StoreConfig, SubmitKind, SubmitOutcome, SubmitTally
from dispatch.store.faults import STORE_FAULTS, StoreHealth, describe

log = logging.getLogger("dispatch.store.writer")

#: Batches committing at once (see the module doc), when the store takes more calls than
#: that at once: one call slot always stays for the routes' claims and the control loop, so a
#: store that runs one call at a time (a store thread) gets one batch at a time, as before.
COMMITS_IN_FLIGHT = 2


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
    refused_outcomes: int = 0  # the store refused their data: recorded as unknown instead
    refused_receipts: int = 0  # the store refused their data: dropped


class GroupCommitWriter:
    """Collects submit results and receipts and commits them in batches (see module doc).

    Start with ``await nursery.start(writer.run)``; stop with ``await writer.aclose()``, which
    lets ``run`` commit everything already queued and return. A store outage (``STORE_FAULTS``:
    a full disk, a lost connection) does not stop it: the failed batch is kept and applied again
    with backoff until it commits, reported to ``health`` (source ``"writer"``) meanwhile, so
    the routes stop claiming and the SMSC keeps the receipts it has not had an answer for
    (``dispatch.store.faults``).

    A batch the store refuses for what is in it (any other error: a value the database
    cannot hold, say) is split in halves until the refused items are found; the rest is
    committed. A refused submit outcome is recorded as unknown (ambiguous, with the error's
    type), a refused receipt is dropped; both are logged and counted (``refused_*``). When
    every item of a batch of several is refused, the fault is not in the data: the error
    propagates out of ``run`` and stops the engine, as any other bug does (a batch of one
    cannot tell the two apart: its item is refused).
    """

    def __init__(self, store: AsyncStore, config: StoreConfig,
                 clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self.health = StoreHealth(clock)  # shared with the routes and the control loop
        self._max_rows = max(1, config.group_commit_rows)
        self._interval_s = config.group_commit_interval_s
        self._quiet_s = min(config.group_commit_quiet_s, config.group_commit_interval_s)
        self._capacity = max(1, config.group_commit_queue_rows)
        # FIFO of items not yet taken by a commit; item number k (1-based, over the writer's
        # life) is at index k - _taken_upto - 1. Batches are taken from the front, so
        # "durable up to seq" is one number.
        self._queue: list[SubmitOutcome | Receipt] = []
        self._taken_upto = 0  # items handed to a commit so far
        self._durable_upto = 0  # every item with seq <= this is committed
        self._committed: dict[int, int] = {}  # first seq -> last seq, past _durable_upto
        self._slots = trio.Semaphore(max(1, min(COMMITS_IN_FLIGHT, store.calls_in_flight - 1)))
        self._closed = False
        self._arrived = trio.Event()  # set by ``add`` (and ``aclose``): the run loop waits on it
        self._room = trio.Event()  # set when a batch leaves the queue
        self._flushed = trio.Event()  # set after every commit
        self._on_durable: deque[tuple[int, Callable[[], None]]] = deque()
        self._batches = self._outcomes = self._receipts = 0
        self._matched = self._stale = self._last_rows = 0
        self._refused_outcomes = self._refused_receipts = 0
        self._last_commit_s = 0.0
        self._commit_hist = BucketCounts(DURATION_BUCKETS_S)  # read by metrics at scrape
        self._rows_hist = BucketCounts(BATCH_ROWS_BUCKETS)

    def add(self, items: Iterable[SubmitOutcome | Receipt]) -> int:
        """Queue submit results and receipts (no wait: a pool hands over a whole batch at
        once); returns the sequence number of the last item queued. Callers then await
        ``wait_for_room`` so the queue stays bounded."""
        if self._closed:
            raise trio.ClosedResourceError("the writer is closed")
        queue = self._queue
        queue.extend(items)
        self._arrived.set()
        return self.last_seq

    async def wait_for_room(self) -> None:
        """Backpressure: wait while ``group_commit_queue_rows`` or more items are queued (a
        slow store slows the pools' readers, and with them the SMSC). A checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while len(self._queue) >= self._capacity and not self._closed:
            await self._room.wait()

    async def submit_result(self, outcome: SubmitOutcome) -> int:
        """Queue one outcome (waits while the queue is full); returns its sequence number."""
        seq = self.add((outcome,))
        await self.wait_for_room()
        return seq

    async def receipt(self, receipt: Receipt) -> int:
        """Queue one receipt (waits while the queue is full); returns its sequence number."""
        seq = self.add((receipt,))
        await self.wait_for_room()
        return seq

    @property
    def backlog(self) -> int:
        """Items queued or being committed, not yet durable."""
        return self.last_seq - self._durable_upto

    async def wait_backlog_below(self, limit: int) -> None:
        """Return once fewer than ``limit`` items wait for a commit (admission control)."""
        while self.backlog >= limit:
            await self._flushed.wait()

    @property
    def last_seq(self) -> int:
        """The sequence number of the last item queued (0: none yet)."""
        return self._taken_upto + len(self._queue)

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
        """No more items; ``run`` commits what is queued and returns."""
        self._closed = True
        self._arrived.set()
        self._room.set()
        await trio.lowlevel.checkpoint()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        # ``Any``: the installed trio-stubs package shadows trio's own annotations and has no
        # ``trio.TaskStatus``; with it removed this becomes ``trio.TaskStatus[None]``.
        task_status.started()
        async with trio.open_nursery() as commits:  # its exit waits for the last commits
            while await self._next_batch(commits):
                pass

    async def _next_batch(self, commits: trio.Nursery) -> bool:
        """Wait for a free commit slot and a batch; start its commit. False once closed and
        drained."""
        queue, max_rows = self._queue, self._max_rows
        # The slot first: while both are busy, items keep gathering into the next batch
        # (bigger batches when the store is the bottleneck, not more of them).
        await self._slots.acquire()
        try:
            while not queue and not self._closed:
                await self._wait_arrival()
            if not queue:
                self._slots.release()
                return False  # closed and drained
            if len(queue) < max_rows and not self._closed:
                # A batch is due when full, ``group_commit_interval_s`` after its first item,
                # or once nothing came for ``group_commit_quiet_s``: an SMSC whose deliver
                # window is full waits for our deliver_sm_resps, which wait for this commit,
                # so waiting out the whole interval would only slow its receipts down.
                with trio.move_on_after(self._interval_s):
                    while len(queue) < max_rows and not self._closed:
                        with trio.move_on_after(self._quiet_s) as quiet:
                            await self._wait_arrival()
                        if quiet.cancelled_caught:
                            break
        except BaseException:
            self._slots.release()
            raise
        batch = queue[:max_rows]
        del queue[:max_rows]
        first = self._taken_upto + 1
        self._taken_upto += len(batch)
        self._room.set()
        self._room = trio.Event()
        commits.start_soon(self._commit_in_slot, batch, first)
        return True

    async def _commit_in_slot(self, batch: list[SubmitOutcome | Receipt], first: int) -> None:
        try:
            await self._commit(batch, first)
        finally:
            self._slots.release()

    async def _wait_arrival(self) -> None:
        if self._arrived.is_set():
            self._arrived = trio.Event()
        await self._arrived.wait()

    async def _commit(self, batch: list[SubmitOutcome | Receipt], first: int) -> None:
        outcomes = [i for i in batch if type(i) is SubmitOutcome]
        receipts = [i for i in batch if type(i) is not SubmitOutcome]
        started = trio.current_time()
        now = self._clock()  # kept across retries: the time the results came in
        if outcomes:
            tally = await self._apply(self._store.record_submit_results, outcomes, now)
            self._matched += tally.receipts_matched
            self._stale += tally.stale
        if receipts:  # its own transaction: a retry never applies the outcomes twice
            self._matched += await self._apply(self._store.record_receipts, receipts, now)
        self._batches += 1
        self._outcomes += len(outcomes)
        self._receipts += len(receipts)
        self._last_rows = len(batch)
        self._last_commit_s = trio.current_time() - started
        self._commit_hist.observe(self._last_commit_s)
        self._rows_hist.observe(len(batch))
        # Durable up to seq only once every batch taken before this one is committed too.
        self._committed[first] = first + len(batch) - 1
        while (last := self._committed.pop(self._durable_upto + 1, None)) is not None:
            self._durable_upto = last
        waiting = self._on_durable
        while waiting and waiting[0][0] <= self._durable_upto:
            waiting.popleft()[1]()
        self._flushed.set()
        self._flushed = trio.Event()

    async def _apply(self, write: Callable[[Any, datetime], Any], rows: list[Any],
                     now: datetime) -> Any:
        """``_until_committed``, splitting a batch the store refuses (see the class doc)."""
        results: list[Any] = []
        refused: list[tuple[Any, Exception]] = []
        await self._commit_parts(write, rows, now, results, refused)
        if not refused:
            return results[0]  # the whole batch in one commit, as nearly always
        if len(refused) == len(rows) > 1:
            raise refused[0][1]  # every item refused: the fault is not in the data
        for item, why in refused:
            results.append(await self._refused(write, item, now, why))
        if isinstance(results[0], int):
            return sum(results)
        return type(results[0])(*map(sum, zip(*results, strict=True)))

    async def _commit_parts(self, write: Callable[[Any, datetime], Any], rows: list[Any],
                            now: datetime, results: list[Any],
                            refused: list[tuple[Any, Exception]]) -> None:
        """Commit ``rows``; if the store refuses them, their halves apart, down to the items
        refused one by one (collected in ``refused``, not yet handled)."""
        try:
            results.append(await self._until_committed(write, rows, now))
        except Exception as exc:
            if len(rows) == 1:
                refused.append((rows[0], exc))
                return
            half = len(rows) // 2
            await self._commit_parts(write, rows[:half], now, results, refused)
            await self._commit_parts(write, rows[half:], now, results, refused)

    async def _refused(self, write: Callable[[Any, datetime], Any], item: Any, now: datetime,
                       exc: Exception) -> Any:
        """One item the store refused: a receipt is dropped; an outcome is recorded as
        unknown (the SMSC's answer is lost, and the recipient must not stay in flight), or
        dropped too if even that is refused (recovery finds it in flight at the next start)."""
        if type(item) is not SubmitOutcome:
            self._refused_receipts += 1
            log_event(log, logging.ERROR, "store refused a receipt", esme=item.esme,
                      error=describe(exc))
            return 0
        self._refused_outcomes += 1
        log_event(log, logging.ERROR, "store refused a submit outcome", esme=item.esme,
                  recipient=item.recipient_id, kind=item.kind.value, error=describe(exc))
        unknown = SubmitOutcome(item.recipient_id, SubmitKind.UNKNOWN, item.esme, (),
                                item.submit_status,
                                f"the store refused the SMSC's answer ({type(exc).__name__})")
        try:
            return await self._until_committed(write, [unknown], now)
        except Exception as again:
            log_event(log, logging.ERROR, "store refused a submit outcome as unknown too",
                      esme=item.esme, recipient=item.recipient_id, error=describe(again))
            return SubmitTally()

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
        queued = len(self._queue)
        return WriterStatistics(self._batches, self._outcomes, self._receipts, self._matched,
                                self._stale, queued, self._last_rows,
                                self._last_commit_s if math.isfinite(self._last_commit_s)
                                else 0.0, commit_duration=self._commit_hist.snapshot(),
                                batch_rows=self._rows_hist.snapshot(),
                                refused_outcomes=self._refused_outcomes,
                                refused_receipts=self._refused_receipts)
