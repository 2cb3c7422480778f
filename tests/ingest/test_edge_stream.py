"""RecipientStream edge cases found by probing: each test failed before its fix."""

from __future__ import annotations

import io

import pytest

from dispatch.ingest import IngestOptions, RecipientStream

KEY = bytes(range(16))
CSV = b"name;phone\nAnn;79123456789\nBob;79123456780\n"


def _read(data: bytes, **options: object) -> tuple[str, list[tuple[str, dict[str, str] | None]]]:
    stream = RecipientStream(io.BytesIO(data), IngestOptions(hash_key=KEY, **options))
    got = [(r.number, r.variables) for batch in stream for r in batch]
    return stream.summary.format, got


@pytest.mark.parametrize("chunk_bytes", [1, 4, 10, 11, 1 << 20])
def test_format_sniffing_does_not_depend_on_the_chunk_size(chunk_bytes: int) -> None:
    """A stream without a file name is sniffed on its first line: the whole line, even when
    the first chunk read ends before it does (it was sniffed on the chunk, so a small
    chunk_bytes turned a CSV into a txt file of invalid lines)."""
    assert _read(CSV, chunk_bytes=chunk_bytes) == (
        "csv", [("79123456789", {"name": "Ann"}), ("79123456780", {"name": "Bob"})])


@pytest.mark.parametrize("prefix", [b"\n", b"\r\n \t\r\n", b"\xef\xbb\xbf\n"])
def test_format_sniffing_skips_blank_lines(prefix: bytes) -> None:
    """The parser skips blank lines (and a BOM) and detects the delimiter on the first
    non-blank line; the format sniffing looks at that same line."""
    fmt, got = _read(prefix + CSV)
    assert fmt == "csv" and [number for number, _ in got] == ["79123456789", "79123456780"]


def test_a_txt_stream_is_still_txt() -> None:
    assert _read(b"\n79123456789\n+7 912 345-67-80\n", chunk_bytes=3) == (
        "txt", [("79123456789", None), ("79123456780", None)])


def test_an_excel_sep_line_makes_the_stream_csv() -> None:
    """"sep=|" names a delimiter the sniff does not look for: the stream is still CSV."""
    assert _read(b"sep=|\nname|phone\nAnn|79123456789\n") == (
        "csv", [("79123456789", {"name": "Ann"})])
