"""PDUs an SMSC sends right behind its bind_resp, in the same TCP segment (queued receipts
are often flushed that way), must not be lost: the reader handles them first. Nor may a
read larger than one loop step of the reader lose any, when an unbind ends it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

from dispatch.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, CommandId
from dispatch.smpp.session import BindRequest, Response, SmscSession, Unbound
from dispatch.transport.bind import READ_SLICE_EVENTS
from dispatch.transport.config import EsmeConfig
from dispatch.transport.pool import BindPool, ReceiptEvent


def _receipt(message_id: str) -> tuple[object, ...]:
    body = (f"id:{message_id} sub:001 dlvrd:001 submit date:2611231200 "
            f"done date:2611231201 stat:DELIVRD err:000 text:").encode()
    return (b"", 1, 1, b"4915100000001", 5, 0, b"Shop", ESM_CLASS_DELIVERY_RECEIPT, 0, 0, b"",
            b"", 0, 0, 0, 0, body, None)


async def _receipts_from(smsc: Callable[[trio.SocketStream], Awaitable[None]], count: int,
                         done: trio.Event) -> list[ReceiptEvent]:
    """Bind a pool to the scripted ``smsc`` on loopback; the first ``count`` receipts it hands
    on, once ``done`` is set too."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, smsc, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        pool = BindPool(EsmeConfig(name="op", host="127.0.0.1", port=port, system_id="me",
                                   password="pw"))
        await nursery.start(pool.run)
        receipts: list[ReceiptEvent] = []
        with trio.fail_after(10):
            while len(receipts) < count:
                receipts += [e for e in await pool.outcomes.receive()
                             if isinstance(e, ReceiptEvent)]
            await done.wait()
        nursery.cancel_scope.cancel()
    return receipts


async def test_deliver_sm_in_the_same_segment_as_bind_resp_is_handled_and_answered() -> None:
    answered: list[int] = []
    done = trio.Event()

    async def smsc(stream: trio.SocketStream) -> None:
        session = SmscSession(system_id=b"smsc")
        while not done.is_set():
            data = await stream.receive_some(65536)
            if not data:
                return
            for ev in session.receive_data(data):
                if isinstance(ev, BindRequest):
                    session.accept_bind(ev)
                    session.send_deliver_sm_batch([_receipt("A1"), _receipt("A2")])
                elif isinstance(ev, Response) and ev.command_id == CommandId.DELIVER_SM_RESP:
                    answered.append(ev.sequence_number)
                    if len(answered) == 2:
                        done.set()
            if session.has_data_to_send:  # bind_resp + both deliver_sm in one write
                await stream.send_all(session.data_to_send())

    receipts = await _receipts_from(smsc, 2, done)
    assert sorted(r.message_id for r in receipts) == ["a1", "a2"]  # normalised ids
    assert sorted(answered) == [1, 2]


async def test_a_large_read_ending_in_an_unbind_hands_on_every_pdu_before_it() -> None:
    """One read holds more PDUs than the reader handles in a loop step (``READ_SLICE_EVENTS``)
    and ends with the SMSC's unbind: the PDUs before the unbind are all handed on, and the
    link ends after them (the unbind is answered)."""
    count = 3 * READ_SLICE_EVENTS + 7
    unbind_answered = trio.Event()

    async def smsc(stream: trio.SocketStream) -> None:
        session = SmscSession(system_id=b"smsc")
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            for ev in session.receive_data(data):
                if isinstance(ev, BindRequest) and not unbind_answered.is_set():
                    session.accept_bind(ev)
                    session.send_deliver_sm_batch([_receipt(f"B{i}") for i in range(count)])
                    session.send_unbind()
                elif isinstance(ev, BindRequest):
                    session.accept_bind(ev)  # the rebind after the unbind
                elif isinstance(ev, Unbound):  # our unbind was answered
                    unbind_answered.set()
            if session.has_data_to_send:
                await stream.send_all(session.data_to_send())

    receipts = await _receipts_from(smsc, count, unbind_answered)
    assert sorted(r.message_id for r in receipts) == sorted(f"b{i}" for i in range(count))
