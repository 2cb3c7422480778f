"""BindPool against the real simulator over loopback: windows, TPS, policies, receipts."""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from dispatch.simulator import (
    Account,
    OutcomeRule,
    SimulatorConfig,
    SmscSimulator,
    SubmitStatusRule,
    destination_hash,
)
from dispatch.simulator.server import decoded_text
from dispatch.smpp.constants import CommandStatus
from dispatch.smpp.receipt import IdFormat, MessageIdPolicy, SmsResult
from dispatch.transport.config import BindMode, StatusPolicy
from dispatch.transport.pool import SubmitStatus, aggregate_segments
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

# Virtual time runs RATE times faster than the wall clock in the timing tests, so a scheduling
# hiccup of the (shared, 2-core) machine is magnified RATE times; the TPS guard window covers
# JITTER_GUARD_S of virtual jitter (= 50 ms real) between our clock and the simulator's.
RATE = 5.0
JITTER_GUARD_S = 0.25


def test_all_messages_accepted_exactly_once_and_windows_never_exceeded() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, binds=2, window=8), bound=2)
        msgs = messages(400)
        nursery.start_soon(pool.submit_many, msgs)
        got = await collect(pool, outcomes=400)
        assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
        assert got.duplicate_outcomes == 0
        assert set(sim.stats.max_outstanding_by_session.values()) <= set(range(1, 9))
        assert max(sim.stats.max_outstanding_by_session.values()) == 8  # the window is used
        assert len(sim.stats.max_outstanding_by_session) == 2  # both binds carried load
        accepted = sim.stats.accepted_by_destination()
        assert len(accepted) == 400 and set(accepted.values()) == {1}
        # each outcome's id is the one the simulator gave that destination
        ids = {r.destination_hash: r.message_id.lower().lstrip("0")
               for r in sim.stats.submit_log}
        for i, outcome in got.outcomes.items():
            assert outcome.message_ids == (ids[destination_hash(destination(i))],)
        stats = pool.statistics()
        assert stats.submits == 400 and stats.accepted == 400
        assert stats.responses_by_status == {"ESME_ROK": 400}
        assert sum(stats.latency_counts) == 400
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, response_latency_s=0.005,
                                                receipts=False))


def test_tps_is_never_exceeded_at_the_smsc() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, binds=2, window=50, tps=200,
                                                     tps_guard_s=JITTER_GUARD_S), bound=2)
        start = trio.current_time()
        nursery.start_soon(pool.submit_many, messages(700))
        await collect(pool, outcomes=700)
        elapsed = trio.current_time() - start
        assert sim.stats.max_tps <= 200
        assert sim.stats.max_tps >= 150  # and the account is used, not starved
        assert elapsed >= 700 / 200 - 1.0
        pool.close()

    # virtual time RATE x faster than the wall clock: 3.5 s of sending in ~0.7 s
    with_simulator(body, SimulatorConfig(port=0, receipts=False), clock=fast_clock(RATE))


def test_per_bind_cap() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, binds=1, window=50, per_bind_tps=100,
                                                     tps_guard_s=JITTER_GUARD_S))
        nursery.start_soon(pool.submit_many, messages(250))
        await collect(pool, outcomes=250)
        assert sim.stats.max_tps <= 100
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, receipts=False), clock=fast_clock(RATE))


def test_throttling_is_honoured_and_retried_until_accepted() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        policy = StatusPolicy(throttle_pause_s=0.3)
        pool = await start_pool(nursery, esme_config(sim, window=20, status_policy=policy))
        nursery.start_soon(pool.submit_many, messages(300))
        got = await collect(pool, outcomes=300)
        assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
        assert sim.stats.submits_by_status[CommandStatus.ESME_RTHROTTLED] > 0
        stats = pool.statistics()
        assert stats.throttled == sim.stats.submits_by_status[CommandStatus.ESME_RTHROTTLED]
        assert set(sim.stats.accepted_by_destination().values()) == {1}
        pool.close()

    sim_config = SimulatorConfig(port=0, receipts=False,
                                 accounts=(Account("dispatch", "secret", throttle_tps=100),))
    with_simulator(body, sim_config, clock=fast_clock(RATE))


def test_permanent_and_transient_statuses() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        policy = StatusPolicy(max_retries=2, retry_delay_s=0.01)
        pool = await start_pool(nursery, esme_config(sim, status_policy=policy))
        msgs = messages(10)
        msgs[3].destination_addr = b"4915000000999"  # rejected: ESME_RINVDSTADR
        msgs[5].destination_addr = b"4915000000888"  # ESME_RSYSERR every time
        await pool.submit_many(msgs)
        got = await collect(pool, outcomes=10)
        assert got.outcomes[3].status is SubmitStatus.FAILED
        assert got.outcomes[3].status_name == "ESME_RINVDSTADR"
        assert got.outcomes[3].attempts == 1
        assert got.outcomes[5].status is SubmitStatus.FAILED
        assert got.outcomes[5].status_name == "ESME_RSYSERR"
        assert got.outcomes[5].attempts == 3  # first try + 2 retries
        assert pool.statistics().retries == 2
        assert sum(o.status is SubmitStatus.ACCEPTED for o in got.outcomes.values()) == 8
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipts=False,
        submit_status_rules=(SubmitStatusRule("999$"),
                             SubmitStatusRule("888$", CommandStatus.ESME_RSYSERR))))


