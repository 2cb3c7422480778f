"""An open-loop HTTP/1.1 load generator, run in its own process by the api section:
``python -m dispatch.benchsuite.httpload --port P --rps R PATH [PATH ...]`` with the API key
in the environment variable ``DISPATCH_BENCH_API_KEY`` (not on the command line, where ``ps``
would show it).

Requests go out at a fixed offered rate (cycling over the paths) on keep-alive connections
taken from a small pool (a new one is opened when all are busy, up to ``--max-connections``).
Latency is measured from the moment a request was *due*, not when a connection became free,
so a stalled server shows up in the figures instead of slowing the generator down (no
coordinated omission). It prints ``ready`` once the first request was answered, runs until
its stdin is closed, then prints one JSON document:
``{"records": [[due_monotonic, latency_s, path_index, status], ...], "errors": N,
"cpu_s": S}`` (``cpu_s``: the generator's own CPU time, so the bench can show what it costs
the machine).
``time.monotonic`` is system-wide on Linux, so the parent can line the records up with its
own timeline.

A separate process so its CPU is not charged to the engine's trio loop it measures; a raw
HTTP/1.1 client (no dependency) because the requests are fixed GETs with a Content-Length
or chunked body.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import trio

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
KEY_ENV = "DISPATCH_BENCH_API_KEY"
MAX_CONNECTIONS = 32


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that reads whole responses."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            return cls(await trio.open_tcp_stream(host, port))

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    async def _read_until(self, marker: bytes) -> bytes:
        while True:
            i = self.buffer.find(marker)
            if i >= 0:
                out = bytes(self.buffer[:i])
                del self.buffer[:i + len(marker)]
                return out
            await self._fill()

    async def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def request(self, raw: bytes) -> tuple[int, bytes, bool]:
        """Send a request; return (status, body, keep_alive)."""
        await self.stream.send_all(raw)
        head = (await self._read_until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self._read_until(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self._read_until(b"\r\n")
                    break
                parts.append(await self._read_exactly(size))
                await self._read_exactly(2)
            body = b"".join(parts)
        else:
            body = await self._read_exactly(int(headers.get("content-length", "0")))
        return status, body, headers.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        await self.stream.aclose()


async def generate(host: str, port: int, key: str, paths: list[str], rps: float,
                   max_connections: int, stop: trio.Event) -> dict[str, object]:
    """Offer ``rps`` requests/s until ``stop`` is set; return the records."""
    requests = [(f"GET {p} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
                 "Accept: application/json\r\n\r\n").encode() for p in paths]
    idle: list[HttpConnection] = []
    opened = 0
    records: list[list[float]] = []
    errors = 0
    ready = trio.Event()

    async def one(due: float, index: int) -> None:
        nonlocal opened, errors
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                if opened >= max_connections:
                    errors += 1  # the generator is saturated: count it, do not queue it
                    records.append([due, -1.0, index, 0])
                    return
                opened += 1
                conn = await HttpConnection.open(host, port)
            with trio.fail_after(REQUEST_TIMEOUT_S):
                status, _, keep = await conn.request(requests[index])
            records.append([due, time.monotonic() - due, index, status])
            if not ready.is_set():
                ready.set()
                print("ready", flush=True)
            if keep:
                idle.append(conn)
                conn = None
        except (OSError, ConnectionError, trio.TooSlowError, ValueError, IndexError,
                trio.BrokenResourceError):
            errors += 1
            records.append([due, -1.0, index, 0])
        finally:
            if conn is not None:
                opened -= 1
                with trio.CancelScope(shield=True):
                    await conn.aclose()

    interval = 1.0 / rps
    async with trio.open_nursery() as nursery:
        start = time.monotonic()
        i = 0
        while not stop.is_set():
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                with trio.move_on_after(delay):
                    await stop.wait()
                if stop.is_set():
                    break
            nursery.start_soon(one, due, i % len(requests))
            i += 1
        with trio.move_on_after(REQUEST_TIMEOUT_S):
            while opened > len(idle):  # let the requests in progress finish
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    for conn in idle:
        await conn.aclose()
    return {"records": records, "errors": errors, "offered_rps": rps, "started": start,
            "cpu_s": time.process_time()}


async def _until_stdin_closes(stop: trio.Event) -> None:
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    try:
        while await stream.receive_some(1024):
            pass
    finally:
        stop.set()
        await stream.aclose()


async def _main(a: argparse.Namespace) -> dict[str, object]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_until_stdin_closes, stop)
        result = await generate(a.host, a.port, a.key, a.paths, a.rps, a.max_connections, stop)
        nursery.cancel_scope.cancel()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dispatch.benchsuite.httpload")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rps", type=float, required=True, help="offered requests per second")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    p.add_argument("paths", nargs="+")
    a = p.parse_args(argv)
    if a.rps <= 0:
        p.error("--rps must be positive")
    a.key = os.environ.get(KEY_ENV, "")
    result = trio.run(_main, a)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
