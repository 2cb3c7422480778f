"""Building: a campaign's recipient file -> recipient rows in the store, off the event loop.

The file is parsed by the fast path in a worker thread (``ingest_file``); each batch is handed
back to the trio loop with ``trio.from_thread.run`` to be stored, which also gives backpressure
(parsing waits while the store is busy). Line errors become job errors with their line numbers.
A build interrupted by a crash starts over: the campaign's partial rows are deleted first, so a
rebuild is idempotent (nothing was sent while Building).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from itertools import islice

import trio

from dispatch.campaigns.model import Campaign, CampaignMode
from dispatch.ingest import IngestError, IngestOptions, IngestSummary, ingest_file, mask_number
from dispatch.logs import log_event
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import JobError, RecipientRow

log = logging.getLogger(__name__)

_STORE_SLICE = 5000  # recipient rows per store call while building

_REASON_TEXT = {
    "invalid_characters": "Phone number contains invalid characters",
    "too_short": "Phone number has fewer than 10 digits",
    "too_long": "Phone number has more than 15 digits",
    "bad_country_code": "Phone number starts with 0: no country code",
    "empty_phone": "Phone number is empty",
    "malformed_row": "Malformed CSV row",
    "line_too_long": "Line is too long",
    "bad_encoding": "Line is not valid UTF-8",
}


class BuildFailed(Exception):
    """The file as a whole could not become a recipient list (reason is user-facing)."""


async def build_recipients(campaign: Campaign, store: AsyncStore, options: IngestOptions,
                           clock: Callable[[], datetime]) -> IngestSummary:
    """Ingest ``campaign.source_path`` into the store; return the parse summary.

    Raises ``BuildFailed`` (after recording a job error) when the file cannot be read or holds
    no valid recipient.
    """
    assert campaign.id is not None
    cid = campaign.id
    if not campaign.source_path:
        raise BuildFailed("the campaign has no recipient file")
    await store.delete_recipients(cid)
    # Trigger mode: the list is the audience; each recipient waits (Held) for its trigger.
    held = campaign.mode is CampaignMode.TRIGGER

    def on_batch(batch: object) -> None:
        # A parsed chunk (256 KiB: ~20k numbers) is stored in slices: the row objects of a whole
        # chunk would be ~20 MB of Python heap at once, which the allocator keeps as RSS.
        records = iter(batch)  # type: ignore[call-overload]
        while rows := [RecipientRow(r.number, r.ctn_hash, mask_number(r.number), r.variables,
                                    r.line_no) for r in islice(records, _STORE_SLICE)]:
            trio.from_thread.run(store.add_recipients, cid, rows, clock(), held)

    try:
        summary: IngestSummary = await trio.to_thread.run_sync(
            ingest_file, campaign.source_path, options, on_batch)
    except IngestError as exc:
        await store.add_job_errors(cid, [JobError(0, "file_error", str(exc))], clock())
        raise BuildFailed(str(exc)) from exc
    errors = [JobError(e.line_no, e.reason, _REASON_TEXT.get(e.reason, e.reason))
              for e in summary.errors]
    if summary.invalid > len(summary.errors):
        errors.append(JobError(0, "errors_truncated",
                               f"{summary.invalid - len(summary.errors)} more invalid lines "
                               "not listed"))
    if errors:
        await store.add_job_errors(cid, errors, clock())
    log_event(log, logging.INFO, "recipient list built", campaign=str(campaign.external_id),
              valid=summary.valid, invalid=summary.invalid, duplicates=summary.duplicates,
              lines=summary.lines, implementation=summary.implementation)
    if summary.valid == 0:
        reason = "no valid recipients in the file: " + summary.message()
        await store.add_job_errors(cid, [JobError(0, "no_recipients", reason)], clock())
        raise BuildFailed(reason)
    return summary
