"""SMSC faults against a real pool, with exact accounting: every message ends accepted,
failed or unknown exactly once, the pool's counters agree with the outcomes, and the
simulator's own log agrees with the pool (what it accepted, how often it answered
0x58/0x14, how many copies it saw). Complements tests/transport/test_pool_faults.py
(drops, garbage, stalls, wrong passwords)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import trio

from dispatch.simulator import (
    Account,
    FaultConfig,
    SimulatorConfig,
    SmscSimulator,
    SubmitStatusRule,
    destination_hash,
    run,
)
from dispatch.smpp.constants import CommandStatus
from dispatch.transport.config import EsmeConfig, InflightPolicy, StatusPolicy
from dispatch.transport.pool import BindPool, SubmitStatus
from pool_harness import (
    FAST_RECONNECT,
    Ledger,
    collect,
    destination,
    esme_config,
    fast_clock,
    messages,
    start_pool,
    wait_until,
    with_simulator,
)

THROTTLE_FAST = StatusPolicy(throttle_pause_s=0.05)


def assert_exact_accounting(pool: BindPool, got: Ledger, count: int,
                            sim_stats: list[Any]) -> Counter[SubmitStatus]:
    """Every ref 0..count-1 has exactly one final outcome; counters match the outcomes; an
    accepted message was accepted by the SMSC (under the id the pool reported)."""
    assert got.duplicate_outcomes == 0
    assert set(got.outcomes) == set(range(count)), "a message has no final outcome (lost)"
    by_status = got.by_status()
    stats = pool.statistics()
    assert (stats.accepted, stats.failed, stats.unknown) == (
        by_status[SubmitStatus.ACCEPTED], by_status[SubmitStatus.FAILED],
        by_status[SubmitStatus.UNKNOWN])
    assert stats.queued == 0 and stats.in_flight == 0
    accepted_ids: dict[str, set[str]] = {}
    for st in sim_stats:
        for r in st.submit_log:
            if r.command_status == 0:
                accepted_ids.setdefault(r.destination_hash, set()).add(
                    r.message_id.lower().lstrip("0"))
    for ref, outcome in got.outcomes.items():
        if outcome.status is SubmitStatus.ACCEPTED:
            ids = accepted_ids.get(destination_hash(destination(ref)), set())
            assert outcome.message_ids[0] in ids, (ref, outcome)
    submits = sum(st.submits for st in sim_stats)
    assert stats.submits >= submits  # the SMSC never saw more than was sent
    return by_status


def test_throttle_storm_retries_until_accepted_and_never_fails() -> None:
    """An account throttled at 50 submits/s, pushed with 400 at once: every ESME_RTHROTTLED
    is retried (SMPP 3.4 section 5.1.3), none fails, and each 0x58 the SMSC sent is counted."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, window=64, binds=2,
                                                     status_policy=THROTTLE_FAST), bound=2)
        nursery.start_soon(pool.submit_many, messages(400, registered_delivery=0))
        got = await collect(pool, outcomes=400)
        by_status = assert_exact_accounting(pool, got, 400, [sim.stats])
        assert by_status == {SubmitStatus.ACCEPTED: 400}
        throttled = sim.stats.submits_by_status[CommandStatus.ESME_RTHROTTLED]
        assert throttled > 100
        assert pool.statistics().throttled == throttled
        assert sim.stats.submits_by_status[0] == 400 and sim.stats.duplicates == 0
        assert pool.statistics().submits == sim.stats.submits == 400 + throttled
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, receipts=False,
                                         accounts=(Account("dispatch", "secret", 50.0),)),
                   clock=fast_clock(20.0), limit_s=60)


