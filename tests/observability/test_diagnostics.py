"""/diagnostics for the Message Center banner: binds down with the last error, campaigns
stalled by that fault, paused by window or by a user, and a store that does not answer."""

from __future__ import annotations

import contextlib
import json
import socket
import time as wall
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus, DailyWindow, PausedBy
from dispatch.engine.core import Engine
from dispatch.observability.diagnostics import engine_diagnostics
from dispatch.observability.scrape import http_get
from dispatch.transport.config import EsmeConfig, ReconnectConfig

from .helpers import api_engine_config, parse, value, viewer_key


@contextlib.contextmanager
def _closed_port() -> Iterator[int]:
    """A port nothing listens on for the block's length: bound and never listening, so a
    connect is refused, and no other process can take it meanwhile (a port merely closed
    again can be handed to another test's listener at once, which then answers the binds)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


async def _wait_status(engine: Engine, cid: int, *wanted: CampaignStatus) -> Campaign:
    assert engine.service is not None
    for _ in range(400):  # bounded: 20 s at most
        c = await engine.service.get(cid)
        if c.status in wanted:
            return c
        await trio.sleep(0.05)
    raise AssertionError(f"campaign {cid} stayed {c.status}")


async def test_binds_down_stalled_and_paused_campaigns(tmp_path: Path) -> None:
    with _closed_port() as port:
        await _binds_down_stalled_and_paused_campaigns(tmp_path, port)


async def _binds_down_stalled_and_paused_campaigns(tmp_path: Path, port: int) -> None:
    (tmp_path / "r.txt").write_text("".join(f"+4930{i:08d}\n" for i in range(50)))
    down = EsmeConfig(name="down", host="127.0.0.1", port=port, system_id="acct",
                      password="pw", binds=2,
                      reconnect=ReconnectConfig(initial_s=0.05, max_s=0.2, jitter=0.0))
    config = replace(api_engine_config(tmp_path / "var"), esmes=(down,))
    key = viewer_key(config)
    engine = Engine(config)
    now = datetime.now(UTC)
    closed = DailyWindow(start=(now + timedelta(hours=2)).time().replace(microsecond=0),
                         end=(now + timedelta(hours=3)).time().replace(microsecond=0))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service = engine.service
        assert service is not None and engine.api_port is not None
        with trio.fail_after(60):
            ids = []
            for window in (None, closed, None):
                c = await service.create(Campaign(sender="Shop", text="hi", author="t",
                                                  esme="down", window=window,
                                                  source_path=str(tmp_path / "r.txt")))
                assert c.id is not None
                await service.approve(c.id, "t", auto_start=True)
                ids.append(c.id)
            stalled_id, window_id, user_id = ids
            await _wait_status(engine, stalled_id, CampaignStatus.SENDING)
            await _wait_status(engine, window_id, CampaignStatus.PAUSED)
            await _wait_status(engine, user_id, CampaignStatus.SENDING)
            paused = await service.pause(user_id, "t")
            assert paused.paused_by is PausedBy.USER
            for _ in range(200):  # until the pool reported a failed bind attempt
                if engine.routes["down"].pool.statistics().last_bind_error:
                    break
                await trio.sleep(0.05)
            status, body = await http_get(engine.api_port, "/diagnostics", {"X-API-Key": key})
            status_m, metrics = await http_get(engine.api_port, "/metrics")
        engine.stop()
        await engine.wait_stopped()

    assert status == 200 and status_m == 200
    report = json.loads(body)
    assert report["status"] == "down" and report["up"] is False and report["core"] == "up"
    esme = report["esmes"]["down"]
    assert esme["up"] is False and esme["bindsUp"] == 0 and esme["bindsConfigured"] == 2
    assert esme["lastBindError"] and esme["bindFailures"] >= 1
    assert report["store"]["reachable"] is True
    camps = report["campaigns"]
    assert camps["stalledByFault"]["count"] == 1
    stalled = camps["stalledByFault"]["campaigns"][0]
    assert stalled["esme"] == "down" and stalled["reason"] == esme["lastBindError"]
    assert camps["pausedByWindow"]["count"] == 1 and camps["pausedByUser"]["count"] == 1
    assert len({stalled["campaign"], *camps["pausedByWindow"]["campaigns"],
                *camps["pausedByUser"]["campaigns"]}) == 3
    m = parse(metrics)
    assert value(m, "dispatch_smpp_binds", esme="down", state="down") == 2
    assert value(m, "dispatch_smpp_bind_failures_total", esme="down") >= 1


async def test_a_store_that_does_not_answer_is_reported_unreachable(tmp_path: Path) -> None:
    engine = Engine(api_engine_config(tmp_path / "var"))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        store = engine.store
        assert store is not None
        with trio.fail_after(30):
            healthy = await engine_diagnostics(engine)
            assert healthy["status"] == "ok" and healthy["store"]["reachable"] is True
            assert healthy["esmes"]["sim"]["up"] is True
            # Occupy every one of the store's call slots (one for a store in a thread, a few
            # for the store process), as long commits or a hung disk would.
            slots = int(store._limiter.total_tokens)
            busy = trio.Semaphore(0)

            async def hold() -> None:
                busy.release()
                await store.run_sync(wall.sleep, 1.0)

            for _ in range(slots):
                nursery.start_soon(hold)
            for _ in range(slots):
                await busy.acquire()
            await trio.sleep(0.05)
            report = await engine_diagnostics(engine, store_timeout_s=0.1)
        engine.stop()
        await engine.wait_stopped()
    assert report["store"]["reachable"] is False and "0.1 s" in report["store"]["error"]
    assert report["status"] == "down" and "campaigns" not in report
