"""Issue 8's multi-node crash test: three real engine processes (``python -m dispatch.cli
serve``) on one throwaway PostgreSQL, one SMSC simulator in its own process
(``python -m dispatch.simulator``), one campaign; one node is SIGKILLed mid-way.

Checked against the simulator's submit log (written by the simulator process when stopped):

* every recipient was accepted by the SMSC exactly once, except the ones the store counts as
  ambiguous (in flight on the dead node: accepted at most once, never resent);
* the dead node was declared dead by a survivor, which took over its leases (no row is left
  Sending, every ambiguous row was the dead node's, the survivors logged the takeover);
* every node did part of the work, and the ESME's TPS contract held across the cluster in
  every one-second window the simulator counted (each node sends ``contract / live nodes``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.engine.core import utc_now
from dispatch.simulator import destination_hash
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.postgres import PostgresStore

from .helpers import write_numbers

KEY = "00112233445566778899aabbccddeeff"
COUNT = 15_000
CONTRACT_TPS = 1500
NODES = ("n1", "n2", "n3")
VICTIM = "n2"
HEARTBEAT_S = 0.3
NODE_TIMEOUT_S = 2.0
# The engines' limiters count a submit when it is written, the simulator when it is read: with
# up to ~100 ms of scheduling jitter on a loaded 2-core machine a one-second window at the
# simulator spans up to 1.1 s of sending.
JITTER_ALLOWANCE = 0.10


def _node_config(tmp_path: Path, node: str, dsn: str, sim_port: int) -> Path:
    path = tmp_path / f"{node}.toml"
    path.write_text(f"""
data_dir = "{tmp_path / node}"
hash_key_hex = "{KEY}"
api_enabled = false
log_format = "json"

[store]
dsn = "{dsn}"
node_id = "{node}"
heartbeat_interval_s = {HEARTBEAT_S}
node_timeout_s = {NODE_TIMEOUT_S}
recovery_policy = "mark_unknown"

[scheduler]
control_interval_s = 0.05
claim_batch = 200
max_claimed_per_route = 300

