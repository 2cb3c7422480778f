"""PDUs an SMSC sends right behind its bind_resp, in the same TCP segment (queued receipts
are often flushed that way), must not be lost: the reader handles them first. Nor may a
read larger than one loop step of the reader lose any, when an unbind ends it."""

from __future__ import annotations

from typing import Any

import trio

from dispatch.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, CommandId
from dispatch.smpp.session import BindRequest, Response, SmscSession, Unbound
from dispatch.transport.bind import READ_SLICE_EVENTS
from dispatch.transport.pool import ReceiptEvent
from pool_harness import SmscHandler, pool_against, scripted_smsc


def _receipt(message_id: str) -> tuple[object, ...]:
    body = (f"id:{message_id} sub:001 dlvrd:001 submit date:2611231200 "
            f"done date:2611231201 stat:DELIVRD err:000 text:").encode()
    return (b"", 1, 1, b"4915100000001", 5, 0, b"Shop", ESM_CLASS_DELIVERY_RECEIPT, 0, 0, b"",
            b"", 0, 0, 0, 0, body, None)


async def _receipts_from(smsc: SmscHandler, count: int, done: trio.Event) -> list[ReceiptEvent]:
    """Bind a pool to the scripted ``smsc`` on loopback; the first ``count`` receipts it hands
    on, once ``done`` is set too."""
    receipts: list[ReceiptEvent] = []
    async with pool_against(smsc) as pool:
        with trio.fail_after(10):
            while len(receipts) < count:
                receipts += [e for e in await pool.outcomes.receive()
                             if isinstance(e, ReceiptEvent)]
            await done.wait()
    return receipts


async def test_deliver_sm_in_the_same_segment_as_bind_resp_is_handled_and_answered() -> None:
    answered: list[int] = []
    done = trio.Event()

    def script(session: SmscSession, ev: Any) -> None:
        if isinstance(ev, BindRequest):  # bind_resp + both deliver_sm leave in one write
            session.accept_bind(ev)
            session.send_deliver_sm_batch([_receipt("A1"), _receipt("A2")])
        elif isinstance(ev, Response) and ev.command_id == CommandId.DELIVER_SM_RESP:
            answered.append(ev.sequence_number)
            if len(answered) == 2:
                done.set()

    receipts = await _receipts_from(scripted_smsc(script), 2, done)
    assert sorted(r.message_id for r in receipts) == ["a1", "a2"]  # normalised ids
    assert sorted(answered) == [1, 2]


async def test_a_large_read_ending_in_an_unbind_hands_on_every_pdu_before_it() -> None:
    """One read holds more PDUs than the reader handles in a loop step (``READ_SLICE_EVENTS``)
    and ends with the SMSC's unbind: the PDUs before the unbind are all handed on, and the
    link ends after them (the unbind is answered)."""
    count = 3 * READ_SLICE_EVENTS + 7
    unbind_answered = trio.Event()

    def script(session: SmscSession, ev: Any) -> None:
        if isinstance(ev, BindRequest) and not unbind_answered.is_set():
            session.accept_bind(ev)
            session.send_deliver_sm_batch([_receipt(f"B{i}") for i in range(count)])
            session.send_unbind()
        elif isinstance(ev, BindRequest):
            session.accept_bind(ev)  # the rebind after the unbind
        elif isinstance(ev, Unbound):  # our unbind was answered
            unbind_answered.set()

    receipts = await _receipts_from(scripted_smsc(script), count, unbind_answered)
    assert sorted(r.message_id for r in receipts) == sorted(f"b{i}" for i in range(count))
