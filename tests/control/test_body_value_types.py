"""A request body holds JSON's values and nothing more, whichever type it is sent in.

The API's bad-input rules: a wrong value is a 400 that names where it is, never a 500 and never
stored. msgpack can carry what JSON cannot (bin data, timestamps and other extension types,
NaN and infinities, maps with bytes keys), and Python's ``json.loads`` takes ``NaN`` and
``Infinity``, which are not JSON (RFC 8259 section 6), and makes ``1e400`` an infinity. All
of them were accepted (stored into a message's variables), and a JSON integer beyond what the
store keeps was a 500. Each case is sent small (decoded in one call) and after enough good
messages for a large body (decoded in pieces, ``control.jsonbody`` and ``control.msgpackbody``).
"""

from __future__ import annotations

import json
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
from dispatch.campaigns.service import ServiceConfig

API = "/api/v1"
JSON_TYPE = {"Content-Type": "application/json"}
MSGPACK_TYPE = {"Content-Type": "application/msgpack"}
LARGE = 3000  # good messages enough for a body over OFF_LOOP_BYTES in either type

BIN = "Binary data (msgpack bin) is not accepted; send a string"
TIMESTAMP = ("A msgpack timestamp (extension type -1) is not accepted; send an ISO 8601 "
             "date-time string")
# (value, the field message for it)
NON_JSON: list[tuple[Any, str]] = [
    (b"\x00ab", BIN),
    (b"", BIN),
    (msgpack.Timestamp(1_700_000_000, 5), TIMESTAMP),
    (msgpack.ExtType(5, b"\x01"), "A msgpack extension type (5) is not accepted"),
    (float("inf"), "Must be a finite number"),
    (float("-inf"), "Must be a finite number"),
    (float("nan"), "Must be a finite number"),
]


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _good_messages(n: int) -> list[dict[str, Any]]:
    return [{"phoneNumber": f"+7912{i:07d}",
             "variables": {"name": f"Customer {i:06d}", "n": i, "note": "x" * 60}}
            for i in range(n)]


async def _post_messages(env: Any, body: bytes, ctype: dict[str, str]) -> Any:
    """POST the body to a new active transactional campaign; the answer, and the number of
    recipients the campaign has afterwards."""
    cid = await active_transactional(env)
    r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=env.keys["author"],
                              body=body, headers=ctype)
    stored = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=env.keys["clear"])
    return r, stored.json["total"]


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_msgpack_values_json_cannot_carry_in_messages_are_a_400_naming_them(tmp_path, large):
    prefix = _good_messages(LARGE) if large else []
    at = f"messages[{len(prefix)}]"

    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(
                max_pending_messages=10_000)) as env:
            for value, message in NON_JSON:
                for bad, where in (
                        ({"phoneNumber": "+79123450001", "variables": {"x": value}},
                         f"{at}.variables.x"),
                        ({"phoneNumber": "+79123450001",
                          "variables": {"a": "b", "l": [1, {"y": value}]}},
                         f"{at}.variables.l[1].y"),
                        ({"phoneNumber": value}, f"{at}.phoneNumber")):
                    body = _pack({"messages": [*prefix, bad]})
                    assert (len(body) > OFF_LOOP_BYTES) == large
                    r, stored = await _post_messages(env, body, MSGPACK_TYPE)
                    assert r.status_code == 400, (value, where, r.text[:300])
                    assert r.json == {"error": "Bad Request",
                                      "message": "Unsupported value in msgpack body",
                                      "validationErrors": {where: message}}, (value, where)
                    assert stored == 0
            # A bytes key, where JSON has only string keys.
            body = _pack({"messages": [*prefix, {"phoneNumber": "+79123450001",
                                                  "variables": {"ok": 1, b"k": "v"}}]})
            r, stored = await _post_messages(env, body, MSGPACK_TYPE)
            assert r.status_code == 400 and r.json["validationErrors"] == {
                f"{at}.variables.b'k'": "Map keys must be strings, not bin data"}, r.text[:300]
            assert stored == 0
    trio.run(main)


