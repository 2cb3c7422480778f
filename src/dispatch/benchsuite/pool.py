"""Section ``pool``: ``BindPool`` alone (no engine, no store) by window and bind count, vs
a smpplib-based sender, against the simulator in its own process; or against a real SMSC
with ``--target`` (BindPool only, under the message budget).

What a window buys: SMPP 3.4 section 2.6 lets an ESME keep several submit_sm outstanding;
with one outstanding (window 1) the rate is one round trip per message. The pool encodes
every submit its windows allow into one buffer and writes it with one call (DESIGN.md), so
its rate grows with the window until the CPU is the limit. The baseline is smpplib's blocking
client in a thread, pipelining ``window`` submits before reading the responses: what a user
would write with the library most people pick.

Per case: msg/s from the first submit to the last response, p50/p99 submit -> submit_sm_resp
latency, the window occupancy over time (in flight / (window x bound binds)).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from dispatch.benchsuite.options import SuiteConfig, Target
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult, percentile
from dispatch.benchsuite.sampler import PoolSampler, distribution
from dispatch.benchsuite.simproc import SimulatorProcess
from dispatch.benchsuite.target import MessageBudget
from dispatch.smpp.text import split_text
from dispatch.transport.config import EsmeConfig, InflightPolicy
from dispatch.transport.pool import BindPool, OutboundMessage, SubmitOutcome, SubmitStatus

TEXT = "benchmark message"
#: (window, binds, messages) per profile
POOL_CASES = {
    "quick": ((1, 1, 300), (10, 1, 1_500), (100, 1, 5_000), (100, 2, 5_000), (1000, 1, 8_000)),
    "full": ((1, 1, 3_000), (1, 2, 3_000), (10, 1, 20_000), (10, 2, 20_000), (100, 1, 60_000),
             (100, 2, 60_000), (1000, 1, 100_000), (1000, 2, 100_000)),
}
#: (window, messages) of the smpplib sender per profile
SMPPLIB_CASES = {"quick": ((1, 300), (10, 1_500)),
                 "full": ((1, 3_000), (10, 10_000), (100, 10_000))}
RUN_TIMEOUT_S = 600.0
BIND_TIMEOUT_S = 30.0


@dataclass(slots=True)
class PoolRun:
    sent: int = 0
    accepted: int = 0
    not_accepted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    submits: int = 0  # submit_sm PDUs (retries included)
    sampler: PoolSampler = field(default_factory=PoolSampler)


def _messages(count: int, source: bytes, destinations: list[bytes],
              source_ton: int) -> list[OutboundMessage]:
    segments = split_text(TEXT)
    cycle = itertools.cycle(destinations)
    return [OutboundMessage(i, source, next(cycle), segments, source_addr_ton=source_ton)
            for i in range(count)]


async def pool_send(esme: EsmeConfig, messages: list[OutboundMessage],
                    progress: Progress | None = None, label: str = "") -> PoolRun:
    """Bind ``esme.binds`` binds, submit ``messages``, wait for every outcome, unbind."""
    out = PoolRun(sent=len(messages))
    pool = BindPool(esme)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with trio.fail_after(BIND_TIMEOUT_S):
            await pool.wait_bound(esme.binds)
        nursery.start_soon(out.sampler.run, pool.statistics)
        settled = 0
        with trio.fail_after(RUN_TIMEOUT_S):
            start = time.perf_counter()
            nursery.start_soon(pool.submit_many, messages)
            while settled < len(messages):
                for ev in await pool.outcomes.receive():
                    if not isinstance(ev, SubmitOutcome):
                        continue
                    settled += 1
                    if ev.status is SubmitStatus.ACCEPTED:
                        out.accepted += 1
                        out.latencies_ms.append(ev.latency_s * 1e3)
                    else:
                        out.not_accepted[ev.status_name] = out.not_accepted.get(
                            ev.status_name, 0) + 1
                if progress is not None:
                    progress.update(f"{label} {settled}/{len(messages)}")
            out.seconds = time.perf_counter() - start
        out.sampler.sample(pool.statistics())
        out.submits = pool.statistics().submits
        pool.close()
        with trio.move_on_after(esme.unbind_timeout_s + 1):
            while True:  # drain until run() closes the channel after unbinding
                try:
                    await pool.outcomes.receive()
                except trio.EndOfChannel:
                    break
        nursery.cancel_scope.cancel()
    return out


def smpplib_send(port: int, count: int, window: int, system_id: str,
                 password: str) -> tuple[float, list[float]]:
    """smpplib's blocking client (run it in a thread): keep ``window`` submits outstanding,
    read responses as they come; returns seconds and latencies in ms."""
    import smpplib.client
    import smpplib.consts
    import smpplib.exceptions

    sent_at: dict[int, float] = {}
    latencies: list[float] = []

    def on_resp(pdu: Any) -> None:
        latencies.append((time.perf_counter() - sent_at.pop(pdu.sequence)) * 1e3)

    client = smpplib.client.Client("127.0.0.1", port, timeout=30, allow_unknown_opt_params=True)
    client.set_message_sent_handler(on_resp)
    client.connect()
    try:
        client.bind_transmitter(system_id=system_id, password=password)
        start = time.perf_counter()
        for i in range(count):
            while len(sent_at) >= window:
                client.read_once()
            pdu = client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="Shop",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=1,
                destination_addr=f"4915{i:09d}", short_message=TEXT.encode(),
                registered_delivery=True)
            sent_at[pdu.sequence] = time.perf_counter()
        while sent_at:
            client.read_once()
        seconds = time.perf_counter() - start
        try:  # after the measurement: an SMSC that drops instead of unbind_resp is its problem
            client.unbind()
        except smpplib.exceptions.ConnectionError:
            pass
    finally:
        client.disconnect()
    return seconds, latencies


def _record(result: SectionResult, variant: str, run: PoolRun, **config: Any) -> None:
    lat = sorted(run.latencies_ms)
    rate = run.accepted / run.seconds if run.seconds > 0 else 0.0
    result.add("throughput", variant, rate, "msg/s", messages=run.sent, accepted=run.accepted,
               not_accepted=run.not_accepted, submit_pdus=run.submits,
               mean_window_occupancy_pct=round(run.sampler.mean_occupancy_pct(), 1), **config)
    result.add("p50 submit->resp", variant, percentile(lat, 50), "ms")
    result.add("p99 submit->resp", variant, percentile(lat, 99), "ms")
    result.series.append(run.sampler.throughput(variant, "pool throughput"))
    result.series.append(run.sampler.occupancy(variant, "pool window occupancy"))
    result.series.append(distribution(variant, "pool latency", run.latencies_ms))


def _with_simulator_failure(exc: BaseException, sim: SimulatorProcess) -> BaseException:
    """The case's error, with the simulator's own crash report when it died."""
    failure = sim.failure()
    if failure is None:
        return exc
    return RuntimeError(f"{type(exc).__name__} while the {failure}")


def _esme(name: str, host: str, port: int, system_id: str, password: str, *, binds: int,
          window: int, **extra: Any) -> EsmeConfig:
    return EsmeConfig(name=name, host=host, port=port, system_id=system_id, password=password,
                      binds=binds, window=window, queue_size=max(10_000, window * binds),
                      **extra)


def run_target(config: SuiteConfig, target: Target, budget: MessageBudget,
               progress: Progress) -> SectionResult:
    result = SectionResult("pool")
    wanted = dict((w, n) for w, _, n in POOL_CASES[config.profile]).get(100, 1000)
    count = budget.grant(wanted)
    result.config = {"target": target.describe(), "binds": target.binds, "window": target.window,
                     "tps_cap": target.tps_cap, "max_messages": config.max_messages,
                     "messages": count, "destinations": len(target.destinations)}
    if count == 0:
        result.status, result.reason = "skipped", "message budget exhausted"
        return result
    esme = _esme("target", target.host, target.port, target.system_id, target.password,
                 binds=target.binds, window=target.window, system_type=target.system_type,
                 tps=target.tps_cap, inflight_policy=InflightPolicy.UNKNOWN)
    source = target.source_addr.encode()
    ton = 1 if target.source_addr.lstrip("+").isdigit() else 5
    msgs = _messages(count, source, [d.lstrip("+").encode() for d in target.destinations], ton)
    variant = f"BindPool w={target.window} b={target.binds}"
    run = trio.run(pool_send, esme, msgs, progress, variant)
    _record(result, variant, run, window=target.window, binds=target.binds)
    result.notes.append("against a real SMSC: no smpplib baseline (it would double the "
                        "messages sent); in-flight submits are never resent")
    return result


def run(config: SuiteConfig, progress: Progress, budget: MessageBudget) -> SectionResult:
    if config.target is not None:
        return run_target(config, config.target, budget, progress)
    result = SectionResult("pool")
    cases = POOL_CASES[config.profile]
    baseline = SMPPLIB_CASES[config.profile]
    result.config = {"cases": [{"window": w, "binds": b, "messages": n} for w, b, n in cases],
                     "smpplib_cases": [{"window": w, "messages": n} for w, n in baseline],
                     "simulator": "own process, receipts off", "text": TEXT}
    try:
        import smpplib.client  # noqa: F401
    except ImportError:
        baseline = ()
        result.notes.append("smpplib is not installed: no smpplib baseline")
    # A fresh simulator per case: no state carried between cases, and a simulator that dies
    # (it is code under test too) spoils one case with a clear message, not the rest.
    for window, binds, count in cases:
        variant = f"BindPool w={window} b={binds}"
        with SimulatorProcess(receipts=False) as sim:
            esme = _esme("bench", "127.0.0.1", sim.port, sim.system_id, sim.password,
                         binds=binds, window=window)
            msgs = _messages(count, b"Shop", [b"4915%09d" % i for i in range(count)], 5)
            try:
                run = trio.run(pool_send, esme, msgs, progress, variant)
            except BaseException as exc:
                raise _with_simulator_failure(exc, sim) from exc
        _record(result, variant, run, window=window, binds=binds)
    for window, count in baseline:
        variant = f"smpplib w={window}"
        progress.update(f"{variant} {count} messages")
        with SimulatorProcess(receipts=False) as sim:
            try:
                seconds, latencies = smpplib_send(sim.port, count, window, sim.system_id,
                                                  sim.password)
            except Exception as exc:
                raise _with_simulator_failure(exc, sim) from exc
        lat = sorted(latencies)
        result.add("throughput", variant, count / seconds, "msg/s", messages=count,
                   accepted=count, window=window, binds=1)
        result.add("p50 submit->resp", variant, percentile(lat, 50), "ms")
        result.add("p99 submit->resp", variant, percentile(lat, 99), "ms")
        result.series.append(distribution(variant, "pool latency", latencies))
    for window, _ in baseline:
        result.ratio("throughput", f"BindPool w={window} b=1", f"smpplib w={window}")
    pools = [f for f in result.figures if f.metric == "throughput"
             and f.variant.startswith("BindPool")]
    libs = [f for f in result.figures if f.metric == "throughput"
            and f.variant.startswith("smpplib")]
    if pools and libs:
        best, best_lib = max(pools, key=lambda f: f.value), max(libs, key=lambda f: f.value)
        result.add("best throughput", "BindPool", best.value, "msg/s", case=best.variant)
        result.add("best throughput", "smpplib", best_lib.value, "msg/s", case=best_lib.variant)
        result.ratio("best throughput", "BindPool", "smpplib")
    return result
