"""Transactional messages, recipients with filters and masking, lookup by number, errors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import trio
from control_env import api_env

from control.validation import OFF_LOOP_BYTES
from dispatch.campaigns.model import SmsResult
from dispatch.campaigns.service import OFF_LOOP_ITEMS
from dispatch.store.base import Receipt, SubmitKind, SubmitOutcome

API = "/api/v1"
NUMBERS = ["+79123450001", "+79123450002", "+79123450003"]


async def active_transactional(env):
    c = await env.create_campaign(kind="transactional")
    r = await env.client.post(f"{API}/campaigns/{c['id']}/approve", key=env.keys["moderator"])
    assert r.status_code == 200
    return c["id"]


async def sending(env, campaign_id):
    """Pending -> Building -> Sending, as the engine moves it (only a Sending campaign's
    recipients are claimed)."""
    await env.service.begin_build(campaign_id)
    await env.service.mark_built(campaign_id)


async def send_and_receipt(env, campaign_uuid):
    """Drive the store's dispatch path: all submitted, #1 delivered, #2 undelivered."""
    campaign = await env.service.get(__import__("uuid").UUID(campaign_uuid))
    await sending(env, campaign.id)
    now = datetime.now(UTC)
    claimed = await env.store.claim_for_send(campaign.id, 10, now)
    outcomes = [SubmitOutcome(c.id, SubmitKind.ACCEPTED, "smsc1", (f"a{i}",), "ESME_ROK")
                for i, c in enumerate(claimed)]
    await env.store.record_submit_results(outcomes, now)
    await env.store.record_receipts([
        Receipt("smsc1", "a0", "DELIVRD", "000", SmsResult.DELIVERED, now),
        Receipt("smsc1", "a1", "UNDELIV", "001", SmsResult.FAILED, now)], now)


def test_messages_recipients_masking_filters_and_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        async with api_env(tmp_path) as env:
            cid = await active_transactional(env)
            author, viewer, clear = env.keys["author"], env.keys["viewer"], env.keys["clear"]
            r = await env.client.post(
                f"{API}/campaigns/{cid}/messages", key=author,
                json={"messages": [{"phoneNumber": n, "variables": {"name": "x"}}
                                   for n in NUMBERS]})
            assert r.status_code == 202 and r.json["accepted"] == 3

            r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=viewer)
            assert r.status_code == 200 and r.json["total"] == 3
            first = r.json["items"][0]
            assert first["number"] is None and first["masked"].endswith("0001")
            assert "79123450001" not in r.text
            assert len(first["ctnHash"]) == 32

            r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=clear)
            assert [x["number"] for x in r.json["items"]] == [n[1:] for n in NUMBERS]

            r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=viewer,
                                     params={"limit": 2})
            assert len(r.json["items"]) == 2 and r.json["nextAfter"] is not None
            r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=viewer,
                                     params={"limit": 2, "after": r.json["nextAfter"]})
            assert len(r.json["items"]) == 1

            await send_and_receipt(env, cid)
            # The list's Progress column: each item carries its campaign's counters, the same
            # as the detail's.
            other = await env.create_campaign(name="other")
            r = await env.client.get(f"{API}/campaigns", key=viewer)
            items = {c["id"]: c for c in r.json["items"]}
            detail = (await env.client.get(f"{API}/campaigns/{cid}", key=viewer)).json
            assert items[cid]["progress"] == detail["progress"]
            assert (detail["progress"]["total"], detail["progress"]["sent"]) == (3, 3)
            assert detail["progress"]["delivered"] == 1
            assert items[other["id"]]["progress"]["total"] == 0

            async def stages(**params):
                r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=viewer,
                                         params=params)
                assert r.status_code == 200, r.text
                return [x["masked"][-4:] for x in r.json["items"]]

            assert await stages(stage="Delivered") == ["0001", "0002", "0003"]
            assert await stages(smsResult="failed") == ["0002"]
            assert await stages(stat="DELIVRD") == ["0001"]
            assert await stages(stat="delivrd,undeliv") == ["0001", "0002"]
            assert await stages(stat="DELIVRD", includeNullStat="true") == ["0001", "0003"]
            assert await stages(includeNullStat="false") == ["0001", "0002"]

            r = await env.client.get(f"{API}/campaigns/{cid}/errors", key=viewer)
            assert r.status_code == 200
            assert r.json["counts"] == {"job": 0, "messages": 1, "badge": 1}
            assert r.json["messageErrors"]["items"][0]["stat"] == "UNDELIV"

            r = await env.client.get(f"{API}/campaigns/{cid}", key=viewer)
            progress = r.json["progress"]
            assert (progress["total"], progress["sent"], progress["delivered"],
                    progress["errors"]) == (3, 3, 1, 1)

            r = await env.client.post(f"{API}/recipients/lookup", key=viewer,
                                      json={"phoneNumber": "+79123450002"})
            assert r.status_code == 200 and r.json["total"] == 1
            hit = r.json["items"][0]
            assert hit["campaignId"] == cid and hit["number"] is None
            assert hit["smsResult"] == "failed"
            r = await env.client.post(f"{API}/recipients/lookup", key=clear,
                                      json={"phoneNumber": "79123450002", "campaignId": cid})
            assert r.json["items"][0]["number"] == "79123450002"
            r = await env.client.post(f"{API}/recipients/lookup", key=viewer,
                                      json={"phoneNumber": "12"})
            assert r.status_code == 400 and "phoneNumber" in r.json["validationErrors"]
        assert "912345" not in caplog.text

    trio.run(main)


