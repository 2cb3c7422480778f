"""How long a large transactional request stalls the engine's event loop (not a test).

    .venv/bin/python tests/control/measure_loop_stall.py [--messages 200000] [--runs 3]
        [--mode decode|request|both] [--body json|msgpack] [--switch-interval-s 0.0005]

A trio task sleeps 1 ms in a loop and records the largest gap between two wake-ups (a gap
over ~1 ms is time the loop could not run: some thread held the GIL, or the loop itself was
busy). The body is 200 000 messages, each with a phone number and three variables (~21 MB
of JSON, ~17 MB of msgpack).

``decode``: only the body's decoding, in a worker thread as the API runs it: ``json.loads``,
``control.jsonbody.loads`` (decoded in pieces), orjson when it is importable, and
``msgpack.unpackb`` and ``control.msgpackbody.loads`` (decoded in pieces).
``request``: the whole ``POST /campaigns/{id}/messages`` over a real socket (the built-in
server on 127.0.0.1, the real app over SQLite in a temp dir), sent by a separate process so
the client takes no GIL here. Run it once with this tree and once with another on
``PYTHONPATH`` (e.g. ``PYTHONPATH=/tmp/base/src``, a ``git archive HEAD`` copy) to compare.

The interpreter is tuned as the engine tunes it (``dispatch.interpreter.tune``: the GIL
switch interval 0.5 ms, the young-generation GC threshold 50 000).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import trio

TICK_S = 0.001


def make_body(n: int) -> dict[str, Any]:
    return {"messages": [
        {"phoneNumber": f"+7912{i:07d}",
         "variables": {"name": f"Customer {i:06d}", "code": f"{(i * 7919) % 1000000:06d}",
                       "amount": f"{i % 5000}.{i % 100:02d} EUR"}}
        for i in range(n)]}


class Ticker:
    """Sleeps TICK_S in a loop; ``gaps`` are the times between two wake-ups."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.stop = False

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last = time.perf_counter()
        while not self.stop:
            await trio.sleep(TICK_S)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    def summary(self) -> str:
        gaps = sorted(self.gaps)
        p99 = gaps[int(len(gaps) * 0.99)] if gaps else 0.0
        over = sum(1 for g in gaps if g > 0.010)
        return (f"max gap {max(gaps) * 1000:7.1f} ms  p99 {p99 * 1000:5.1f} ms  "
                f"gaps > 10 ms: {over:3d}")


async def _measure(fn: Callable[[], Any]) -> tuple[float, Ticker]:
    ticker = Ticker()
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        await trio.sleep(0.05)
        start = time.perf_counter()
        await fn()
        took = time.perf_counter() - start
        await trio.sleep(0.05)
        ticker.stop = True
    return took, ticker


def decoders() -> dict[str, Callable[[bytes], Any]]:
    out: dict[str, Callable[[bytes], Any]] = {"json.loads": json.loads}
    try:
        from control.jsonbody import loads
        out["jsonbody.loads (pieces)"] = loads
    except ImportError:
        pass
    try:
        import orjson
        out["orjson.loads"] = orjson.loads
    except ImportError:
        pass
    return out


def measure_decode(n: int, runs: int) -> None:
    body = make_body(n)
    raw = json.dumps(body).encode()
    packed = msgpack.packb(body, use_bin_type=True)
    print(f"decode only, {n} messages: JSON {len(raw) / 2**20:.1f} MiB, "
          f"msgpack {len(packed) / 2**20:.1f} MiB")
    def busy(_: bytes) -> None:  # the floor: a thread that gives up the GIL when asked
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            pass

    cases: dict[str, tuple[Callable[[bytes], Any], bytes]] = {
        "(floor: 0.5 s of Python)": (busy, raw)}
    cases.update((name, (fn, raw)) for name, fn in decoders().items())
    cases["msgpack.unpackb"] = (lambda b: msgpack.unpackb(b, raw=False), packed)
    try:
        from control.msgpackbody import loads as msgpack_loads
        cases["msgpackbody.loads (pieces)"] = (msgpack_loads, packed)
    except ImportError:
        pass
    for name, (fn, data) in cases.items():
        assert name.startswith("(") or fn(data) == body, name
        for _ in range(runs):
            kept: list[Any] = []

            async def job(fn: Callable[[bytes], Any] = fn, data: bytes = data,
                          kept: list[Any] = kept) -> None:
                # The value is kept until the ticker stopped: freeing 200 000 messages is a
                # stall of its own (one cascade of deallocations), not the decoder's.
                kept.append(await trio.to_thread.run_sync(fn, data))
            took, ticker = trio.run(_measure, job)
            kept.clear()
            print(f"  {name:26s} {took * 1000:7.0f} ms  {ticker.summary()}")


