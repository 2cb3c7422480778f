"""Keys, roles, rate limit, error shapes and content negotiation."""

from __future__ import annotations

import msgpack
import trio
from control_asgi import unpack
from control_env import api_env

from control.auth import PERMISSIONS, Action
from control.keys import Role

API = "/api/v1"


def test_missing_invalid_and_revoked_keys_get_401(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            r = await env.client.get(f"{API}/campaigns")
            assert r.status_code == 401
            assert r.json == {"error": "Unauthorized", "message":
                              "Missing or invalid X-API-Key header. Please provide a valid API key."}
            r = await env.client.get(f"{API}/campaigns", key="dk_0123456789abcdef_nope")
            assert r.status_code == 401 and "revoked" in r.json["message"]

            token, record = env.app.keys.create_key(Role.VIEWER)
            assert (await env.client.get(f"{API}/campaigns", key=token)).status_code == 200
            env.app.keys.revoke_key(record.key_id)
            assert (await env.client.get(f"{API}/campaigns", key=token)).status_code == 401
            # Public endpoints need no key.
            for path in ("/health", "/metrics", "/openapi.json"):
                assert (await env.client.get(path)).status_code == 200, path
    trio.run(main)


def test_roles_follow_the_permission_table(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            c = await env.create_campaign()
            cases = [
                (Action.CREATE, "POST", f"{API}/campaigns",
                 {"sender": "S", "text": "t", "esme": "e"}, 201),
                (Action.MODERATE, "POST", f"{API}/campaigns/{c['id']}/approve", {}, None),
                (Action.READ, "GET", f"{API}/campaigns/kpi", None, 200),
            ]
            for action, method, path, body, ok in cases:
                for role in Role:
                    r = await env.client.request(method, path, key=env.keys[role.value],
                                                 json=body)
                    if role in PERMISSIONS[action]:
                        assert r.status_code != 403, (role, path)
                        if ok:
                            assert r.status_code == ok, (role, path, r.text)
                    else:
                        assert r.status_code == 403, (role, path)
                        assert r.json["error"] == "Forbidden"
                        assert role.value in r.json["message"]
            assert Role.MODERATOR not in PERMISSIONS[Action.CREATE]
            assert PERMISSIONS[Action.READ] == frozenset(Role)
    trio.run(main)


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    async def main():
        async with api_env(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=2) as env:
            viewer = env.keys["viewer"]
            for _ in range(2):
                assert (await env.client.get(f"{API}/campaigns/kpi", key=viewer)).status_code == 200
            r = await env.client.get(f"{API}/campaigns/kpi", key=viewer)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "2"
            assert r.json["message"] == "Too many requests. Try again in 2s"
            # Another key has its own bucket; time refills this one.
            assert (await env.client.get(f"{API}/campaigns/kpi",
                                         key=env.keys["admin"])).status_code == 200
            env.clock[0] += 2.0
            assert (await env.client.get(f"{API}/campaigns/kpi", key=viewer)).status_code == 200
    trio.run(main)


def test_msgpack_is_negotiated_for_bodies_and_errors(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            mp = {"Accept": "application/msgpack"}
            r = await env.client.post(
                f"{API}/campaigns", key=env.keys["author"],
                body=msgpack.packb({"sender": "MP", "text": "hi", "esme": "e"}),
                headers={**mp, "Content-Type": "application/msgpack"})
            assert r.status_code == 201
            created = unpack(r)
            assert created["sender"] == "MP"
            r = await env.client.get(f"{API}/campaigns/{created['id']}", key=env.keys["viewer"],
                                     headers=mp)
            assert unpack(r)["id"] == created["id"]
            r = await env.client.get(f"{API}/campaigns", params={"limit": 500},
                                     key=env.keys["viewer"], headers=mp)
            assert r.status_code == 400
            assert unpack(r)["message"] == "The limit parameter exceeds the allowed maximum"
            r = await env.client.get(f"{API}/campaigns/kpi", key=env.keys["viewer"],
                                     headers={"Accept": "application/json"})
            assert r.headers["content-type"].startswith("application/json")
            r = await env.client.get(f"{API}/campaigns/kpi", key=env.keys["viewer"],
                                     headers={"Accept": "application/json;q=1, application/msgpack;q=0.5"})
            assert r.headers["content-type"].startswith("application/json")
    trio.run(main)


def test_method_not_allowed_keeps_the_error_shape(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            r = await env.client.delete(f"{API}/campaigns", key=env.keys["admin"])
            assert r.status_code == 405
            assert set(r.json) == {"error", "message"}
    trio.run(main)
