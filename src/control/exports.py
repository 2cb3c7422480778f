"""Recipient exports: a background runner on the engine's trio loop.

Lifecycle (product doc 003): ``Queued -> Running -> Done`` (or ``Failed``), then the file can
be downloaded until ``expires_at``; after that the export is ``Expired`` (the API answers 410)
and its file is deleted. Creating an export only queues it (HTTP 202); :meth:`ExportRunner.run`
is the long-lived task the engine starts with ``nursery.start(runner.run)``.

The heavy part (formatting rows, writing the file) runs in a worker thread; the thread pulls
recipient pages from the engine's service through ``trio.from_thread.run`` so every store call
still goes through the service. Exports are kept in memory: they are short-lived by design and
a restart simply forgets them (the files of forgotten exports are removed at start).

Clear numbers appear in an export only when the key that asked for it has the clear-number
right; otherwise the masked number and the ctn_hash are written.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import io
import logging
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from control.errors import ApiError, not_found
from control.views import recipient_json
from dispatch.campaigns.service import CampaignService

if TYPE_CHECKING:
    from trio import TaskStatus

log = logging.getLogger("control.exports")

PAGE_ROWS = 200  # the service's page cap
SWEEP_EVERY_S = 30.0
CSV_COLUMNS = ("recipient", "ctn_hash", "stage", "esme", "submit_status", "smsid", "sms_result",
               "stat", "err", "created_at", "sent_at", "done_at", "error")


class ExportStatus(enum.StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    EXPIRED = "Expired"


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    TXT = "txt"


class RecipientSource(Protocol):
    """Where rows come from: one page of a campaign's recipients after a keyset cursor.

    Returns ``(rows, next_after)``; rows are plain dicts with the API's recipient fields
    (``control.views.recipient_json``); ``next_after`` is ``None`` on the last page.
    """

    def __call__(self, campaign_id: str, after_id: int, limit: int,
                 with_numbers: bool) -> Awaitable[tuple[list[dict[str, Any]], int | None]]: ...


@dataclasses.dataclass
class Export:
    id: str
    campaign_id: str
    format: ExportFormat
    with_numbers: bool
    created_at: float
    status: ExportStatus = ExportStatus.QUEUED
    finished_at: float | None = None
    expires_at: float | None = None
    rows: int | None = None
    bytes: int | None = None
    error: str | None = None
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "campaignId": self.campaign_id, "format": self.format.value,
            "status": self.status.value, "createdAt": _iso(self.created_at),
            "finishedAt": _iso(self.finished_at), "expiresAt": _iso(self.expires_at),
            "rows": self.rows, "bytes": self.bytes, "error": self.error,
            "downloadUrl": (f"/api/v1/exports/{self.id}/download"
                            if self.status is ExportStatus.DONE else None),
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class ExportRunner:
    """Queue, build, serve and expire recipient exports."""

    def __init__(self, source: RecipientSource, directory: Path, *, ttl_s: float,
                 queue_size: int = 64, clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self._clock = clock
        self._exports: dict[str, Export] = {}
        self._send, self._receive = trio.open_memory_channel[Export](queue_size)

    # ---------------------------------------------------------------- API side

    def create(self, campaign_id: str, fmt: ExportFormat, with_numbers: bool) -> Export:
        export = Export(id=secrets.token_hex(12), campaign_id=campaign_id, format=fmt,
                        with_numbers=with_numbers, created_at=self._clock())
        try:
            self._send.send_nowait(export)
        except trio.WouldBlock:
            raise ApiError(429, "Too Many Requests",
                           "Too many exports are queued. Try again in 30s",
                           headers={"Retry-After": "30"}) from None
        self._exports[export.id] = export
        return export

    def get(self, export_id: str) -> Export:
        export = self._exports.get(export_id)
        if export is None:
            raise not_found("Export not found")
        self._expire_if_due(export)
        return export

    def download_path(self, export_id: str) -> Export:
        """The finished export, or 404 (unknown), 409 (not finished, or failed), 410 (expired)."""
        export = self.get(export_id)
        if export.status is ExportStatus.EXPIRED:
            raise ApiError(410, "Gone", "Export expired. Create a new export")
        if export.status is ExportStatus.FAILED:
            raise ApiError(409, "Conflict",
                           f"Export failed: {export.error}. Create a new export")
        if export.status is not ExportStatus.DONE or export.path is None:
            raise ApiError(409, "Conflict", f"Export is not ready: status is {export.status}")
        return export

    def _expire_if_due(self, export: Export) -> None:
        if (export.status is ExportStatus.DONE and export.expires_at is not None
                and self._clock() >= export.expires_at):
            export.status = ExportStatus.EXPIRED
            if export.path is not None:
                try:
                    os.unlink(export.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:  # never fail a status read or the sweep over it
                    log.warning("expired export file not removed", exc_info=exc,
                                extra={"fields": {"export": export.id}})
                export.path = None

    # ---------------------------------------------------------------- engine side

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Build queued exports one at a time; sweep expired ones. Runs until cancelled."""
        await trio.to_thread.run_sync(self._clean_directory)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep_forever)
            task_status.started()
            async for export in self._receive:
                await self._build(export)

    def _clean_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("export-*"):
            leftover.unlink(missing_ok=True)

    async def _sweep_forever(self) -> None:
        while True:
            await trio.sleep(SWEEP_EVERY_S)
            self.sweep()

    def sweep(self) -> None:
        """Expire due exports and forget those expired for longer than one more TTL."""
        now = self._clock()
        for export_id, export in list(self._exports.items()):
            self._expire_if_due(export)
            ended = export.expires_at or export.finished_at
            if export.status in (ExportStatus.EXPIRED, ExportStatus.FAILED) and ended \
                    and now - ended > self.ttl_s:
                del self._exports[export_id]

    async def _build(self, export: Export) -> None:
        export.status = ExportStatus.RUNNING
        path = self.directory / f"export-{export.id}.{export.format.value}"
        try:
            rows, size = await trio.to_thread.run_sync(self._write_file, export, path)
        except Exception as exc:
            export.status = ExportStatus.FAILED
            export.error = (exc.message if isinstance(exc, ApiError)
                            else "the export file could not be written"
                            if isinstance(exc, OSError) else "internal error")
            export.finished_at = self._clock()
            with contextlib.suppress(OSError):  # the cause may also stop the clean-up
                path.unlink(missing_ok=True)
            log.error("export failed", exc_info=exc,
                      extra={"fields": {"export": export.id, "campaign": export.campaign_id}})
            return
        export.rows, export.bytes, export.path = rows, size, path
        export.finished_at = self._clock()
        export.expires_at = export.finished_at + self.ttl_s
        export.status = ExportStatus.DONE

    def _write_file(self, export: Export, path: Path) -> tuple[int, int]:
        """Worker thread: page through the recipients and write them out."""
        rows = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh) if export.format is ExportFormat.CSV else None
            if writer is not None:
                writer.writerow(CSV_COLUMNS)
            after = 0
            while True:
                page, next_after = trio.from_thread.run(
                    self._source, export.campaign_id, after, PAGE_ROWS, export.with_numbers)
                for line in format_rows(page, export.format, export.with_numbers):
                    fh.write(line)
                rows += len(page)
                if next_after is None or not page:
                    break
                after = next_after
        return rows, path.stat().st_size


