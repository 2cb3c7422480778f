"""Soak runs of a real engine process (``python -m dispatch.cli serve``) against the built-in
simulator running in this process, over loopback: the bounded CI tests
(tests/hardening/test_crash_soak.py, test_load_soak.py) call these functions, and the long
runs are started by hand:

    .venv/bin/python tests/hardening/soak.py crash --kills 100 --count 500000
    .venv/bin/python tests/hardening/soak.py load --campaigns 20 --per-campaign 200000

Each prints its report as one JSON object (and exits 1 if a promise was broken).

Crash soak: one long campaign; the engine is SIGKILLed at random moments (including during
start-up and recovery) and started again, N times; the last engine runs it to the end. Then an
exact reconciliation against the simulator's own log: every recipient of the file is in the
store; nobody was accepted by the SMSC twice; a recipient is Delivered iff the SMSC accepted it,
except those counted ambiguous (the configured at-most-once recovery policy); and every receipt
the SMSC sent reached the store (matched to its recipient, or parked as unmatched when the
engine died before it stored the message id), since the simulator redelivers every deliver_sm
the engine had not answered -- and the engine answers only after the store committed it.

Load soak: campaign after campaign at full rate on one engine process, sampling its RSS and
open file descriptors from /proc; after a warm-up campaign, RSS may grow only by what SQLite's
page cache legitimately takes (bounded by the database's growth), and the descriptor count
returns to its baseline when the engine is idle.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.engine.core import utc_now
from dispatch.simulator import SimulatorConfig, SmscSimulator, destination_hash
from dispatch.simulator import run as run_simulator
from dispatch.smpp.receipt import normalize_message_id
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.sqlite import SqliteStore

KEY = "00112233445566778899aabbccddeeff"
MAX_CLAIMED = 500
GROUP_COMMIT_ROWS = 2000


def write_numbers(path: Path, count: int, seed: int, prefix: str = "7900") -> list[str]:
    """``count`` distinct valid numbers, one a line; returns their digits."""
    rng = random.Random(seed)
    digits = rng.sample(range(10**7), count)
    numbers = [f"{prefix}{d:07d}" for d in digits]
    path.write_text("".join(f"+{n}\n" for n in numbers))
    return numbers


def engine_toml(workdir: Path, port: int, *, binds: int = 2, window: int = 64,
                tps: float = 0) -> Path:
    path = workdir / "engine.toml"
    path.write_text(f"""
data_dir = "{workdir / 'var'}"
hash_key_hex = "{KEY}"
api_enabled = false
log_format = "json"

[store]
recovery_policy = "mark_unknown"
group_commit_rows = {GROUP_COMMIT_ROWS}

[scheduler]
control_interval_s = 0.05
claim_batch = 200
max_claimed_per_route = {MAX_CLAIMED}

[[esmes]]
name = "sim"
host = "127.0.0.1"
port = {port}
system_id = "dispatch"
password = "secret"
binds = {binds}
window = {window}
tps = {tps}
""")
    return path


def _engine_starts(workdir: Path) -> int:
    """How many engines have logged "engine started" into the soak's engine log so far."""
    return (workdir / "engine.log").read_bytes().count(b"engine started")


def db_path(workdir: Path) -> str:
    return str(workdir / "var" / "dispatch.sqlite3")


async def create_campaign(db: str, source: Path, text: str = "Soak hello") -> int:
    """Create and approve (auto-start) a campaign in the store; a running engine's control
    loop picks it up (SQLite WAL: this connection and the engine's write in turn)."""
    store = AsyncStore(SqliteStore(StoreConfig(path=db, busy_timeout_s=30)))
    try:
        service = CampaignService(store, ServiceConfig(), utc_now)
        campaign = await service.create(Campaign(sender="Shop", text=text, author="soak",
                                                 esme="sim", source_path=str(source)))
        assert campaign.id is not None
        await service.approve(campaign.id, "soak", auto_start=True)
        return campaign.id
    finally:
        await store.aclose()


def read_only(db: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def campaign_status(db: str, cid: int) -> str | None:
    try:
        con = read_only(db)
    except sqlite3.OperationalError:
        return None
    try:
        row = con.execute("SELECT status FROM campaigns WHERE id = ?", (cid,)).fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def engine_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH__")}


def serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "dispatch.cli", "serve", "--config", str(config)]


# ---------------------------------------------------------------------- crash soak


