"""kill -9 a real engine process mid-campaign, several times, and reconcile against the
simulator's log: no recipient lost, nothing sent twice, ambiguous submits counted.

The simulator runs in this test's trio loop (so it outlives the engine processes); the engine
runs as ``python -m dispatch.cli serve`` with a TOML config pointing at it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.engine.core import utc_now
from dispatch.simulator import SimulatorConfig, destination_hash
from dispatch.simulator import run as run_simulator
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.sqlite import SqliteStore

from .helpers import write_numbers

KEY = "00112233445566778899aabbccddeeff"
COUNT = 12_000


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(f"""
data_dir = "{tmp_path / 'var'}"
hash_key_hex = "{KEY}"
api_enabled = false
log_format = "json"

[store]
recovery_policy = "mark_unknown"

[scheduler]
control_interval_s = 0.05
claim_batch = 200
max_claimed_per_route = 500

[[esmes]]
name = "sim"
host = "127.0.0.1"
port = {port}
system_id = "dispatch"
password = "secret"
binds = 2
window = 32
""")
    return path


async def _create_campaign(tmp_path: Path, db: str) -> int:
    store = AsyncStore(SqliteStore(StoreConfig(path=db)))
    service = CampaignService(store, ServiceConfig(), utc_now)
    campaign = await service.create(Campaign(
        sender="Shop", text="Crash-safe hello", author="t", esme="sim",
        source_path=str(tmp_path / "r.txt")))
    assert campaign.id is not None
    await service.approve(campaign.id, "t", auto_start=True)
    await store.aclose()
    return campaign.id


def _status(db: str, cid: int) -> str | None:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT status FROM campaigns WHERE id = ?", (cid,)).fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


@pytest.mark.slow
async def test_sigkill_mid_campaign_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    numbers = write_numbers(tmp_path / "r.txt", COUNT, seed=5)
    db = str(tmp_path / "var" / "dispatch.sqlite3")
    log = open(tmp_path / "engine.log", "wb")  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH__")}
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(run_simulator, SimulatorConfig(
            port=0, response_latency_s=0.002, receipt_delay_s=0.3))
        config = _config(tmp_path, sim.port)
        cid = await _create_campaign(tmp_path, db)
        cmd = [sys.executable, "-m", "dispatch.cli", "serve", "--config", str(config)]
        kills = 0
        with trio.fail_after(240):
            for fraction in (0.15, 0.4, 0.7):
                proc = await trio.lowlevel.open_process(cmd, stdout=log, stderr=log, env=env)
                while sim.stats.submits < fraction * COUNT and proc.poll() is None:
                    await trio.sleep(0.01)
                assert proc.poll() is None, "engine exited on its own"
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills += 1
            last_start_us = int(utc_now().timestamp() * 1_000_000)
            proc = await trio.lowlevel.open_process(cmd, stdout=log, stderr=log, env=env)
            while _status(db, cid) != CampaignStatus.DONE.value:
                assert proc.poll() is None, "engine exited on its own"
                await trio.sleep(0.1)
            await trio.sleep(1.0)  # let trailing receipts land
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
        nursery.cancel_scope.cancel()
    log.close()
    assert kills == 3

    store = SqliteStore(StoreConfig(path=db))
    try:
        counters = store.counters(cid)
        con = store._db  # reconciliation reads every row; no public bulk read is needed
        rows = con.execute("SELECT number, stage, ambiguous FROM recipients WHERE campaign_id = ?",
                           (cid,)).fetchall()
    finally:
        store.close()
    accepted = Counter(r.destination_hash for r in sim.stats.submit_log if r.command_status == 0)
    assert len(rows) == COUNT == counters.total
    assert {r[0] for r in rows} == set(numbers)  # nobody lost from the list
    assert max(accepted.values()) == 1  # nothing sent twice
    ambiguous = 0
    for number, stage, is_ambiguous in rows:
        sent = accepted.get(destination_hash(number), 0)
        if is_ambiguous:
            ambiguous += 1
            assert stage == "Failed" and sent in (0, 1)
        else:
            assert stage == "Delivered" and sent == 1, (stage, sent)
    assert counters.ambiguous == ambiguous
    assert counters.sent == COUNT - ambiguous
    assert counters.pending == counters.inflight == 0
    # Ambiguity is bounded by what was claimed at each kill: at most max_claimed_per_route
    # unresolved claims plus the resolved ones the writer had not committed yet (one group
    # commit, a few hundred rows at this rate).
    assert ambiguous <= kills * (500 + 1000)
    # Receipts for messages sent before the last restart are still matched after it: more
    # recipients are delivered than the last process submitted. (Not all: receipts written to a
    # connection that died with the engine are lost, since the simulator does not redeliver an
    # unacknowledged deliver_sm as a real SMSC does, and the pool acknowledges a receipt before
    # the store commits it -- a known gap, see the closing notes.)
    con = sqlite3.connect(db)
    try:
        (matched_across_restart,) = con.execute(
            "SELECT COUNT(*) FROM recipients WHERE campaign_id = ? AND sent_at_us < ? "
            "AND sms_result IS NOT NULL", (cid, last_start_us)).fetchone()
    finally:
        con.close()
    assert matched_across_restart > 0
