"""Cluster throughput: 1, 2 and 3 engine nodes on one PostgreSQL against the single SQLite node,
in one run, with the CPU seconds per message of every process (issue 8).

Every part is a real process: the engine nodes (``python -m dispatch.cli serve``), the SMSC
simulator (``python -m dispatch.simulator``, receipts on, no TPS limit), and one throwaway
PostgreSQL server (``tests/store/pg_cluster.py``) run with production durability (fsync,
full_page_writes and synchronous_commit on, as docs/OPERATIONS-POSTGRES.md recommends; each
variant gets a fresh database). A variant's messages/s is measured from the first committed
submit to the last committed receipt (building the recipient list is not counted), so it is
the full claim -> submit -> result -> receipt cycle. CPU per message is read from /proc
(utime + stime of each engine node and of the simulator; the postmaster with all its children
for PostgreSQL) over the same interval, so the cost of each part on a bigger machine can be
projected: messages/s <= cores given to a part / its CPU seconds per message.

Run it for real with ``.venv/bin/python -m pytest bench/test_bench_cluster.py -s``; under
``--benchmark-disable`` (CI smoke) each variant sends a small campaign.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from dispatch.campaigns.model import Campaign
from dispatch.store import open_store
from dispatch.store.base import StoreConfig

KEY = "00112233445566778899aabbccddeeff"
BINDS, WINDOW = 2, 512
_CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_SETTINGS = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
               "max_wal_size": "4GB"}
ROOT = Path(__file__).resolve().parents[1]


def _pg_cluster() -> ModuleType:
    path = ROOT / "tests" / "store" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("pg_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pg_cluster", module)
    spec.loader.exec_module(module)
    return module


def _cpu_s(pid: int, with_children: bool = False) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    f = text[text.rindex(")") + 2:].split()
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if with_children else 0)
    return ticks / _CLK_TCK


def _tree_cpu_s(parent: int, with_reaped: bool = False) -> float:
    """A process and its live children (an engine node and its store process; the postmaster
    and its backends, WAL writer... ``with_reaped``: also the children it already reaped)."""
    total = _cpu_s(parent, with_children=with_reaped)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            f = text[text.rindex(")") + 2:].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(f[1]) == parent:
            total += (int(f[11]) + int(f[12])) / _CLK_TCK
    return total


def _process_cpu(pid: int) -> Callable[[], float]:
    return lambda: _tree_cpu_s(pid)


@dataclass
class Variant:
    name: str
    nodes: int
    messages: int = 0
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    per_node: dict[str, int] = field(default_factory=dict)
    hot_updates: tuple[int, int] = (0, 0)  # PostgreSQL: (updates, HOT) of recipients

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s if self.wall_s else 0.0

    def cpu_us_per_message(self, part: str) -> float:
        return self.cpu_s.get(part, 0.0) / max(1, self.messages) * 1e6


def _write_numbers(path: Path, count: int) -> None:
    path.write_text("".join(f"+4917{i:08d}\n" for i in range(count)))


def _node_toml(work: Path, name: str, sim_port: int, dsn: str | None) -> Path:
    store = (f'dsn = "{dsn}"\nnode_id = "{name}"\npool_max_size = 4\n'
             'heartbeat_interval_s = 0.5\nnode_timeout_s = 5.0\n' if dsn else
             f'path = "{work / name / "dispatch.sqlite3"}"\n')
    path = work / f"{name}.toml"
    path.write_text(f"""
data_dir = "{work / name}"
hash_key_hex = "{KEY}"
api_enabled = false
log_level = "warning"

[store]
{store}
[scheduler]
claim_batch = 2000
max_claimed_per_route = {4 * BINDS * WINDOW}

