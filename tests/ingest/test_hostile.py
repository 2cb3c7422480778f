"""Hostile recipient files: garbage, wrong encodings, no newlines, a 1 GB line. Clear counters
and errors, never a crash, a hang or unbounded memory."""

from __future__ import annotations

import random
import resource

from tests.ingest.helpers import KEY, numbers, parse

GIB = 1 << 30


def test_random_garbage_never_crashes(impl) -> None:
    rng = random.Random(7)
    for _ in range(30):
        data = rng.randbytes(rng.randrange(1, 5000))
        for fmt in ("txt", "csv"):
            r = parse(impl, data, [rng.randrange(len(data) + 1)], fmt=fmt, max_line_bytes=64)
            assert r["bytes"] == len(data)
            assert r["valid"] + r["invalid"] + r["duplicates"] <= r["lines"] + 1


def test_utf16_file_is_bad_encoding_on_every_line(impl) -> None:
    data = "79123456789\n79123456780\n".encode("utf-16")
    r = parse(impl, data)
    assert r["valid"] == 0
    assert r["error_counts"] == {"bad_encoding": 3}  # "\n\0" ends lines: a NUL on each


def test_cp1251_csv_is_bad_encoding(impl) -> None:
    data = "телефон;имя\n79123456789;Иван\n".encode("cp1251")
    r = parse(impl, data, fmt="csv")
    assert r["valid"] == 0 and r["error_counts"] == {"bad_encoding": 2}
    assert r["errors"] == [(1, "bad_encoding"), (2, "bad_encoding")]


def test_no_newlines_at_all(impl) -> None:
    data = b"79123456789" * 10_000
    r = parse(impl, data, [4096 * i for i in range(1, 27)], max_line_bytes=1024)
    assert r["errors"] == [(1, "line_too_long")] and r["lines"] == 1 and r["valid"] == 0


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _feed_huge_line(impl, total_bytes: int) -> dict[str, object]:
    """A line of ``total_bytes`` with no newline, fed 1 MiB at a time like a file read."""
    parser = impl.RecipientParser(KEY, max_line_bytes=65536)
    chunk = b"7" * (1 << 20)
    for _ in range(total_bytes // len(chunk)):
        assert len(parser.feed(chunk)) == 0
    batch = parser.feed(b"\r\n79123456789\n")
    return {"numbers": [r.number for r in batch] + [r.number for r in parser.finish()],
            "errors": parser.errors, "lines": parser.lines}


def test_one_gib_line_is_rejected_while_streaming(impl) -> None:
    before = _max_rss_bytes()
    result = _feed_huge_line(impl, GIB)
    assert result == {"numbers": ["79123456789"], "errors": [(1, "line_too_long")], "lines": 2}
    assert _max_rss_bytes() - before < 64 << 20  # nothing near the line's size was kept


def test_huge_csv_quoted_field_is_bounded(impl) -> None:
    parser = impl.RecipientParser(KEY, fmt="csv", max_line_bytes=4096)
    parser.feed(b'phone,note\n79123456789,"')
    for _ in range(256):
        parser.feed(b"x" * 4096 + b"\n")
    parser.feed(b'"\n79123456780,ok\n')
    parser.finish()
    assert parser.errors[0] == (2, "line_too_long")
    assert parser.invalid >= 1


def test_only_blank_lines_and_separators(impl) -> None:
    r = parse(impl, b"\n\r\n \t \r\r\n\n")
    assert (r["valid"], r["invalid"], r["lines"]) == (0, 0, 5)
    r = parse(impl, b",,,\n;;\n", fmt="csv")
    assert r["valid"] == 0 and r["invalid"] >= 1


def test_numbers_survive_garbage_around_them(impl) -> None:
    data = b"\x00\x01\x02\n79123456789\n\xff\n" * 3 + b"79123456780"
    r = parse(impl, data)
    assert numbers(r) == ["79123456789", "79123456780"]
    assert r["duplicates"] == 2 and r["error_counts"] == {"bad_encoding": 6}
