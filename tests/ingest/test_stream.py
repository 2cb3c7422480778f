"""dispatch.ingest: options, streaming a path or a file object in chunks, summary, trio thread."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import trio

from dispatch import fastpath
from dispatch.ingest import (
    IngestError,
    IngestOptions,
    LineError,
    RecipientStream,
    TrunkRule,
    ctn_hash,
    ingest_file,
    mask_number,
    normalize_phone,
)

KEY = bytes(range(16))
TXT = b"+7 (912) 345-67-89\n89123456780\nbad\n79123456789\n"


def test_options_are_validated_and_hide_the_key() -> None:
    with pytest.raises(ValueError):
        IngestOptions(hash_key=b"short")
    with pytest.raises(ValueError):
        IngestOptions(hash_key=KEY, delimiter="|")
    with pytest.raises(ValueError):
        TrunkRule("8", 1, "7")
    assert KEY.hex() not in repr(IngestOptions(hash_key=KEY))
    assert "\\x00" not in repr(IngestOptions(hash_key=KEY))


def test_stream_a_path_in_small_chunks(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(TXT)
    stream = RecipientStream(path, IngestOptions(hash_key=KEY, trunk=TrunkRule.russia(),
                                                 chunk_bytes=7))
    got = [r for batch in stream for r in batch]
    assert [r.number for r in got] == ["79123456789", "79123456780"]
    s = stream.summary
    assert (s.format, s.valid, s.invalid, s.duplicates, s.lines) == ("txt", 2, 1, 1, 4)
    assert s.errors == (LineError(3, "invalid_characters"),)
    assert s.implementation == fastpath.IMPLEMENTATION
    assert s.message() == "2 recipients, 1 duplicates, 1 invalid lines of 4"


def test_summary_before_the_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(TXT)
    with pytest.raises(RuntimeError):
        _ = RecipientStream(path, IngestOptions(hash_key=KEY)).summary


@pytest.mark.parametrize(("name", "data", "fmt"), [
    ("list.csv", b"phone\n79123456789\n", "csv"),
    ("list.TXT", b"79123456789\n", "txt"),
    (None, b"name;phone\nA;79123456789\n", "csv"),
    (None, b"79123456789\n", "txt"),
])
def test_format_auto(tmp_path: Path, name: str | None, data: bytes, fmt: str) -> None:
    source: Path | io.BytesIO
    if name:
        source = tmp_path / name
        source.write_bytes(data)
    else:
        source = io.BytesIO(data)
    stream = RecipientStream(source, IngestOptions(hash_key=KEY))
    assert [r.number for b in stream for r in b] == ["79123456789"]
    assert stream.summary.format == fmt


def test_csv_variables_through_the_api() -> None:
    data = io.BytesIO(b"Name,Phone\nAnn,79123456789\n")
    stream = RecipientStream(data, IngestOptions(hash_key=KEY, format="csv"))
    [recipient] = [r for b in stream for r in b]
    assert recipient.variables == {"Name": "Ann"}
    assert stream.summary.header == ("Name", "Phone") and stream.summary.delimiter == ","


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot read"):
        list(RecipientStream(tmp_path / "missing.txt", IngestOptions(hash_key=KEY)))
    with pytest.raises(IngestError, match="not in the header"):
        list(RecipientStream(io.BytesIO(b"a,b\n1,79123456789\n"),
                             IngestOptions(hash_key=KEY, format="csv", phone_column="msisdn")))
    with pytest.raises(IngestError, match="File too large"):
        list(RecipientStream(io.BytesIO(TXT * 10),
                             IngestOptions(hash_key=KEY, max_file_bytes=100, chunk_bytes=16)))


def test_wrong_encoding_is_explained() -> None:
    data = io.BytesIO("79123456789\n79123456780\n".encode("utf-16"))
    stream = RecipientStream(data, IngestOptions(hash_key=KEY))
    assert list(stream) == []
    assert stream.summary.looks_like_wrong_encoding
    assert "does not look like UTF-8" in stream.summary.message()
    assert "7912" not in stream.summary.message()


def test_single_number_helpers() -> None:
    assert normalize_phone("8 912 345-67-89", TrunkRule.russia()) == ("79123456789", None)
    assert normalize_phone("12") == (None, "too_short")
    assert ctn_hash(KEY, "79123456789") == fastpath.impl.siphash128(KEY, b"79123456789")
    assert mask_number("79123456789") == "*******6789"


def test_ingest_in_a_trio_worker_thread_while_the_loop_runs(tmp_path: Path) -> None:
    """The engine's usage: parse in a worker thread, store batches from the loop, and the loop
    keeps running other tasks meanwhile."""
    path = tmp_path / "big.txt"
    path.write_bytes(b"".join(b"7912%07d\n" % i for i in range(50_000)))
    options = IngestOptions(hash_key=KEY, chunk_bytes=16 * 1024)
    stored: list[int] = []
    ticks = 0

    async def store(count: int) -> None:
        stored.append(count)

    async def main() -> None:
        nonlocal ticks
        done = trio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            summary = await trio.to_thread.run_sync(
                ingest_file, path, options,
                lambda batch: trio.from_thread.run(store, len(batch)))
            done.set()
        assert summary.valid == 50_000 == sum(stored)

    trio.run(main)
    assert len(stored) > 1 and ticks > 0


def test_a_file_size_reaches_the_parser_as_a_hint(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A regular file's remaining size is passed as ``expected_bytes``; a pipe-like stream
    (no size) passes None."""
    seen: list[object] = []
    real = fastpath.impl.RecipientParser

    def recording(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("expected_bytes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fastpath.impl, "RecipientParser", recording)
    path = tmp_path / "list.txt"
    path.write_bytes(TXT)
    options = IngestOptions(hash_key=KEY, format="txt")
    assert sum(len(b) for b in RecipientStream(path, options)) == 2
    with open(path, "rb") as stream:
        stream.read(5)
        assert sum(len(b) for b in RecipientStream(stream, options)) == 2
    assert sum(len(b) for b in RecipientStream(io.BytesIO(TXT), options)) == 2
    assert seen == [len(TXT), len(TXT) - 5, None]
