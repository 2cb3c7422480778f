"""A receipt (or MO) the SMSC delivers again counts once in the pool's statistics.

A deliver_sm read but not answered with its deliver_sm_resp (SMPP 3.4 section 4.6.2) -- the
bind aborted while the reader waited to hand it on, or a deferred ack came after the
connection ended -- is dropped, and the SMSC delivers it again. The pool counted receipts
when it read them, so ``receipts``, ``receipts_by_stat`` and ``mo_messages`` counted such a
one twice; they count a deliver_sm once it is answered.

A scripted SMSC over real sockets on 127.0.0.1 (port 0) that redelivers whatever it did not
see answered; every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from dispatch.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, CommandId
from dispatch.smpp.session import BindRequest, Response, SessionState, SmscSession
from dispatch.transport.pool import DeliverAck, MoMessage, ReceiptEvent
from pool_harness import FAST_RECONNECT, pool_against, wait_until

LIMIT_S = 15.0


def _receipt(message_id: str, stat: str) -> tuple[Any, ...]:
    text = (f"id:{message_id} sub:001 dlvrd:001 submit date:2611231200 "
            f"done date:2611231201 stat:{stat} err:000 text:hello").encode()
    return (b"", 1, 1, b"4915100000001", 5, 0, b"Shop", ESM_CLASS_DELIVERY_RECEIPT, 0, 0,
            b"", b"", 0, 0, 0, 0, text, None)


def _mo(text: bytes) -> tuple[Any, ...]:
    return (b"", 1, 1, b"4915100000001", 5, 0, b"Shop", 0, 0, 0, b"", b"", 0, 0, 0, 0, text,
            None)


#: what the SMSC has to deliver: two receipts and an MO
DELIVERIES = [_receipt("A1", "DELIVRD"), _receipt("B2", "UNDELIV"), _mo(b"stop")]

FirstConnection = Callable[["_RedeliveringSmsc", SmscSession, trio.SocketStream],
                           Awaitable[None]]


class _RedeliveringSmsc:
    """Delivers ``DELIVERIES``; what was not answered on one connection is delivered again,
    in one write, on the next. The first connection runs ``first`` instead."""

    def __init__(self, first: FirstConnection) -> None:
        self.first = first
        self.answered: list[int] = []  # index in DELIVERIES of every deliver_sm_resp seen
        self.sent: list[int] = []  # index of every deliver_sm sent, redeliveries included
        self.connections = 0
        self.go = trio.Event()
        self._pending: dict[int, int] = {}  # this connection's sequence number -> index

    def deliver(self, session: SmscSession, indexes: list[int]) -> None:
        seqs = session.send_deliver_sm_batch([DELIVERIES[i] for i in indexes])
        self._pending = dict(zip(seqs, indexes, strict=True))
        self.sent += indexes

    def take(self, session: SmscSession, data: bytes) -> None:
        """Handle one read: accept the bind, record deliver_sm_resp."""
        for ev in session.receive_data(data):
            if isinstance(ev, BindRequest):
                session.accept_bind(ev)
            elif isinstance(ev, Response) and ev.command_id == CommandId.DELIVER_SM_RESP:
                index = self._pending.pop(ev.sequence_number, None)
                if index is not None:
                    self.answered.append(index)

    async def bound(self, session: SmscSession, stream: trio.SocketStream) -> None:
        """Read until the bind was accepted (and answer it)."""
        while session.state is SessionState.OPEN:
            data = await stream.receive_some(65536)
            if not data:
                raise trio.BrokenResourceError("closed during bind")
            self.take(session, data)
        await stream.send_all(session.data_to_send())

    async def handler(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        session = SmscSession(system_id=b"smsc")
        try:
            await self.bound(session, stream)
            if self.connections == 1:
                await self.first(self, session, stream)
                return
            self.deliver(session, [i for i in range(len(DELIVERIES))
                                   if i not in self.answered])
            while True:
                if session.has_data_to_send:
                    await stream.send_all(session.data_to_send())
                data = await stream.receive_some(65536)
                if not data:
                    return
                self.take(session, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def _abort_while_handing_on(smsc: _RedeliveringSmsc, session: SmscSession,
                                  stream: trio.SocketStream) -> None:
    """The first receipt alone (it fills the one-batch outcome channel and is answered); on
    ``go`` the rest in one write (the reader waits to hand them on); then silence: the probes
    go unanswered and the link is declared dead with those two unanswered."""
    smsc.deliver(session, [0])
    await stream.send_all(session.data_to_send())
    while not smsc.answered:
        data = await stream.receive_some(65536)
        if not data:
            return
        smsc.take(session, data)
    await smsc.go.wait()
    smsc.deliver(session, [1, 2])
    await stream.send_all(session.data_to_send())
    await trio.sleep_forever()


async def _hang_up_after_delivering(smsc: _RedeliveringSmsc, session: SmscSession,
                                    stream: trio.SocketStream) -> None:
    """Everything in one write, then the connection ends before anything is answered."""
    smsc.deliver(session, [0, 1, 2])
    await stream.send_all(session.data_to_send())


async def test_deliveries_dropped_by_an_abort_count_once_when_delivered_again() -> None:
    smsc = _RedeliveringSmsc(_abort_while_handing_on)
    events: list[Any] = []
    async with pool_against(smsc.handler, outcome_queue_batches=1,
                            enquire_link_interval_s=0.2, enquire_link_misses=1,
                            reconnect=FAST_RECONNECT) as pool:
        await wait_until(lambda: pool.outcomes.statistics().current_buffer_used == 1,
                         limit_s=LIMIT_S)
        smsc.go.set()
        # the reader read the other two and waits to hand them on; the link dies meanwhile
        await wait_until(lambda: pool.stats_connection_drops >= 1, limit_s=LIMIT_S)
        with trio.fail_after(LIMIT_S):
            while len(events) < len(DELIVERIES):
                events += await pool.outcomes.receive()
        await wait_until(lambda: len(smsc.answered) == len(DELIVERIES), limit_s=LIMIT_S)
        stats = pool.statistics()
    assert smsc.sent == [0, 1, 2, 1, 2], "the two dropped were not delivered again"
    assert sorted(smsc.answered) == [0, 1, 2]
    assert [type(e) for e in events] == [ReceiptEvent, ReceiptEvent, MoMessage]
    assert (stats.receipts, stats.mo_messages) == (2, 1)
    assert stats.receipts_by_stat == {"DELIVRD": 1, "UNDELIV": 1}


async def test_deliveries_whose_deferred_ack_was_dropped_count_once_when_delivered_again(
        ) -> None:
    smsc = _RedeliveringSmsc(_hang_up_after_delivering)
    acks: list[DeliverAck] = []
    delivered: list[Any] = []
    async with pool_against(smsc.handler, defer_deliver_acks=True,
                            reconnect=FAST_RECONNECT) as pool:
        with trio.fail_after(LIMIT_S):
            while len(delivered) < len(DELIVERIES):
                for ev in await pool.outcomes.receive():
                    if isinstance(ev, DeliverAck):
                        acks.append(ev)
                    else:
                        delivered.append(ev)
        await wait_until(lambda: pool.stats_connection_drops >= 1, limit_s=LIMIT_S)
        for ack in acks:
            ack.ack()  # too late: the connection they came on is gone
        assert pool.stats_deliver_acks_dropped == len(DELIVERIES)
        acks.clear()
        with trio.fail_after(LIMIT_S):
            while len(delivered) < 2 * len(DELIVERIES):
                for ev in await pool.outcomes.receive():
                    if isinstance(ev, DeliverAck):
                        ev.ack()
                    else:
                        delivered.append(ev)
        await wait_until(lambda: len(smsc.answered) == len(DELIVERIES), limit_s=LIMIT_S)
        stats = pool.statistics()
    assert smsc.sent == [0, 1, 2, 0, 1, 2] and sorted(smsc.answered) == [0, 1, 2]
    assert (stats.receipts, stats.mo_messages) == (2, 1)
    assert stats.receipts_by_stat == {"DELIVRD": 1, "UNDELIV": 1}
