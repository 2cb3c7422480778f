"""Health, diagnostics, metrics, the OpenAPI document (every route in it) and a real server."""

from __future__ import annotations

import json
from functools import partial

import pytest
import trio
from control_env import api_env
from prometheus_client import CollectorRegistry, Counter

from control.serve import serve_api

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def router_routes(app):
    """(uri template, method) of every responder falcon's router holds."""
    found = set()
    stack = list(app._router._roots)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.resource is None:
            continue
        for method in HTTP_METHODS:
            if hasattr(node.resource, f"on_{method.lower()}"):
                found.add((node.uri_template, method))
    return found


def test_openapi_documents_every_route(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            r = await env.client.get("/openapi.json")
            assert r.status_code == 200
            doc = r.json
            assert doc["openapi"].startswith("3.")
            documented = {(path, m.upper()) for path, ops in doc["paths"].items() for m in ops}
            routes = router_routes(env.app)
            assert len(routes) > 20
            assert routes == documented
            for path, ops in doc["paths"].items():
                for op in ops.values():
                    refs = json.dumps(op)
                    for name in [p.split('"')[0] for p in refs.split("#/components/schemas/")[1:]]:
                        assert name in doc["components"]["schemas"], (path, name)
                    assert "responses" in op and op["summary"]
            create = doc["paths"]["/api/v1/campaigns"]["post"]
            schema = create["requestBody"]["content"]["application/json"]["schema"]
            assert schema["additionalProperties"] is False
            assert {"sender", "text", "esme"} <= set(schema["required"])
    trio.run(main)


def test_health_diagnostics_and_metrics(tmp_path):
    registry = CollectorRegistry()
    sent = Counter("dispatch_messages_sent", "Messages accepted by SMSCs", registry=registry)
    sent.inc(3)
    calls = []

    async def diagnostics():
        calls.append(1)
        return {"store": {"ok": True}, "binds": {"smsc1": {"up": 2, "configured": 2}},
                "scheduler": {"active_campaigns": 0}}

    async def main():
        async with api_env(tmp_path, app_kw={"registry": registry,
                                             "diagnostics": diagnostics}) as env:
            r = await env.client.get("/health")
            assert r.status_code == 200 and r.json == {"status": "ok"}
            r = await env.client.get("/diagnostics")
            assert r.status_code == 401
            r = await env.client.get("/diagnostics", key=env.keys["viewer"])
            assert r.status_code == 200
            assert r.json["binds"]["smsc1"]["up"] == 2 and r.json["core"] == "up"
            r = await env.client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            assert "dispatch_messages_sent_total 3.0" in r.text
        assert calls == [1]
    trio.run(main)


def test_diagnostics_failure_is_503_and_protected_metrics(tmp_path):
    def broken():
        raise RuntimeError("store gone")

    async def main():
        async with api_env(tmp_path, protect_metrics=True,
                           app_kw={"diagnostics": broken}) as env:
            r = await env.client.get("/diagnostics", key=env.keys["viewer"])
            assert r.status_code == 503 and r.json["error"] == "Service Unavailable"
            assert (await env.client.get("/metrics")).status_code == 401
            assert (await env.client.get("/metrics", key=env.keys["viewer"])).status_code == 200
    trio.run(main)


async def http_request(port, request: bytes) -> bytes:
    """One HTTP/1.1 exchange on a raw socket (Connection: close), whole response back."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        chunks = []
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_real_server_socket_counters_and_streamed_413(tmp_path):
    async def main():
        async with api_env(tmp_path, max_upload_bytes=50_000) as env, \
                trio.open_nursery() as nursery:
            with trio.fail_after(20):
                port = await nursery.start(serve_api, env.app, "127.0.0.1", 0)
                assert port > 0
                c = await env.create_campaign()
                key = env.keys["viewer"]
                for path in (f"/api/v1/campaigns/{c['id']}", "/api/v1/campaigns/kpi",
                             "/api/v1/campaigns?status=New&limit=10"):
                    raw = await http_request(port, (
                        f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
                        "Connection: close\r\n\r\n").encode())
                    head, _, body = raw.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), raw[:200]
                    assert json.loads(body)

                # A chunked upload larger than the cap is cut off with 413.
                chunk = b"+79123450001\n" * 1000
                parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)]
                raw = await http_request(port, (
                    "POST /api/v1/uploads?filename=a.txt HTTP/1.1\r\nHost: x\r\n"
                    f"X-API-Key: {env.keys['author']}\r\nContent-Type: text/plain\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
                    + b"".join(parts) + b"0\r\n\r\n")
                head, _, body = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 413"), raw[:200]
                assert b"File too large. Maximum 48.8 KB" in body
            nursery.cancel_scope.cancel()
    trio.run(main)


def test_serve_api_shuts_down_gracefully_on_trigger(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            stop = trio.Event()
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(
                        partial(serve_api, env.app, "127.0.0.1", 0, shutdown_trigger=stop.wait,
                                graceful_timeout_s=1.0))
                    raw = await http_request(port, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                                   b"Connection: close\r\n\r\n")
                    assert raw.startswith(b"HTTP/1.1 200")
                    stop.set()
                # serve_api returned by itself: the port no longer accepts.
                with pytest.raises(OSError):
                    await trio.open_tcp_stream("127.0.0.1", port)
    trio.run(main)
