"""A large msgpack body is decoded in pieces (``control.msgpackbody``) so the engine's loop
keeps running meanwhile: the value is the one ``msgpack.unpackb`` gives, what it refuses is
refused, and through the API a body sent as msgpack gets exactly what the same body sent as
JSON gets: the same messages stored, the same errors. (How much it shortens the loop's stall
is measured, not asserted: ``tests/control/measure_loop_stall.py``.)"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import msgpack
import pytest
import trio
from control_env import api_env
from hypothesis import given, settings
from hypothesis import strategies as st
from test_recipients_api import active_transactional

from control import msgpackbody
from control.validation import OFF_LOOP_BYTES
from dispatch.campaigns.service import ServiceConfig, TransactionalMessage

API = "/api/v1"
JSON_TYPE = {"Content-Type": "application/json"}
MSGPACK_TYPE = {"Content-Type": "application/msgpack"}


def _outcome(fn: Any, raw: bytes) -> tuple[str, str]:
    """("ok", repr of the value) or ("error", the exception's type and message)."""
    try:
        return "ok", repr(fn(raw))  # repr: NaN != NaN, and -0.0 == 0.0 would hide a difference
    except ValueError as exc:  # FormatError, StackError, ExtraData, UnicodeDecodeError too
        return "error", f"{type(exc).__name__}: {exc}"


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


DOCUMENTS = [
    {}, [], {"messages": []}, {"a": [1, 2, {"b": [3]}]}, [True, False, None, 1e5, -0.0, 2**64 - 1,
                                                          -(2**63), 1.5e-3, float("nan")],
    1, "x", b"bin", {b"key": "bytes keys pass strict_map_key"}, {"a": {"b": {"c": {"d": []}}}},
    [{}, [], "", 0], {"messages": [{"phoneNumber": "+1", "variables": {"x": [1, {"y": None}]}}]},
    {"t": msgpack.Timestamp(1, 5)}, [msgpack.ExtType(5, b"\x01")], "\u00e9\U0001F600",
    [[[[[1]]]]], {"m": [{"k": {b"z": b"y"}}]},
]
MALFORMED = [
    b"", b"\xc1", b"\x91", b"\x92\x01", b"\x81\xa1a", b"\x01\x02", b"\x81\x91\x01\x02",
    b"\x81\x01\x02", b"\x81\xa1a\x91\x81\x01\x02", b"\x81\xa1a\x91\x81\xc0\x02", b"\xa2\xff\xfe",
    b"\x81\xa1a\x91\xa2\xff\xfe", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
    b"\x81\xa1a\xdd\xff\xff\xff\xff", b"\x81\xa1a\x91\xdd\xff\xff\xff\xff", b"\x91" * 1030 + b"\x01",
    b"\x81\xa1a\xc1", b"\x92\x01\xc1", b"\xd9\x05abc", b"\x81\xa1a\x81\xa1b\x01\xc0",
]


@pytest.mark.parametrize("raw", [_pack(d) for d in DOCUMENTS] + MALFORMED)
def test_same_value_or_same_refusal_as_unpackb(raw: bytes) -> None:
    assert _outcome(msgpackbody.loads, raw) == _outcome(msgpackbody.unpackb, raw)


def test_nesting_deeper_than_msgpacks_stack_is_refused() -> None:
    # The one documented difference: the stack counts from the first value unpacked whole,
    # two levels below the body, so loads refuses from 1027 levels where unpackb refuses
    # from 1025. Deeper than both, both refuse.
    raw = b"\x91" * 1100 + b"\x01"
    with pytest.raises(msgpack.StackError):
        msgpackbody.unpackb(raw)
    with pytest.raises(msgpack.StackError):
        msgpackbody.loads(raw)


def test_pieces_split_values_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(msgpackbody, "READ_PIECE_BYTES", 7)
    value = {"messages": [{"phoneNumber": "+79123450001", "variables": {"имя": "Ёлка 🎄" * i}}
                          for i in range(40)], "x": b"\x00" * 300}
    raw = _pack(value)
    assert msgpackbody.loads(raw) == value
    for end in range(0, len(raw), 97):
        assert _outcome(msgpackbody.loads, raw[:end]) == _outcome(msgpackbody.unpackb, raw[:end])


def test_every_cut_of_a_body_is_refused_as_unpackb_refuses_it() -> None:
    raw = _pack({"messages": [{"phoneNumber": f"+7912345000{i}", "variables": {"n": i}}
                              for i in range(3)], "after": [1.5, None]})
    for end in range(len(raw)):
        assert _outcome(msgpackbody.loads, raw[:end]) == _outcome(msgpackbody.unpackb, raw[:end])
        assert _outcome(msgpackbody.loads, raw[:end])[0] == "error"


MSGPACK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=5) | st.binary(max_size=3), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=MSGPACK_VALUES, seed=st.integers(0, 2**32 - 1), piece_bytes=st.integers(1, 64))
def test_random_documents_and_random_damage(value: Any, seed: int, piece_bytes: int) -> None:
    """Read in pieces of 1-64 bytes, so values and headers straddle the Unpacker's reads."""
    rnd = random.Random(seed)
    raw = _pack(value)

    def loads(data: bytes) -> Any:
        return msgpackbody.loads(data, piece_bytes)

    assert _outcome(loads, raw) == _outcome(msgpackbody.unpackb, raw)
    # Cut, with bytes after it, one byte changed: the same value or the same refusal.
    cut = raw[:rnd.randrange(len(raw))] if len(raw) > 1 else raw
    extra = raw + bytes([rnd.randrange(256)])
    flipped = bytearray(raw)
    flipped[rnd.randrange(len(raw))] = rnd.randrange(256)
    for damaged in (cut, extra, bytes(flipped)):
        assert _outcome(loads, damaged) == _outcome(msgpackbody.unpackb, damaged)