def test_msgpack_values_json_cannot_carry_are_a_400_on_every_endpoint(tmp_path):
    """The rule is the decoder's, so each body the API reads gets it: a field, the whole
    body, an item of a body that is an array, a key, a field of a nested object."""
    create = {"sender": "ACME", "text": "Hello", "esme": "smsc1"}

    async def main():
        async with api_env(tmp_path) as env:
            author = env.keys["author"]
            cid = (await env.create_campaign())["id"]
            cases = [
                (f"{API}/campaigns", {**create, "sender": b"ACME"}, {"sender": BIN}),
                (f"{API}/campaigns", {**create, "tpsCap": float("nan")},
                 {"tpsCap": "Must be a finite number"}),
                (f"{API}/campaigns", {**create, "startAt": msgpack.Timestamp(1_900_000_000)},
                 {"startAt": TIMESTAMP}),
                (f"{API}/campaigns", {**create, "window": {"start": "09:00", "end": b"18:00"}},
                 {"window.end": BIN}),
                (f"{API}/campaigns", {**create, b"name": "x"},
                 {"b'name'": "Map keys must be strings, not bin data"}),
                (f"{API}/campaigns", b"{}", {"body": BIN}),
                (f"{API}/campaigns", ["x", msgpack.ExtType(1, b"")],
                 {"body[1]": "A msgpack extension type (1) is not accepted"}),
                (f"{API}/recipients/lookup", {"phoneNumber": b"+79123450001"},
                 {"phoneNumber": BIN}),
                (f"{API}/campaigns/{cid}/exports", {"format": msgpack.ExtType(42, b"zz")},
                 {"format": "A msgpack extension type (42) is not accepted"}),
            ]
            for path, body, errors in cases:
                r = await env.client.post(path, key=author, body=_pack(body),
                                          headers=MSGPACK_TYPE)
                assert r.status_code == 400, (path, body, r.text[:300])
                assert r.json["message"] == "Unsupported value in msgpack body", r.json
                assert r.json["validationErrors"] == errors, (path, body)
            r = await env.client.get(f"{API}/campaigns", key=author)
            assert [c["id"] for c in r.json["items"]] == [cid]
    trio.run(main)


