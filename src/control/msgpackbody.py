"""Decode a large msgpack body in pieces, so the event loop keeps running while it is decoded.

The msgpack twin of ``control.jsonbody``. ``msgpack.unpackb`` is one C call that holds the GIL
from the first byte to the last: for a transactional request of 200 000 messages (17 MiB) the
engine's loop stands still for that whole call, even in a worker thread. :func:`loads` gives
the value :func:`unpackb` gives (and refuses what it refuses) while holding the GIL for one
small piece at a time: a streaming ``msgpack.Unpacker`` reads the body ``READ_PIECE_BYTES`` at
a time, the outer containers (the body map and its members, such as the ``messages`` array)
are walked here with its header readers, and each value below them (one message) is one
``Unpacker.unpack()`` call. Between two calls the interpreter hands the GIL to the loop when
it asks for it (``sys.getswitchinterval()``: 0.5 ms in the engine, ``dispatch.interpreter``).

Measured side by side (``tests/control/measure_loop_stall.py``: 200 000 messages with
variables, 16.9 MiB, while a loop task ticks every 1 ms; 2 cores shared with other work).
Decoded in a worker thread: ``unpackb`` 215-250 ms, stalling the loop 165-250 ms (the whole
call); this decoder 250-265 ms of the worker's time, longest stall 6-11 ms, p99 gap 3-4 ms
(when the other work was heaviest, and the floor of plain Python code stalled 45-64 ms:
70-120 ms). The whole ``POST /campaigns/{id}/messages`` (``--mode request --body
msgpack``): longest stall 267-276 ms before, 60-99 ms after (the rest is the collector's).

What the walk has to do itself, because ``unpackb`` does it inside its one call
(msgpack's ``_unpacker.pyx`` and ``unpack_template.h``):

- the limits: ``unpackb`` bounds every length by the body's own size (a map's entries by
  half of it). The Unpacker is given the same bound as its buffer size, which sets the same
  limits for the values it unpacks whole; its header readers check none, so the walk does.
- ``strict_map_key``: a key of a walked map must be ``str`` or ``bytes``, checked, as
  ``unpackb`` does, once the entry's value is read.
- the end: a body that stops inside a value is ``ValueError("Unpack failed: incomplete
  input")`` (the Unpacker's own ``OutOfData`` and ``BufferFull`` are not value errors),
  bytes after the value ``msgpack.ExtraData``.

One difference is left: msgpack's stack (1024 nested containers) counts from the value an
``unpack()`` call starts at, so a body may nest two levels deeper than ``unpackb`` allows
(1026 rather than 1024) before it is refused; neither is anywhere near what a body holds.

What a body may hold is what a JSON body can: msgpack also carries bin (``bytes``), the
timestamp extension (type -1, ``msgpack.Timestamp``), other extension types (``ExtType``),
non-finite floats and maps with bytes keys, and none of them may pass as a value (bytes where
a string is expected, or stored in a message's variables). Both decoders decode them as
``unpackb`` does, so that they can be compared value for value; :func:`refuse_non_json` is the
API's check of the decoded body, the same after either of them (``control.validation``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import msgpack

#: Containers at a depth below this are walked here; values at this depth are unpacked whole.
#: 2: the body map (0) and its members' containers (1, the ``messages`` array), so a piece is
#: one message or one phone number (as ``control.jsonbody.SPLIT_DEPTH``).
SPLIT_DEPTH = 2
#: Bytes the Unpacker reads from the body at a time (each read is one copy into its buffer).
READ_PIECE_BYTES = 1 << 20

# The first byte of a map and of an array (msgpack spec, "Formats": fixmap 0x80-0x8f,
# map 16/32 0xde/0xdf; fixarray 0x90-0x9f, array 16/32 0xdc/0xdd).
_MAP_FIRST = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])
_ARRAY_FIRST = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])
_INCOMPLETE = "Unpack failed: incomplete input"  # unpackb's own words


def unpackb(raw: bytes) -> Any:
    """The body decoded in one call: the API's options (str for msgpack str, bytes for bin,
    map keys str or bytes only, timestamps as ``msgpack.Timestamp``)."""
    return msgpack.unpackb(raw, raw=False, strict_map_key=True, timestamp=0)


def loads(raw: bytes, piece_bytes: int | None = None) -> Any:
    """``unpackb(raw)``, decoded piece by piece (see the module docstring); the Unpacker
    reads ``piece_bytes`` (default ``READ_PIECE_BYTES``) at a time."""
    size = len(raw)
    bound = max(size, 1)  # 0 would mean "no limit" (4 GiB) to the Unpacker
    read_size = min(piece_bytes or READ_PIECE_BYTES, bound)
    unpacker = msgpack.Unpacker(io.BytesIO(raw), read_size=read_size, max_buffer_size=bound,
                                raw=False, strict_map_key=True, timestamp=0)
    try:
        value = _Walk(raw, unpacker).value(0)
    except (msgpack.OutOfData, msgpack.BufferFull):
        # BufferFull: a value needs more bytes than the buffer, which may hold the whole
        # rest of the body, so it goes past the body's end: the body is cut short too.
        raise ValueError(_INCOMPLETE) from None
    end = unpacker.tell()
    if end != size:
        raise msgpack.ExtraData(value, raw[end:])
    return value


class _Walk:
    def __init__(self, raw: bytes, unpacker: msgpack.Unpacker) -> None:
        self._raw = raw
        self._unpacker = unpacker
        self._unpack = unpacker.unpack
        self._max_array_len = len(raw)  # unpackb's limits (max_buffer_size's defaults)
        self._max_map_len = len(raw) // 2

    def value(self, depth: int) -> Any:
        """The next value; a map or an array above ``SPLIT_DEPTH`` is walked here."""
        if depth < SPLIT_DEPTH:
            at = self._unpacker.tell()
            first = self._raw[at] if at < len(self._raw) else None
            if first in _MAP_FIRST:
                return self._map(depth + 1)
            if first in _ARRAY_FIRST:
                return self._array(depth + 1)
        return self._unpack()

    def _map(self, depth: int) -> dict[Any, Any]:
        length = self._unpacker.read_map_header()
        if length > self._max_map_len:
            raise ValueError(f"{length} exceeds max_map_len({self._max_map_len})")
        out: dict[Any, Any] = {}
        for _ in range(length):
            key = self._unpack()
            value = self.value(depth)
            if type(key) is not str and type(key) is not bytes:
                raise ValueError(f"{type(key).__name__} is not allowed for map key when "
                                 "strict_map_key=True")
            out[key] = value
        return out

    def _array(self, depth: int) -> list[Any]:
        length = self._unpacker.read_array_header()
        if length > self._max_array_len:
            raise ValueError(f"{length} exceeds max_array_len({self._max_array_len})")
        if depth >= SPLIT_DEPTH:  # the items are unpacked whole: no walk per item
            unpack = self._unpack
            return [unpack() for _ in range(length)]
        return [self.value(depth) for _ in range(length)]


class NonJsonValue(ValueError):
    """A decoded body holds a value a JSON body cannot; ``where`` names it (``messages[3].
    variables.x``, or ``body`` for the whole body), ``message`` says what it is."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


