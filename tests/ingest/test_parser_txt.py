"""Line handling of the streaming parser (.txt): line ends, BOM, blanks, dedupe, limits."""

from __future__ import annotations

import pytest
from tests.ingest.helpers import KEY, numbers, parse

SAMPLE = (b"\xef\xbb\xbf+7 (912) 345-67-89\r\n89123456780\n0079123456781\r\r\n"
          b"abc\n123\n   \n\xff\xfe\n79123456789\n")


def test_mixed_file(impl) -> None:
    r = parse(impl, SAMPLE, trunk_prefix="8", trunk_national_length=11, trunk_country_code="7")
    assert numbers(r) == ["79123456789", "79123456780", "79123456781"]
    assert [x.line_no for x in r["recipients"]] == [1, 2, 3]
    assert r["errors"] == [(5, "invalid_characters"), (6, "too_short"), (8, "bad_encoding")]
    assert (r["lines"], r["valid"], r["invalid"], r["duplicates"]) == (9, 3, 3, 1)
    assert r["bytes"] == len(SAMPLE)
    assert r["recipients"][0].variables is None


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_ends_and_final_line_without_terminator(impl, eol: bytes) -> None:
    data = eol.join([b"79123456789", b"", b"79123456780", b"x"])
    r = parse(impl, data)
    assert numbers(r) == ["79123456789", "79123456780"]
    assert r["errors"] == [(4, "invalid_characters")]
    assert r["lines"] == 4


def test_crlf_split_between_chunks_is_one_line_end(impl) -> None:
    data = b"79123456789\r\nx\r\n"
    for cut in range(len(data) + 1):
        r = parse(impl, data, [cut])
        assert r["errors"] == [(2, "invalid_characters")], cut
        assert r["lines"] == 2


def test_bom_split_and_bom_only_at_start(impl) -> None:
    data = b"\xef\xbb\xbf79123456789\n\xef\xbb\xbf79123456780\n"
    for cut in range(4):
        r = parse(impl, data, [cut])
        assert numbers(r) == ["79123456789"]
        assert r["errors"] == [(2, "invalid_characters")]  # U+FEFF mid-file is a character


def test_duplicates_first_occurrence_wins(impl) -> None:
    r = parse(impl, b"79123456789\n+7 912 345-67-89\n0079123456789\n79123456780\n")
    assert [(x.number, x.line_no) for x in r["recipients"]] == [("79123456789", 1),
                                                                 ("79123456780", 4)]
    assert r["duplicates"] == 2


def test_error_list_is_capped_but_all_counted(impl) -> None:
    r = parse(impl, b"x\n" * 50, max_errors=3)
    assert r["errors"] == [(1, "invalid_characters"), (2, "invalid_characters"),
                           (3, "invalid_characters")]
    assert r["invalid"] == 50
    assert r["error_counts"] == {"invalid_characters": 50}


def test_line_too_long_is_rejected_and_parsing_resumes(impl) -> None:
    data = b"79123456789\n" + b"7" * 100 + b"\n79123456780\n"
    for splits in ([], [20, 40, 60], list(range(1, len(data)))):
        r = parse(impl, data, splits, max_line_bytes=32)
        assert numbers(r) == ["79123456789", "79123456780"]
        assert r["errors"] == [(2, "line_too_long")]
        assert r["lines"] == 3


def test_batches_are_compact(impl) -> None:
    parser = impl.RecipientParser(KEY)
    batch = parser.feed(b"79123456789\n79123456780\n")
    assert len(batch) == 2
    assert batch.numbers.typecode == "Q" and list(batch.numbers) == [79123456789, 79123456780]
    assert len(batch.hashes) == 32 and batch.ctn_hash(1) == impl.ctn_hash(KEY, "79123456780")
    assert list(batch.line_numbers) == [1, 2]
    assert batch.variables is None and batch.number(0) == "79123456789"


def test_feed_after_finish_is_an_error(impl) -> None:
    parser = impl.RecipientParser(KEY)
    parser.finish()
    with pytest.raises(ValueError):
        parser.feed(b"1")


def test_bad_options_are_refused(impl) -> None:
    for kwargs in ({"fmt": "xls"}, {"delimiter": "|"}, {"max_line_bytes": 1},
                   {"phone_column": -1}):
        with pytest.raises(ValueError):
            impl.RecipientParser(KEY, **kwargs)
    with pytest.raises(ValueError):
        impl.RecipientParser(b"short")


@pytest.mark.parametrize("expected_bytes", [None, 0, -5, 1, 100, 10**12])
def test_expected_bytes_is_only_a_capacity_hint(impl, expected_bytes: int | None) -> None:
    """A wrong or absurd size hint changes nothing but the dedupe set's first size."""
    data = b"".join(b"79%09d\n" % (i % 700) for i in range(3000)) + SAMPLE
    assert (parse(impl, data, [1000, 20000], expected_bytes=expected_bytes)
            == parse(impl, data, [1000, 20000]))


def test_many_distinct_numbers_grow_the_dedupe_set(impl) -> None:
    """Enough distinct numbers to double the set several times, each seen twice."""
    count = 20000 if impl.__name__.endswith("_fastpath") else 3000
    data = b"".join(b"7912%07d\n" % (i * 7919 % 10**7) for i in range(count)) * 2
    r = parse(impl, data, [len(data) // 3])
    assert (r["valid"], r["duplicates"], r["invalid"]) == (count, count, 0)
    assert numbers(r)[:2] == ["79120000000", "79120007919"]


@pytest.mark.parametrize("line", [b"0123456789", b"+0123456789", b"000123456789",
                                  b"0 (12) 345-67-89", b"+00123456789"])
def test_a_normalised_number_never_starts_with_zero(impl, line: bytes) -> None:
    """Numbers are deduplicated and stored packed as the integer value of their digits, which
    would drop a leading 0 ("0123456789" and "123456789" would collide, and the stored number
    lose a digit). No E.164 country code starts with 0, so such a number is rejected before it
    is packed, whatever the prefix rule that produced it."""
    r = parse(impl, line + b"\n" + b"123456789\n",
              trunk_prefix="8", trunk_national_length=11, trunk_country_code="7")
    assert r["recipients"] == []
    assert r["errors"][0] == (1, "bad_country_code")
