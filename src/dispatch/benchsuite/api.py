"""Section ``api``: control API latency under load while the engine dispatches at full rate,
and what that load costs the dispatch rate (issue 5, "Benchmark"; DESIGN.md "Bars").

Runs of the same campaign, each on a fresh engine (same store contents: the campaign plus
``LIST_CAMPAIGNS`` others so the list has something to sort), one simulator process shared,
in ``REPEATS`` alternated pairs (the rates are over all runs of a variant):

1. baseline: the API is up but idle; the dispatch rate is measured;
2. loaded: a load process (``dispatch.benchsuite.httpload``, its own process so its CPU is
   not charged to the engine's loop) offers ``rps`` requests/s, alternating campaign detail
   (``GET /api/v1/campaigns/{id}``, the one being sent) and list
   (``GET /api/v1/campaigns?limit=50``) over real HTTP/1.1 keep-alive connections. The load
   first runs ``IDLE_S`` against the engine before the campaign is approved: those requests
   are the latency baseline ("engine idle"); then the dispatch rate and the latencies of the
   requests due inside the Sending period are measured. The engine's event-loop lag is
   sampled in both runs (how late a 10 ms sleep wakes: a floor under every request).

Where the CPU goes: the engine, the simulator and the load generator share the machine's
cores, so a slowdown can be per-request cost on the engine's loop or plain competition for
the cores. A sampler reads the CPU time of all three processes (``/proc/<pid>/stat``; the
engine's own ``time.process_time``) every ``CPU_SAMPLE_S``, and the section reports, for each run, each
process's share of a core while the campaign sends, the engine's CPU per message, and the
engine's CPU per API request: on the idle engine (CPU of the load window minus the same
engine's CPU without load, per answered request) and while dispatching (the loaded run's
engine CPU minus the baseline run's, per message sent, times the messages, per request).

``DISPATCH_BENCH_API_SERVER=hypercorn`` runs the engine's API on hypercorn's trio worker
instead of the built-in server (``[control] server``), to compare the two side by side.

Targets: p99 < 50 ms on both endpoints, and the loaded dispatch rate within 10% of the
baseline. The load is open-loop at a fixed offered rate (a Message Center with many operators
polling), not a saturation test: the question is whether the API stays responsive and cheap
while sending, not how many requests the engine's one loop can serve instead of sending.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import trio

from control.keys import KeyStore
from dispatch.benchsuite.campaign import (
    ACTOR,
    ROUTE,
    CampaignRun,
    engine_config,
    run_campaign,
    store_pid,
    with_engine,
    write_recipients,
)
from dispatch.benchsuite.httpload import KEY_ENV, MAX_CONNECTIONS
from dispatch.benchsuite.options import SuiteConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult, Series, percentile
from dispatch.benchsuite.sampler import distribution
from dispatch.benchsuite.simproc import SimulatorProcess
from dispatch.campaigns.model import Campaign
from dispatch.engine.core import Engine

# quick: long enough (~2 s of sending) that the loaded window holds ~100 requests, not ~25
RECIPIENTS = {"quick": 20_000, "full": 100_000}
#: Pairs of runs (without, with API load), alternated; the rates are over all of them.
REPEATS = {"quick": 1, "full": 2}
DEFAULT_RPS = {"quick": 50.0, "full": 200.0}
LIST_CAMPAIGNS = 50
ENDPOINTS = ("campaign detail", "campaign list")
P99_TARGET_MS = 50.0
SLOWDOWN_TARGET_PCT = 10.0
LOAD_START_TIMEOUT_S = 30.0
#: seconds of API load on the idle engine before the campaign starts: the latency baseline
IDLE_S = {"quick": 1.0, "full": 5.0}
#: Reading /proc costs the engine's loop ~0.2-0.5 ms a sample on the reference machine: a
#: sample every 0.2 s keeps that under 0.3% of the loop; window ends are interpolated.
CPU_SAMPLE_S = 0.2
SERVER_ENV = "DISPATCH_BENCH_API_SERVER"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``), None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


@dataclass(slots=True)
class CpuSampler:
    """CPU seconds of the engine (this process) and of the helper processes over time."""

    pids: dict[str, Callable[[], int | None]]
    t: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def sample(self) -> None:
        self.t.append(time.monotonic())
        self.cpu.setdefault("engine", []).append(time.process_time())
        for name, pid_of in self.pids.items():
            pid = pid_of()
            value = proc_cpu_s(pid) if pid is not None else None
            self.cpu.setdefault(name, []).append(float("nan") if value is None else value)

    async def run(self) -> None:
        while True:
            self.sample()
            await trio.sleep(CPU_SAMPLE_S)

    def between(self, name: str, t0: float, t1: float) -> float:
        """CPU seconds ``name`` used from ``t0`` to ``t1``, each end interpolated linearly
        between the two samples around it (clamped to the first and last); nan if unknown."""
        return self._at(name, t1) - self._at(name, t0)

    def _at(self, name: str, t: float) -> float:
        series = self.cpu.get(name)
        if not series or not self.t:
            return float("nan")
        i = bisect.bisect_right(self.t, t)
        if i == 0:
            return series[0]
        if i == len(self.t):
            return series[-1]
        t_a, t_b = self.t[i - 1], self.t[i]
        share = (t - t_a) / (t_b - t_a) if t_b > t_a else 0.0
        return series[i - 1] + (series[i] - series[i - 1]) * share


@dataclass(slots=True)
class LoadResult:
    records: list[list[float]] = field(default_factory=list)
    errors: int = 0
    idle: tuple[float, float] = (0.0, 0.0)  # the idle-engine window (time.monotonic())
    cpu_s: float = 0.0  # the generator's own CPU, all of its run
    #: the engine's CPU seconds: idle without load for ``quiet_s``, idle under load
    quiet_cpu_s: float = 0.0
    quiet_s: float = 0.0
    idle_cpu_s: float = 0.0
    cache_hits: int = 0  # the engine's API read cache over the whole run
    cache_misses: int = 0


class LoadProcess:
    """The httpload child: started before the campaign, stopped by closing its stdin."""

    def __init__(self, port: int, key: str, rps: float, paths: list[str]) -> None:
        self.argv = [sys.executable, "-m", "dispatch.benchsuite.httpload", "--port", str(port),
                     "--rps", str(rps), *paths]
        self.env = dict(os.environ, **{KEY_ENV: key})
        self.proc: trio.Process | None = None
        self.idle_from = 0.0  # the idle-engine baseline window (time.monotonic())
        self.idle_until = 0.0

    async def start(self) -> None:
        self.proc = await trio.lowlevel.open_process(self.argv, env=self.env,
                                                     stdin=subprocess.PIPE,
                                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        with trio.fail_after(LOAD_START_TIMEOUT_S):
            line = await self._read_line()
        if line.strip() != b"ready":
            raise RuntimeError(f"load generator did not start: {line[:200]!r}")

    async def _read_line(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        out = bytearray()
        while not out.endswith(b"\n"):
            chunk = await self.proc.stdout.receive_some(1)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    async def stop(self) -> LoadResult:
        assert self.proc is not None and self.proc.stdin is not None
        assert self.proc.stdout is not None
        await self.proc.stdin.aclose()
        data = bytearray()
        with trio.fail_after(60):
            while chunk := await self.proc.stdout.receive_some(1 << 16):
                data += chunk
            await self.proc.wait()
        doc = json.loads(data)
        return LoadResult(doc["records"], int(doc["errors"]), (self.idle_from, self.idle_until),
                          float(doc.get("cpu_s", 0.0)))

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


async def _populate(engine: Engine) -> None:
    """Campaigns in New beside the measured one, so the list query sorts a real page."""
    assert engine.service is not None
    for i in range(LIST_CAMPAIGNS):
        await engine.service.create(Campaign(sender=f"Shop{i % 7}", text="Sale today",
                                             author=ACTOR, esme=ROUTE, name=f"other {i}"))


def one_run(work: Path, sim_port: int, source: Path, progress: Progress | None, label: str,
            rps: float, idle_s: float = 0.0, sim_pid: int | None = None,
            ) -> tuple[CampaignRun, LoadResult | None, CpuSampler]:
    """One campaign on a fresh engine; with ``rps`` > 0 the engine idles ``idle_s`` without
    load (its own CPU), then the load runs ``idle_s`` against the idle engine (the latency
    baseline), then through the whole campaign. Returns the run, the load's records and the
    CPU samples of the engine, the simulator (``sim_pid``) and the load generator."""
    config = engine_config(work / "var", sim_port, api=True)
    server = os.environ.get(SERVER_ENV)
    if server:
        config = replace(config, control=replace(config.control, server=server))
    key, _ = KeyStore(config.control.keys_path).create_key("viewer", label="bench")
    load: list[LoadProcess] = []
    quiet: list[float] = []  # engine CPU seconds, seconds: idle, no load

    def load_pid() -> int | None:
        return load[0].proc.pid if load and load[0].proc is not None else None

    store_pids: list[int | None] = [None]  # the engine's, once it runs
    cpu = CpuSampler({"simulator": lambda: sim_pid, "store process": lambda: store_pids[0],
                      "load generator": load_pid})

    async def body(engine: Engine) -> tuple[CampaignRun, LoadResult | None, CpuSampler]:
        store_pids[0] = store_pid(engine)
        await _populate(engine)
        assert engine.api_port is not None

        async def start_load(external_id: str) -> None:
            if rps > 0:
                t0, c0 = time.monotonic(), time.process_time()
                await trio.sleep(idle_s)  # the idle engine's own CPU, for the figure below
                quiet.extend([time.process_time() - c0, time.monotonic() - t0])
                proc = LoadProcess(engine.api_port or 0, key, rps,
                                   [f"/api/v1/campaigns/{external_id}",
                                    "/api/v1/campaigns?limit=50"])
                load.append(proc)
                await proc.start()
                proc.idle_from = time.monotonic()
                c1 = time.process_time()
                if progress is not None:
                    progress.update(f"{label}: API load on the idle engine")
                await trio.sleep(idle_s)
                proc.idle_until = time.monotonic()
                quiet.append(time.process_time() - c1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cpu.run)
            try:
                run = await run_campaign(engine, source, progress, label,
                                         on_created=start_load)
                result = await load[0].stop() if load else None
            finally:
                for proc in load:
                    proc.kill()
            nursery.cancel_scope.cancel()
        cache = engine.api_app.read_cache if engine.api_app is not None else None
        if result is not None and cache is not None:
            result.cache_hits, result.cache_misses = cache.hits, cache.misses
        if result is not None and len(quiet) == 3:
            result.quiet_cpu_s, result.quiet_s, result.idle_cpu_s = quiet
        return run, result, cpu

    out: tuple[CampaignRun, LoadResult | None, CpuSampler] = trio.run(with_engine, config, body)
    return out


def _latency_figures(result: SectionResult, rows: list[list[float]], endpoint: str,
                     window_s: float, rps: float, group: str) -> list[float]:
    """requests/s served, dropped, p50/p99/max of the successful ones; their latencies."""
    ok = sorted(r[1] * 1e3 for r in rows if r[1] >= 0 and 200 <= int(r[3]) < 300)
    result.add("requests/s", endpoint, len(ok) / max(1e-9, window_s), "req/s",
               offered_rps=rps / len(ENDPOINTS), requests=len(rows))
    result.add("requests dropped or failed", endpoint, len(rows) - len(ok), "requests",
               share_pct=round(100 * (len(rows) - len(ok)) / max(1, len(rows)), 1))
    result.add("p50 latency", endpoint, percentile(ok, 50), "ms")
    result.add("p99 latency", endpoint, percentile(ok, 99), "ms")
    result.add("max latency", endpoint, ok[-1] if ok else float("nan"), "ms")
    result.series.append(distribution(endpoint, group, ok))
    return ok


def _api_figures(result: SectionResult, pairs: list[tuple[CampaignRun, LoadResult]],
                 rps: float) -> None:
    """Latencies of every loaded run's requests: the idle-engine window of each, and the
    requests due while its campaign was Sending."""
    inside = [r for run, load in pairs for r in load.records
              if run.sending_at <= r[0] <= run.ended_at]
    before = [r for _, load in pairs for r in load.records
              if load.idle[0] <= r[0] < load.idle[1]]
    idle_s = sum(load.idle[1] - load.idle[0] for _, load in pairs)
    sending_s = sum(run.ended_at - run.sending_at for run, _ in pairs)
    for index, endpoint in enumerate(ENDPOINTS):
        idle_variant = f"{endpoint} (engine idle)"
        _latency_figures(result, [r for r in before if int(r[2]) == index], idle_variant,
                         idle_s, rps, "api latency")
        rows = [r for r in inside if int(r[2]) == index]
        _latency_figures(result, rows, endpoint, sending_s, rps, "api latency")
        result.ratio("p99 latency", endpoint, idle_variant)
        timeline = Series(endpoint, "timeline", "ms", group="api latency over time")
        run, load = pairs[-1]
        for r in load.records:
            if int(r[2]) == index and r[1] >= 0 and run.sending_at <= r[0] <= run.ended_at:
                timeline.x.append(round(r[0] - run.sending_at, 3))
                timeline.y.append(round(r[1] * 1e3, 3))
        result.series.append(timeline)
    errors = sum(load.errors for _, load in pairs)
    if errors:
        result.notes.append(f"{errors} request(s) were dropped (all {MAX_CONNECTIONS} "
                            "connections of the generator busy: the server fell behind the "
                            "offered rate) or failed; latencies are of the answered ones")


def run(config: SuiteConfig, progress: Progress) -> SectionResult:
    return measure(RECIPIENTS[config.profile], config.api_rps or DEFAULT_RPS[config.profile],
                   progress, seed=config.seed, profile=config.profile)


def measure(count: int, rps: float, progress: Progress | None, *,
            seed: int = 3, profile: str = "quick") -> SectionResult:
    """The section's figures: a campaign of ``count`` recipients without and with ``rps``
    requests/s of API load."""
    result = SectionResult("api")
    result.config = {"recipients": count, "offered_rps": rps, "endpoints": list(ENDPOINTS),
                     "list_campaigns": LIST_CAMPAIGNS + 1, "load": "open loop, own process",
                     "p99_target_ms": P99_TARGET_MS, "slowdown_target_pct": SLOWDOWN_TARGET_PCT}
    result.config["server"] = os.environ.get(SERVER_ENV) or "builtin"
    result.config["pairs_of_runs"] = REPEATS[profile]
    runs: dict[str, list[CampaignRun]] = {"no API load": [], "under API load": []}
    cpu: dict[str, list[CpuSampler]] = {"no API load": [], "under API load": []}
    loads: list[LoadResult] = []
    idle_s = IDLE_S[profile]
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-api-") as tmp:
        work = Path(tmp)
        source = work / "recipients.txt"
        write_recipients(source, count, seed)
        with SimulatorProcess(receipts=True) as sim:
            sim_pid = sim.pid
            # Alternated, so drift over the section (the simulator's state, the machine's
            # other load) falls on both variants alike: one pair of runs differed by up to
            # 25% from the next on the reference machine with nothing changed.
            for rep in range(REPEATS[profile]):
                for variant, offered in (("no API load", 0.0), ("under API load", rps)):
                    one, load, sampler = one_run(
                        work / f"{variant.split()[0]}-{rep}", sim.port, source, progress,
                        variant, offered, idle_s if offered else 0.0, sim_pid=sim_pid)
                    runs[variant].append(one)
                    cpu[variant].append(sampler)
                    if load is not None:
                        loads.append(load)
    for variant, done in runs.items():
        sent = sum(r.counters.sent for r in done)
        send_s = sum(r.send_s for r in done)
        result.add("dispatch rate", variant, sent / send_s if send_s > 0 else 0.0, "msg/s",
                   runs=[round(r.msgs_per_s) for r in done], sent=sent,
                   send_s=round(send_s, 3))
        for r in done:
            result.series.append(r.sampler.throughput(variant, "api dispatch throughput"))
            c = r.counters
            if r.status != "Done" or c.sent != count:
                result.status = "failed"
                result.reason = f"{variant}: campaign ended {r.status}, sent {c.sent}/{count}"
    ratio = result.ratio("dispatch rate", "under API load", "no API load")
    if ratio is not None:
        result.add("dispatch slowdown under API load", "engine", (1 - ratio.value) * 100, "%")
    for variant, done in runs.items():
        lags = sorted(x for r in done for x in r.loop_lag.lags_ms)
        result.add("p99 event-loop lag", variant, percentile(lags, 99), "ms")
        result.add("max event-loop lag", variant, lags[-1] if lags else float("nan"), "ms")
    _api_figures(result, list(zip(runs["under API load"], loads, strict=True)), rps)
    _cpu_figures(result, runs, cpu, loads)
    return result


def _cpu_figures(result: SectionResult, runs: dict[str, list[CampaignRun]],
                 cpu: dict[str, list[CpuSampler]], loads: list[LoadResult]) -> None:
    """Where the cores went (see the module doc), summed over the runs of each variant."""
    per_msg: dict[str, float] = {}
    for variant, done in runs.items():
        window = sum(max(1e-9, r.ended_at - r.sending_at) for r in done)
        for name in ("engine", "store process", "simulator", "load generator"):
            used = sum(sampler.between(name, r.sending_at, r.ended_at)
                       for r, sampler in zip(done, cpu[variant], strict=True))
            if used == used:  # not nan
                result.add("CPU while sending", f"{name}, {variant}", 100 * used / window,
                           "% of a core", cpu_s=round(used, 3), window_s=round(window, 3))
        # the engine's CPU: its own process and its store's (nan: no store process)
        engine_s = sum(used for r, sampler in zip(done, cpu[variant], strict=True)
                       for name in ("engine", "store process")
                       if not math.isnan(used := sampler.between(name, r.sending_at,
                                                                 r.ended_at)))
        sent = sum(r.counters.sent for r in done)
        if sent:
            per_msg[variant] = engine_s / sent
            result.add("engine CPU per message", variant, per_msg[variant] * 1e6, "us")
    loaded = runs["under API load"]
    during = sum(1 for run, load in zip(loaded, loads, strict=True) for x in load.records
                 if x[1] >= 0 and run.sending_at <= x[0] <= run.ended_at)
    if len(per_msg) == 2 and during:
        sent = sum(r.counters.sent for r in loaded)
        added_s = (per_msg["under API load"] - per_msg["no API load"]) * sent
        result.add("engine CPU per API request", "while dispatching", added_s / during * 1e3,
                   "ms", requests=during, note="loaded runs' engine CPU minus the "
                   "baseline runs', per message, times the messages, per request")
    in_idle = extra_s = 0.0
    for load in loads:
        idle_from, idle_until = load.idle
        answered = sum(1 for x in load.records if x[1] >= 0 and idle_from <= x[0] < idle_until)
        if answered and load.quiet_s > 0:
            in_idle += answered
            extra_s += load.idle_cpu_s - load.quiet_cpu_s * (idle_until - idle_from) / load.quiet_s
    if in_idle:
        result.add("engine CPU per API request", "idle engine", extra_s / in_idle * 1e3, "ms",
                   requests=int(in_idle))
    hits = sum(load.cache_hits for load in loads)
    lookups = hits + sum(load.cache_misses for load in loads)
    if lookups:
        result.add("read cache hits", "under API load", 100 * hits / lookups, "%",
                   hits=hits, lookups=lookups, note="[control] read_cache_s: list, detail "
                   "and KPI bodies served again for 0.5 s; statuses never stale")
    total = sum(len(load.records) for load in loads)
    cpu_s = sum(load.cpu_s for load in loads)
    if total and cpu_s:
        result.add("load generator CPU per request", "generator", cpu_s / total * 1e3,
                   "ms", requests=total)
