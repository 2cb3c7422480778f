"""The control API during a store outage, and /metrics with a Bearer token.

* a real engine (real SQLite file, built-in simulator over loopback, API over a real socket):
  the store's fault-injection hook (``SqliteStore.fault_hook``) makes every commit fail as a
  full disk does; while the engine's ``StoreHealth`` reports it, campaign detail and list say
  which campaign the outage holds up, writes answer the documented 503 with Retry-After (not a
  500, not a hang), and once the fault clears the campaign completes and the note is gone;
* through the app alone: a write that meets a store fault itself (no engine told the API)
  is a 503 as well, and a key goes to a protected /metrics as ``Authorization: Bearer``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio
from control_env import api_env

from control.keys import KeyStore, Role
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.config import SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.observability.scrape import http_request, scrape_config
from dispatch.simulator import SimulatorConfig
from dispatch.store.sqlite import SqliteStore

API = "/api/v1"
COUNT = 3000
TPS = 1000  # the campaign lasts ~3 s, so the fault lands while it sends


def _disk_full() -> None:
    raise sqlite3.OperationalError("database or disk is full")


async def _wait_for(what: Any, limit_s: float, step_s: float = 0.02) -> None:
    with trio.fail_after(limit_s):
        while not what():
            await trio.sleep(step_s)


def _error_shape(status: int, raw: bytes) -> dict[str, Any]:
    body = json.loads(raw)
    assert status == 503, body
    assert body["error"] == "Service Unavailable"
    assert "store" in body["message"] and "Try again in" in body["message"]
    return body


async def test_store_outage_shows_on_campaigns_and_writes_answer_503(tmp_path: Path) -> None:
    config = scrape_config(tmp_path / "var")
    sim = replace(config.simulator, tps=TPS,
                  settings=SimulatorConfig(port=0, response_latency_s=0.001))
    # process=False: the store in the engine's thread, so its connection's fault_hook is ours
    config = replace(config, simulator=sim, store=replace(config.store, process=False),
                     scheduler=SchedulerConfig(control_interval_s=0.05, claim_batch=200,
                                               max_claimed_per_route=400))
    admin = KeyStore(config.control.keys_path).create_key(Role.ADMIN, label="ops")[0]
    numbers = tmp_path / "r.txt"
    numbers.write_text("".join(f"+7900{i:07d}\n" for i in range(COUNT)))
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.api_port is not None and engine.writer is not None
        assert engine.service is not None and engine.store is not None
        store = engine.store.sync
        assert isinstance(store, SqliteStore)
        port, health = engine.api_port, engine.writer.health
        headers = {"X-API-Key": admin, "Content-Type": "application/json"}

        async def call(method: str, path: str, payload: object = None,
                       ) -> tuple[int, bytes]:
            data = json.dumps(payload).encode() if payload is not None else b""
            return await http_request(port, method, path, headers, data)

        created = await engine.service.create(Campaign(
            sender="Shop", text="outage", author="t", esme="sim", source_path=str(numbers)))
        other = await engine.service.create(Campaign(sender="Idle", text="x", author="t",
                                                     esme="sim"))
        assert created.id is not None
        await engine.service.approve(created.id, "t", auto_start=True)
        cid = str(created.external_id)
        await _wait_for(lambda: engine.simulator is not None
                        and engine.simulator.stats.submits >= COUNT // 5, 30)
        status, raw = await call("GET", f"{API}/campaigns/{cid}")
        assert status == 200 and json.loads(raw)["heldUp"] is None

        store.fault_hook = _disk_full  # every commit fails from now on, as on a full disk
        try:
            await _wait_for(lambda: health.down, 10)
            status, raw = await call("GET", f"{API}/campaigns/{cid}")
            assert status == 200, raw
            detail = json.loads(raw)
            assert detail["status"] == "Sending"
            held = detail["heldUp"]
            assert held["cause"] == "store" and held["since"]
            assert "database or disk is full" in held["message"]
            status, raw = await call("GET", f"{API}/campaigns?limit=50")
            assert status == 200
            items = {item["id"]: item for item in json.loads(raw)["items"]}
            assert items[cid]["heldUp"]["cause"] == "store"
            assert items[str(other.external_id)]["heldUp"] is None

            for method, path, payload in (
                    ("POST", f"{API}/campaigns/{cid}/pause", {}),
                    ("POST", f"{API}/campaigns", {"sender": "A", "text": "b", "esme": "sim"}),
                    ("POST", f"{API}/campaigns/{other.external_id}/approve", {})):
                with trio.fail_after(10):  # answered at once, not after the outage
                    status, raw = await call(method, path, payload)
                _error_shape(status, raw)
            # A lookup POSTs its number but only reads: it is answered.
            status, raw = await call("POST", f"{API}/recipients/lookup",
                                     {"phoneNumber": "+79000000001"})
            assert status == 200, raw
            # The header, seen on the raw response (http_request returns the body only).
            with trio.fail_after(10):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(
                        (f"POST {API}/campaigns/{cid}/pause HTTP/1.1\r\nHost: x\r\n"
                         f"X-API-Key: {admin}\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n").encode())
                    response = b""
                    while chunk := await stream.receive_some(65536):
                        response += chunk
            head = response.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 503") and b"\r\nretry-after: 5" in head
            # Nothing changed: the campaign is still Sending, the other one still New.
            assert (await engine.service.get(created.id)).status is CampaignStatus.SENDING
            assert (await engine.service.get(other.external_id)).status is CampaignStatus.NEW
        finally:
            store.fault_hook = None

        with trio.fail_after(60):
            while (await engine.service.get(created.id)).status is not CampaignStatus.DONE:
                await trio.sleep(0.1)
        assert not health.down
        status, raw = await call("GET", f"{API}/campaigns/{cid}")
        assert status == 200 and json.loads(raw)["heldUp"] is None
        status, raw = await call("POST", f"{API}/campaigns/{cid}/archive", {})
        assert status == 200, raw
        engine.stop()
        await engine.wait_stopped()


def test_a_write_meeting_a_store_fault_is_503_not_500(tmp_path: Path) -> None:
    async def main() -> None:
        async with api_env(tmp_path) as env:
            sync = env.store.sync
            assert isinstance(sync, SqliteStore)
            sync.fault_hook = _disk_full
            try:
                r = await env.client.post("/api/v1/campaigns", key=env.keys["author"],
                                          json={"sender": "A", "text": "b", "esme": "s"})
            finally:
                sync.fault_hook = None
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "5"
            assert set(r.json) == {"error", "message"}
            assert (await env.client.get("/api/v1/campaigns",
                                         key=env.keys["viewer"])).status_code == 200
            created = await env.create_campaign()
            assert created["heldUp"] is None
    trio.run(main)


def test_protected_metrics_take_a_bearer_token(tmp_path: Path) -> None:
    async def main() -> None:
        async with api_env(tmp_path, protect_metrics=True) as env:
            viewer = env.keys["viewer"]
            r = await env.client.get("/metrics")
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith("Bearer")
            for scheme in ("Bearer", "bearer"):
                r = await env.client.get("/metrics",
                                         headers={"Authorization": f"{scheme} {viewer}"})
                assert r.status_code == 200, r.text
            r = await env.client.get("/metrics", key=viewer)
            assert r.status_code == 200
            r = await env.client.get("/metrics", headers={"Authorization": "Bearer dk_nope"})
            assert r.status_code == 401
            r = await env.client.get("/metrics", headers={"Authorization": f"Basic {viewer}"})
            assert r.status_code == 401
            # The API proper keeps its one header: a Bearer token there is no key.
            r = await env.client.get("/api/v1/campaigns",
                                     headers={"Authorization": f"Bearer {viewer}"})
            assert r.status_code == 401
            doc = (await env.client.get("/openapi.json")).json
            assert doc["paths"]["/metrics"]["get"]["security"] == [{"ApiKey": []},
                                                                   {"Bearer": []}]
            assert doc["components"]["securitySchemes"]["Bearer"]["scheme"] == "bearer"
            assert "503" in doc["paths"]["/api/v1/campaigns"]["post"]["responses"]
    trio.run(main)