def test_queue_full_storm_passes_and_every_message_is_accepted_once() -> None:
    """The first 150 submits answered ESME_RMSGQFUL (0x14): retried later, not failed."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, window=32,
                                                     status_policy=THROTTLE_FAST))
        nursery.start_soon(pool.submit_many, messages(300, registered_delivery=0))
        got = await collect(pool, outcomes=300)
        assert assert_exact_accounting(pool, got, 300, [sim.stats]) == {
            SubmitStatus.ACCEPTED: 300}
        assert sim.stats.submits_by_status[CommandStatus.ESME_RMSGQFUL] == 150
        assert pool.statistics().throttled == 150
        assert set(sim.stats.accepted_by_destination().values()) == {1}
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, receipts=False, submit_status_rules=(
        SubmitStatusRule(".", CommandStatus.ESME_RMSGQFUL, times=150),)))


def test_permanent_and_transient_errors_are_accounted_exactly() -> None:
    """Mixed: invalid destinations fail at once, ESME_RSYSERR is retried max_retries times
    then fails, the rest are accepted."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        policy = StatusPolicy(throttle_pause_s=0.05, retry_delay_s=0.01, max_retries=2)
        pool = await start_pool(nursery, esme_config(sim, window=16, status_policy=policy))
        nursery.start_soon(pool.submit_many, messages(200, registered_delivery=0))
        got = await collect(pool, outcomes=200)
        by_status = assert_exact_accounting(pool, got, 200, [sim.stats])
        invalid = [i for i in range(200) if destination(i).endswith(b"7")]
        sysfail = [i for i in range(200) if destination(i).endswith(b"3")]
        assert by_status == {SubmitStatus.FAILED: len(invalid) + len(sysfail),
                             SubmitStatus.ACCEPTED: 200 - len(invalid) - len(sysfail)}
        for i in invalid:
            assert got.outcomes[i].status_name == "ESME_RINVDSTADR"
            assert got.outcomes[i].attempts == 1
        for i in sysfail:
            assert got.outcomes[i].status_name == "ESME_RSYSERR"
            assert got.outcomes[i].attempts == 3
        assert pool.statistics().retries == 2 * len(sysfail)
        assert sim.stats.submits == 200 + 2 * len(sysfail)
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, receipts=False, submit_status_rules=(
        SubmitStatusRule("7$", CommandStatus.ESME_RINVDSTADR),
        SubmitStatusRule("3$", CommandStatus.ESME_RSYSERR))))


def test_bind_that_accepts_then_never_answers_times_out_and_recovers() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, bind_timeout_s=0.3,
                                                     reconnect=FAST_RECONNECT), bound=0)
        nursery.start_soon(pool.submit_many, messages(50, registered_delivery=0))
        got = await collect(pool, outcomes=50)
        assert assert_exact_accounting(pool, got, 50, [sim.stats]) == {
            SubmitStatus.ACCEPTED: 50}
        assert sim.stats.binds_ignored == 2 and sim.stats.binds_ok == 1
        stats = pool.statistics()
        assert stats.bind_failures == 2
        assert got.bind_failures[0].reason == "no bind_resp within 0.3 s"
        assert len(got.bind_failures) == 1  # the same reason twice is reported once
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, receipts=False,
                                         faults=FaultConfig(silent_binds=2)))