NON_JSON_NUMBERS = [
    ("NaN", "NaN is not valid JSON (JSON has no NaN or Infinity)"),
    ("Infinity", "Infinity is not valid JSON (JSON has no NaN or Infinity)"),
    ("-Infinity", "-Infinity is not valid JSON (JSON has no NaN or Infinity)"),
    ("1e400", "Number 1e400 is out of range (the largest is 1.7976931348623157e+308)"),
    ("-1.5E+309", "Number -1.5E+309 is out of range (the largest is 1.7976931348623157e+308)"),
]


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_json_nan_infinity_and_numbers_beyond_a_double_are_a_400(tmp_path, large):
    prefix = json.dumps(_good_messages(LARGE))[1:-1] + "," if large else ""

    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(
                max_pending_messages=10_000)) as env:
            for literal, message in NON_JSON_NUMBERS:
                for bad in (f'{{"phoneNumber":"+79123450001","variables":{{"x":{literal}}}}}',
                            f'{{"phoneNumber":"+79123450001","variables":{{"l":[1,[{literal}]]}}}}',
                            f'{{"phoneNumber":{literal}}}'):
                    body = f'{{"messages":[{prefix}{bad}]}}'.encode()
                    assert (len(body) > OFF_LOOP_BYTES) == large
                    r, stored = await _post_messages(env, body, JSON_TYPE)
                    assert r.status_code == 400, (bad, r.text[:300])
                    assert r.json == {"error": "Bad Request",
                                      "message": "Invalid number in JSON body",
                                      "validationErrors": {"body": message}}, bad
                    assert stored == 0
            # In a number field, and as the whole body.
            for body in (b'{"sender":"A","text":"t","esme":"x","tpsCap":Infinity}',
                         b'{"sender":"A","text":"t","esme":"x","tpsCap":1e400}', b"NaN"):
                r = await env.client.post(f"{API}/campaigns", key=env.keys["author"],
                                          body=body, headers=JSON_TYPE)
                assert r.status_code == 400, r.text
                assert r.json["message"] == "Invalid number in JSON body", r.json
    trio.run(main)


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_json_integers_beyond_what_the_store_keeps_in_variables_are_a_400(tmp_path, large):
    """The store packs a message's variables as msgpack: -2**63 to 2**64 - 1. A JSON integer
    beyond that went to the store and failed there (OverflowError, a 500)."""
    prefix = _good_messages(LARGE) if large else []
    expected = {"messages": f"Item {len(prefix)}: Integers must be between "
                            "-9223372036854775808 and 18446744073709551615"}

    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(
                max_pending_messages=100_000)) as env:
            for number in (2**64, -(2**63) - 1, 10**30, -(10**400)):
                for variables in ({"x": number}, {"l": [0, {"y": number}]}):
                    body = json.dumps({"messages": [
                        *prefix, {"phoneNumber": "+79123450001", "variables": variables}]})
                    r, stored = await _post_messages(env, body.encode(), JSON_TYPE)
                    assert r.status_code == 400, (number, r.text[:300])
                    assert r.json["validationErrors"] == expected, number
                    assert stored == 0
            # The ends of the range are kept.
            body = json.dumps({"messages": [*prefix, {"phoneNumber": "+79123450001",
                                                      "variables": {"max": 2**64 - 1,
                                                                    "min": -(2**63)}}]})
            r, stored = await _post_messages(env, body.encode(), JSON_TYPE)
            assert r.status_code == 202, r.text[:300]
            assert stored == len(prefix) + 1
    trio.run(main)


# ------------------------------------------------------------------ the check alone

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=25)


def _containers(value: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every container in ``value`` with its path, as the API names paths."""
    out = []
    if isinstance(value, dict):
        out.append((where, value))
        for key, member in value.items():
            out += _containers(member, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        out.append((where, value))
        for i, member in enumerate(value):
            out += _containers(member, f"{where or 'body'}[{i}]")
    return out


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, data=st.data(), piece_bytes=st.integers(1, 64))
def test_a_non_json_value_anywhere_is_found_and_named(value: Any, data: st.DataObject,
                                                      piece_bytes: int) -> None:
    """A JSON value passes as it is; one non-JSON value (or bytes key) put anywhere in it is
    refused with its path, after either decoder (one call, or in pieces of 1-64 bytes)."""
    raw = _pack(value)
    for decoded in (msgpackbody.unpackb(raw), msgpackbody.loads(raw, piece_bytes)):
        msgpackbody.refuse_non_json(decoded)

    containers = _containers(value)
    bad, message = data.draw(st.sampled_from(NON_JSON))
    as_key = data.draw(st.booleans())
    if not containers:
        value, where = bad, "body"
    else:
        at, container = data.draw(st.sampled_from(containers))
        if isinstance(container, list):
            i = data.draw(st.integers(0, len(container)))
            container.insert(i, bad)
            where = f"{at or 'body'}[{i}]"
        elif as_key:
            container[b"bad"] = 1
            where, message = (f"{at}.b'bad'" if at else "b'bad'",
                              "Map keys must be strings, not bin data")
        else:
            container["bad\u00e9"] = bad
            where = f"{at}.bad\u00e9" if at else "bad\u00e9"
    raw = _pack(value)
    for decoded in (msgpackbody.unpackb(raw), msgpackbody.loads(raw, piece_bytes)):
        with pytest.raises(msgpackbody.NonJsonValue) as caught:
            msgpackbody.refuse_non_json(decoded)
        assert (caught.value.where, caught.value.message) == (where, message)