CLIENT = """
import http.client, sys
body = open(sys.argv[1], "rb").read()
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=300)
conn.request("POST", sys.argv[3], body=body,
             headers={"Content-Type": sys.argv[5], "X-API-Key": sys.argv[4]})
r = conn.getresponse()
print(r.status, r.read()[:200].decode())
"""


async def _request(n: int, tmp: Path, body_format: str) -> None:
    from control.app import create_app
    from control.config import ControlConfig
    from control.keys import KeyStore, Role
    from control.serve import serve_api
    from dispatch.campaigns.model import Campaign, CampaignKind
    from dispatch.campaigns.service import CampaignService, ServiceConfig
    from dispatch.ingest import ctn_hash, mask_number, normalize_phone
    from dispatch.store import open_store
    from dispatch.store.asyncstore import AsyncStore
    from dispatch.store.base import StoreConfig

    key = bytes(range(16))

    def prepare(text: str) -> tuple[str, bytes, str]:
        digits, reason = normalize_phone(text)
        if digits is None:
            raise ValueError(reason)
        return digits, ctn_hash(key, digits), mask_number(digits)

    body_path = tmp / f"body.{body_format}"
    if body_format == "msgpack":
        body_path.write_bytes(msgpack.packb(make_body(n), use_bin_type=True))
        content_type = "application/msgpack"
    else:
        body_path.write_bytes(json.dumps(make_body(n)).encode())
        content_type = "application/json"
    store = AsyncStore(open_store(StoreConfig(path=str(tmp / "store.sqlite3"))))
    service = CampaignService(store, ServiceConfig(max_pending_messages=10 * n),
                              clock=lambda: datetime.now(UTC), prepare_number=prepare)
    config = ControlConfig(data_dir=str(tmp / "data"), max_body_bytes=256 << 20,
                           rate_limit_burst=1000)
    keys = KeyStore(config.keys_path)
    token = keys.create_key(Role.ADMIN, label="measure")[0]
    app = create_app(service, config, keys=keys, prepare_number=prepare)
    c = await service.create(Campaign(sender="ACME", text="Hi {name}", author="m", esme="e",
                                      kind=CampaignKind.TRANSACTIONAL))
    await service.approve(c.external_id, "m")
    try:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)

            async def post() -> None:
                out = await trio.run_process(
                    [sys.executable, "-c", CLIENT, str(body_path), str(port),
                     f"/api/v1/campaigns/{c.external_id}/messages", token, content_type],
                    capture_stdout=True)
                status = out.stdout.decode().strip()
                assert status.startswith("202"), status

            took, ticker = await _measure(post)
            print(f"  POST {n} messages ({body_format}, "
                  f"{body_path.stat().st_size / 2**20:.1f} MiB) "
                  f"{took * 1000:7.0f} ms  {ticker.summary()}")
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()


def measure_request(n: int, runs: int, body_format: str) -> None:
    import control
    print(f"whole request through the built-in server ({Path(control.__file__).parent})")
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            trio.run(_request, n, Path(tmp), body_format)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mode", choices=("decode", "request", "both"), default="both")
    p.add_argument("--switch-interval-s", type=float, default=0.0005)
    p.add_argument("--body", choices=("json", "msgpack"), default="json",
                   help="the request's body type (request mode)")
    args = p.parse_args()
    from dispatch.interpreter import tune
    tune(switch_interval_s=args.switch_interval_s)
    print(f"GIL switch interval {sys.getswitchinterval() * 1000:.1f} ms")
    if args.mode in ("decode", "both"):
        measure_decode(args.messages, args.runs)
    if args.mode in ("request", "both"):
        measure_request(args.messages, args.runs, args.body)


if __name__ == "__main__":
    main()
