"""Semantics the product documents fix, checked through the real app over a real store:
number lookup in the spellings the core itself accepts, and the daily window as the API
reports it back."""

from __future__ import annotations

import trio
from control_env import api_env

API = "/api/v1"


def test_lookup_accepts_every_spelling_the_core_accepts_for_the_number(tmp_path):
    # A transactional message (and a recipient file) takes "+7 912 345-00-01"; looking the
    # same number up must find it whatever the spelling, not refuse it with 400.
    async def main():
        async with api_env(tmp_path) as env:
            c = await env.create_campaign(kind="transactional")
            r = await env.client.post(f"{API}/campaigns/{c['id']}/approve",
                                      key=env.keys["moderator"])
            assert r.status_code == 200
            r = await env.client.post(f"{API}/campaigns/{c['id']}/messages",
                                      key=env.keys["author"],
                                      json={"messages": [{"phoneNumber": "+7 912 345-00-01"}]})
            assert r.status_code == 202, r.text
            for spelling in ("+79123450001", "79123450001", "+7 912 345-00-01",
                             "+7 (912) 345-00-01", "0079123450001", " +79123450001 "):
                r = await env.client.post(f"{API}/recipients/lookup", key=env.keys["viewer"],
                                          json={"phoneNumber": spelling})
                assert r.status_code == 200, (spelling, r.text)
                assert r.json["total"] == 1, spelling
                assert r.json["items"][0]["campaignId"] == c["id"]
            # Still the documented 400 for what is no phone number at all (doc 001).
            for bad in ("12", "abc", "+7 912", "1234567890123456"):
                r = await env.client.post(f"{API}/recipients/lookup", key=env.keys["viewer"],
                                          json={"phoneNumber": bad})
                assert r.status_code == 400, bad
                assert r.json["message"] == "Invalid phone number format"
                assert r.json["validationErrors"] == {
                    "phoneNumber": "Phone number must be 10-15 digits"}
    trio.run(main)


def test_window_times_with_a_utc_offset_are_refused(tmp_path):
    # The window is wall-clock time in window.timeZone; "09:00Z" was stored as an aware
    # time, reported as "09:00" in Europe/Berlin, and made the engine's window check raise
    # TypeError (aware vs naive comparison) once the campaign was sending.
    async def main():
        async with api_env(tmp_path) as env:
            for start, end in (("09:00Z", "21:00"), ("09:00", "21:00Z"),
                               ("09:00+01", "21:00")):
                r = await env.client.post(f"{API}/campaigns", key=env.keys["author"], json={
                    "sender": "A", "text": "t", "esme": "x",
                    "window": {"start": start, "end": end, "timeZone": "Europe/Berlin"}})
                assert r.status_code == 400, (start, end, r.text)
                field = "window.start" if start != "09:00" else "window.end"
                assert field in r.json["validationErrors"], r.json
            r = await env.client.get(f"{API}/campaigns", key=env.keys["viewer"])
            assert r.json["total"] == 0
    trio.run(main)


def test_window_is_reported_as_it_was_given(tmp_path):
    # "09:00:30" opens the window at 09:00:30; the API said "09:00".
    async def main():
        async with api_env(tmp_path) as env:
            created = await env.create_campaign(
                window={"start": "09:00:30", "end": "21:15", "timeZone": "Europe/Berlin"})
            assert created["window"] == {"start": "09:00:30", "end": "21:15",
                                         "timeZone": "Europe/Berlin"}
            r = await env.client.get(f"{API}/campaigns/{created['id']}", key=env.keys["viewer"])
            assert r.json["window"] == created["window"]
    trio.run(main)


def test_message_errors_show_clear_numbers_to_a_key_with_the_right(tmp_path):
    # The Messages sub-tab lists recipients like the Recipients tab: masked for everyone,
    # clear for a key with the clear-number right (it said null for that key too).
    from datetime import UTC, datetime
    from uuid import UUID

    from dispatch.campaigns.model import SmsResult
    from dispatch.store.base import Receipt, SubmitKind, SubmitOutcome

    async def main():
        async with api_env(tmp_path) as env:
            c = await env.create_campaign(kind="transactional")
            cid = c["id"]
            r = await env.client.post(f"{API}/campaigns/{cid}/approve",
                                      key=env.keys["moderator"])
            assert r.status_code == 200
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=env.keys["author"],
                                      json={"messages": [{"phoneNumber": "+79123450001"}]})
            assert r.status_code == 202
            campaign = await env.service.get(UUID(cid))
            await env.service.begin_build(campaign.id)  # as the engine does: to Sending
            await env.service.mark_built(campaign.id)
            now = datetime.now(UTC)
            claimed = await env.store.claim_for_send(campaign.id, 10, now)
            await env.store.record_submit_results(
                [SubmitOutcome(claimed[0].id, SubmitKind.ACCEPTED, "smsc1", ("m1",),
                               "ESME_ROK")], now)
            await env.store.record_receipts(
                [Receipt("smsc1", "m1", "UNDELIV", "001", SmsResult.FAILED, now)], now)

            r = await env.client.get(f"{API}/campaigns/{cid}/errors", key=env.keys["clear"])
            assert r.status_code == 200
            [item] = r.json["messageErrors"]["items"]
            assert item["number"] == "79123450001" and item["stat"] == "UNDELIV"
            r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=env.keys["clear"])
            assert [x["number"] for x in r.json["items"]] == ["79123450001"]

            r = await env.client.get(f"{API}/campaigns/{cid}/errors", key=env.keys["viewer"])
            [item] = r.json["messageErrors"]["items"]
            assert item["number"] is None and item["masked"].endswith("0001")
            assert "79123450001" not in r.text
    trio.run(main)