@pytest.mark.parametrize("sim_fmt,receipt_fmt", [("hex", None), ("decimal", None),
                                                 ("hex", "decimal")])
def test_receipts_correlate_with_submit_ids(sim_fmt: str, receipt_fmt: str | None) -> None:
    fmt = {"hex": IdFormat.HEX, "decimal": IdFormat.DECIMAL}

    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        ids = MessageIdPolicy(submit_resp_format=fmt[sim_fmt],
                              receipt_format=fmt[receipt_fmt or sim_fmt])
        pool = await start_pool(nursery, esme_config(sim, window=10, message_ids=ids))
        nursery.start_soon(pool.submit_many, messages(60))
        got = await collect(pool, outcomes=60, receipts=60)
        submitted = {o.message_ids[0]: ref for ref, o in got.outcomes.items()}
        assert len(submitted) == 60
        receipt_ids = Counter(r.message_id for r in got.receipts)
        assert set(receipt_ids) == set(submitted) and set(receipt_ids.values()) == {1}
        results = {submitted[r.message_id]: r.sms_result for r in got.receipts}
        assert all(results[i] is SmsResult.FAILED for i in range(0, 60, 7))
        assert sum(r is SmsResult.DELIVERED for r in results.values()) == 60 - len(
            range(0, 60, 7))
        await wait_until(lambda: sim.stats.deliver_resps == 60)  # every receipt acknowledged
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, message_id_format=sim_fmt, receipt_id_format=receipt_fmt,  # type: ignore[arg-type]
        message_id_width=10, message_id_upper=True, receipt_delay_s=0.01,
        outcomes=(OutcomeRule("UNDELIV", pattern="(" + "|".join(
            destination(i).decode() for i in range(0, 60, 7)) + ")$"),
            OutcomeRule("DELIVRD", share=1.0))))


def test_multipart_segments_in_order_and_receipts_aggregated() -> None:
    long_text = "The quick brown fox jumps over the lazy dog. " * 8  # 360 chars: 3 segments

    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, window=16))
        nursery.start_soon(pool.submit_many, messages(20, long_text))
        got = await collect(pool, outcomes=20, receipts=60)
        assert all(len(o.message_ids) == 3 for o in got.outcomes.values())
        texts = [decoded_text(coding, payload) for _, coding, payload
                 in sim.stats.multipart_texts]
        assert texts == [long_text] * 20
        # parts of one destination reached the SMSC in order
        parts: dict[str, list[int]] = {}
        for r in sim.stats.submit_log:
            parts.setdefault(r.destination_hash, []).append(r.part)
        assert all(p == [1, 2, 3] for p in parts.values())
        by_id = {r.message_id: r.sms_result for r in got.receipts}
        for ref, outcome in got.outcomes.items():
            result = aggregate_segments(by_id[m] for m in outcome.message_ids)
            expected = SmsResult.FAILED if ref == 4 else SmsResult.DELIVERED
            assert result is expected
        pool.close()

    with_simulator(body, SimulatorConfig(
        port=0, receipt_delay_s=0.01,
        # the middle segment of message 4 fails: its second message id is number 4*3+2
        outcomes=(OutcomeRule("UNDELIV", pattern=destination(4).decode() + "$"),
                  OutcomeRule("DELIVRD", share=1.0))))


def test_aggregate_segments_rule() -> None:
    D, F, U = SmsResult.DELIVERED, SmsResult.FAILED, SmsResult.UNKNOWN
    assert aggregate_segments([D, D, D]) is D
    assert aggregate_segments([D, None, D]) is None
    assert aggregate_segments([D, F, None]) is F
    assert aggregate_segments([D, U]) is U
    assert aggregate_segments([]) is None


def test_transmitter_and_receiver_pairs_and_mo_messages() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, bind_mode=BindMode.TRANSMITTER,
                                                     binds=2, receivers=2), bound=2)
        with trio.fail_after(5):
            while pool.statistics().binds_up < 4:
                await trio.sleep(0.01)
        await pool.submit_many(messages(30))
        sim.inject_mo("dispatch", b"4915999999999", b"12345", b"STOP")
        got = await collect(pool, outcomes=30, receipts=30)
        while not got.mo:
            got = await collect(pool, outcomes=30, receipts=30, into=got)
            if not got.mo:
                got.mo.extend(e for e in await pool.outcomes.receive()
                              if type(e).__name__ == "MoMessage")
        assert got.mo[0].short_message == b"STOP" and got.mo[0].destination_addr == b"12345"
        assert {r.bind_id for r in got.receipts} <= {"op/rx0", "op/rx1"}
        assert {o.bind_id for o in got.outcomes.values()} <= {"op/tx0", "op/tx1"}
        pool.close()

    with_simulator(body, SimulatorConfig(port=0))


def test_graceful_close_unbinds_and_returns() -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, binds=2), bound=2)
        await pool.submit_many(messages(50))
        await collect(pool, outcomes=50)
        done = trio.Event()

        async def run_close() -> None:
            pool.close()
            async for _ in pool.outcomes:  # closes when run() returned
                pass
            done.set()

        nursery.start_soon(run_close)
        with trio.fail_after(5):
            await done.wait()
        assert pool.statistics().binds_up == 0
        assert pool.statistics().connection_drops == 0  # ended by unbind, not dropped

    with_simulator(body, SimulatorConfig(port=0, receipts=False))
