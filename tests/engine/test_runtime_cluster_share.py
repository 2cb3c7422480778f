"""Two real engine nodes on one PostgreSQL share an ESME's TPS contract (each sends half),
and a campaign's TPS cap the same way.
A node's route must claim no faster than the share its pool really sends at: claiming at the
whole contract fills the pool's queue with claimed-but-unsent recipients, up to the route's
claim bound (ambiguous after a crash, and a later, urgent campaign waits behind the queue).

The simulator runs in the test's trio loop; both engines run in it too, each with its own
data directory, against a throwaway PostgreSQL server (skipped when none is installed)."""

from __future__ import annotations

from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.config import EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.simulator import SimulatorConfig
from dispatch.simulator import run as run_simulator
from dispatch.store.base import StoreConfig
from dispatch.transport.config import EsmeConfig

from .helpers import approved, until, until_status, write_numbers
from .test_tps_cap import most_in_one_second, submit_times

KEY = "00112233445566778899aabbccddeeff"
CONTRACT_TPS = 400.0
BINDS, WINDOW = 2, 16
MAX_CLAIMED = 3000


def _config(tmp_path: Path, node: str, dsn: str, port: int) -> EngineConfig:
    return EngineConfig(
        data_dir=str(tmp_path / node), api_enabled=False, hash_key_hex=KEY,
        store=StoreConfig(dsn=dsn, node_id=node, heartbeat_interval_s=0.2,
                          node_timeout_s=5.0),
        esmes=(EsmeConfig(name="sim", host="127.0.0.1", port=port, system_id="dispatch",
                          password="secret", binds=BINDS, window=WINDOW, tps=CONTRACT_TPS),),
        scheduler=SchedulerConfig(control_interval_s=0.05,
                                  max_claimed_per_route=MAX_CLAIMED)).resolved()


async def test_each_node_claims_at_its_share_of_the_contract(tmp_path: Path,
                                                             pg_dsn: str) -> None:
    write_numbers(tmp_path / "r.txt", 4000)
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(run_simulator, SimulatorConfig(port=0))
        a = Engine(_config(tmp_path, "a", pg_dsn, sim.port))
        b = Engine(_config(tmp_path, "b", pg_dsn, sim.port))
        await nursery.start(a.run)
        await nursery.start(b.run)
        assert a.membership is not None and b.membership is not None

        async def both_live() -> bool:
            return a.membership.live_nodes == b.membership.live_nodes == 2  # type: ignore[union-attr]
        await until(both_live, timeout_s=30)

        service = a.service
        assert service is not None
        cid = await approved(service, Campaign(sender="S", text="Hi", author="t", esme="sim",
                                               source_path=str(tmp_path / "r.txt")))

        # Watch every node's claimed-but-unresolved count while 1600 submits go out (~4 s at
        # the contract's 400/s): it should stay near what is in the SMSC windows.
        most = 0
        with trio.fail_after(60):
            while sim.stats.submits < 1600:
                for node in (a, b):
                    unresolved = node.routes["sim"].statistics().claimed_unresolved
                    most = max(most, unresolved)
                await trio.sleep(0.02)
        # Binds x window in flight, plus a few ticks of claims at the node's share (200/s).
        assert most <= BINDS * WINDOW + 100, most

        await until_status(service, cid, CampaignStatus.DONE, timeout_s=60)
        assert sim.stats.submits == 4000 and sim.stats.duplicates == 0
        a.stop()
        b.stop()
        await a.wait_stopped()
        await b.wait_stopped()
        nursery.cancel_scope.cancel()


async def test_a_campaigns_tps_cap_is_the_clusters_not_each_nodes(tmp_path: Path,
                                                                   pg_dsn: str) -> None:
    """Both nodes send the campaign: each holds half its cap (as it sends half the contract),
    so the SMSC sees at most ``tps_cap`` of it in any second. Each node held the whole cap
    before: 2 x the cap in a second."""
    cap, count = 40, 200
    numbers = write_numbers(tmp_path / "r.txt", count)
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(run_simulator, SimulatorConfig(port=0))
        nodes = [Engine(_config(tmp_path, name, pg_dsn, sim.port)) for name in ("a", "b")]
        for node in nodes:
            await nursery.start(node.run)

        async def both_live() -> bool:
            return all(n.membership is not None and n.membership.live_nodes == 2
                       for n in nodes)
        await until(both_live, timeout_s=30)

        service = nodes[0].service
        assert service is not None
        cid = await approved(service, Campaign(sender="S", text="Hi", author="t", esme="sim",
                                               tps_cap=cap, source_path=str(tmp_path / "r.txt")))
        await until_status(service, cid, CampaignStatus.DONE, timeout_s=60)
        times = submit_times(sim, numbers)
        assert len(times) == count and sim.stats.duplicates == 0
        # both nodes took part (each its share), and the cluster held the cap
        assert all(n.routes["sim"].statistics().outcomes > 0 for n in nodes)
        assert most_in_one_second(times) <= cap
        for node in nodes:
            node.stop()
        for node in nodes:
            await node.wait_stopped()
        nursery.cancel_scope.cancel()