def _recipient_text(row: dict[str, Any], with_numbers: bool) -> str:
    number = row.get("number") if with_numbers else None
    return str(number) if number else str(row.get("masked", ""))


def format_rows(rows: Iterable[dict[str, Any]], fmt: ExportFormat,
                with_numbers: bool) -> Iterable[str]:
    """Export lines for API recipient dicts (clear numbers only when ``with_numbers``)."""
    if fmt is ExportFormat.TXT:
        for row in rows:
            yield _recipient_text(row, with_numbers) + "\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([
            _recipient_text(row, with_numbers), row.get("ctnHash", ""), row.get("stage", ""),
            row.get("esme") or "", row.get("submitStatus") or "",
            " ".join(row.get("smsId") or ()), row.get("smsResult") or "", row.get("stat") or "",
            row.get("err") or "", row.get("createdAt") or "", row.get("sentAt") or "",
            row.get("doneAt") or "", row.get("error") or "",
        ])
    yield buf.getvalue()


def service_source(service: CampaignService) -> RecipientSource:
    """Pages of a campaign's recipients from the engine's ``CampaignService``."""

    async def page(campaign_id: str, after_id: int, limit: int,
                   with_numbers: bool) -> tuple[list[dict[str, Any]], int | None]:
        result = await service.recipients(uuid.UUID(campaign_id), after_id=after_id,
                                          limit=limit, with_numbers=with_numbers)
        return [recipient_json(r, with_numbers) for r in result.items], result.next_after

    return page


async def stream_file(path: Path, block_bytes: int = 256 * 1024) -> Any:
    """An async iterator over a file's bytes, each read in a worker thread."""
    fh = await trio.to_thread.run_sync(open, path, "rb")
    try:
        while True:
            block = await trio.to_thread.run_sync(fh.read, block_bytes)
            if not block:
                break
            yield block
    finally:
        fh.close()
