"""Property tests: the extension and the reference agree, and any chunking gives the same result.

Files are built from atoms that hit every rule (numbers in many formats, quotes, delimiters,
every line end, BOMs, invalid UTF-8, NUL, long runs), with random options and random splits.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.ingest.helpers import parse

from dispatch.fastpath import implementations

ATOMS = [b"79123456789", b"+7 (912) 345-67-89", b"89123456789", b"0079123456789", b"123",
         b"abc", b'"', b'""', b",", b";", b"\t", b"\n", b"\r", b"\r\n", b" ", b"\xef\xbb\xbf",
         b"\xff", b"\x00", b"\xd0\x98\xd0\xb2", b"phone", b"name", b"+", b"00", b"0123456789",
         b"1234567890123456", b"x" * 40, b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82\xac"]

files = st.one_of(
    st.lists(st.sampled_from(ATOMS), max_size=40).map(b"".join),
    st.binary(max_size=120),
)


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "fmt": draw(st.sampled_from(["txt", "csv"])),
        "max_line_bytes": draw(st.sampled_from([16, 24, 64, 65536])),
        "max_errors": draw(st.sampled_from([0, 2, 100])),
    }
    if draw(st.booleans()):
        opts.update(trunk_prefix="8", trunk_national_length=11, trunk_country_code="7")
    if opts["fmt"] == "csv":
        opts["has_header"] = draw(st.sampled_from([None, True, False]))
        opts["phone_column"] = draw(st.sampled_from([None, 0, 1, "phone"]))
        opts["delimiter"] = draw(st.sampled_from([None, ",", ";", "\t"]))
    return opts


def outcome(impl: Any, data: bytes, splits: list[int], opts: dict[str, Any]) -> Any:
    try:
        return parse(impl, data, splits, **opts)
    except ValueError as exc:  # file-level configuration error: must match too
        return ("ValueError", str(exc))


IMPLS = implementations()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=files, opts=options(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_any_chunking_gives_the_same_result(data: bytes, opts: dict[str, Any],
                                            cuts: list[int]) -> None:
    splits = sorted({c for c in cuts if c <= len(data)})
    for impl in IMPLS.values():
        whole = outcome(impl, data, [], opts)
        assert outcome(impl, data, splits, opts) == whole
        assert outcome(impl, data, list(range(1, len(data))), opts) == whole


@pytest.mark.skipif("cython" not in IMPLS, reason="extension not built")
@SETTINGS
@given(data=files, opts=options(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_extension_matches_reference(data: bytes, opts: dict[str, Any], cuts: list[int]) -> None:
    splits = sorted({c for c in cuts if c <= len(data)})
    assert outcome(IMPLS["cython"], data, splits, opts) == outcome(IMPLS["python"], data, [], opts)


@pytest.mark.skipif("cython" not in IMPLS, reason="extension not built")
@SETTINGS
@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=100))
def test_siphash_matches_reference(key: bytes, data: bytes) -> None:
    assert IMPLS["cython"].siphash128(key, data) == IMPLS["python"].siphash128(key, data)


@pytest.mark.skipif("cython" not in IMPLS, reason="extension not built")
@SETTINGS
@given(text=st.text(alphabet="0123456789+-.() \tx8", max_size=30))
def test_normalize_phone_matches_reference(text: str) -> None:
    for trunk in ((), ("8", 11, "7")):
        assert IMPLS["cython"].normalize_phone(text, *trunk) == \
            IMPLS["python"].normalize_phone(text, *trunk)
