"""A bulk campaign without a recipient file cannot be approved or started: it would pass
moderation and then fail at build time ("the campaign has no recipient file"). The refusal is
a 400 in the documented error shape (doc 001: bad input is 400; its table has no 409) that says
a file must be uploaded first; a wrong status is still the 409 that names it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import trio
from control_env import api_env

from dispatch.campaigns.lifecycle import AuditEntry, Event, StateChange, apply
from dispatch.campaigns.model import CampaignStatus

API = "/api/v1"


def _assert_needs_file(r) -> None:
    assert r.status_code == 400, r.text
    body = r.json
    assert body["error"] == "Bad Request"
    assert body["message"].startswith("A recipient file must be uploaded first")
    assert set(body["validationErrors"]) == {"fileId"}
    assert "uploaded first" in body["validationErrors"]["fileId"]


def test_approving_a_bulk_campaign_without_a_file_is_refused(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            mod, viewer = env.keys["moderator"], env.keys["viewer"]
            c = await env.create_campaign()  # bulk (the default), no fileId
            assert c["kind"] == "bulk" and c["hasRecipientFile"] is False
            path = f"{API}/campaigns/{c['id']}"

            for body in ({}, {"autoStart": True}, {"autoStart": False, "note": "ok"}):
                _assert_needs_file(await env.client.post(f"{path}/approve", key=mod, json=body))

            r = await env.client.get(path, key=viewer)
            assert r.json["status"] == "New"
            assert [a["action"] for a in r.json["audit"]] == ["create"]
            # The UI shows no Approve/Start button for it; Reject is still offered.
            assert "approve" not in r.json["allowedActions"]
            assert "start" not in r.json["allowedActions"]
            assert "reject" in r.json["allowedActions"]

            # msgpack callers get the same shape.
            r = await env.client.post(f"{path}/approve", key=mod, json={},
                                      headers={"Accept": "application/msgpack"})
            assert r.status_code == 400

            # Rejected: the status comes first (409 naming it), not the missing file.
            r = await env.client.post(f"{path}/reject", key=mod, json={"note": "no list"})
            assert r.status_code == 200 and r.json["status"] == "Cancelled"
            r = await env.client.post(f"{path}/approve", key=mod, json={})
            assert r.status_code == 409 and "Cancelled" in r.json["message"]
    trio.run(main)


def test_bulk_with_a_file_and_transactional_without_one_are_approved(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            mod = env.keys["moderator"]
            bulk = await env.create_campaign(fileId=await env.upload_recipients(),
                                             autoStart=True)
            r = await env.client.post(f"{API}/campaigns/{bulk['id']}/approve", key=mod, json={})
            assert r.status_code == 200 and r.json["status"] == "Pending", r.text
            assert r.json["autoStart"] is True

            tx = await env.create_campaign(kind="transactional")
            r = await env.client.post(f"{API}/campaigns/{tx['id']}/approve", key=mod,
                                      json={"autoStart": True})
            assert r.status_code == 200 and r.json["status"] == "Pending", r.text
    trio.run(main)


def test_starting_a_pending_bulk_campaign_without_a_file_is_refused(tmp_path):
    """One approved before the check existed (an older store) cannot be started by hand."""
    async def main():
        async with api_env(tmp_path) as env:
            c = await env.create_campaign()
            campaign = await env.service.get(uuid.UUID(c["id"]))
            assert campaign.id is not None
            now = datetime.now(UTC)
            t = apply(Event.APPROVE, campaign.status, campaign.archived, campaign.paused_by)
            await env.store.apply_transition(
                campaign.id, t, StateChange(t.to_status, "approve", "approved", now,
                                            t.from_status),
                AuditEntry("mod", "approve", "", now), False)
            assert (await env.service.get(campaign.id)).status is CampaignStatus.PENDING

            r = await env.client.post(f"{API}/campaigns/{c['id']}/start",
                                      key=env.keys["author"], json={})
            _assert_needs_file(r)
            assert (await env.service.get(campaign.id)).status is CampaignStatus.PENDING
            r = await env.client.post(f"{API}/campaigns/{c['id']}/cancel",
                                      key=env.keys["author"], json={})
            assert r.status_code == 200 and r.json["status"] == "Cancelled"
    trio.run(main)
