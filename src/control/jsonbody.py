"""Decode a large JSON body in pieces, so the event loop keeps running while it is decoded.

A large body is already decoded in a worker thread (``control.validation.OFF_LOOP_BYTES``),
but ``json.loads`` is one C call that holds the GIL from the first byte to the last: for a
transactional request of 200 000 messages the engine's loop (every SMPP bind, every API
request) stands still for that whole call, a worker thread or not. :func:`loads` gives the
same value (and refuses the same inputs) while holding the GIL only for one small piece at a
time: the text is decoded from bytes in ``DECODE_PIECE_BYTES`` pieces, the outer containers
(the body object and its members, such as the ``messages`` array) are walked here, and each
value below them (one message, one phone number) is one call of the stdlib's C scanner.
Between two calls the interpreter hands the GIL to the loop when it asks for it
(``sys.getswitchinterval()``: 0.5 ms in the engine, ``dispatch.interpreter``).

Measured side by side (``tests/control/measure_loop_stall.py``: 200 000 messages with
variables, 22.5 MiB, decoded in a worker thread while a loop task ticks every 1 ms; 2 cores
shared with other work): ``json.loads`` took 230-280 ms and stalled the loop 130-270 ms (the
whole call); orjson 190-210 ms and 110-215 ms (faster, still one call); this decoder ~600 ms
of the worker's time, longest loop stall 16-32 ms, p99 gap 5-7 ms. The price is the longer
decode in the worker thread, for large bodies only (small ones still go to ``json.loads``).
The walk follows ``json.decoder``'s own ``JSONObject``/``JSONArray``: same whitespace, same
error for the same mistake (a ``json.JSONDecodeError``, so a ``ValueError``), duplicate keys
keep the last value.

Both this decoder and the one-call :func:`loads_whole` refuse what is not JSON although
``json.loads`` takes it by default: ``NaN``, ``Infinity`` and ``-Infinity`` (RFC 8259 section 6:
"Numeric values that cannot be represented in the grammar below (such as Infinity and NaN) are
not permitted"), and a number too large for a double (``1e400``), which ``float()`` would make
an infinity that no store keeps as a number. Both are :class:`NumberRefused`, a ``ValueError``.
"""

from __future__ import annotations

import codecs
import json
import json.decoder
import re
import sys
from collections.abc import Callable
from typing import Any

#: Containers at a depth below this are walked here; values at this depth are decoded whole.
#: 2: the body object (0) and its members' containers (1, the ``messages`` array), so a piece
#: is one message or one phone number.
SPLIT_DEPTH = 2
#: Bytes decoded to text at a time (UTF-8 decoding is one C call too).
DECODE_PIECE_BYTES = 1 << 20


class NumberRefused(ValueError):
    """A ``NaN``/``Infinity`` literal, or a number beyond a double's range; the message says
    which (it is the field message of the API's 400)."""


def _refuse_constant(name: str) -> Any:
    # json.decoder calls this for exactly NaN, Infinity and -Infinity.
    raise NumberRefused(f"{name} is not valid JSON (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    # The numbers with a fraction or an exponent (an integer literal stays an int: its range
    # is the fields' business, control.validation); float(text) is what json.loads returns.
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan; a finite value gives 0.0
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise NumberRefused(f"Number {shown} is out of range (the largest is "
                            f"{sys.float_info.max!r})")
    return value


#: The options of both decoders: refuse what is not a finite JSON number.
_OPTIONS: dict[str, Any] = {"parse_constant": _refuse_constant, "parse_float": _finite_float}
_DECODER = json.JSONDecoder(**_OPTIONS)
# The stdlib decoder's own string scanner (C) and whitespace (json.decoder.WHITESPACE).
_scanstring: Callable[[str, int, bool], tuple[str, int]] = (
    json.decoder.scanstring)  # type: ignore[attr-defined]
_WS = " \t\n\r"
_WS_MATCH = re.compile(r"[ \t\n\r]*").match
Error = json.JSONDecodeError


def loads_whole(raw: bytes | bytearray) -> Any:
    """The body decoded in one ``json.loads`` call, with the API's options (no ``NaN``,
    ``Infinity`` or out-of-range numbers: :class:`NumberRefused`)."""
    return json.loads(raw, **_OPTIONS)


def loads(raw: bytes | bytearray | memoryview) -> Any:
    """:func:`loads_whole`, decoded piece by piece (see the module docstring)."""
    data = bytes(raw[:4])  # the encoding is told by the first four bytes, as json.loads does
    encoding = json.detect_encoding(data)
    text = _text(raw, encoding)
    end = _skip_ws(text, 0)
    value, end = _value(text, end, 0)
    end = _skip_ws(text, end)
    if end != len(text):
        raise Error("Extra data", text, end)
    return value


def _text(raw: bytes | bytearray | memoryview, encoding: str) -> str:
    """``raw`` decoded as json.loads decodes bytes (``surrogatepass``), a piece at a time."""
    view = memoryview(raw)
    decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
    pieces = [decoder.decode(view[i:i + DECODE_PIECE_BYTES])
              for i in range(0, len(view), DECODE_PIECE_BYTES)]
    pieces.append(decoder.decode(b"", final=True))
    return "".join(pieces)


def _skip_ws(s: str, end: int) -> int:
    if end < len(s) and s[end] in _WS:
        match = _WS_MATCH(s, end)
        assert match is not None  # "*": it matches here at least the one whitespace character
        return match.end()
    return end


def _value(s: str, idx: int, depth: int) -> tuple[Any, int]:
    """The value starting at ``idx`` (no whitespace there) and the index after it."""
    if depth < SPLIT_DEPTH:
        nextchar = s[idx:idx + 1]
        if nextchar == "{":
            return _object(s, idx + 1, depth + 1)
        if nextchar == "[":
            return _array(s, idx + 1, depth + 1)
    return _DECODER.raw_decode(s, idx)


def _object(s: str, end: int, depth: int) -> tuple[dict[str, Any], int]:
    # json.decoder.JSONObject, with the member values decoded by _value.
    pairs: dict[str, Any] = {}
    end = _skip_ws(s, end)
    nextchar = s[end:end + 1]
    if nextchar == "}":
        return pairs, end + 1
    while True:
        if nextchar != '"':
            raise Error("Expecting property name enclosed in double quotes", s, end)
        key, end = _scanstring(s, end + 1, True)
        end = _skip_ws(s, end)
        if s[end:end + 1] != ":":
            raise Error("Expecting ':' delimiter", s, end)
        end = _skip_ws(s, end + 1)
        value, end = _value(s, end, depth)
        pairs[key] = value
        end = _skip_ws(s, end)
        nextchar = s[end:end + 1]
        end += 1
        if nextchar == "}":
            return pairs, end
        if nextchar != ",":
            raise Error("Expecting ',' delimiter", s, end - 1)
        end = _skip_ws(s, end)
        nextchar = s[end:end + 1]


def _array(s: str, end: int, depth: int) -> tuple[list[Any], int]:
    # json.decoder.JSONArray, with the items decoded by _value.
    values: list[Any] = []
    end = _skip_ws(s, end)
    if s[end:end + 1] == "]":
        return values, end + 1
    append = values.append
    while True:
        value, end = _value(s, end, depth)
        append(value)
        end = _skip_ws(s, end)
        nextchar = s[end:end + 1]
        end += 1
        if nextchar == "]":
            return values, end
        if nextchar != ",":
            raise Error("Expecting ',' delimiter", s, end - 1)
        end = _skip_ws(s, end)
