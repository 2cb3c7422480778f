"""The control API over a real socket on a running engine: the whole operator flow (upload,
create, approve) by HTTP, and campaign detail and list answering while the campaign
dispatches, with progress that only moves forward and ends equal to the simulator's count."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from control.keys import KeyStore, Role
from dispatch.engine.core import Engine
from dispatch.observability.scrape import http_request, scrape_config

API = "/api/v1"


async def test_operator_flow_over_http_while_dispatching(tmp_path: Path) -> None:
    config = scrape_config(tmp_path / "var")
    admin = KeyStore(config.control.keys_path).create_key(Role.ADMIN, label="ops")[0]
    body = "".join(f"+4917{i:08d}\n" for i in range(20_000)).encode()
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        port = engine.api_port
        assert port is not None
        sim = engine.simulator
        assert sim is not None

        async def call(method: str, path: str, payload: object = None,
                       raw: bytes | None = None) -> tuple[int, dict]:
            data = raw if raw is not None else (json.dumps(payload).encode()
                                                if payload is not None else b"")
            kind = "text/plain" if raw is not None else "application/json"
            headers = {"X-API-Key": admin, "Content-Type": kind}
            status, out = await http_request(port, method, path, headers, data)
            return status, (json.loads(out) if out else {})

        status, upload = await call("POST", f"{API}/uploads?filename=list.txt", raw=body)
        assert status == 201, upload
        status, created = await call("POST", f"{API}/campaigns", {
            "sender": "Shop", "text": "Sale", "esme": "sim", "fileId": upload["fileId"]})
        assert status == 201, created
        cid = created["id"]
        status, approved = await call("POST", f"{API}/campaigns/{cid}/approve",
                                      {"autoStart": True})
        assert status == 200 and approved["status"] == "Pending"

        seen_sent: list[int] = []
        during_dispatch = 0
        with trio.fail_after(120):
            while True:
                status, detail = await call("GET", f"{API}/campaigns/{cid}")
                assert status == 200
                status, page = await call("GET", f"{API}/campaigns?sort=created&order=desc")
                assert status == 200 and page["items"][0]["id"] == cid
                sent = detail["progress"]["sent"]
                seen_sent.append(sent)
                if detail["status"] == "Sending" and 0 < sent < 20_000:
                    during_dispatch += 1
                if detail["status"] == "Done":
                    break
                await trio.sleep(0.02)
        assert seen_sent == sorted(seen_sent)  # progress never goes back
        assert during_dispatch >= 1  # answered while messages were going out
        assert detail["progress"]["total"] == detail["progress"]["sent"] == sim.stats.submits
        engine.stop()
        await engine.wait_stopped()
