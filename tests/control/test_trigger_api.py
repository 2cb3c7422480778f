"""The trigger action over HTTP: roles, body validation, the 400 for other modes and the 409
naming the status, and the counts it answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio
from control_env import api_env, prepare_number

from dispatch.campaigns.model import CampaignStatus
from dispatch.store.base import RecipientRow

API = "/api/v1"


def _rows(n: int) -> list[RecipientRow]:
    out = []
    for i in range(n):
        digits, h, masked = prepare_number(f"+4917{i:09d}")
        out.append(RecipientRow(digits, h, masked, None, i + 1))
    return out


def test_trigger_action(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            now = datetime.now(UTC)
            c = await env.create_bulk_campaign(mode="Trigger", startAt=now.isoformat(),
                                          endAt=(now + timedelta(hours=1)).isoformat())
            url = f"{API}/campaigns/{c['id']}/trigger"
            operator = env.keys["author"]
            r = await env.client.post(url, key=operator, json={"count": 1})
            assert r.status_code == 409 and "status New" in r.json["message"]

            # Bring it to Sending with 5 held recipients, as the engine's builder would.
            cid = (await env.service.get(c["id"])).id
            await env.service.approve(cid, "mod", auto_start=False)
            await env.service.begin_build(cid)
            await env.store.add_recipients(cid, _rows(5), now, held=True)
            await env.service.mark_built(cid)
            assert (await env.service.get(cid)).status is CampaignStatus.SENDING

            r = await env.client.get(f"{API}/campaigns/{c['id']}", key=env.keys["viewer"])
            assert "trigger" in r.json["allowedActions"] and r.json["progress"]["held"] == 5

            r = await env.client.post(url, key=env.keys["viewer"], json={"count": 1})
            assert r.status_code == 403
            r = await env.client.post(url, key=operator, json={})
            assert r.status_code == 400 and "phoneNumbers" in r.json["validationErrors"]
            r = await env.client.post(url, key=operator,
                                      json={"count": 1, "phoneNumbers": ["+491700000000"]})
            assert r.status_code == 400
            r = await env.client.post(url, key=operator, json={"phoneNumbers": ["12ab"]})
            assert r.status_code == 400
            assert r.json["validationErrors"] == {
                "phoneNumbers[0]": "Phone number must be 10-15 digits"}
            # Over the per-request limit: the documented message (001), either way.
            for body in ({"count": 200_001}, {"phoneNumbers": ["+491700000000"] * 200_001}):
                r = await env.client.post(url, key=operator, json=body)
                assert r.status_code == 400
                assert r.json["message"] == "Maximum 200000 recipients allowed per request"

            r = await env.client.post(url, key=operator, json={
                "phoneNumbers": ["+49 170 0000 0001", "004917000000002", "+4915999999999"],
                "note": "geo-fence"})
            assert r.status_code == 200, r.text
            assert r.json == {"campaignId": c["id"], "released": 2, "alreadyReleased": 0,
                              "notFound": 1}
            r = await env.client.post(url, key=operator, json={"count": 10})
            assert r.json["released"] == 3
            counters = await env.store.counters(cid)
            assert (counters.held, counters.pending) == (0, 5)

            plain = await env.create_campaign()
            r = await env.client.post(f"{API}/campaigns/{plain['id']}/trigger", key=operator,
                                      json={"count": 1})
            assert r.status_code == 400 and "only Trigger campaigns" in r.json["message"]
    trio.run(main)
