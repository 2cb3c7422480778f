"""Receive a recipient file as a streamed request body, straight to a file under the data dir.

The body is never held whole: chunks from the ASGI stream are gathered into ~1 MiB blocks and
each block is written by a worker thread, so a 1 GB upload costs one block of memory and never
blocks the trio loop on disk I/O. Bytes are counted as they arrive; the upload is aborted with
413 ("File too large. Maximum {limit}") the moment it passes the cap (at once when the declared
Content-Length already does), and the partial file is removed. A body that does not look like
text (NUL bytes in its first block) is refused with 415 before the engine parses it.

Accepted formats (product doc 000): ``.txt`` (one number a line) and ``.csv``. The format comes
from the ``filename`` query parameter's suffix, else from the Content-Type (``text/plain`` ->
txt, ``text/csv`` -> csv, ``application/octet-stream`` -> detect).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import falcon.asgi
import trio

from control.errors import ApiError, bad_request, file_too_large

BLOCK_BYTES = 1 << 20

_TYPE_FORMATS = {
    "text/plain": "txt",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.ms-excel": "csv",  # what some browsers send for .csv
    "application/octet-stream": "auto",
}


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    bytes: int
    format: str  # "txt", "csv" or "auto" (let the parser detect)
    filename: str | None


def upload_format(content_type: str | None, filename: str | None) -> str:
    """The recipient file format, or ApiError 415 for anything but .txt/.csv text."""
    if filename:
        suffix = Path(filename).suffix.lower()
        if suffix not in (".txt", ".csv"):
            raise ApiError(415, "Unsupported Media Type",
                           "Upload failed: only .txt and .csv files are accepted")
        by_name = suffix[1:]
    else:
        by_name = None
    ctype = (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()
    by_type = _TYPE_FORMATS.get(ctype)
    if by_type is None:
        raise ApiError(415, "Unsupported Media Type",
                       "Upload failed: send text/plain, text/csv or application/octet-stream")
    return by_name or by_type


def _write_block(fh: object, block: bytes) -> None:
    fh.write(block)  # type: ignore[attr-defined]


async def receive_file(req: falcon.asgi.Request, directory: Path, max_bytes: int,
                       filename: str | None) -> ReceivedFile:
    """Stream the request body to a new file in ``directory``; the caller owns the file."""
    fmt = upload_format(req.content_type, filename)
    if req.content_length is not None and req.content_length > max_bytes:
        raise file_too_large(max_bytes)
    await trio.to_thread.run_sync(lambda: directory.mkdir(parents=True, exist_ok=True))
    path = directory / f"upload-{secrets.token_hex(8)}.part"
    fh = await trio.to_thread.run_sync(open, path, "xb")
    size = 0
    pending: list[bytes] = []
    pending_bytes = 0
    first_block = True
    try:
        async for chunk in req.stream:
            size += len(chunk)
            if size > max_bytes:
                raise file_too_large(max_bytes)
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= BLOCK_BYTES:
                block = b"".join(pending)
                pending, pending_bytes = [], 0
                if first_block:
                    _check_text(block)
                    first_block = False
                await trio.to_thread.run_sync(_write_block, fh, block)
        block = b"".join(pending)
        if first_block:
            _check_text(block)
        if block:
            await trio.to_thread.run_sync(_write_block, fh, block)
        await trio.to_thread.run_sync(fh.close)
    except BaseException:
        fh.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise
    if size == 0:
        os.unlink(path)
        raise bad_request("Upload failed: the file is empty", {"file": "File is empty"})
    return ReceivedFile(path=path, bytes=size, format=fmt, filename=filename)


def _check_text(block: bytes) -> None:
    if b"\x00" in block[:BLOCK_BYTES]:
        raise ApiError(415, "Unsupported Media Type",
                       "Upload failed: the file is binary or not UTF-8 text (.txt or .csv expected)")