# ------------------------------------------------------------------ through the API

def _messages(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"phoneNumber": f"+7912{i:07d}",
             "variables": {"name": f"Ёлка \"{i}\" \\ 🎄", "n": i, "ok": i % 2 == 0,
                           "nested": {"list": [i, None, 1.5]}}}
            for i in range(start, start + n)]


LARGE = 3000  # messages enough for a body over OFF_LOOP_BYTES in both encodings


def test_a_large_body_is_never_unpacked_by_one_unpackb_call(tmp_path, monkeypatch):
    """A transactional request over OFF_LOOP_BYTES is decoded in pieces (``unpackb`` of the
    whole body would hold the GIL, and so stall the loop, throughout); the service gets
    exactly the messages that were sent; a damaged or cut body is a 400, never a 500."""
    real_unpackb = msgpack.unpackb

    def small_only(packed: Any, *args: Any, **kw: Any) -> Any:
        assert len(packed) <= OFF_LOOP_BYTES, "a large body went to msgpack.unpackb whole"
        return real_unpackb(packed, *args, **kw)

    messages = _messages(LARGE)
    body = _pack({"messages": messages})
    assert len(body) > OFF_LOOP_BYTES

    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(
                max_pending_messages=10_000)) as env:
            cid = await active_transactional(env)
            seen: list[TransactionalMessage] = []
            add_messages = env.service.add_messages

            async def spy(ref: uuid.UUID, batch: list[TransactionalMessage]) -> int:
                seen.extend(batch)
                return await add_messages(ref, batch)

            env.service.add_messages = spy  # type: ignore[method-assign]
            monkeypatch.setattr(msgpack, "unpackb", small_only)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], body=body, headers=MSGPACK_TYPE)
            assert r.status_code == 202, r.text[:300]
            assert r.json["accepted"] == len(messages)
            assert seen == [TransactionalMessage(m["phoneNumber"], m["variables"])
                            for m in messages]

            middle = body.index(_pack("+79120001500"))
            for bad in (body[:-1], body[:len(body) // 2], body + b"\x00",
                        body[:middle] + b"\xc1" + body[middle + 1:]):
                r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                          key=env.keys["author"], body=bad,
                                          headers=MSGPACK_TYPE)
                assert r.status_code == 400 and r.json == {
                    "error": "Bad Request", "message": "Malformed msgpack body",
                    "validationErrors": {"body": "Request body is not valid msgpack"}
                }, r.text[:300]
            assert len(seen) == len(messages)  # nothing more reached the service
    trio.run(main)


