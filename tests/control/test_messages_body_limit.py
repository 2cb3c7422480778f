"""The body of ``POST /campaigns/{id}/messages`` may be as large as the documented 200 000
messages with variables take (``max_messages_body_bytes``), beyond the 16 MiB every other
body is capped at (``max_body_bytes``, unchanged); past its own cap it is a 413 in the
documented error shape."""

from __future__ import annotations

import json

import pytest
import trio
from control_env import api_env
from test_recipients_api import active_transactional

from control.config import ControlConfig
from dispatch.campaigns.service import ServiceConfig

API = "/api/v1"
MAX_MESSAGES_PER_REQUEST = 200_000  # doc 001: "Maximum 200000 recipients allowed per request"
JSON_HEADERS = {"Content-Type": "application/json"}


def _messages(n: int) -> list[dict[str, object]]:
    return [{"phoneNumber": f"+7912{i:07d}",
             "variables": {"name": f"Customer {i:06d}", "code": f"{(i * 7919) % 10**6:06d}",
                           "amount": f"{i % 5000}.{i % 100:02d} EUR"}}
            for i in range(n)]


@pytest.mark.slow
def test_200000_messages_with_variables_over_16_mib_are_accepted(tmp_path):
    assert ServiceConfig().max_messages_per_request == MAX_MESSAGES_PER_REQUEST
    messages = _messages(MAX_MESSAGES_PER_REQUEST)
    body = json.dumps({"messages": messages}).encode()
    default = ControlConfig()
    assert len(body) > default.max_body_bytes == 16 * 1024 * 1024

    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(
                max_pending_messages=MAX_MESSAGES_PER_REQUEST)) as env:
            cid = await active_transactional(env)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], body=body,
                                      headers=JSON_HEADERS, chunk_size=1 << 20)
            assert r.status_code == 202, r.text[:300]
            assert r.json["accepted"] == MAX_MESSAGES_PER_REQUEST
            r = await env.client.get(f"{API}/campaigns/{cid}", key=env.keys["viewer"])
            assert r.json["progress"]["total"] == MAX_MESSAGES_PER_REQUEST
            # What was stored is what was sent: the last recipient's number and variables.
            campaign = await env.service.get(__import__("uuid").UUID(cid))
            page = await env.service.recipients(campaign.id, after_id=0, limit=200,
                                                with_numbers=True)
            assert page.total == MAX_MESSAGES_PER_REQUEST
            first = page.items[0]
            assert first.number == "79120000000"
    trio.run(main)
    assert len(body) <= default.max_messages_body_bytes


def test_past_its_own_cap_the_messages_body_is_413_in_the_documented_shape(tmp_path):
    async def main():
        async with api_env(tmp_path, max_messages_body_bytes=256 * 1024) as env:
            cid = await active_transactional(env)
            body = json.dumps({"messages": _messages(3000)}).encode()
            assert len(body) > 256 * 1024
            for declared in (True, False):  # refused from Content-Length, or while streamed
                r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                          key=env.keys["author"], body=body,
                                          headers=JSON_HEADERS, content_length=declared)
                assert r.status_code == 413, r.text[:300]
                assert r.json == {
                    "error": "Payload Too Large",
                    "message": "Request body too large. Maximum 256 KB (262144 bytes); "
                               "send the messages in smaller requests"}
            small = json.dumps({"messages": _messages(900)}).encode()
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], body=small, headers=JSON_HEADERS)
            assert r.status_code == 202 and r.json["accepted"] == 900
    trio.run(main)


def test_other_bodies_keep_max_body_bytes(tmp_path):
    """Only the messages endpoint follows the message limit: a 100 KB body is fine there and
    a 413 on campaign create, trigger and lookup when ``max_body_bytes`` is 64 KB."""
    async def main():
        async with api_env(tmp_path, max_body_bytes=64 * 1024) as env:
            cid = await active_transactional(env)
            author = env.keys["author"]
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author,
                                      json={"messages": _messages(900)})
            assert len(json.dumps({"messages": _messages(900)})) > 64 * 1024
            assert r.status_code == 202, r.text[:300]
            padding = "x" * (100 * 1024)
            for path, body in (
                    (f"{API}/campaigns", {"sender": "A", "text": "t", "esme": "e",
                                          "name": padding}),
                    (f"{API}/campaigns/{cid}/trigger", {"count": 1, "note": padding}),
                    (f"{API}/recipients/lookup", {"phoneNumber": padding})):
                r = await env.client.post(path, key=env.keys["admin"], json=body)
                assert r.status_code == 413, (path, r.text[:300])
                assert r.json["error"] == "Payload Too Large"
                assert r.json["message"] == "Request body too large. Maximum 64 KB (65536 bytes)"
    trio.run(main)


def test_the_document_lists_the_413_of_every_body(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            doc = (await env.client.get("/openapi.json")).json
            for path, op in ((f"{API}/campaigns/{{campaign_id}}/messages", "post"),
                             (f"{API}/campaigns", "post"),
                             (f"{API}/campaigns/{{campaign_id}}/approve", "post")):
                responses = doc["paths"][path][op]["responses"]
                assert {"413", "415"} <= set(responses), path
    trio.run(main)