@dataclass
class CrashSoakReport:
    count: int
    kills: int
    kill_delays_s: list[float]
    elapsed_s: float = 0.0
    smsc_accepted: int = 0
    sent_twice: int = 0
    lost: int = 0  # recipients of the file missing from the store
    wrong_stage: int = 0  # Delivered without an SMSC accept, or accepted but not Delivered
    ambiguous: int = 0
    ambiguous_sent: int = 0  # ambiguous ones the SMSC had in fact accepted
    counters_ok: bool = False
    receipts_sent: int = 0  # first deliveries by the simulator
    redeliveries: int = 0
    receipts_abandoned: int = 0
    receipts_matched: int = 0
    receipts_parked: int = 0  # unmatched, kept (their submit's message id died with an engine)
    receipts_missing: int = 0
    tracebacks: int = 0  # in the engines' logs
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _receipt_ledger(db: str, cid: int, accepted_ids: list[str]) -> tuple[int, int, int]:
    """For each message id the SMSC accepted: (receipt matched to its recipient, parked
    unmatched, missing)."""
    con = read_only(db)
    try:
        have = {mid: result for mid, result in con.execute(
            "SELECT m.message_id, r.sms_result FROM message_ids m JOIN recipients r "
            "ON r.id = m.recipient_id WHERE m.esme = 'sim' AND r.campaign_id = ?", (cid,))}
        parked = {mid for (mid,) in con.execute(
            "SELECT message_id FROM unmatched_receipts WHERE esme = 'sim'")}
    finally:
        con.close()
    matched = parked_n = missing = 0
    for mid in accepted_ids:
        if have.get(mid) is not None:
            matched += 1
        elif mid in parked:
            parked_n += 1
        else:
            missing += 1
    return matched, parked_n, missing