def test_message_rules_bulk_inactive_invalid_and_capacity(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            author = env.keys["author"]
            bulk = await env.create_campaign()
            one = {"messages": [{"phoneNumber": NUMBERS[0]}]}
            r = await env.client.post(f"{API}/campaigns/{bulk['id']}/messages", key=author,
                                      json=one)
            assert r.status_code == 400
            assert r.json["message"] == "Cannot add messages to bulk campaign"

            tx = await env.create_campaign(kind="transactional")
            r = await env.client.post(f"{API}/campaigns/{tx['id']}/messages", key=author,
                                      json=one)
            assert r.status_code == 400
            assert r.json["error"] == "Campaign is not active" and "New" in r.json["message"]

            cid = await active_transactional(env)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author,
                                      json={"messages": [{"phoneNumber": "abc"},
                                                         {"phone": "x"}, {"phoneNumber": 7}]})
            assert r.status_code == 400
            assert set(r.json["validationErrors"]) == {"messages[1].phone",
                                                       "messages[2].phoneNumber"}
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author,
                                      json={"messages": [{"phoneNumber": "abc"}]})
            assert r.status_code == 400
            assert r.json["validationErrors"] == {
                "messages[0].phoneNumber": "Phone number must be 10-15 digits"}
            # Texts no store can keep, anywhere in the variables: 400, not a 500.
            for variables, error in (
                    ('{"name": "x\\ud800"}', "Must be valid Unicode text (a lone surrogate is not)"),
                    ('{"a": {"deep": ["x\\u0000"]}}', "Must not contain NUL characters")):
                body = (f'{{"messages": [{{"phoneNumber": "{NUMBERS[0]}"}}, '
                        f'{{"phoneNumber": "{NUMBERS[1]}", "variables": {variables}}}]}}').encode()
                r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author,
                                          body=body,
                                          headers={"Content-Type": "application/json"})
                assert r.status_code == 400
                assert r.json["validationErrors"] == {"messages": f"Item 1: {error}"}

            many = {"messages": [{"phoneNumber": f"+7912{i:07d}"} for i in range(1001)]}
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author, json=many)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "30"
            body = r.json
            assert (body["currentPending"], body["requestedCount"], body["maxAllowed"],
                    body["availableCapacity"], body["retryAfterSeconds"]) == (0, 1001, 1000,
                                                                              1000, 30)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["moderator"], json=one)
            assert r.status_code == 403
    trio.run(main)


def test_a_large_request_is_checked_off_the_loop_with_the_same_answers(tmp_path):
    """Bodies over 256 KiB and lists over 2000 numbers are decoded, checked and prepared in a
    worker thread (OFF_LOOP_BYTES / OFF_LOOP_ITEMS): the answers are the ones a small request
    gets, errors included."""
    async def main():
        async with api_env(tmp_path, max_body_bytes=4 << 20) as env:
            author = env.keys["author"]
            cid = await active_transactional(env)
            pad = "v" * 100
            messages = [{"phoneNumber": f"+7912{i:07d}", "variables": {"note": pad}}
                        for i in range(3000)]
            body = {"messages": messages}
            assert len(json.dumps(body)) > OFF_LOOP_BYTES and len(messages) > OFF_LOOP_ITEMS
            messages[2500] = {"phoneNumber": "12ab"}
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author, json=body)
            assert r.status_code == 400
            assert r.json["validationErrors"] == {
                "messages[2500].phoneNumber": "Phone number must be 10-15 digits"}
            messages[2500] = {"phoneNumber": "+79120002500"}
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author, json=body)
            assert r.status_code == 429 and r.json["requestedCount"] == 3000
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author,
                                      body=json.dumps(body).encode()[:-1],
                                      headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json["message"] == "Malformed JSON body"
            ok = {"messages": messages[:900]}
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=author, json=ok)
            assert r.status_code == 202 and r.json["accepted"] == 900
    trio.run(main)
