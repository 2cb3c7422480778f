"""Campaigns through the HTTP surface: create, list, KPI, detail, lifecycle actions."""

from __future__ import annotations

import uuid

import trio
from control_env import api_env

API = "/api/v1"


def test_create_then_detail_and_list(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            created = await env.create_bulk_campaign(name="spring", priority=7)
            assert created["status"] == "New" and created["author"] == "author-user"
            uuid.UUID(created["id"])

            r = await env.client.get(f"{API}/campaigns/{created['id']}", key=env.keys["viewer"])
            assert r.status_code == 200
            detail = r.json
            assert detail["sender"] == "ACME" and detail["priority"] == 7
            assert detail["progress"]["total"] == 0
            assert detail["stateHistory"][0]["phase"] == "New"
            assert detail["audit"][0]["action"] == "create"
            assert set(detail["allowedActions"]) >= {"approve", "reject"}

            r = await env.client.get(f"{API}/campaigns", key=env.keys["viewer"])
            assert r.status_code == 200
            assert r.json["total"] == 1 and r.json["items"][0]["id"] == created["id"]
            assert r.json["limit"] == 50

            r = await env.client.get(f"{API}/campaigns/kpi", key=env.keys["viewer"])
            assert r.status_code == 200
            assert r.json["total"] == 1 and r.json["active"] == 0
    trio.run(main)


def test_list_filters_sorting_and_limit(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            a = await env.create_bulk_campaign(sender="Alpha")
            b = await env.create_campaign(sender="Bravo", mode="OnTime",
                                          startAt="2030-01-01T10:00:00Z")
            viewer = env.keys["viewer"]
            r = await env.client.post(f"{API}/campaigns/{a['id']}/approve",
                                      key=env.keys["moderator"], json={})
            assert r.status_code == 200 and r.json["status"] == "Pending"

            async def ids(**params):
                r = await env.client.get(f"{API}/campaigns", key=viewer, params=params)
                assert r.status_code == 200, r.text
                return [c["id"] for c in r.json["items"]]

            assert await ids(status="Pending") == [a["id"]]
            assert set(await ids(status="New,Pending")) == {a["id"], b["id"]}
            assert await ids(mode="OnTime") == [b["id"]]
            assert await ids(search="brav") == [b["id"]]
            assert await ids(search=a["id"][:8]) == [a["id"]]
            assert await ids(sort="sender", order="asc") == [a["id"], b["id"]]
            assert await ids(sort="sender", order="desc") == [b["id"], a["id"]]
            assert await ids(limit=1, offset=1, sort="sender", order="asc") == [b["id"]]
            assert await ids(period="hour") and await ids(period="all")

            # Found by the schemathesis run: blank search, offsets past 64 bits.
            assert len(await ids(search="\x1d ")) == 2
            r = await env.client.get(f"{API}/campaigns", key=viewer,
                                     params={"offset": 10**30})
            assert r.status_code == 400 and "offset" in r.json["validationErrors"]

            r = await env.client.get(f"{API}/campaigns", key=viewer, params={"limit": 201})
            assert r.status_code == 400
            assert r.json["message"] == "The limit parameter exceeds the allowed maximum"
            r = await env.client.get(f"{API}/campaigns", key=viewer,
                                     params={"limit": "ten", "status": "Nope", "bogus": 1})
            assert r.status_code == 400
            assert set(r.json["validationErrors"]) == {"limit", "status", "bogus"}
    trio.run(main)


def test_create_validation_errors_are_field_level(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            author = env.keys["author"]
            post = env.client.post
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": 5, "text": "", "esme": "x", "priority": 99,
                                 "colour": "red", "startAt": "yesterday"})
            assert r.status_code == 400
            errs = r.json["validationErrors"]
            assert set(errs) == {"sender", "text", "priority", "colour", "startAt"}
            assert r.json["error"] == "Bad Request"

            # Domain rules come back the same way (model.validate).
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x", "mode": "Spread"})
            assert r.status_code == 400 and {"startAt", "endAt"} <= set(r.json["validationErrors"])

            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x",
                                 "window": {"start": "25:00", "end": "08:00", "tz": "x"}})
            assert r.status_code == 400
            assert set(r.json["validationErrors"]) == {"window.tz"}
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x",
                                 "window": {"start": "25:00", "end": "08:00",
                                            "timeZone": "Mars/Base"}})
            assert r.status_code == 400
            assert set(r.json["validationErrors"]) == {"window.start"}
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x",
                                 "window": {"start": "09:00", "end": "21:00",
                                            "timeZone": "Mars/Base"}})
            assert r.status_code == 400
            assert set(r.json["validationErrors"]) == {"window.timeZone"}
            # A date-time without an offset is ambiguous: refused, not read as UTC.
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x", "mode": "OnTime",
                                 "startAt": "2030-01-01T09:00:00"})
            assert r.status_code == 400
            assert r.json["validationErrors"] == {
                "startAt": "Must include a time zone offset (e.g. Z or +02:00)"}
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x", "mode": "OnTime",
                                 "startAt": "2030-01-01T09:00:00+02:00"})
            assert r.status_code == 201
            r = await env.client.get(f"{API}/campaigns/{r.json['id']}", key=author)
            assert r.json["startAt"] == "2030-01-01T07:00:00+00:00"

            # NUL characters: refused by field, body and query alike (PostgreSQL's text type
            # cannot store them; a 500 there before).
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A\x00", "text": "t\x00", "esme": "x",
                                 "name": "n\x00"})
            assert r.status_code == 400
            assert r.json["validationErrors"] == {
                f: "Must not contain NUL characters" for f in ("sender", "text", "name")}
            r = await env.client.get(f"{API}/campaigns", key=author, params={"search": "a\x00"})
            assert r.status_code == 400 and "search" in r.json["validationErrors"]
            # JSON numbers past what a store holds (a 500 before).
            r = await post(f"{API}/campaigns", key=author,
                           json={"sender": "A", "text": "t", "esme": "x", "tpsCap": 10**400,
                                 "priority": 2**64})
            assert r.status_code == 400
            assert r.json["validationErrors"]["tpsCap"] == "Must be a finite number"
            assert "priority" in r.json["validationErrors"]
            r = await env.client.get(f"{API}/campaigns", key=author, params={"offset": 2**63})
            assert r.status_code == 400 and "offset" in r.json["validationErrors"]
            # A lone surrogate escape is valid JSON but no store can encode it (a 500 before).
            r = await env.client.post(
                f"{API}/campaigns", key=author, headers={"Content-Type": "application/json"},
                body=b'{"sender": "A", "text": "t\\ud800", "esme": "x", "name": "n\\u00e9"}')
            assert r.status_code == 400
            assert r.json["validationErrors"] == {
                "text": "Must be valid Unicode text (a lone surrogate is not)"}

            for raw, ctype in ((b"{not json", "application/json"), (b"[1, 2]", "application/json"),
                               (b"", "application/json"), (b"\xc1", "application/msgpack")):
                r = await env.client.post(f"{API}/campaigns", key=author, body=raw,
                                          headers={"Content-Type": ctype})
                assert r.status_code == 400, raw
                assert "body" in r.json["validationErrors"]
            r = await env.client.post(f"{API}/campaigns", key=author, body=b"sender=A",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 415
    trio.run(main)


def test_actions_follow_the_lifecycle_and_409_names_the_status(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            c = await env.create_bulk_campaign()
            cid = c["id"]
            post = env.client.post
            mod, author = env.keys["moderator"], env.keys["author"]

            r = await post(f"{API}/campaigns/{cid}/start", key=author)
            assert r.status_code == 409
            assert r.json["error"] == "Conflict" and "New" in r.json["message"]

            r = await post(f"{API}/campaigns/{cid}/reject", key=mod, json={})
            assert r.status_code == 400 and "note" in r.json["validationErrors"]
            r = await post(f"{API}/campaigns/{cid}/approve", key=mod,
                           json={"autoStart": False, "note": "ok"})
            assert r.status_code == 200 and r.json["status"] == "Pending"
            r = await post(f"{API}/campaigns/{cid}/start", key=author)
            assert r.status_code == 200 and r.json["status"] == "Building"
            r = await post(f"{API}/campaigns/{cid}/pause", key=author)
            assert r.status_code == 409 and "Building" in r.json["message"]
            r = await post(f"{API}/campaigns/{cid}/cancel", key=author, json={"note": "stop"})
            assert r.status_code == 200 and r.json["status"] == "Cancelled"
            r = await post(f"{API}/campaigns/{cid}/archive", key=author)
            assert r.status_code == 200 and r.json["archived"] is True
            r = await env.client.get(f"{API}/campaigns", key=author, params={"archived": "true"})
            assert [x["id"] for x in r.json["items"]] == [cid]
            r = await post(f"{API}/campaigns/{cid}/restore", key=author)
            assert r.status_code == 200 and r.json["archived"] is False

            r = await env.client.get(f"{API}/campaigns/{cid}", key=author)
            actions = [a["action"] for a in r.json["audit"]]
            assert actions == ["create", "approve", "start", "cancel", "archive", "restore"]

            other = await env.create_campaign()
            r = await post(f"{API}/campaigns/{other['id']}/reject", key=mod,
                           json={"note": "bad text"})
            assert r.status_code == 200 and r.json["status"] == "Cancelled"
    trio.run(main)


def test_unknown_ids_are_404(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            viewer = env.keys["viewer"]
            for path in (f"{API}/campaigns/{uuid.uuid4()}", f"{API}/campaigns/not-a-uuid",
                         f"{API}/campaigns/{uuid.uuid4()}/recipients",
                         f"{API}/exports/nope", f"{API}/nothing-here"):
                r = await env.client.get(path, key=viewer)
                assert r.status_code == 404, path
                assert r.json["error"] in ("Not Found", "404 Not Found")
                assert r.json["message"]
            r = await env.client.post(f"{API}/campaigns/{uuid.uuid4()}/approve",
                                      key=env.keys["admin"])
            assert r.status_code == 404 and r.json["message"] == "Campaign not found"
    trio.run(main)
