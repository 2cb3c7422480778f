"""E.164 normalisation rules, the same for one number and for files."""

from __future__ import annotations

import pytest

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
