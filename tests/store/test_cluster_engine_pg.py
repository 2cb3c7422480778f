"""Two engine nodes on one PostgreSQL database, in one trio process, sending one campaign to
one simulated SMSC: every recipient goes out exactly once, both nodes do part of the work, and
each node's pool runs at its share of the ESME's TPS contract (split by live nodes).

(The 3-process SIGKILL test of issue 8 is tests/engine/test_cluster_crash_pg.py.)"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from store_fixtures import query

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.config import EmbeddedSimulator, EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import run_one_shot
from dispatch.simulator import SimulatorConfig, destination_hash
from dispatch.store.base import StoreConfig
from dispatch.transport.config import EsmeConfig

CONTRACT_TPS = 4000.0


def write_numbers(path: Path, count: int) -> list[str]:
    rng = random.Random(5)
    digits = sorted({f"7900{rng.randrange(10**7):07d}" for _ in range(count * 2)})[:count]
    path.write_text("\n".join(digits) + "\n")
    return digits


def node_config(tmp_path: Path, name: str, dsn: str) -> EngineConfig:
    return EngineConfig(
        data_dir=str(tmp_path / name), api_enabled=False,
        hash_key_hex="00112233445566778899aabbccddeeff",
        store=StoreConfig(path="", dsn=dsn, node_id=name, heartbeat_interval_s=0.2,
                          node_timeout_s=3.0),
        simulator=EmbeddedSimulator(settings=SimulatorConfig(port=0), binds=2, window=128,
                                    tps=CONTRACT_TPS),
        scheduler=SchedulerConfig(control_interval_s=0.05, claim_batch=200,
                                  max_claimed_per_route=512),
    ).resolved()


@pytest.mark.slow
async def test_two_nodes_share_one_campaign_exactly_once(tmp_path: Path, pg_dsn: str) -> None:
    numbers = write_numbers(tmp_path / "r.txt", 4000)
    first = Engine(node_config(tmp_path, "n1", pg_dsn))  # runs the simulator (the SMSC)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        sim = first.simulator
        assert sim is not None
        account = first.config.simulator.settings.accounts[0]
        # The second node has no simulator of its own: it binds to the first one's SMSC
        # with the same account and the same contract.
        second_cfg = replace(node_config(tmp_path, "n2", pg_dsn), esmes=(EsmeConfig(
            name="sim", host="127.0.0.1", port=sim.port, system_id=account.system_id,
            password=account.password, binds=2, window=128, tps=CONTRACT_TPS),))
        second = Engine(second_cfg)
        await nursery.start(second.run)
        for node in (first, second):
            with trio.fail_after(10):
                while node.membership is None or node.membership.live_nodes != 2:
                    await trio.sleep(0.05)
        campaign = Campaign(sender="Shop", text="Hello", author="t", esme="sim",
                            source_path=str(tmp_path / "r.txt"))
        with trio.fail_after(120):
            result = await run_one_shot(first, campaign, progress=None, wait_receipts_s=20)
        # Each node's limiter runs at its share while both live (the pool's statistics
        # report the configured contract, so read the limiter itself).
        shares = [node.routes["sim"].pool._limiter.tps for node in (first, second)]
        for node in (first, second):
            node.stop()
        for node in (first, second):
            await node.wait_stopped()
    c = result.counters
    assert result.campaign.status is CampaignStatus.DONE
    assert c.total == c.sent == c.delivered == 4000 and c.ambiguous == 0
    sent_to = Counter(r.destination_hash for r in sim.stats.submit_log)
    assert set(sent_to.values()) == {1}
    assert set(sent_to) == {destination_hash(n) for n in numbers}
    by_node = dict(query(first.store.sync,  # type: ignore[union-attr]
                         "SELECT lease_owner, COUNT(*) FROM recipients GROUP BY 1"))
    assert set(by_node) == {"n1", "n2"} and sum(by_node.values()) == 4000
    assert shares == [CONTRACT_TPS / 2, CONTRACT_TPS / 2]
    nodes = dict(query(first.store.sync,  # type: ignore[union-attr]
                       "SELECT node_id, state FROM cluster_nodes"))
    assert nodes == {"n1": "stopped", "n2": "stopped"}
