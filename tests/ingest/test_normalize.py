"""E.164 normalisation rules, the same for one number and for files."""

from __future__ import annotations

import pytest
from tests.ingest.helpers import numbers, parse

RU = ("8", 11, "7")


@pytest.mark.parametrize(("raw", "trunk", "expected"), [
    ("+7 (912) 345-67-89", None, ("79123456789", None)),
    ("79123456789", None, ("79123456789", None)),
    ("0079123456789", None, ("79123456789", None)),
    ("  +44.20.7946.0958 ", None, ("442079460958", None)),
    ("89123456789", RU, ("79123456789", None)),
    ("89123456789", None, ("89123456789", None)),       # rule off: taken as is
    ("+89123456789", RU, ("89123456789", None)),         # '+' means already international
    ("", None, (None, "empty_phone")),
    ("  \t", None, (None, "empty_phone")),
    ("7912345678x", None, (None, "invalid_characters")),
    ("79+123456789", None, (None, "invalid_characters")),
    ("7912\t3456789", None, (None, "invalid_characters")),
    ("912345678", None, (None, "too_short")),
    ("+", None, (None, "too_short")),
    ("0012345", None, (None, "too_short")),
    ("1234567890123456", None, (None, "too_long")),
    ("9" * 40, None, (None, "too_long")),
    ("0123456789", None, (None, "bad_country_code")),
    ("000123456789", None, (None, "bad_country_code")),
    ("123456789012345", None, ("123456789012345", None)),
    ("+7 912 345 67 89", RU, ("79123456789", None)),
    # A spreadsheet's float rendering of the number: the fraction is not digits of it (it
    # was read as 791234567890, a different, valid number).
    ("79123456789.0", None, ("79123456789", None)),
    (" +79123456789.00 ", None, ("79123456789", None)),
    ("89123456789.0", RU, ("79123456789", None)),
    ("7912345678.5", None, ("79123456785", None)),      # not zeros: "." is a separator
    ("791.234.567.890", None, ("791234567890", None)),  # several dots: separators
    ("7 912 345 67 89.0", None, ("791234567890", None)),  # other separators: as before
    # No-break spaces (a spreadsheet's digit grouping) count as spaces, anywhere.
    ("\u00a0+7\u00a0912\u00a0345-67-89\u00a0", None, ("79123456789", None)),
    ("79 123\u00a0456 789", None, ("79123456789", None)),
    ("\u00a0", None, (None, "empty_phone")),
    ("7912345678\u00a09\u00a0x", None, (None, "invalid_characters")),
    ("7912345678\u202f9", None, (None, "invalid_characters")),  # only U+00A0
    (".0", None, (None, "too_short")),
    ("912345678.0", None, (None, "too_short")),
])
def test_normalize_phone(impl, raw: str, trunk: tuple[str, int, str] | None,
                         expected: tuple[str | None, str | None]) -> None:
    assert impl.normalize_phone(raw, *(trunk or ())) == expected


def test_bad_trunk_rule_is_refused(impl) -> None:
    with pytest.raises(ValueError):
        impl.normalize_phone("1", "8", 1, "7")
    with pytest.raises(ValueError):
        impl.RecipientParser(bytes(16), trunk_prefix="x", trunk_national_length=11,
                             trunk_country_code="7")


def test_float_renderings_in_files_are_read_without_the_fraction(impl) -> None:
    """Every path of the parsers: short txt lines (the SIMD shortcut), long ones (the byte
    loop), CSV fields; and the same answer from both implementations."""
    pad = " " * 40
    txt = (b"79123456789.0\n" + f"{pad}79123456780.00{pad}\n".encode()
           + b"7912345678.5\n+79123456781.0\r\n")
    r = parse(impl, txt, fmt="txt")
    assert numbers(r) == ["79123456789", "79123456780", "79123456785", "79123456781"]
    csv = b"phone,name\n79123456789.0,a\n\"79123456780.0\",b\n"
    r = parse(impl, csv, fmt="csv")
    assert numbers(r) == ["79123456789", "79123456780"]


def test_no_break_spaces_in_files(impl) -> None:
    """Every parser path (short txt lines: the SIMD shortcut; long ones; CSV fields) and the
    same answers and errors from both implementations."""
    nb = "\u00a0"
    lines = [f"+7{nb}912{nb}345{nb}67{nb}89", f"{nb}79123456780{nb}",
             f"{nb * 20}7912345678{nb}1{nb * 20}", nb, f"7912345678{nb}2\tx"]
    data = ("\n".join(lines).encode() + b"\n79123456783\xc2\n79123456784\n"  # C2 alone
            + f"{nb}+79123456785\n".encode())  # a '+' after a leading one (the fuzzer's find)
    r = parse(impl, data, fmt="txt")
    assert numbers(r) == ["79123456789", "79123456780", "79123456781", "79123456784",
                          "79123456785"]
    assert r["errors"] == [(4, "empty_phone"), (5, "invalid_characters"), (6, "bad_encoding")]
    csv = f"phone;name\n79{nb}123{nb}456{nb}789;a\n".encode()
    assert numbers(parse(impl, csv, fmt="csv")) == ["79123456789"]
