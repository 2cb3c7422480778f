"""Scrape a real engine: start one (embedded simulator, SQLite in a temp dir, control API on a
free loopback port), run a short campaign through it, and fetch ``/metrics`` over HTTP.

``python -m dispatch.observability.scrape [--recipients N] [--out FILE]`` prints (or writes)
the exposition text; ``.ci/check-deploy`` pipes it into ``promtool check metrics`` so the names
are checked on what a running engine really serves, not on a hand-made sample. ``http_request`` is
the small HTTP/1.1 client the tests use too (no extra dependency).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import trio

from control.config import ControlConfig
from dispatch.campaigns.model import Campaign
from dispatch.engine.config import EmbeddedSimulator, EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import run_one_shot
from dispatch.simulator import SimulatorConfig


async def http_get(port: int, path: str, headers: dict[str, str] | None = None,
                   host: str = "127.0.0.1", timeout_s: float = 10.0) -> tuple[int, bytes]:
    """``GET path`` on ``host:port``; returns (status, body)."""
    return await http_request(port, "GET", path, headers, host=host, timeout_s=timeout_s)


async def http_request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
                       body: bytes = b"", host: str = "127.0.0.1",
                       timeout_s: float = 10.0) -> tuple[int, bytes]:
    """One HTTP/1.1 request with ``Connection: close``; returns (status, body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with trio.fail_after(timeout_s):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(request)
            chunks = []
            while data := await stream.receive_some(65536):
                chunks.append(data)
    raw = b"".join(chunks)
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        payload = _unchunk(payload)
    return status, payload


def _unchunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


def scrape_config(data_dir: Path) -> EngineConfig:
    """An engine on its embedded simulator with the API on a free port, rooted in ``data_dir``."""
    config = EngineConfig(
        data_dir=str(data_dir), api_enabled=True,
        hash_key_hex="000102030405060708090a0b0c0d0e0f",
        control=ControlConfig(data_dir=str(data_dir), host="127.0.0.1", port=0),
        simulator=EmbeddedSimulator(settings=SimulatorConfig(port=0), binds=2, window=256),
        scheduler=SchedulerConfig(control_interval_s=0.05))
    return replace(config).resolved()


async def scrape_running_engine(data_dir: Path, recipients: int = 500,
                                timeout_s: float = 120.0) -> bytes:
    """Start an engine, send ``recipients`` messages, and return one ``/metrics`` body."""
    data_dir.mkdir(parents=True, exist_ok=True)
    numbers = data_dir / "recipients.txt"
    numbers.write_text("".join(f"+7900{i:07d}\n" for i in range(recipients)))
    engine = Engine(scrape_config(data_dir))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        try:
            with trio.fail_after(timeout_s):
                campaign = Campaign(sender="Scrape", text="metrics check", author="ci",
                                    esme=next(iter(engine.routes)), source_path=str(numbers))
                await run_one_shot(engine, campaign, progress=None, wait_receipts_s=10)
                assert engine.api_port is not None and engine.campaign_sampler is not None
                await engine.campaign_sampler.sample()
                port = engine.api_port
                await http_get(port, "/health")
                await http_get(port, "/diagnostics")  # 401 without a key: counted too
                status, body = await http_get(port, "/metrics")
                if status != 200:
                    raise RuntimeError(f"/metrics answered {status}")
        finally:
            engine.stop()
        await engine.wait_stopped()
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=500)
    parser.add_argument("--out", help="write the scrape here instead of stdout")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dispatch-scrape-") as tmp:
        body = trio.run(scrape_running_engine, Path(tmp), args.recipients)
    if args.out:
        Path(args.out).write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
