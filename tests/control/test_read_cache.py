"""The read cache of campaign views (``control.readcache``) through the real app and store:
counters may be ``read_cache_s`` old, statuses never, and nothing is cached while the store
is faulty."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import trio
from control_env import api_env
from prometheus_client import CollectorRegistry

from control.readcache import ReadCache
from dispatch.store.base import RecipientRow
from dispatch.store.faults import StoreHealth

API = "/api/v1"


def _rows(start: int, count: int) -> list[RecipientRow]:
    return [RecipientRow(f"4917{start + i:08d}", (start + i).to_bytes(16, "big"), "4917****",
                         None, start + i) for i in range(count)]


async def _add(env, external_id: str, start: int, count: int) -> None:
    campaign = await env.service.get(uuid.UUID(external_id))
    await env.store.add_recipients(campaign.id, _rows(start, count), datetime.now(UTC))


def test_counters_are_at_most_read_cache_s_old(tmp_path):
    async def main():
        async with api_env(tmp_path, read_cache_s=0.5) as env:
            created = await env.create_campaign()
            path = f"{API}/campaigns/{created['id']}"
            viewer = env.keys["viewer"]
            first = await env.client.get(path, key=viewer)
            assert first.json["progress"]["total"] == 0
            await env.client.get(f"{API}/campaigns", key=viewer)
            await env.client.get(f"{API}/campaigns/kpi", key=viewer)
            assert env.app.read_cache.hits == 0

            await _add(env, created["id"], 0, 3)  # counters change, no status change
            again = await env.client.get(path, key=viewer)
            assert again.json["progress"]["total"] == 0  # the cached body
            await env.client.get(f"{API}/campaigns", key=viewer)
            await env.client.get(f"{API}/campaigns/kpi", key=viewer)
            assert env.app.read_cache.hits == 3

            env.clock[0] += 0.51  # past read_cache_s
            fresh = await env.client.get(path, key=viewer)
            assert fresh.json["progress"]["total"] == 3
            assert env.app.read_cache.hits == 3
    trio.run(main)


def test_a_transition_is_seen_at_once(tmp_path):
    async def main():
        async with api_env(tmp_path, read_cache_s=30) as env:
            created = await env.create_bulk_campaign()
            path = f"{API}/campaigns/{created['id']}"
            viewer = env.keys["viewer"]
            assert (await env.client.get(path, key=viewer)).json["status"] == "New"
            listed = await env.client.get(f"{API}/campaigns", key=viewer)
            assert listed.json["items"][0]["status"] == "New"

            r = await env.client.post(f"{path}/approve", key=env.keys["moderator"], json={})
            assert r.status_code == 200, r.text
            assert (await env.client.get(path, key=viewer)).json["status"] == "Pending"
            listed = await env.client.get(f"{API}/campaigns", key=viewer)
            assert listed.json["items"][0]["status"] == "Pending"

            # A transition made by the engine (not through the API) ends the entries too.
            await env.service.start(uuid.UUID(created["id"]), "scheduler")
            assert (await env.client.get(path, key=viewer)).json["status"] == "Building"

            # A new campaign shows up in the list at once.
            await env.create_campaign(name="second")
            listed = await env.client.get(f"{API}/campaigns", key=viewer)
            assert listed.json["total"] == 2
    trio.run(main)


def test_entries_are_per_query_and_media_type(tmp_path):
    async def main():
        async with api_env(tmp_path, read_cache_s=30) as env:
            for i in range(3):
                await env.create_campaign(name=f"c{i}")
            viewer = env.keys["viewer"]
            one = await env.client.get(f"{API}/campaigns", key=viewer, params={"limit": 1})
            two = await env.client.get(f"{API}/campaigns", key=viewer, params={"limit": 2})
            assert len(one.json["items"]) == 1 and len(two.json["items"]) == 2
            packed = await env.client.get(f"{API}/campaigns", key=viewer, params={"limit": 1},
                                          headers={"Accept": "application/msgpack"})
            assert packed.headers["content-type"] == "application/msgpack"
            bad = await env.client.get(f"{API}/campaigns", key=viewer, params={"limit": 500})
            assert bad.status_code == 400  # errors are not cached, the check still runs
            bad = await env.client.get(f"{API}/campaigns", key=viewer, params={"limit": 500})
            assert bad.status_code == 400
    trio.run(main)


def test_hits_and_misses_are_exported(tmp_path):
    registry = CollectorRegistry()

    async def main():
        async with api_env(tmp_path, read_cache_s=30, app_kw={"registry": registry}) as env:
            created = await env.create_campaign()
            for _ in range(3):
                r = await env.client.get(f"{API}/campaigns/{created['id']}",
                                         key=env.keys["viewer"])
                assert r.status_code == 200
            r = await env.client.get("/metrics")
            assert r.status_code == 200
            text = r.text
            assert 'dispatch_api_read_cache_lookups_total{result="hit"} 2.0' in text
            assert 'dispatch_api_read_cache_lookups_total{result="miss"} 1.0' in text
    trio.run(main)


def test_zero_turns_it_off(tmp_path):
    async def main():
        async with api_env(tmp_path, read_cache_s=0) as env:
            created = await env.create_campaign()
            path = f"{API}/campaigns/{created['id']}"
            assert (await env.client.get(path, key=env.keys["viewer"])).json["progress"][
                "total"] == 0
            await _add(env, created["id"], 0, 2)
            assert (await env.client.get(path, key=env.keys["viewer"])).json["progress"][
                "total"] == 2
            assert env.app.read_cache.hits == 0
    trio.run(main)


def test_nothing_is_cached_while_the_store_is_faulty(tmp_path):
    health = StoreHealth(lambda: datetime.now(UTC))

    async def main():
        async with api_env(tmp_path, read_cache_s=30,
                           app_kw={"store_health": health}) as env:
            created = await env.create_campaign()
            path = f"{API}/campaigns/{created['id']}"
            viewer = env.keys["viewer"]
            assert (await env.client.get(path, key=viewer)).json["heldUp"] is None
            campaign = await env.service.get(uuid.UUID(created["id"]))
            health.fault("writer", OSError("disk full"), [campaign.id])
            held = (await env.client.get(path, key=viewer)).json
            assert held["heldUp"] is not None and held["heldUp"]["cause"] == "store"
            await _add(env, created["id"], 0, 2)
            held = (await env.client.get(path, key=viewer)).json
            assert held["progress"]["total"] == 2  # read again, not from the cache
    trio.run(main)


def test_one_refresh_at_a_time_serves_the_expired_body_meanwhile():
    """While one request re-reads an expired entry, the others get the expired body (the
    same generation only), instead of each reading the store again."""
    now = [0.0]
    generation = [1]
    cache = ReadCache(0.5, lambda: generation[0], clock=lambda: now[0])
    key = ("detail", "x", False)
    assert cache.get(key) is None  # first request: a miss, it reads
    cache.put(key, 1, (b"v1", "application/json"))
    cache.refreshed(key)
    assert cache.get(key) == (b"v1", "application/json")

    now[0] = 0.6  # expired
    assert cache.get(key) is None  # this request refreshes...
    assert cache.get(key) == (b"v1", "application/json")  # ...the others get v1 meanwhile
    cache.put(key, 1, (b"v2", "application/json"))
    cache.refreshed(key)
    assert cache.get(key) == (b"v2", "application/json")

    now[0] = 1.2
    assert cache.get(key) is None
    generation[0] = 2  # a transition while refreshing: the old body is not served
    assert cache.get(key) is None
    cache.put(key, 1, (b"v3", "application/json"))  # read before the transition: dropped
    cache.refreshed(key)
    assert cache.get(key) is None
