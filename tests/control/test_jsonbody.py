"""A large JSON body is decoded in pieces (``control.jsonbody``) so the engine's loop keeps
running meanwhile: the value is the one ``json.loads`` gives (with the API's options,
``jsonbody.loads_whole``: no NaN, Infinity or numbers beyond a double), and what it refuses is
refused.
(How much it shortens the loop's stall is measured, not asserted:
``tests/control/measure_loop_stall.py``.)"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
import trio
from control_env import api_env
from hypothesis import given, settings
from hypothesis import strategies as st
from test_recipients_api import active_transactional

from control.validation import OFF_LOOP_BYTES
from dispatch.campaigns.service import ServiceConfig, TransactionalMessage

API = "/api/v1"

DOCUMENTS = [
    "{}", "[]", "  {}  ", '{"a":[1,2,{"b":[3]}]}', ' { "a" : [ 1 , 2 ] , "a" : 3 } ',
    '\n\t{"messages":[\r\n{"phoneNumber":"+1","variables":{"x":[1,{"y":null}]}} ]}\n',
    '[true,false,null,1e5,-0.0,12345678901234567890,1.5E-3]', "1", '"x"',
    '{"\\u00e9\\ud83d\\ude00":"\u00e9\U0001F600"}',
    '{"a":"\\ud800"}', '[[[[1]]]]', '{"a":{"b":{"c":{"d":[]}}}}', '[{}, [], "", 0]',
]
MALFORMED = [
    "[1,]", '{"a":1,}', '{"a" 1}', "[1 2]", '{"a":[}', '{"a":1} x', '{"a":1', "[1", '{"a"',
    "{", "[", '{"a":}', "[,1]", "{,}", '{"a":1,"b"}', '{"a":1 "b":2}', '{"a":"\x01"}', "[" * 100_000,
    '{1:2}', "{'a':1}", '{"a":tru}', "[01]", '"\\x"', ' ',
    # Not JSON although json.loads takes them (RFC 8259 section 6), and beyond a double.
    "NaN", "[NaN, -Infinity, Infinity]", "-Infinity", '{"a":[NaN]}', "1e400",
    '{"a":[-1E+309]}', '[0.5, 1.0e99999]',
]


def _loads(raw: bytes) -> Any:
    from control.jsonbody import loads
    return loads(raw)


def _whole(raw: bytes) -> Any:
    from control.jsonbody import loads_whole
    return loads_whole(raw)


def _outcome(fn: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", fn(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        return "error", type(exc).__name__


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
@pytest.mark.parametrize("text", DOCUMENTS + MALFORMED)
def test_same_value_or_same_refusal_as_json_loads(text: str, encoding: str) -> None:
    raw = text.encode(encoding, "surrogatepass")
    # repr: NaN != NaN, and -0.0 == 0.0 would hide a difference.
    assert repr(_outcome(_loads, raw)) == repr(_outcome(_whole, raw))


def test_undecodable_bytes_are_refused_like_json_loads() -> None:
    for raw in (b'{"a":"\xff"}', b'["\xc3"]', b'\xef\xbb'):
        assert _outcome(_loads, raw)[0] == _outcome(_whole, raw)[0] == "error"


def test_pieces_split_multibyte_characters_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    import control.jsonbody as jsonbody
    monkeypatch.setattr(jsonbody, "DECODE_PIECE_BYTES", 7)
    value = {"messages": [{"phoneNumber": "+79123450001", "variables": {"имя": "Ёлка 🎄" * i}}
                          for i in range(40)]}
    for encoding in ("utf-8", "utf-16", "utf-32"):
        raw = json.dumps(value, ensure_ascii=False).encode(encoding)
        assert _loads(raw) == value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, seed=st.integers(0, 2**32 - 1),
       ensure_ascii=st.booleans())
def test_random_documents_with_random_whitespace(value: Any, seed: int,
                                                 ensure_ascii: bool) -> None:
    rnd = random.Random(seed)
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    # Whitespace wherever JSON allows it: around the separators, after the brackets.
    spaced = json.dumps(value, ensure_ascii=ensure_ascii,
                        indent=rnd.choice([None, 0, 2, "\t"]),
                        separators=rnd.choice([(",", ":"), (" , ", " : "), ("\r\n,\t", "\n:")]))
    for doc in (text, spaced, rnd.choice(["", " ", "\n"]) + spaced + rnd.choice(["", "\r\n"])):
        raw = doc.encode("utf-8")
        assert repr(_outcome(_loads, raw)) == repr(_outcome(_whole, raw))
        cut = raw[:rnd.randrange(len(raw))] if len(raw) > 1 else raw
        assert _outcome(_loads, cut)[0] == _outcome(_whole, cut)[0]


def test_a_large_body_is_never_decoded_by_one_json_loads_call(tmp_path, monkeypatch):
    """Through the app: a transactional request over OFF_LOOP_BYTES is decoded in pieces
    (``json.loads`` of the whole body would hold the GIL, and so stall the loop, throughout),
    and the service gets exactly the messages that were sent."""
    real_loads = json.loads

    def small_only(s: Any, *args: Any, **kw: Any) -> Any:
        assert len(s) <= OFF_LOOP_BYTES, "a large body went to json.loads whole"
        return real_loads(s, *args, **kw)

    messages = [{"phoneNumber": f"+7912{i:07d}",
                 "variables": {"name": f"Ёлка \"{i}\" \\ 🎄", "n": i, "ok": i % 2 == 0,
                               "nested": {"list": [i, None, 1.5]}}}
                for i in range(3000)]
    body = json.dumps({"messages": messages}, indent=1).encode()
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
            monkeypatch.setattr(json, "loads", small_only)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], body=body,
                                      headers={"Content-Type": "application/json"})
            assert r.status_code == 202, r.text[:300]
            assert r.json["accepted"] == len(messages)
            assert seen == [TransactionalMessage(m["phoneNumber"], m["variables"])
                            for m in messages]

            bad = body.replace(b'"n": 2999', b'"n": 2999,', 1)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], body=bad,
                                      headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json == {
                "error": "Bad Request", "message": "Malformed JSON body",
                "validationErrors": {"body": "Request body is not valid JSON"}}
    trio.run(main)