@pytest.mark.parametrize("policy", [InflightPolicy.RETRY, InflightPolicy.UNKNOWN])
def test_smsc_restart_mid_campaign(policy: InflightPolicy) -> None:
    """The SMSC process goes away with submits in flight and comes back on the same port:
    the pool reconnects with backoff and finishes; nothing is lost; under UNKNOWN nothing is
    sent twice, under RETRY only what was in flight may be."""
    count = 600

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            first_scope = trio.CancelScope()
            first: list[SmscSimulator] = []

            async def first_sim(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                with first_scope:
                    await run(SimulatorConfig(port=0, receipts=False,
                                              response_latency_s=0.002),
                              task_status=task_status)

            first.append(await nursery.start(first_sim))
            sim = first[0]
            pool = await start_pool(nursery, esme_config(
                sim, binds=2, window=32, reconnect=FAST_RECONNECT, inflight_policy=policy),
                bound=2)
            got = Ledger()
            with trio.fail_after(60):
                nursery.start_soon(pool.submit_many, messages(count, registered_delivery=0))
                await collect(pool, outcomes=count // 3, into=got)
                first_scope.cancel()  # the SMSC dies: every connection reset
                await wait_until(lambda: pool.binds_up() == 0)
                second = await nursery.start(run, SimulatorConfig(port=sim.port, receipts=False))
                await collect(pool, outcomes=count, into=got)
                # One bind back may finish the rest before the other's backoff ends (seen on
                # a loaded machine): both come back all the same.
                await wait_until(lambda: pool.binds_up() == 2, limit_s=10)
            by_status = assert_exact_accounting(pool, got, count, [sim.stats, second.stats])
            stats = pool.statistics()
            assert stats.connection_drops == 2 and stats.reconnects == 2
            copies = Counter()
            for st in (sim.stats, second.stats):
                copies.update(st.accepted_by_destination())
            if policy is InflightPolicy.UNKNOWN:
                assert max(copies.values()) == 1
                assert by_status[SubmitStatus.UNKNOWN] == stats.inflight_unknown
                assert by_status[SubmitStatus.ACCEPTED] + stats.inflight_unknown == count
            else:
                assert by_status == {SubmitStatus.ACCEPTED: count}
                assert sum(copies.values()) - count <= stats.inflight_retried
            assert len(copies) >= count - stats.inflight_unknown
            pool.close()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_drop_with_receipts_outstanding_redelivers_them() -> None:
    """Receipts written to a connection that drops before it answers them come again on the
    next bind: every accepted message gets its receipt; copies are the redeliveries."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, window=16, reconnect=FAST_RECONNECT))
        nursery.start_soon(pool.submit_many, messages(300))
        got = await collect(pool, outcomes=300)
        accepted = {o.message_ids[0] for o in got.outcomes.values()
                    if o.status is SubmitStatus.ACCEPTED}
        await collect(pool, receipts=len(accepted), into=got)
        with trio.fail_after(10):
            while {r.message_id for r in got.receipts} < accepted:
                got.take(await pool.outcomes.receive())
        assert_exact_accounting(pool, got, 300, [sim.stats])
        # and receipts for the copies the SMSC accepted before the drop hid the response
        smsc_ids = {r.message_id.lower().lstrip("0") for r in sim.stats.submit_log
                    if r.command_status == 0}
        await wait_until(lambda: sim.stats.deliver_resps >= len(smsc_ids))
        while {r.message_id for r in got.receipts} < smsc_ids:
            got.take(await pool.outcomes.receive())
        assert {r.message_id for r in got.receipts} == smsc_ids
        assert sim.stats.faults_injected == 2 and sim.stats.deliver_abandoned == 0
        # a receipt read before the drop but not yet answered comes twice; one written to
        # the dying socket and never read comes once
        assert sim.stats.redeliveries > 0
        assert (sim.stats.receipts_sent <= len(got.receipts)
                <= sim.stats.receipts_sent + sim.stats.redeliveries)
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, deliver_window=8, redelivery_delay_s=0.0,
        faults=FaultConfig(drop_after_pdus=150, faulty_sessions=2)))


def test_deliver_window_is_respected_by_a_pool_under_load() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, binds=2, window=64), bound=2)
        nursery.start_soon(pool.submit_many, messages(1000))
        got = await collect(pool, outcomes=1000, receipts=1000)
        assert_exact_accounting(pool, got, 1000, [sim.stats])
        assert len({r.message_id for r in got.receipts}) == 1000
        assert 0 < sim.stats.max_deliver_outstanding <= 4
        assert sim.stats.redeliveries == 0 and sim.stats.receipts_sent == 1000
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, deliver_window=4))


def test_overlong_bind_fields_are_refused_at_config_load() -> None:
    """SMPP 3.4 section 4.1.1 sizes: refused when the config is built, naming the field, so
    a pool never starts with a bind it cannot encode."""
    base = dict(name="op", host="127.0.0.1", port=1, system_id="dispatch", password="secret")
    for name, value in (("password", "123456789"), ("system_id", "x" * 16),
                        ("system_type", "y" * 13), ("address_range", "7" * 41)):
        with pytest.raises(ValueError, match=name):
            EsmeConfig(**{**base, name: value})
    EsmeConfig(**{**base, "password": "12345678", "system_id": "x" * 15})
