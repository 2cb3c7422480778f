"""CSV edge cases found by probing: each test failed before its fix."""

from __future__ import annotations

import pytest
from tests.ingest.helpers import parse


def test_unterminated_quote_at_eof_ends_at_its_line(impl) -> None:
    """A quote opened and never closed is a malformed row that ends at the next line
    terminator (the spec of the reference), as every other malformed row does: the rows after
    it are parsed, not swallowed into one error. (It swallowed the rest of the file whenever
    that rest was shorter than max_line_bytes; longer, it was cut as line_too_long and parsing
    resumed, so the outcome depended on the file's size.)"""
    data = b'phone,name\n79123456789,"Ivan\r\n79123456780,Petr\n79123456781,ok'
    for splits in ([], list(range(1, len(data)))):
        r = parse(impl, data, splits, fmt="csv")
        assert [(x.number, x.line_no, x.variables) for x in r["recipients"]] == [
            ("79123456780", 3, {"name": "Petr"}),
            ("79123456781", 4, {"name": "ok"}),
        ]
        assert r["errors"] == [(2, "malformed_row")]
        assert r["lines"] == 4


def test_unterminated_quote_in_a_later_line_of_a_record(impl) -> None:
    """The malformed row ends at the terminator after the quote that never closes, not at the
    end of the record's first line (which is inside a closed quoted field)."""
    data = b'phone,a,b\n79123456789,"x\ny","open\n79123456780,c,d\n'
    r = parse(impl, data, fmt="csv")
    assert [(x.number, x.line_no) for x in r["recipients"]] == [("79123456780", 4)]
    assert r["errors"] == [(2, "malformed_row")]
    assert r["lines"] == 4


def test_delimiters_inside_quotes_do_not_pick_the_delimiter(impl) -> None:
    """The delimiter is detected on the first non-blank line by counting , ; and tab; a
    quoted field's text is data, not structure. (Quoted semicolons outnumbered the real commas,
    so ';' was picked and every row of a headerless file was malformed.)"""
    data = ('79123456789,"Ленина ул.; д. 5; кв. 7"\n'
            '79123456780,"Tverskaya; 1"\n').encode()
    r = parse(impl, data, fmt="csv")
    assert r["delimiter"] == ","
    assert [(x.number, x.variables) for x in r["recipients"]] == [
        ("79123456789", {"col1": "Ленина ул.; д. 5; кв. 7"}),
        ("79123456780", {"col1": "Tverskaya; 1"}),
    ]
    assert r["errors"] == []


@pytest.mark.parametrize("header", [b"Name,Phone Number", b"Name,PHONE-NUMBER",
                                    b"Name, phone number ", b"name,Destination Addr"])
def test_default_phone_column_names_written_with_spaces_or_dashes(impl, header: bytes) -> None:
    """``phone_number`` and ``destination_addr`` are default phone column names; a header
    writes them as words ("Phone Number"). (It matched only the underscore spelling, so the
    phone column fell back to column 0, the names, and every row was invalid_characters.)"""
    r = parse(impl, header + b"\nAnn,79123456789\n", fmt="csv")
    assert r["errors"] == []
    [recipient] = r["recipients"]
    assert recipient.number == "79123456789"
    assert recipient.variables == {header.split(b",")[0].decode(): "Ann"}


def test_russian_phone_column_names_are_known(impl) -> None:
    data = "ФИО;Телефон;Город\nИванов;+7 912 345-67-89;Москва\n".encode()
    r = parse(impl, data, fmt="csv")
    assert [(x.number, x.variables) for x in r["recipients"]] == [
        ("79123456789", {"ФИО": "Иванов", "Город": "Москва"})]


def test_a_header_naming_no_known_column_lets_the_first_data_row_pick_it(impl) -> None:
    """A header in a language the defaults do not list: the phone column is the first field
    of the first data record with 7+ digits, as in a file without a header (it was column 0:
    every row failed as invalid_characters and the campaign had no recipients)."""
    data = (b"Klient;Kontakt;Stadt\n"
            b"Ivan;Berlin\n"                       # malformed: it cannot decide
            b"Anna;+49 170 1234567;Hamburg\n"      # decides: column 1
            b"Olga;+49 170 7654321;Bremen\n")
    for splits in ([], list(range(1, len(data)))):
        r = parse(impl, data, splits, fmt="csv")
        assert [(x.number, x.line_no, x.variables) for x in r["recipients"]] == [
            ("491701234567", 3, {"Klient": "Anna", "Stadt": "Hamburg"}),
            ("491707654321", 4, {"Klient": "Olga", "Stadt": "Bremen"}),
        ]
        assert r["errors"] == [(2, "malformed_row")]
        assert r["header"] == ("Klient", "Kontakt", "Stadt")
        assert r["variable_names"] == ("Klient", "Stadt")


def test_a_header_only_file_with_unknown_names(impl) -> None:
    r = parse(impl, b"Klient;Kontakt\n", fmt="csv")
    assert r["recipients"] == [] and r["errors"] == [] and r["lines"] == 1
    assert r["header"] == ("Klient", "Kontakt")


def test_repeated_and_blank_header_names_lose_no_column(impl) -> None:
    """name,name: both columns are kept (the second as name_2), and blank names (Excel's
    trailing empty columns) are col<index>; before, a repeated name kept only its last value."""
    data = b"name,phone,name,,col3\nAnn,79123456789,Lee,x,y\n"
    r = parse(impl, data, fmt="csv")
    assert r["header"] == ("name", "phone", "name", "", "col3")
    assert r["variable_names"] == ("name", "name_2", "col3", "col3_2")
    assert r["recipients"][0].variables == {"name": "Ann", "name_2": "Lee", "col3": "x",
                                            "col3_2": "y"}


def test_an_excel_sep_line_names_the_delimiter_and_is_not_the_header(impl) -> None:
    """Excel writes "sep=;" as the first line of some CSV files: it names the delimiter and is
    neither the header nor a row (it became a header named "sep=", every row malformed)."""
    for data, delimiter in ((b"sep=;\r\nphone;name\r\n79123456789;Ann\r\n", ";"),
                            (b"SEP=|\nname|phone\nBob|+7 912 345-67-80\n", "|")):
        for splits in ([], list(range(1, len(data)))):
            r = parse(impl, data, splits, fmt="csv")
            assert r["delimiter"] == delimiter and r["errors"] == [] and r["lines"] == 3
            assert len(r["recipients"]) == 1 and r["recipients"][0].line_no == 3
            assert r["header"] is not None and "sep=" not in "".join(r["header"]).lower()