async def crash_soak(workdir: Path, *, kills: int, count: int, seed: int = 1,
                     min_delay_s: float = 0.1, max_delay_s: float = 2.5,
                     early_kill_share: float = 0.2,
                     limit_s: float = 300.0, log: TextIO | None = None) -> CrashSoakReport:
    """Kill -9 a real engine ``kills`` times at random moments over one campaign of ``count``
    recipients, let the last one finish it, and reconcile (see the module doc). A kill comes
    ``min_delay_s``..``max_delay_s`` after the campaign is seen Sending, or, for
    ``early_kill_share`` of them, 0.05 s..``max_delay_s`` after the engine was started."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    numbers = write_numbers(workdir / "r.txt", count, seed)
    db = db_path(workdir)
    started = time.monotonic()
    report = CrashSoakReport(count, kills, [])
    engine_log = open(workdir / "engine.log", "wb")  # noqa: SIM115 - closed below
    try:
        async with trio.open_nursery() as nursery:
            sim: SmscSimulator = await nursery.start(run_simulator, SimulatorConfig(
                port=0, response_latency_s=0.002, receipt_delay_s=0.3,
                deliver_resp_timeout_s=2.0, redelivery_delay_s=0.3, deliver_max_attempts=0,
                max_log_records=max(200_000, 2 * count)))
            # A TPS contract that makes the campaign outlast the kills (each lands ~the mean
            # delay into sending, half again for margin): at full rate a fast engine finished
            # it early and the remaining kills waited for a Sending that never came.
            tps = max(50.0, count / (kills * (min_delay_s + max_delay_s) / 2 * 1.5))
            config = engine_toml(workdir, sim.port, tps=round(tps, 1))
            cid = await create_campaign(db, workdir / "r.txt")
            cmd = serve_command(config)
            with trio.fail_after(limit_s):
                for i in range(kills):
                    proc = await trio.lowlevel.open_process(cmd, stdout=engine_log,
                                                            stderr=engine_log, env=engine_env())
                    try:
                        # Most kills land while the campaign sends; one in five anywhere
                        # from start-up on (recovery, building, binding).
                        anywhere = rng.random() < early_kill_share
                        delay = rng.uniform(0.05 if anywhere else min_delay_s, max_delay_s)
                        if not anywhere:
                            with trio.move_on_after(limit_s / 4):
                                while (campaign_status(db, cid) not in (
                                        CampaignStatus.SENDING.value, CampaignStatus.DONE.value)
                                       and proc.poll() is None):
                                    await trio.sleep(0.05)
                        report.kill_delays_s.append(round(delay, 3))
                        await trio.sleep(delay)
                        if proc.poll() is not None:
                            report.problems.append(f"engine {i} exited on its own "
                                                   f"(code {proc.returncode})")
                            break
                    finally:
                        proc.send_signal(signal.SIGKILL)
                        await proc.wait()
                    if log:
                        print(f"kill {i + 1}/{kills} after {delay:.2f} s: "
                              f"{sim.stats.submits} submits", file=log, flush=True)
                engine_log.flush()
                starts_before = _engine_starts(workdir)
                proc = await trio.lowlevel.open_process(cmd, stdout=engine_log,
                                                        stderr=engine_log, env=engine_env())
                try:
                    while campaign_status(db, cid) != CampaignStatus.DONE.value:
                        if proc.poll() is not None:
                            raise RuntimeError("the last engine exited on its own")
                        await trio.sleep(0.1)
                    accepted_ids = [normalize_message_id(r.message_id)
                                    for r in sim.stats.submit_log if r.command_status == 0]
                    # Every receipt the SMSC sent must reach the store (bounded wait).
                    with trio.move_on_after(30):
                        while (_receipt_ledger(db, cid, accepted_ids)[2]
                               or sim.pending_deliveries()):
                            await trio.sleep(0.2)
                    # The campaign may have been finished by the engine before: this one
                    # is then still starting. A SIGTERM before Python has installed the
                    # engine's handler would kill it by default, which is not what is tested.
                    with trio.move_on_after(30):
                        while _engine_starts(workdir) <= starts_before and proc.poll() is None:
                            await trio.sleep(0.05)
                    proc.send_signal(signal.SIGTERM)
                    with trio.fail_after(30):
                        code = await proc.wait()
                    if code != 0:
                        report.problems.append(f"the last engine exited with {code}")
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        await proc.wait()
            nursery.cancel_scope.cancel()
    finally:
        engine_log.close()
    report.elapsed_s = round(time.monotonic() - started, 2)
    _reconcile_crash(report, sim, db, cid, numbers, accepted_ids)
    report.tracebacks = (workdir / "engine.log").read_bytes().count(b"Traceback")
    if report.tracebacks:
        report.problems.append(f"{report.tracebacks} tracebacks in the engine logs")
    return report


def _reconcile_crash(report: CrashSoakReport, sim: SmscSimulator, db: str, cid: int,
                     numbers: list[str], accepted_ids: list[str]) -> None:
    store = SqliteStore(StoreConfig(path=db))
    try:
        c = store.counters(cid)
        rows = store._db.execute(  # a reconciliation reads every row; no public bulk read
            "SELECT number, stage, ambiguous FROM recipients WHERE campaign_id = ?",
            (cid,)).fetchall()
    finally:
        store.close()
    accepted = Counter(r.destination_hash for r in sim.stats.submit_log if r.command_status == 0)
    report.smsc_accepted = sum(accepted.values())
    report.sent_twice = sum(1 for n in accepted.values() if n > 1)
    report.lost = len(set(numbers) - {r[0] for r in rows})
    for number, stage, is_ambiguous in rows:
        sent = accepted.get(destination_hash(number), 0)
        if is_ambiguous:
            report.ambiguous += 1
            report.ambiguous_sent += sent
            if stage != "Failed":
                report.wrong_stage += 1
        elif stage != "Delivered" or sent != 1:
            report.wrong_stage += 1
    report.counters_ok = (c.total == len(numbers) == len(rows)
                          and c.ambiguous == report.ambiguous
                          and c.sent == len(numbers) - report.ambiguous
                          and c.pending == c.inflight == 0)
    st = sim.stats
    report.receipts_sent, report.redeliveries = st.receipts_sent, st.redeliveries
    report.receipts_abandoned = st.deliver_abandoned
    report.receipts_matched, report.receipts_parked, report.receipts_missing = _receipt_ledger(
        db, cid, accepted_ids)
    bound = report.kills * (MAX_CLAIMED + GROUP_COMMIT_ROWS)
    checks = [
        (report.lost == 0, f"{report.lost} recipients lost"),
        (report.sent_twice == 0, f"{report.sent_twice} recipients accepted twice"),
        (report.wrong_stage == 0, f"{report.wrong_stage} recipients in a wrong stage"),
        (report.counters_ok, f"counters disagree with the rows: {c}"),
        (report.ambiguous <= bound, f"{report.ambiguous} ambiguous > bound {bound}"),
        (report.receipts_missing == 0, f"{report.receipts_missing} receipts never stored"),
        (report.receipts_abandoned == 0, f"{report.receipts_abandoned} receipts abandoned"),
        (report.receipts_matched + report.receipts_parked == report.smsc_accepted,
         "receipt ledger does not cover every accepted submit"),
    ]
    report.problems.extend(msg for ok, msg in checks if not ok)


# ---------------------------------------------------------------------- load soak


def process_sample(pid: int) -> tuple[int, int]:
    """(resident set in bytes, open file descriptors) of a live process, from /proc."""
    rss_kib = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
                break
    return rss_kib * 1024, len(os.listdir(f"/proc/{pid}/fd"))


def _db_bytes(db: str) -> int:
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


@dataclass
class LoadSample:
    campaign: int  # campaigns completed when sampled
    messages: int  # submits the SMSC saw so far
    elapsed_s: float
    rss_bytes: int
    fds: int
    db_bytes: int


@dataclass
class LoadSoakReport:
    campaigns: int
    per_campaign: int
    messages: int = 0
    elapsed_s: float = 0.0
    busy_s: float = 0.0  # from each campaign's creation to its last receipt stored
    rate_msg_s: float = 0.0  # messages / busy_s (build, send and receipts included)
    baseline_fds: int = 0  # idle, after the warm-up campaign
    final_fds: int = 0  # idle, after the last campaign
    max_fds: int = 0
    warm_rss_bytes: int = 0  # idle, after the warm-up campaign
    final_rss_bytes: int = 0
    max_rss_bytes: int = 0
    db_growth_bytes: int = 0  # after warm-up: what SQLite's page cache may legitimately add
    rss_growth_bytes: int = 0
    rss_growth_beyond_cache_bytes: int = 0
    sent_twice: int = 0
    delivered: int = 0
    samples: list[LoadSample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _delivered(db: str) -> int:
    con = read_only(db)
    try:
        return int(con.execute("SELECT COALESCE(SUM(delivered), 0) FROM campaign_counters")
                   .fetchone()[0])
    finally:
        con.close()


async def load_soak(workdir: Path, *, campaigns: int, per_campaign: int, seed: int = 1,
                    rss_margin_bytes: int = 24 << 20, fd_slack: int = 2,
                    sample_every_s: float = 0.5, limit_s: float = 600.0,
                    log_submits: bool = True,
                    on_sample: Callable[[LoadSample], None] | None = None) -> LoadSoakReport:
    """Run ``campaigns`` campaigns of ``per_campaign`` recipients one after the other at full
    rate on one engine process; sample RSS and descriptors (see the module doc). The first
    campaign is the warm-up (imports, caches, binds); growth is measured from its end."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = db_path(workdir)
    report = LoadSoakReport(campaigns, per_campaign)
    started = time.monotonic()
    engine_log = open(workdir / "engine.log", "wb")  # noqa: SIM115 - closed below
    try:
        async with trio.open_nursery() as nursery:
            sim: SmscSimulator = await nursery.start(run_simulator, SimulatorConfig(
                port=0, log_submits=log_submits,
                max_log_records=max(200_000, campaigns * per_campaign)))
            config = engine_toml(workdir, sim.port, binds=2, window=256)
            proc = await trio.lowlevel.open_process(serve_command(config), stdout=engine_log,
                                                    stderr=engine_log, env=engine_env())
            done = 0

            def sample() -> LoadSample:
                rss, fds = process_sample(proc.pid)
                s = LoadSample(done, sim.stats.submits, round(time.monotonic() - started, 2),
                               rss, fds, _db_bytes(db))
                report.samples.append(s)
                report.max_rss_bytes = max(report.max_rss_bytes, rss)
                report.max_fds = max(report.max_fds, fds)
                if on_sample:
                    on_sample(s)
                return s

            async def sampler() -> None:
                while True:
                    await trio.sleep(sample_every_s)
                    if proc.poll() is None:
                        sample()

            try:
                with trio.fail_after(limit_s):
                    nursery.start_soon(sampler)
                    warm: LoadSample | None = None
                    for i in range(campaigns):
                        source = workdir / f"r{i}.txt"
                        write_numbers(source, per_campaign, seed + i, prefix=f"79{i % 100:02d}")
                        t0 = time.monotonic()
                        cid = await create_campaign(db, source)
                        while campaign_status(db, cid) != CampaignStatus.DONE.value:
                            if proc.poll() is not None:
                                raise RuntimeError("the engine exited on its own")
                            await trio.sleep(0.1)
                        # Receipts trail the submits: idle means every one is stored.
                        while _delivered(db) < (i + 1) * per_campaign:
                            await trio.sleep(0.1)
                        report.busy_s += time.monotonic() - t0
                        await trio.sleep(1.0)  # idle: binds only, nothing in flight
                        done = i + 1
                        idle = sample()
                        if warm is None:
                            warm = idle
                    assert warm is not None
                    last = report.samples[-1]
                    proc.send_signal(signal.SIGTERM)
                    with trio.fail_after(30):
                        code = await proc.wait()
                    if code != 0:
                        report.problems.append(f"engine exited with {code}")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    await proc.wait()
            nursery.cancel_scope.cancel()
    finally:
        engine_log.close()
    report.elapsed_s = round(time.monotonic() - started, 2)
    report.messages = sim.stats.submits
    report.busy_s = round(report.busy_s, 2)
    report.rate_msg_s = round(report.messages / max(1e-3, report.busy_s))
    report.baseline_fds, report.final_fds = warm.fds, last.fds
    report.warm_rss_bytes, report.final_rss_bytes = warm.rss_bytes, last.rss_bytes
    report.db_growth_bytes = last.db_bytes - warm.db_bytes
    report.rss_growth_bytes = last.rss_bytes - warm.rss_bytes
    # SQLite's page cache (64 MiB at most) holds database pages: it grows with the file.
    cache_room = min(report.db_growth_bytes, 64 << 20)
    report.rss_growth_beyond_cache_bytes = report.rss_growth_bytes - cache_room
    report.delivered = _delivered(db)
    if log_submits:
        report.sent_twice = sum(1 for n in sim.stats.accepted_by_destination().values() if n > 1)
    checks = [
        (report.messages == campaigns * per_campaign,
         f"{report.messages} submits for {campaigns * per_campaign} recipients"),
        (report.delivered == campaigns * per_campaign, f"{report.delivered} delivered"),
        (report.sent_twice == 0, f"{report.sent_twice} sent twice"),
        (report.final_fds <= report.baseline_fds + fd_slack,
         f"descriptors grew from {report.baseline_fds} to {report.final_fds}"),
        (report.rss_growth_beyond_cache_bytes <= rss_margin_bytes,
         f"RSS grew {report.rss_growth_bytes >> 20} MiB after warm-up, "
         f"{report.rss_growth_beyond_cache_bytes >> 20} MiB beyond the page cache"),
    ]
    report.problems.extend(msg for ok, msg in checks if not ok)
    return report


