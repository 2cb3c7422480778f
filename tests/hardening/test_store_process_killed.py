"""The SQLite store in a process of its own (``dispatch.store.process``, the engine's default).

* the store process SIGKILLed while a real engine sends a campaign to the built-in simulator
  over real sockets: an outage like a full disk (the writer keeps its batch, the routes stop
  claiming), a new store process, and the campaign ends Done with every recipient sent exactly
  once and the counters equal to the simulator's counts;
(the proxy itself: tests/store/test_store_process.py).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import trio
from test_store_faults import (
    COUNT,
    _config,
    _finish,
    _numbers,
    _reconcile,
    _start_campaign,
    _wait_for,
)

from dispatch.engine.core import Engine
from dispatch.store.process import StoreProcess


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_killed_store_process_is_an_outage_and_loses_nothing(tmp_path: Path) -> None:
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=21)
    config = _config(tmp_path / "var")
    engine = Engine(replace(config, store=replace(config.store, process=True)))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.simulator is not None and engine.writer is not None
        assert engine.store is not None and engine.service is not None
        sim, health, store = engine.simulator, engine.writer.health, engine.store.sync
        assert isinstance(store, StoreProcess)
        first_pid = store.pid
        assert first_pid is not None and first_pid != os.getpid()
        cid = await _start_campaign(engine, tmp_path / "r.txt")
        await _wait_for(lambda: sim.stats.submits >= COUNT // 4, 30)

        store.kill()
        await _finish(engine, cid)
        assert store.pid is not None and store.pid != first_pid, "no new store process"
        assert not _alive(first_pid)
        # The kill landed in a call (an outage, now over) or between calls (the next call
        # found the pipe closed: the same outage); either way the campaign went on.
        assert health.outages == 1 and not health.down
        engine.stop()
        await engine.wait_stopped()
    assert store.pid is None  # closed with the engine
    _reconcile(engine, cid, numbers)
