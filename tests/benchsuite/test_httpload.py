"""The API load generator: its HTTP/1.1 response reader (Content-Length, chunked, close)
and an open-loop run against a real trio server on 127.0.0.1."""

from __future__ import annotations

import time

import trio
import trio.testing

from dispatch.benchsuite.httpload import HttpConnection, generate


async def _answer(server: trio.abc.Stream, raw: bytes, split: int) -> None:
    """Write ``raw`` in pieces of ``split`` bytes (responses arrive in any split)."""
    for i in range(0, len(raw), split):
        await server.send_all(raw[i:i + split])


async def test_reads_content_length_chunked_and_close_in_any_split():
    for split in (1, 3, 1000):
        client, server = trio.testing.memory_stream_pair()
        conn = HttpConnection(client)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_answer, server,
                               b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                               b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
                               b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
                               b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                               split)
            with trio.fail_after(5):
                assert await conn.request(b"GET / HTTP/1.1\r\n\r\n") == (200, b"hello", True)
                assert await conn.request(b"GET / HTTP/1.1\r\n\r\n") == (404, b"abcde", True)
                assert await conn.request(b"GET / HTTP/1.1\r\n\r\n") == (200, b"", False)


async def _http_server(stream: trio.SocketStream, seen: list[bytes]) -> None:
    """Answers each request on a keep-alive connection after a short delay."""
    buffer = b""
    while True:
        data = await stream.receive_some(4096)
        if not data:
            return
        buffer += data
        while b"\r\n\r\n" in buffer:
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            seen.append(head)
            await trio.sleep(0.002)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def test_open_loop_offers_the_rate_and_records_latency_from_the_due_time():
    seen: list[bytes] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp,
                                        lambda s: _http_server(s, seen), 0)
        port = listeners[0].socket.getsockname()[1]
        stop = trio.Event()

        async def stop_later() -> None:
            await trio.sleep(0.5)
            stop.set()

        nursery.start_soon(stop_later)
        with trio.fail_after(20):
            t0 = time.monotonic()
            result = await generate("127.0.0.1", port, "k3y", ["/a", "/b?x=1"], 100.0, 4, stop)
        nursery.cancel_scope.cancel()
    records = result["records"]
    assert isinstance(records, list)
    assert 30 <= len(records) <= 70  # ~50 requests offered in 0.5 s
    assert result["errors"] == 0
    assert isinstance(result["cpu_s"], float) and result["cpu_s"] > 0  # its own CPU
    assert all(r[3] == 200 and 0 < r[1] < 5 and r[0] >= t0 - 0.01 for r in records)
    assert {int(r[2]) for r in records} == {0, 1}
    assert all(b"X-API-Key: k3y" in h for h in seen)
    assert any(h.startswith(b"GET /b?x=1 HTTP/1.1") for h in seen)
