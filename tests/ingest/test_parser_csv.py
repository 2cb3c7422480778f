"""CSV recipient files: delimiters, header detection, RFC 4180 quoting, phone column, variables."""

from __future__ import annotations

import pytest
from tests.ingest.helpers import numbers, parse

QUOTED = (b'name;Phone;city\n"Ivan ""I""";79123456789;"Mos\ncow"\nPetr;+7912;x\nA;b\n'
          b'x"y;79123456789;z\nQ;79123456780;\xd0\x98\xd1\x80\n')


def test_quoted_fields_doubled_quotes_and_quoted_newlines(impl) -> None:
    for splits in ([], list(range(1, len(QUOTED)))):
        r = parse(impl, QUOTED, splits, fmt="csv")
        assert r["header"] == ("name", "Phone", "city") and r["delimiter"] == ";"
        assert [(x.number, x.line_no, x.variables) for x in r["recipients"]] == [
            ("79123456789", 2, {"name": 'Ivan "I"', "city": "Mos\ncow"}),
            ("79123456780", 7, {"name": "Q", "city": "Ир"}),
        ]
        assert r["errors"] == [(4, "too_short"), (5, "malformed_row"), (6, "malformed_row")]
        assert r["lines"] == 7


@pytest.mark.parametrize(("sep", "name"), [(b",", ","), (b";", ";"), (b"\t", "\t")])
def test_delimiter_detection(impl, sep: bytes, name: str) -> None:
    data = sep.join([b"msisdn", b"first name", b"amount"]) + b"\n" + \
        sep.join([b"79123456789", b"Anna, Maria", b"10"]) + b"\n"
    if sep == b",":
        data = data.replace(b"Anna, Maria", b'"Anna, Maria"')
    r = parse(impl, data, fmt="csv")
    assert r["delimiter"] == name
    assert r["recipients"][0].variables == {"first name": "Anna, Maria", "amount": "10"}


def test_given_delimiter_wins_over_detection(impl) -> None:
    r = parse(impl, b"a,b;79123456789\n", fmt="csv", delimiter=";", has_header=False)
    assert numbers(r) == ["79123456789"]
    assert r["recipients"][0].variables == {"col0": "a,b"}


def test_no_header_picks_the_numeric_column(impl) -> None:
    r = parse(impl, b"Ivan,+79123456789,VIP\nOlga,79123456780,\n", fmt="csv")
    assert r["header"] is None
    assert [(x.number, x.variables) for x in r["recipients"]] == [
        ("79123456789", {"col0": "Ivan", "col2": "VIP"}),
        ("79123456780", {"col0": "Olga", "col2": ""}),
    ]


@pytest.mark.parametrize("column", ["TEL", 2])
def test_phone_column_by_name_or_index(impl, column: str | int) -> None:
    data = b"id,Name,Tel\n1,Ann,79123456789\n"
    r = parse(impl, data, fmt="csv", phone_column=column)
    assert numbers(r) == ["79123456789"]
    assert r["recipients"][0].variables == {"id": "1", "Name": "Ann"}


def test_default_phone_column_names(impl) -> None:
    r = parse(impl, b"id;Destination;note\n7;79123456789;hello\n", fmt="csv")
    assert numbers(r) == ["79123456789"]


@pytest.mark.parametrize(("data", "column", "message"), [
    (b"a,b\n1,79123456789\n", "phone", "not in the header"),
    (b"x,79123456789\n", "phone", "no header"),
    (b"a,b\n1,79123456789\n", 5, "out of range"),
])
def test_missing_phone_column_is_a_file_error(impl, data: bytes, column: str | int,
                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(impl, data, fmt="csv", phone_column=column)


def test_row_errors(impl) -> None:
    data = (b"phone,name\n,empty\n79123456789,ok\n\"791234\"56789,bad\n79123456780\n"
            b"79123456781,a,b\n\"79123456782\",\"quoted\"\n   \n79123456783,\"open\n")
    r = parse(impl, data, fmt="csv")
    assert numbers(r) == ["79123456789", "79123456782"]
    assert r["errors"] == [(2, "empty_phone"), (4, "malformed_row"), (5, "malformed_row"),
                           (6, "malformed_row"), (9, "malformed_row")]
    assert r["lines"] == 9


def test_forced_header_and_no_header(impl) -> None:
    data = b"79123456789\n79123456780\n"
    assert numbers(parse(impl, data, fmt="csv", has_header=True)) == ["79123456780"]
    assert numbers(parse(impl, data, fmt="csv", has_header=False)) == ["79123456789",
                                                                      "79123456780"]


def test_quoted_record_longer_than_the_cap(impl) -> None:
    data = b'phone,note\n79123456789,"' + b"x\n" * 40 + b'"\n79123456780,ok\n'
    r = parse(impl, data, fmt="csv", max_line_bytes=32)
    # the record is cut at the end of its first line; the rest parses as rows of its own (the
    # lone quote on line 42 opens a field never closed: malformed up to its line end)
    assert r["errors"][0] == (2, "line_too_long") and r["errors"][-1] == (42, "malformed_row")
    assert r["lines"] == 43 and [x.line_no for x in r["recipients"]] == [43]
