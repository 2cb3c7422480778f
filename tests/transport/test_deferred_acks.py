"""Deferred deliver_sm acknowledgement (``EsmeConfig.defer_deliver_acks``): receipts are
answered only when the consumer says they are durable; an ack that comes after the connection
ended is dropped and counted, and the SMSC delivers the receipt again."""

from __future__ import annotations

import trio

from dispatch.simulator import SimulatorConfig
from dispatch.transport.pool import BindPool, DeliverAck, ReceiptEvent, SubmitOutcome
from pool_harness import esme_config, messages, with_simulator


async def _drain(pool: BindPool, outcomes: int, receipts: int
                 ) -> tuple[list[ReceiptEvent], list[DeliverAck]]:
    got_outcomes = 0
    got: list[ReceiptEvent] = []
    acks: list[DeliverAck] = []
    while got_outcomes < outcomes or len(got) < receipts:
        for ev in await pool.outcomes.receive():
            if isinstance(ev, SubmitOutcome):
                got_outcomes += 1
            elif isinstance(ev, ReceiptEvent):
                got.append(ev)
            elif isinstance(ev, DeliverAck):
                acks.append(ev)
    return got, acks


def test_receipts_are_answered_only_when_the_consumer_acks() -> None:
    async def body(sim, nursery):
        pool = BindPool(esme_config(sim, defer_deliver_acks=True, window=50))
        await nursery.start(pool.run)
        await pool.submit_many(messages(40))
        receipts, acks = await _drain(pool, 40, 40)
        assert len({r.message_id for r in receipts}) == 40
        assert sim.stats.receipts_sent == 40
        await trio.sleep(0.2)
        assert sim.stats.deliver_resps == 0  # nothing answered yet: the SMSC still holds them
        # Every receipt's deliver_sm is covered by exactly one DeliverAck that follows it.
        assert sum(len(a.sequence_numbers) for a in acks) == 40
        for ack in acks:
            ack.ack()
        with trio.fail_after(5):
            while sim.stats.deliver_resps < 40:
                await trio.sleep(0.01)
        assert sim.stats.deliver_resps == 40 and sim.stats.redeliveries == 0
        pool.close()
    with_simulator(body, SimulatorConfig(port=0, receipt_delay_s=0.0))


def test_an_ack_after_the_connection_ended_is_dropped_and_the_smsc_redelivers() -> None:
    async def body(sim, nursery):
        first = BindPool(esme_config(sim, defer_deliver_acks=True, window=50))
        done = trio.Event()

        async def run_first(task_status=trio.TASK_STATUS_IGNORED):
            await first.run(task_status=task_status)
            done.set()
        await nursery.start(run_first)
        await first.submit_many(messages(10))
        receipts, acks = await _drain(first, 10, 10)
        first.close()
        await done.wait()
        for ack in acks:
            ack.ack()
        assert first.stats_deliver_acks_dropped == 10 and sim.stats.deliver_resps == 0
        # A new bind of the account gets the unanswered receipts again (the store applies a
        # receipt once, so a redelivery is harmless).
        second = BindPool(esme_config(sim, defer_deliver_acks=True, window=50))
        await nursery.start(second.run)
        again, acks2 = await _drain(second, 0, 10)
        assert sorted(r.message_id for r in again) == sorted(r.message_id for r in receipts)
        for ack in acks2:
            ack.ack()
        with trio.fail_after(5):
            while sim.stats.deliver_resps < 10:
                await trio.sleep(0.01)
        assert sim.stats.redeliveries == 10
        second.close()
    with_simulator(body, SimulatorConfig(port=0, receipt_delay_s=0.0,
                                                redelivery_delay_s=0.05))