# The same body as JSON and as msgpack: each alone (small, decoded in one call) and after
# LARGE good messages (a large body, decoded in pieces).
PARITY_BODIES: list[Any] = [
    {"messages": [{"phoneNumber": "+79123450001", "variables": {"name": "Ann"}},
                  {"phoneNumber": "8 912 345-00-02"}]},
    {"messages": [{"phoneNumber": "+79123450001", "variables": None}]},
    {"messages": [{"phoneNumber": "+79123450001", "extra": 1}]},
    {"messages": [{"phoneNumber": 79123450001}]},
    {"messages": [{"phoneNumber": "+79123450001", "variables": [1]}]},
    {"messages": [{"phoneNumber": "12"}]},
    {"messages": ["+79123450001"]},
    {"messages": [{"phoneNumber": "+79123450001", "variables": {"x": "a\x00b"}}]},
    {"messages": [{"phoneNumber": "+79123450001"}], "more": True},
    {"messages": {"phoneNumber": "+79123450001"}},
    {"message": []},
    {"messages": []},
    [],
    "messages",
]


def _with_large_prefix(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return {**body, "messages": _messages(LARGE, start=10) + body["messages"]}
    return body


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_json_and_msgpack_bodies_get_the_same_answer_and_store_the_same(tmp_path, large):
    bodies = [_with_large_prefix(b) for b in PARITY_BODIES] if large else PARITY_BODIES

    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(
                max_pending_messages=100_000)) as env:
            seen: list[list[TransactionalMessage]] = []
            add_messages = env.service.add_messages

            async def spy(ref: uuid.UUID, batch: list[TransactionalMessage]) -> int:
                seen.append(list(batch))
                return await add_messages(ref, batch)

            env.service.add_messages = spy  # type: ignore[method-assign]
            for body in bodies:
                answers = []
                for ctype, raw in ((JSON_TYPE, json.dumps(body).encode()),
                                   (MSGPACK_TYPE, _pack(body))):
                    if large and isinstance(body, dict) and isinstance(body.get("messages"),
                                                                        list):
                        assert len(raw) > OFF_LOOP_BYTES
                    cid = await active_transactional(env)
                    seen.clear()
                    r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                              key=env.keys["author"], body=raw, headers=ctype)
                    assert r.status_code in (202, 400), r.text[:300]
                    stored = await env.client.get(f"{API}/campaigns/{cid}/recipients",
                                                  key=env.keys["clear"],
                                                  params={"limit": 200})
                    rows = [{k: v for k, v in row.items() if k not in ("id", "createdAt")}
                            for row in stored.json["items"]]
                    answer = r.json
                    if r.status_code == 202:
                        answer = {**answer, "campaignId": "(this campaign)"}
                    answers.append((r.status_code, answer, seen[:], rows,
                                    stored.json["total"]))
                assert answers[0] == answers[1], body if not large else str(body)[-300:]
    trio.run(main)


def test_msgpack_keys_of_both_kinds_in_a_message_are_a_400(tmp_path):
    """A msgpack map may mix str and bytes keys (JSON cannot): the bytes one is named in a
    400. (Sorting them to name the first was a TypeError, answered 500; since a body may hold
    only what JSON can, the decoder refuses a bytes key before the fields are checked.)"""
    async def main():
        async with api_env(tmp_path) as env:
            cid = await active_transactional(env)
            body = _pack({"messages": [{"phoneNumber": "+79123450001", b"raw": 1, "zz": 2}]})
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], body=body, headers=MSGPACK_TYPE)
            assert r.status_code == 400, r.text
            assert r.json["validationErrors"] == {
                "messages[0].b'raw'": "Map keys must be strings, not bin data"}
    trio.run(main)
