"""Marking what ended campaigns left unsent, chunk by chunk.

A campaign that ends with recipients unsent (``dispatch.store.base.marks_unsent``: Cancelled,
Expired, Failed, a Trigger campaign Done at its end) has them marked Failed. The transition
that ends it marks the first ``StoreConfig.unsent_mark_rows`` in its own transaction; a bigger
campaign (a recipient file holds up to ~70 M numbers) keeps the rest New or Held, and nothing
claims them (only a Sending campaign's rows are claimed). This task marks them: each chunk of
``unsent_mark_rows`` is one store call, one transaction, so the writer's group commits and
the routes' claims (every other campaign's submit results and receipts) queue behind one
chunk at most, never behind the whole campaign. Marking a million rows in one transaction
took 3 s on SQLite; a chunk of 50 000 takes ~0.15 s.

The work is found in the store (``campaigns_with_unsent``), not remembered here: a cancel
from another cluster node, a crash mid-way or a build that raced a cancel all leave rows the
next round finds. A store fault abandons the round; it is logged and the next round redoes
what is still due.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import trio

from dispatch.logs import log_event
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.faults import STORE_FAULTS, describe

log = logging.getLogger(__name__)

#: With nothing left to mark, the next look is at the next status change on this node (what
#: makes new work: an ending transition), or after this long: a campaign ended on another
#: cluster node, whose own engine marks it anyway. Polling at the control interval read every
#: ended campaign four times a second for nothing.
IDLE_LOOK_S = 30.0

#: Chunks one campaign gets in a round before the next campaign has its turn (a million rows
#: at the default chunk size): a huge cancel does not starve another campaign's marking.
CHUNKS_PER_CAMPAIGN_ROUND = 20


class UnsentMarking:
    """``await nursery.start(marking.run, sleep)``; ``mark_campaign`` marks one campaign's
    rows now (the builder, after its build raced a cancel)."""

    def __init__(self, store: AsyncStore, chunk_rows: int,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.chunk_rows = max(1, chunk_rows)
        self.clock = clock
        self.rows_marked = 0
        self.rounds_failed = 0

    async def run(self, sleep: Callable[[int, float], Awaitable[None]], interval_s: float,
                  *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rounds until cancelled. After a round that marked rows, the next round starts at
        the next checkpoint; after one that marked nothing, ``sleep(generation, IDLE_LOOK_S)``
        (the control loop's: it returns early when a campaign changed status, so a cancel's
        rest starts at once); after a store fault, ``sleep(generation, interval_s)``."""
        task_status.started()
        while True:
            generation = self.store.campaigns_generation
            marked = 0
            wait_s = IDLE_LOOK_S
            try:
                marked = await self.mark_round()
            except STORE_FAULTS as exc:
                self.rounds_failed += 1
                wait_s = interval_s
                log_event(log, logging.WARNING, "unsent recipients not marked: store fault",
                          error=describe(exc))
            if marked:
                await trio.lowlevel.checkpoint()
            else:
                await sleep(generation, wait_s)

    async def mark_round(self) -> int:
        """Up to ``CHUNKS_PER_CAMPAIGN_ROUND`` chunks of every ended campaign that still has
        rows to mark; how many rows were marked."""
        marked = 0
        for cid in await self.store.campaigns_with_unsent():
            marked += await self.mark_campaign(cid)
        return marked

    async def mark_campaign(self, campaign_id: int,
                            max_chunks: int = CHUNKS_PER_CAMPAIGN_ROUND) -> int:
        """Mark the campaign's unsent rows chunk by chunk, each its own store call, until a
        chunk comes back short (none left) or after ``max_chunks`` (the next round goes on);
        how many rows were marked."""
        marked = 0
        for _ in range(max_chunks):
            n = await self.store.mark_unsent(campaign_id, self.clock(), self.chunk_rows)
            marked += n
            self.rows_marked += n
            if n < self.chunk_rows:
                break
        if marked:
            log_event(log, logging.INFO, "unsent recipients marked", campaign_id=campaign_id,
                      rows=marked)
        return marked
