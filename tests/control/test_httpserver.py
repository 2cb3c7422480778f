"""The built-in HTTP/1.1 server (``control.httpserver``) over real sockets, with the real app:
keep-alive and pipelining, Expect: 100-continue, streamed responses, HEAD, bad
requests, an oversized head, an answer before the body was read, and graceful shutdown with a
request in progress. The same app under hypercorn is covered by the other real-socket tests
(``server="hypercorn"`` below runs the keep-alive case on both)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, ClassVar

import h11
import pytest
import trio
from control_env import api_env

from control.serve import serve_api

TIMEOUT_S = 20.0


class RawClient:
    """Bytes in, bytes out on one connection; responses split with h11 rules kept simple
    (Content-Length or chunked)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    async def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            await self._fill()
        out, self.buf = self.buf.split(marker, 1)
        return out

    async def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        head = (await self._until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(await self._until(b"\r\n"), 16)
                chunk = await self._exactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
            return status, headers, body
        return status, headers, await self._exactly(int(headers.get("content-length", "0")))

    async def closed(self) -> bool:
        try:
            while True:
                await self._fill()
        except (EOFError, trio.BrokenResourceError):
            return True


async def _serve(env: Any, nursery: trio.Nursery, **kw: Any) -> int:
    port: int = await nursery.start(partial(serve_api, env.app, "127.0.0.1", 0, **kw))
    return port


def _get(path: str, key: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n{extra}\r\n".encode()


@pytest.mark.parametrize("server", ["builtin", "hypercorn"])
def test_keep_alive_and_pipelined_requests_on_one_connection(tmp_path, server):
    async def main() -> None:
        async with api_env(tmp_path) as env, trio.open_nursery() as nursery:
            with trio.fail_after(TIMEOUT_S):
                port = await _serve(env, nursery, server=server)
                c = await env.create_campaign()
                key = env.keys["viewer"]
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                client = RawClient(stream)
                for _ in range(3):  # one after the other on the same connection
                    await stream.send_all(_get(f"/api/v1/campaigns/{c['id']}", key))
                    status, headers, body = await client.response()
                    assert status == 200 and json.loads(body)["id"] == c["id"]
                    assert headers["content-type"].startswith("application/json")
                # pipelined: three requests in one write, answered in order
                await stream.send_all(_get("/health", key) + _get("/nope", key)
                                      + _get("/api/v1/campaigns/kpi", key))
                assert [(await client.response())[0] for _ in range(3)] == [200, 404, 200]
                await stream.aclose()
            nursery.cancel_scope.cancel()
    trio.run(main)


def test_expect_continue_upload_head_and_streamed_export(tmp_path):
    async def main() -> None:
        async with api_env(tmp_path) as env, trio.open_nursery() as nursery:
            with trio.fail_after(TIMEOUT_S):
                port = await _serve(env, nursery)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                client = RawClient(stream)
                body = b"".join(b"+4917%08d\n" % i for i in range(2000))
                await stream.send_all(
                    (f"POST /api/v1/uploads?filename=a.txt HTTP/1.1\r\nHost: x\r\n"
                     f"X-API-Key: {env.keys['author']}\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode())
                status, _, _ = await client.response()
                assert status == 100  # sent only once the app asked for the body
                await stream.send_all(body)
                status, _, raw = await client.response()
                assert status == 201, raw
                upload = json.loads(raw)
                assert upload["bytes"] == len(body)

                await stream.send_all(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, _ = await client.response(head_only=True)
                assert status == 405 and int(headers["content-length"]) > 0  # GET only
                # No body after a HEAD answer: the next response on the connection is whole.
                await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, raw = await client.response()
                assert status == 200 and json.loads(raw) == {"status": "ok"}

                created = await env.create_campaign(fileId=upload["fileId"])
                assert created["hasRecipientFile"]
                await env.service.approve(__import__("uuid").UUID(created["id"]), "t")
                r = await env.client.post(f"/api/v1/campaigns/{created['id']}/exports",
                                          key=env.keys["admin"], json={"format": "csv"})
                assert r.status_code == 202, r.text
                export = r.json
                while export["status"] not in ("Done", "Failed"):
                    await trio.sleep(0.02)
                    export = (await env.client.get(f"/api/v1/exports/{export['id']}",
                                                   key=env.keys["admin"])).json
                assert export["status"] == "Done", export
                await stream.send_all(_get(f"/api/v1/exports/{export['id']}/download",
                                           env.keys["admin"]))
                status, headers, data = await client.response()
                assert status == 200 and len(data) == export["bytes"]  # streamed file
                assert data.startswith(b"line_no") or data, data[:80]
                await stream.aclose()
            nursery.cancel_scope.cancel()
    trio.run(main)


def test_bad_requests_are_answered_and_closed(tmp_path, monkeypatch):
    # How much of a request the server's h11 holds at most: an oversized head is refused
    # (431) once it is one byte over ``max_head_bytes``, never a whole 64 KiB read later.
    held: list[int] = []
    receive_data = h11.Connection.receive_data

    def recording(self: h11.Connection, data: bytes) -> None:
        receive_data(self, data)
        held.append(len(self.trailing_data[0]))

    monkeypatch.setattr(h11.Connection, "receive_data", recording)

    async def main() -> None:
        async with api_env(tmp_path) as env, trio.open_nursery() as nursery:
            with trio.fail_after(TIMEOUT_S):
                port = await _serve(env, nursery)
                for raw, status in (
                        (b"GARBAGE\r\n\r\n", 400),
                        (b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 400),
                        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
                         + b"a" * 200_000 + b"\r\n\r\n", 431)):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    client = RawClient(stream)
                    await stream.send_all(raw)
                    got, headers, body = await client.response()
                    assert got == status, body
                    assert headers["connection"] == "close" and await client.closed()
                    await stream.aclose()
                # An upload refused before its body was read (401): answered, then closed,
                # and the client gets the answer (no reset) although it sent the body.
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                client = RawClient(stream)
                big = b"+491700000000\n" * 20_000
                await stream.send_all(
                    (f"POST /api/v1/uploads?filename=a.txt HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(big)}\r\n\r\n").encode() + big)
                got, headers, body = await client.response()
                assert got == 401 and headers["connection"] == "close"
                assert json.loads(body)["error"] == "Unauthorized"
                await stream.aclose()
            nursery.cancel_scope.cancel()
    trio.run(main)
    assert max(held) == 64 * 1024 + 1


def test_graceful_shutdown_finishes_the_request_in_progress(tmp_path):
    async def main() -> None:
        gate = trio.Event()

        class Slow:
            public = True
            docs: ClassVar[dict[str, Any]] = {}

            async def on_get(self, req: Any, resp: Any) -> None:
                await gate.wait()
                resp.media = {"done": True}

        async with api_env(tmp_path) as env:
            env.app.add_route("/slow", Slow())
            stop = trio.Event()
            with trio.fail_after(TIMEOUT_S):
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(partial(
                        serve_api, env.app, "127.0.0.1", 0, shutdown_trigger=stop.wait,
                        graceful_timeout_s=10.0))
                    idle = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
                    await idle.stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert (await idle.response())[0] == 200
                    busy = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
                    await busy.stream.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                    await trio.sleep(0.1)
                    stop.set()
                    assert await idle.closed()  # an idle keep-alive connection goes at once
                    gate.set()
                    status, headers, body = await busy.response()
                    assert status == 200 and json.loads(body) == {"done": True}
                    assert headers["connection"] == "close"
                # serve_api returned by itself once the request was answered
                with pytest.raises(OSError):
                    await trio.open_tcp_stream("127.0.0.1", port)
    trio.run(main)


def test_connections_over_the_cap_get_503_and_the_rest_keep_working(tmp_path):
    """``[control] max_connections``: idle keep-alive connections count; one more is answered
    503 (JSON error shape, Retry-After) and closed; once one closes, a new one is served."""
    async def main() -> None:
        async with api_env(tmp_path, max_connections=2) as env, trio.open_nursery() as nursery:
            with trio.fail_after(TIMEOUT_S):
                port = await _serve(env, nursery)
                held = [RawClient(await trio.open_tcp_stream("127.0.0.1", port))
                        for _ in range(2)]
                for client in held:  # both served, both kept open
                    await client.stream.send_all(_get("/health", ""))
                    assert (await client.response())[0] == 200
                extra = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
                status, headers, body = await extra.response()
                assert status == 503 and headers["retry-after"] == "1"
                assert json.loads(body)["error"] == "Service Unavailable"
                assert await extra.closed()
                await held[0].stream.send_all(_get("/health", ""))  # still served
                assert (await held[0].response())[0] == 200
                await held[1].stream.aclose()
                for _ in range(200):  # the server notices the close (bounded)
                    again = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
                    await again.stream.send_all(_get("/health", ""))
                    status = (await again.response())[0]
                    await again.stream.aclose()
                    if status == 200:
                        break
                    await trio.sleep(0.01)
                assert status == 200
                await held[0].stream.aclose()
            nursery.cancel_scope.cancel()
    trio.run(main)
