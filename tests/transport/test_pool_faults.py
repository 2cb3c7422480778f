"""SMSC faults against a real pool: drops, garbage, stalls, wrong passwords."""

from __future__ import annotations

import itertools

import trio
import trio.testing

from dispatch.simulator import Account, FaultConfig, SimulatorConfig, SmscSimulator
from dispatch.simulator import destination_hash as dhash
from dispatch.smpp.constants import CommandStatus
from dispatch.transport.config import InflightPolicy, ReconnectConfig
from dispatch.transport.pool import SubmitStatus
from pool_harness import (
    collect,
    destination,
    esme_config,
    fast_clock,
    messages,
    start_pool,
    wait_until,
    with_simulator,
)

FAST_RECONNECT = ReconnectConfig(initial_s=0.05, max_s=0.5)


def _sim_id(raw: str) -> str:
    return raw.lower().lstrip("0")


def test_drops_lose_nothing_and_acknowledged_submits_are_never_resent() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(
            sim, binds=2, window=16, reconnect=FAST_RECONNECT,
            inflight_policy=InflightPolicy.RETRY), bound=2)
        nursery.start_soon(pool.submit_many, messages(400))
        got = await collect(pool, outcomes=400)
        assert got.duplicate_outcomes == 0
        assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
        stats = pool.statistics()
        assert stats.connection_drops == 3 and stats.reconnects >= 2
        assert stats.inflight_retried > 0
        last_accepted: dict[str, str] = {}
        for r in sim.stats.submit_log:
            if r.command_status == 0:
                last_accepted[r.destination_hash] = _sim_id(r.message_id)
        for i, outcome in got.outcomes.items():
            # the acknowledged copy is the last one the SMSC saw for that destination
            assert outcome.message_ids == (last_accepted[dhash(destination(i))],)
        # resent copies exist only for submits whose response never arrived
        resent = sum(sim.stats.accepted_by_destination().values()) - 400
        assert resent == sim.stats.duplicates <= stats.inflight_retried
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipts=False, faults=FaultConfig(drop_after_pdus=60, faulty_sessions=3)))


def test_unknown_policy_never_duplicates_and_counts_every_case() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(
            sim, binds=1, window=16, reconnect=FAST_RECONNECT,
            inflight_policy=InflightPolicy.UNKNOWN))
        nursery.start_soon(pool.submit_many, messages(300))
        got = await collect(pool, outcomes=300)
        statuses = [o.status for o in got.outcomes.values()]
        unknown = statuses.count(SubmitStatus.UNKNOWN)
        assert unknown > 0 and statuses.count(SubmitStatus.ACCEPTED) == 300 - unknown
        assert pool.statistics().inflight_unknown == unknown
        assert sim.stats.duplicates == 0
        assert set(sim.stats.accepted_by_destination().values()) == {1}
        assert all(o.status_name.startswith("connection lost") for o in got.outcomes.values()
                   if o.status is SubmitStatus.UNKNOWN)
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipts=False, faults=FaultConfig(drop_after_pdus=50, faulty_sessions=2)))


def test_framed_garbage_is_nacked_without_dropping_the_bind() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, window=8))
        nursery.start_soon(pool.submit_many, messages(100))
        got = await collect(pool, outcomes=100)
        assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
        await wait_until(lambda: sim.stats.generic_nacks_received == 1)
        stats = pool.statistics()
        assert stats.protocol_errors == 1 and stats.connection_drops == 0
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipts=False, faults=FaultConfig(garbage_after_pdus=20)))


def test_broken_framing_drops_the_bind_and_it_comes_back() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, window=8, reconnect=FAST_RECONNECT))
        nursery.start_soon(pool.submit_many, messages(100))
        got = await collect(pool, outcomes=100)
        assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
        stats = pool.statistics()
        assert stats.connection_drops == 1 and stats.reconnects == 1
        assert stats.protocol_errors == 1
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipts=False,
        faults=FaultConfig(garbage_after_pdus=20, garbage=b"\x00\x00\x00\x05\xff" * 8)))


def test_stalled_smsc_times_out_declares_the_link_dead_and_retries_elsewhere() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(
            sim, window=10, response_timeout_s=1.0, enquire_link_interval_s=0.5,
            enquire_link_misses=2, reconnect=FAST_RECONNECT))
        nursery.start_soon(pool.submit_many, messages(100))
        got = await collect(pool, outcomes=100)
        assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
        stats = pool.statistics()
        assert stats.response_timeouts >= 1
        assert stats.connection_drops >= 1 and stats.reconnects >= 1
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipts=False, faults=FaultConfig(stall_after_pdus=30)), clock=fast_clock())


def test_wrong_password_reported_once_and_retried_with_backoff() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        config = esme_config(sim, password="wrong", reconnect=ReconnectConfig(
            initial_s=0.5, bad_credentials_s=30.0, jitter=0.2))
        pool = await start_pool(nursery, config, bound=0)
        await wait_until(lambda: len(sim.stats.bind_log) >= 4, limit_s=200, step_s=5.0)
        times = [t for t, _, status in sim.stats.bind_log]
        assert {status for _, _, status in sim.stats.bind_log} == {CommandStatus.ESME_RINVPASWD}
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(30 * 0.8 - 0.01 <= g <= 30 * 1.2 + 0.5 for g in gaps), gaps
        # reported once, not at every attempt
        first = await pool.outcomes.receive()
        assert len(first) == 1 and first[0].command_status == CommandStatus.ESME_RINVPASWD
        assert "ESME_RINVPASWD" in first[0].reason
        with trio.move_on_after(0):
            extra = await pool.outcomes.receive()
            raise AssertionError(f"reported again: {extra}")
        stats = pool.statistics()
        assert stats.bind_failures == len(times) and stats.binds_up == 0
        assert "ESME_RINVPASWD" in stats.last_bind_error
        pool.close()

    clock = trio.testing.MockClock(autojump_threshold=0.01)
    with_simulator(body, SimulatorConfig(
        port=0, accounts=(Account("dispatch", "secret"),)), clock=clock, limit_s=300)