[[esmes]]
name = "sim"
host = "127.0.0.1"
port = {sim_port}
system_id = "dispatch"
password = "secret"
binds = 2
window = 32
tps = {CONTRACT_TPS}
""")
    return path


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _saw_live(log: Path, live: int) -> bool:
    return any(e.get("live") == live and e.get("msg") == "live nodes changed"
               for e in _events(log))


def _query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


async def _create_campaign(dsn: str, source: Path) -> int:
    store = AsyncStore(PostgresStore(StoreConfig(path="", dsn=dsn, node_id="test-admin")))
    service = CampaignService(store, ServiceConfig(), utc_now)
    campaign = await service.create(Campaign(
        sender="Shop", text="Cluster hello", author="t", esme="sim", source_path=str(source)))
    assert campaign.id is not None
    await service.approve(campaign.id, "t", auto_start=True)
    await store.aclose()
    return campaign.id


@pytest.mark.slow
async def test_three_nodes_one_sigkilled_exactly_once_and_tps_held(tmp_path: Path,
                                                                   pg_dsn: str) -> None:
    numbers = write_numbers(tmp_path / "r.txt", COUNT, seed=11)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH__")}
    port_file, stats_file = tmp_path / "sim.port", tmp_path / "sim.json"
    logs = {name: tmp_path / f"{name}.log" for name in (*NODES, "sim")}
    handles = {name: open(path, "wb") for name, path in logs.items()}  # noqa: SIM115
    procs: dict[str, trio.Process] = {}
    try:
        with trio.fail_after(90):
            sim = await trio.lowlevel.open_process(
                [sys.executable, "-m", "dispatch.simulator", "--port", "0",
                 "--port-file", str(port_file), "--stats-json", str(stats_file),
                 "--latency-s", "0.002", "--receipt-delay-s", "0.2"],
                stdout=handles["sim"], stderr=handles["sim"], env=env)
            while not port_file.exists():
                assert sim.poll() is None, logs["sim"].read_text()
                await trio.sleep(0.02)
            sim_port = int(port_file.read_text())
            for node in NODES:
                config = _node_config(tmp_path, node, pg_dsn, sim_port)
                procs[node] = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "dispatch.cli", "serve", "--config", str(config)],
                    stdout=handles[node], stderr=handles[node], env=env)
            # Every node has seen all three live (and taken a third of the contract) before
            # the campaign exists, so no node ever sends at a larger share than it should.
            while not all(_saw_live(logs[n], len(NODES)) for n in NODES):
                for n, p in procs.items():
                    assert p.poll() is None, f"{n} exited: {logs[n].read_text()[-2000:]}"
                await trio.sleep(0.05)
            cid = await _create_campaign(pg_dsn, tmp_path / "r.txt")

            # Kill the victim mid-way, while it holds leases (rows it claimed, in Sending).
            while True:
                (sent, held_by_victim), = _query(
                    pg_dsn, "SELECT (SELECT sent FROM campaign_counters WHERE campaign_id = %s),"
                    " (SELECT COUNT(*) FROM recipients WHERE lease_owner = %s "
                    "AND stage = 'Sending')", (cid, VICTIM))
                if sent >= 0.4 * COUNT and held_by_victim > 0:
                    break
                assert procs[VICTIM].poll() is None, logs[VICTIM].read_text()[-2000:]
                await trio.sleep(0.02)
            procs[VICTIM].send_signal(signal.SIGKILL)
            await procs[VICTIM].wait()

            while _query(pg_dsn, "SELECT status FROM campaigns WHERE id = %s",
                         (cid,))[0][0] != CampaignStatus.DONE.value:
                for n in NODES:
                    if n != VICTIM:
                        assert procs[n].poll() is None, logs[n].read_text()[-2000:]
                await trio.sleep(0.1)
            await trio.sleep(0.5)  # trailing receipts
            for n in NODES:
                if n != VICTIM:
                    procs[n].send_signal(signal.SIGTERM)
            for n in NODES:
                if n != VICTIM:
                    assert await procs[n].wait() == 0, logs[n].read_text()[-2000:]
            sim.send_signal(signal.SIGTERM)
            assert await sim.wait() == 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for h in handles.values():
            h.close()

    stats = json.loads(stats_file.read_text())
    fields = stats["submit_log_fields"]
    log = [dict(zip(fields, r, strict=True)) for r in stats["submit_log"]]
    accepted = Counter(r["destination_hash"] for r in log if r["command_status"] == 0)
    rows = _query(pg_dsn, "SELECT number, stage, ambiguous, lease_owner FROM recipients "
                  "WHERE campaign_id = %s", (cid,))
    (total, sent, pending, inflight, ambiguous_count), = _query(
        pg_dsn, "SELECT total, sent, pending, inflight, ambiguous FROM campaign_counters "
        "WHERE campaign_id = %s", (cid,))

    # Exactly once, except the counted ambiguous rows.
    assert len(rows) == total == COUNT
    assert {r[0] for r in rows} == set(numbers)
    assert max(accepted.values()) == 1, "a recipient was sent twice"
    ambiguous = [r for r in rows if r[2]]
    for number, stage, is_ambiguous, _owner in rows:
        got = accepted.get(destination_hash(number), 0)
        if is_ambiguous:
            assert stage == "Failed" and got in (0, 1)
        else:
            assert stage == "Delivered" and got == 1, (stage, got)
    assert ambiguous_count == len(ambiguous)
    assert sent == COUNT - len(ambiguous)
    assert pending == inflight == 0

    # The dead node's leases were taken over by a survivor.
    nodes = dict(_query(pg_dsn, "SELECT node_id, state FROM cluster_nodes"))
    assert nodes[VICTIM] == "dead"
    assert all(nodes[n] == "stopped" for n in NODES if n != VICTIM)
    assert {r[3] for r in ambiguous} <= {VICTIM}  # only the dead node's in-flight rows
    takeovers = [e for n in NODES if n != VICTIM for e in _events(logs[n])
                 if e.get("msg") == "took over dead nodes"]
    assert takeovers and all(VICTIM in e.get("dead", [VICTIM]) for e in takeovers)
    assert sum(int(e.get("marked_unknown", 0)) for e in takeovers) == len(ambiguous)
    assert all(_saw_live(logs[n], len(NODES) - 1) for n in NODES if n != VICTIM)

    # Everyone worked; the contract held across the cluster.
    by_owner = Counter(r[3] for r in rows)
    assert set(by_owner) == set(NODES), by_owner
    assert stats["max_tps_by_account"]["dispatch"] <= CONTRACT_TPS * (1 + JITTER_ALLOWANCE)
    per_second = Counter(int(r["time"]) for r in log)
    assert max(per_second.values()) <= CONTRACT_TPS * (1 + JITTER_ALLOWANCE)
    print(f"\nper node {dict(sorted(by_owner.items()))}, ambiguous {len(ambiguous)}, "
          f"max submits/s at the SMSC {stats['max_tps_by_account']['dispatch']} "
          f"(contract {CONTRACT_TPS}), seconds {sorted(per_second.values())[-5:]}")