# ---------------------------------------------------------------------- command line


def _print(report: Any, out: TextIO = sys.stdout) -> None:
    data = asdict(report)
    data["ok"] = report.ok
    if "samples" in data and len(data["samples"]) > 40:  # keep the JSON readable
        step = len(data["samples"]) // 40 + 1
        data["samples"] = [*data["samples"][::step], data["samples"][-1]]
    json.dump(data, out, indent=1)
    out.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    crash = sub.add_parser("crash", help="SIGKILL/restart loop over one long campaign")
    crash.add_argument("--kills", type=int, default=100)
    crash.add_argument("--count", type=int, default=300_000)
    crash.add_argument("--max-delay-s", type=float, default=4.0)
    load = sub.add_parser("load", help="campaign after campaign at full rate; RSS and fds")
    load.add_argument("--campaigns", type=int, default=20)
    load.add_argument("--per-campaign", type=int, default=100_000)
    for p in (crash, load):
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--workdir", type=Path, default=None,
                       help="kept after the run (default: a fresh temporary directory)")
        p.add_argument("--limit-s", type=float, default=6 * 3600)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(
        os.environ.get("TMPDIR", "/tmp")) / f"dispatch-soak-{args.what}-{os.getpid()}"
    if args.what == "crash":
        report: Any = trio.run(lambda: crash_soak(
            workdir, kills=args.kills, count=args.count, seed=args.seed,
            max_delay_s=args.max_delay_s, limit_s=args.limit_s, log=sys.stderr))
    else:
        def show(s: LoadSample) -> None:
            print(f"{s.elapsed_s:8.1f} s  campaigns {s.campaign}  submits {s.messages}  "
                  f"rss {s.rss_bytes >> 20} MiB  fds {s.fds}  db {s.db_bytes >> 20} MiB",
                  file=sys.stderr, flush=True)
        report = trio.run(lambda: load_soak(
            workdir, campaigns=args.campaigns, per_campaign=args.per_campaign,
            seed=args.seed, limit_s=args.limit_s, log_submits=False, sample_every_s=5.0,
            on_sample=show))
    _print(report)
    print(f"workdir: {workdir}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