[[esmes]]
name = "sim"
host = "127.0.0.1"
port = {sim_port}
system_id = "dispatch"
password = "secret"
binds = {BINDS}
window = {WINDOW}
""")
    return path


def _create_campaign(config: StoreConfig, source: Path) -> int:
    """Created Sending directly (approved, auto start) through the store, as the API would."""
    import trio

    from dispatch.campaigns.service import CampaignService, ServiceConfig
    from dispatch.engine.core import utc_now
    from dispatch.store.asyncstore import AsyncStore

    async def create() -> int:
        store = AsyncStore(open_store(config, node_id="bench-admin"))
        service = CampaignService(store, ServiceConfig(), utc_now)
        c = await service.create(Campaign(sender="Bench", text="Hello", author="bench",
                                          esme="sim", source_path=str(source)))
        assert c.id is not None
        await service.approve(c.id, "bench", auto_start=True)
        await store.aclose()
        return c.id

    return trio.run(create)


def _counters(config: StoreConfig, cid: int) -> tuple[int, int]:
    """(sent, delivered) as committed."""
    sql = "SELECT sent, delivered FROM campaign_counters WHERE campaign_id = "
    if config.dsn:
        with psycopg.connect(config.dsn, autocommit=True) as conn:
            row = conn.execute(sql + "%s", (cid,)).fetchone()
    else:
        con = sqlite3.connect(f"file:{config.path}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(sql + "?", (cid,)).fetchone()
        finally:
            con.close()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _run_variant(work: Path, v: Variant, count: int, pg: Any | None) -> Variant:
    work.mkdir(parents=True)
    source = work / "recipients.txt"
    _write_numbers(source, count)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH__")}
    log = open(work / "processes.log", "wb")  # noqa: SIM115
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        port_file = work / "sim.port"
        procs["simulator"] = subprocess.Popen(
            [sys.executable, "-m", "dispatch.simulator", "--port", "0", "--no-log",
             "--port-file", str(port_file)], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert time.monotonic() < deadline and procs["simulator"].poll() is None
            time.sleep(0.02)
        sim_port = int(port_file.read_text())
        dsn = pg.create_database(f"bench_{v.name.replace('-', '_')}") if pg else None
        names = [f"node{i + 1}" for i in range(v.nodes)]
        store_config = (StoreConfig(path="", dsn=dsn) if dsn else
                        StoreConfig(path=str(work / names[0] / "dispatch.sqlite3")))
        if dsn:  # schema first, so the nodes do not race to create it (they would wait)
            open_store(store_config, node_id="bench-admin").close()
        for name in names:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "dispatch.cli", "serve", "--config",
                 str(_node_toml(work, name, sim_port, dsn))], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 60
        while True:  # every node up (registered live, or the SQLite file created)
            for name in names:
                assert procs[name].poll() is None, (work / "processes.log").read_text()[-3000:]
            if dsn:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    row = conn.execute("SELECT COUNT(*) FROM cluster_nodes "
                                       "WHERE state = 'live'").fetchone()
                if row and row[0] == v.nodes:
                    break
            elif Path(store_config.path).exists():
                break
            assert time.monotonic() < deadline, "nodes did not come up"
            time.sleep(0.05)
        time.sleep(1.0)  # binds up
        cid = _create_campaign(store_config, source)
        cpu_parts: dict[str, Callable[[], float]] = {
            name: _process_cpu(procs[name].pid) for name in ("simulator", *names)}
        if pg is not None:
            postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
            cpu_parts["postgres"] = lambda: _tree_cpu_s(postmaster, with_reaped=True)
        deadline = time.monotonic() + max(120.0, count / 500)
        while _counters(store_config, cid)[0] == 0:
            assert time.monotonic() < deadline, "nothing sent"
            time.sleep(0.02)
        t0, cpu0 = time.perf_counter(), {k: f() for k, f in cpu_parts.items()}
        while _counters(store_config, cid)[1] < count:
            for name in names:
                assert procs[name].poll() is None, (work / "processes.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "campaign did not finish"
            time.sleep(0.02)
        v.wall_s = time.perf_counter() - t0
        v.cpu_s = {k: f() - cpu0[k] for k, f in cpu_parts.items()}
        v.messages = count
        if dsn:
            with psycopg.connect(dsn, autocommit=True) as conn:
                v.per_node = dict(conn.execute(
                    "SELECT lease_owner, COUNT(*) FROM recipients GROUP BY 1").fetchall())
                row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                   "WHERE relid = 'recipients'::regclass").fetchone()
                v.hot_updates = (int(row[0]), int(row[1])) if row else (0, 0)
        return v
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    module = _pg_cluster()
    if module.find_bin_dir() is None:
        if os.environ.get("DISPATCH_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL binaries not found")
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql-15)")
    with module.PgCluster.start_new(settings=PG_SETTINGS) as server:
        yield server


def test_bench_cluster_scaling(benchmark: Any, request: pytest.FixtureRequest, tmp_path: Path,
                               pg: Any) -> None:
    disabled = request.config.getoption("benchmark_disable")
    count = 2_000 if disabled else 60_000
    variants = [Variant("sqlite-1", 1), Variant("postgres-1", 1), Variant("postgres-2", 2),
                Variant("postgres-3", 3)]

    def once() -> None:
        for v in variants:
            _run_variant(tmp_path / v.name, v, count, None if v.name.startswith("sqlite")
                         else pg)

    benchmark.pedantic(once, rounds=1, iterations=1)
    print(f"\ncluster throughput, {count} recipients per variant, {BINDS}x{WINDOW} per node, "
          f"{os.cpu_count()} cores; CPU in us per message")
    print(f"{'variant':12s} {'msg/s':>8s} {'engines':>8s} {'postgres':>9s} {'simulator':>9s} "
          f"{'HOT':>5s}")
    for v in variants:
        engines = sum(v.cpu_us_per_message(f"node{i + 1}") for i in range(v.nodes))
        print(f"{v.name:12s} {v.rate:8.0f} {engines:8.1f} "
              f"{v.cpu_us_per_message('postgres'):9.1f} "
              f"{v.cpu_us_per_message('simulator'):9.1f} "
              f"{v.hot_updates[1] / max(1, v.hot_updates[0]):5.0%}")
        benchmark.extra_info[f"{v.name} msg/s"] = round(v.rate)
        benchmark.extra_info[f"{v.name} engine us/msg"] = round(engines, 1)
        benchmark.extra_info[f"{v.name} postgres us/msg"] = round(
            v.cpu_us_per_message("postgres"), 1)
        benchmark.extra_info[f"{v.name} simulator us/msg"] = round(
            v.cpu_us_per_message("simulator"), 1)
    for v in variants:
        assert v.messages == count and v.rate > 0
        if v.nodes > 1 and not disabled:  # every node took part (a smoke run's campaign
            # is one claim batch: the first node may take it all)
            assert len([n for n in v.per_node if n and n.startswith("node")]) == v.nodes, \
                v.per_node
