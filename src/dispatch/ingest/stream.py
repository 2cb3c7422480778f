"""Stream a recipient file (a path or a binary file object) through the fast-path parser.

Reads ``chunk_bytes`` at a time, so memory stays O(chunk + unique recipients) whatever the
file size. Everything here is synchronous and thread-safe per stream: the engine runs
``ingest_file`` in a worker thread (``trio.to_thread.run_sync``); the parser's C loops release
the GIL, so the trio loop keeps sending while a 1 GB file is parsed.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from dispatch import fastpath
from dispatch._reference.ingest import RecipientBatch  # one class, built by both implementations
from dispatch.ingest.options import IngestOptions

_EOL = re.compile(rb"[\r\n]")
_BOM = b"\xef\xbb\xbf"


class IngestError(ValueError):
    """The file as a whole cannot be ingested (unreadable, over the size cap, a phone column
    that is not there). Per-line problems are not raised: they are counted in the summary."""


class LineError(NamedTuple):
    line_no: int
    reason: str


@dataclass(frozen=True)
class IngestSummary:
    """Counts of one ingest. ``errors`` holds the first ``max_errors`` line errors; the
    counters and ``error_counts`` count all of them."""

    format: str
    implementation: str
    bytes_total: int
    lines: int
    valid: int
    invalid: int
    duplicates: int
    errors: tuple[LineError, ...]
    error_counts: dict[str, int] = field(default_factory=dict)
    header: tuple[str, ...] | None = None
    delimiter: str | None = None

    @property
    def looks_like_wrong_encoding(self) -> bool:
        """Most non-blank lines failed UTF-8 decoding: a UTF-16 or legacy-codepage file."""
        bad = self.error_counts.get("bad_encoding", 0)
        return bad > 0 and bad * 2 >= self.valid + self.duplicates + self.invalid

    def message(self) -> str:
        """One human line for job errors and the UI (no phone numbers in it)."""
        text = (f"{self.valid} recipients, {self.duplicates} duplicates, {self.invalid} invalid "
                f"lines of {self.lines}")
        if self.looks_like_wrong_encoding:
            text += "; the file does not look like UTF-8 text (UTF-16 or a legacy code page?)"
        if self.invalid > len(self.errors):
            text += f"; first {len(self.errors)} errors listed"
        return text


def _format_from_name(options: IngestOptions, name: str | None) -> str | None:
    """The format the options or the file name decide, or None: sniff the content."""
    if options.format != "auto":
        return options.format
    suffix = Path(name).suffix.lower() if name else ""
    return suffix[1:] if suffix in (".csv", ".txt") else None


def _sniff_format(stream: BinaryIO, first: bytes, options: IngestOptions) -> tuple[str, bytes]:
    """csv when the first non-blank line (the one the parser detects its delimiter on) holds
    ``,`` ``;`` or a tab, else txt; and the bytes read so far (``first``, plus as many more
    chunks as it took for that line to end: at most about ``max_line_bytes``, as a longer line
    is the parser's error anyway)."""
    head = bytearray(first)
    start = scanned = 0  # where the current line starts; where to look for its end
    while True:
        end = _EOL.search(head, scanned)
        if end is None:
            if len(head) > options.max_line_bytes + 3:
                break
            more = stream.read(options.chunk_bytes)
            if not more:
                break
            scanned = len(head)
            head += more
            continue
        line = bytes(head[start:end.start()])
        if start == 0 and line.startswith(_BOM):
            line = line[3:]
        if line.strip(b" \t"):
            return _format_of_line(line), bytes(head)
        start = scanned = end.end()
    return _format_of_line(bytes(head[start:])), bytes(head)


def _format_of_line(line: bytes) -> str:
    if len(line) == 5 and line[:4].lower() == b"sep=":  # Excel's delimiter line: csv
        return "csv"
    return "csv" if any(d in line for d in (b",", b";", b"\t")) else "txt"


class RecipientStream:
    """Iterate the ``RecipientBatch`` of a file chunk by chunk; ``summary`` once exhausted.

    ``source`` is a path or a binary file object (not closed here when it is an object).
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, options: IngestOptions) -> None:
        self._source = source
        self._options = options
        self._summary: IngestSummary | None = None

    @property
    def summary(self) -> IngestSummary:
        if self._summary is None:
            raise RuntimeError("the stream has not been read to the end yet")
        return self._summary

    def __iter__(self) -> Iterator[RecipientBatch]:
        if isinstance(self._source, str | os.PathLike):
            try:
                with open(self._source, "rb") as stream:
                    yield from self._read(stream, os.fspath(self._source))
            except OSError as exc:
                raise IngestError(f"cannot read the recipient file: {exc.strerror}") from exc
        else:
            yield from self._read(self._source, getattr(self._source, "name", None))

    def _read(self, stream: BinaryIO, name: str | None) -> Iterator[RecipientBatch]:
        opts = self._options
        expected_bytes = _remaining_bytes(stream)
        first = stream.read(opts.chunk_bytes)
        fmt = _format_from_name(opts, name if isinstance(name, str) else None)
        if fmt is None:  # the whole first line, whatever the chunk size
            fmt, first = _sniff_format(stream, first, opts)
        trunk = opts.trunk
        parser = fastpath.impl.RecipientParser(
            opts.hash_key, fmt=fmt, delimiter=opts.delimiter, has_header=opts.has_header,
            phone_column=opts.phone_column,
            trunk_prefix=trunk.trunk_prefix if trunk else "",
            trunk_national_length=trunk.national_length if trunk else 0,
            trunk_country_code=trunk.country_code if trunk else "",
            max_line_bytes=opts.max_line_bytes, max_errors=opts.max_errors,
            expected_bytes=expected_bytes)
        chunk = first
        try:
            while chunk:
                if opts.max_file_bytes is not None and \
                        parser.bytes_total + len(chunk) > opts.max_file_bytes:
                    raise IngestError(f"File too large. Maximum {opts.max_file_bytes} bytes")
                batch = parser.feed(chunk)
                if len(batch):
                    yield batch
                chunk = stream.read(opts.chunk_bytes)
            batch = parser.finish()
        except ValueError as exc:  # the parser's file-level configuration errors
            if isinstance(exc, IngestError):
                raise
            raise IngestError(str(exc)) from exc
        if len(batch):
            yield batch
        self._summary = IngestSummary(
            format=fmt, implementation=fastpath.IMPLEMENTATION,
            bytes_total=parser.bytes_total, lines=parser.lines, valid=parser.valid,
            invalid=parser.invalid, duplicates=parser.duplicates,
            errors=tuple(LineError(n, r) for n, r in parser.errors),
            error_counts=dict(parser.error_counts), header=parser.header,
            delimiter=parser.delimiter)


def _remaining_bytes(stream: BinaryIO) -> int | None:
    """What is left to read of a regular file (the parser's capacity hint), else None: pipes,
    sockets and in-memory streams have no size worth trusting."""
    try:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(info.st_size - stream.tell(), 0)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return None


def ingest_file(source: str | os.PathLike[str] | BinaryIO, options: IngestOptions,
                on_batch: Callable[[RecipientBatch], None]) -> IngestSummary:
    """Parse the whole file, handing each batch to ``on_batch`` as it is ready; return the
    summary. Blocking: meant for ``trio.to_thread.run_sync(ingest_file, path, options, cb)``,
    where ``cb`` may use ``trio.from_thread.run`` to store the batch (that also gives
    backpressure: parsing waits while the store is busy)."""
    stream = RecipientStream(source, options)
    for batch in stream:
        on_batch(batch)
    return stream.summary
