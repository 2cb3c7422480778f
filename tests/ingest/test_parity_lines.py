"""Parity on long, line-oriented txt files: the extension's vectorised line scan.

The extension decides most txt lines in a C loop that looks at 32 bytes at a time (SSE2) and
leaves the rest to a byte loop; the loop only runs while more than 32 bytes are buffered. The
generic parity files (test_parity.py) are short, so this one builds files of many lines in
every shape the scan distinguishes (digits in one run or split by separators, a leading or
misplaced ``+``, tabs, spaces, blank lines, invalid bytes, lines just under and over the
32-byte window and over ``max_line_bytes``, every line end) and checks the extension against
the reference, whole and in random chunks.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.ingest.helpers import parse

from dispatch.fastpath import implementations

IMPLS = implementations()
pytestmark = pytest.mark.skipif("cython" not in IMPLS, reason="extension not built")

_DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=18)
_PIECES = st.sampled_from(["", " ", "  ", "-", ".", "(", ")", "+", "\t", "x", "\xd0\x98",
                           "00", "8", "7", "0", "\x00"])
_LINE = st.one_of(
    _DIGITS,                                                   # one run: the in-place path
    st.builds(lambda d: "+" + d, _DIGITS),
    st.builds(lambda d: "8" + d, _DIGITS),                     # the trunk rule
    st.builds(lambda d: "00" + d, _DIGITS),
    st.lists(st.one_of(_DIGITS, _PIECES), max_size=8).map("".join),   # separators: gathered
    st.builds(lambda n: "1" * n, st.integers(28, 40)),         # around the 32-byte window
)
_EOL = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def txt_files(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_LINE, _EOL), min_size=3, max_size=60))
    text = "".join(line + eol for line, eol in lines)
    if draw(st.booleans()):           # no terminator after the last line
        text = text.rstrip("\r\n")
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=txt_files(), max_line=st.sampled_from([16, 24, 31, 32, 33, 65536]),
       trunk=st.booleans(), cuts=st.lists(st.integers(0, 2000), max_size=5))
def test_long_txt_files_match_reference(data: bytes, max_line: int, trunk: bool,
                                        cuts: list[int]) -> None:
    opts: dict[str, Any] = {"fmt": "txt", "max_line_bytes": max_line, "max_errors": 50}
    if trunk:
        opts.update(trunk_prefix="8", trunk_national_length=11, trunk_country_code="7")
    splits = sorted({c for c in cuts if c <= len(data)})
    expected = parse(IMPLS["python"], data, [], **opts)
    assert parse(IMPLS["cython"], data, [], **opts) == expected
    assert parse(IMPLS["cython"], data, splits, **opts) == expected


def test_a_line_ending_exactly_at_the_window_edge() -> None:
    """33 bytes left, a 31-digit line + CRLF: the C loop consumes the buffer to its end."""
    data = b"7" * 11 + b"\n" + b"1" * 31 + b"\r\n" + b"79123456789\n"
    for cut in range(len(data) + 1):
        assert (parse(IMPLS["cython"], data, [cut], fmt="txt")
                == parse(IMPLS["python"], data, [], fmt="txt"))