# What a JSON body can hold besides arrays and objects (maps with str keys).
_JSON_SCALARS = frozenset([str, int, bool, type(None)])


def refuse_non_json(value: Any) -> None:
    """Raise :class:`NonJsonValue` for the first value, in body order, that JSON cannot
    carry: bin data, a timestamp or another extension type, a NaN or infinite float, a map
    key other than a string."""
    if not _only_json(value):
        where, message = _first_non_json(value)
        raise NonJsonValue(where, message)


def _only_json(value: Any) -> bool:
    # The fast check, run on every body: no paths, type() identity tests only (a 200 000
    # message body takes ~0.15 s; it is decoded in a worker thread, see control.validation).
    scalars = _JSON_SCALARS
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            if any(type(key) is not str for key in item):
                return False
            members: Any = item.values()
        elif kind is list:
            members = item
        else:
            members = (item,)  # the body itself is a scalar
        for member in members:
            member_kind = type(member)
            if member_kind in scalars:
                continue
            if member_kind is float:
                if member - member != 0.0:  # inf - inf and nan - nan are nan
                    return False
            elif member_kind is dict or member_kind is list:
                push(member)
            else:
                return False
    return True


def _first_non_json(value: Any) -> tuple[str, str]:
    """Where the first non-JSON value is and what it is (the slow walk, with paths, run only
    when :func:`_only_json` found one). Iterative: a body may nest ~1000 containers deep."""
    # Each entry iterates over one container's (path, member) pairs; "" is the body itself.
    stack: list[Iterator[tuple[str, Any]]] = [iter([("", value)])]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        where, item = entry
        kind = type(item)
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    return _member(where, repr(key)), _key_problem(key)
            stack.append(_members(where, item))
        elif kind is list:
            stack.append(_items(where, item))
        else:
            problem = _value_problem(item)
            if problem is not None:
                return where or "body", problem
    raise AssertionError("_only_json found a non-JSON value that is not there")


def _members(where: str, item: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, member in item.items():
        yield _member(where, key), member


def _items(where: str, item: list[Any]) -> Iterator[tuple[str, Any]]:
    for i, member in enumerate(item):
        yield f"{where or 'body'}[{i}]", member


def _member(where: str, name: str) -> str:
    # The body's own members are named alone, as the fields' errors name them ("messages").
    return f"{where}.{name}" if where else name


def _key_problem(key: Any) -> str:
    what = "bin data" if type(key) is bytes else type(key).__name__
    return f"Map keys must be strings, not {what}"


def _value_problem(value: Any) -> str | None:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return None
    if kind is float:
        return None if value - value == 0.0 else "Must be a finite number"
    if kind is bytes:
        return "Binary data (msgpack bin) is not accepted; send a string"
    if kind is msgpack.Timestamp:
        return ("A msgpack timestamp (extension type -1) is not accepted; send an ISO 8601 "
                "date-time string")
    if kind is msgpack.ExtType:
        return f"A msgpack extension type ({value.code}) is not accepted"
    return f"A {kind.__name__} value is not accepted"
