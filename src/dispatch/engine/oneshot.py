"""A one-shot campaign run: start an engine, create + approve a campaign from a file, show
progress until it ends, stop the engine. Used by ``dispatch send`` and ``dispatch demo``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.store.base import Counters

ACTOR = "cli"


@dataclass(frozen=True)
class OneShotResult:
    campaign: Campaign
    counters: Counters
    elapsed_s: float
    send_s: float  # from Sending to the end
    receipts_wait_s: float
    reason: str = ""  # why it entered its final status (the last state-history row)


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = 0 if total == 0 else int(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


async def run_one_shot(engine: Engine, campaign: Campaign, *, progress: TextIO | None = sys.stderr,
                       wait_receipts_s: float = 10.0, timeout_s: float = 3600.0,
                       on_started: Callable[[Campaign], None] | None = None) -> OneShotResult:
    """Create, approve (auto-start) and follow ``campaign`` on a running ``engine``."""
    service = engine.service
    assert service is not None
    started = time.monotonic()
    created = await service.create(campaign)
    assert created.id is not None
    cid = created.id
    await service.approve(cid, ACTOR, auto_start=True, note="one-shot run")
    if on_started:
        on_started(created)
    sending_since: float | None = None
    status = created.status
    # A terminal gets one redrawn line; a log file or pipe gets a line every few seconds.
    live = progress is not None and progress.isatty()
    last_line = 0.0
    with trio.fail_after(timeout_s):
        while True:
            current = await service.get(cid)
            status = current.status
            counters = await service.counters(cid)
            if status is CampaignStatus.SENDING and sending_since is None:
                sending_since = time.monotonic()
            now_s = time.monotonic()
            if progress is not None and (live or status.is_terminal or now_s - last_line >= 2):
                last_line = now_s
                done = counters.processed
                rate = done / max(1e-3, now_s - (sending_since or started))
                lead, tail = ("\r", "") if live else ("", "\n")
                progress.write(f"{lead}{status.value:<9} "
                               f"{_bar(done, counters.total)} "
                               f"{done}/{counters.total} sent={counters.sent} "
                               f"failed={counters.failed} delivered={counters.delivered} "
                               f"{rate:,.0f} msg/s   {tail}")
                progress.flush()
            if status.is_terminal:
                break
            await trio.sleep(0.2)
    send_end = time.monotonic()
    # Receipts trail the submits: wait (bounded) until every accepted message has a result.
    with trio.move_on_after(wait_receipts_s):
        while True:
            counters = await service.counters(cid)
            if counters.delivered + counters.undelivered + counters.unknown >= counters.sent:
                break
            await trio.sleep(0.1)
    receipts_wait = time.monotonic() - send_end
    if progress is not None and live:
        progress.write("\n")
    detail = await service.detail(cid)
    history = detail.state_history
    return OneShotResult(detail.campaign, detail.counters, time.monotonic() - started,
                         send_end - (sending_since or started), receipts_wait,
                         history[-1].reason if history else "")
