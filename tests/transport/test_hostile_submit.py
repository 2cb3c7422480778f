"""submit_sm answered the way odd or hostile SMSCs answer it, over loopback with the real
codec: a scripted SMSC (``SmscSession`` for the handshake, exact bytes for the answers)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import trio

from dispatch.smpp.constants import CommandId
from dispatch.smpp.session import BindRequest, SmscSession, SubmitSm
from dispatch.transport.pool import SubmitOutcome, SubmitStatus
from pool_harness import messages, pool_against, scripted_smsc

Answer = Callable[[SubmitSm, int], bytes]  # (the submit, how many came before) -> bytes


def _pdu(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


async def _run(answer: Answer, count: int, **config: Any
               ) -> tuple[list[SubmitOutcome], list[SubmitSm]]:
    """Submit ``count`` messages through a pool bound to a scripted SMSC that answers each
    submit_sm with ``answer(...)``; return the outcomes and every submit_sm the SMSC saw."""
    submits: list[SubmitSm] = []

    def script(session: SmscSession, ev: Any) -> None:
        if isinstance(ev, BindRequest):
            session.accept_bind(ev)
        elif isinstance(ev, SubmitSm):
            session.send_raw(answer(ev, len(submits)))
            submits.append(ev)

    outcomes: list[SubmitOutcome] = []
    async with pool_against(scripted_smsc(script), **config) as pool:
        await pool.submit_many(messages(count))
        with trio.fail_after(10):
            while len(outcomes) < count:
                outcomes += [e for e in await pool.outcomes.receive()
                             if isinstance(e, SubmitOutcome)]
    return outcomes, submits


async def test_message_id_without_nul_is_accepted_once() -> None:
    """Some SMSCs end submit_sm_resp's message_id at the end of the PDU, without the NUL of a
    C-Octet String (section 4.4.2): the submit was accepted and must be settled as such,
    never left to time out and be sent again."""
    def answer(ev: SubmitSm, _: int) -> bytes:
        return _pdu(CommandId.SUBMIT_SM_RESP, 0, ev.sequence_number, b"ABC%d" % ev.sequence_number)

    outcomes, submits = await _run(answer, 3, response_timeout_s=1.0)
    assert len(submits) == 3  # none sent twice
    assert {o.status for o in outcomes} == {SubmitStatus.ACCEPTED}
    assert sorted(o.message_ids for o in outcomes) == sorted(
        (f"abc{s.sequence_number}",) for s in submits)



async def test_a_response_after_the_timeout_is_counted_late() -> None:
    """The SMSC answers the first submit only after the pool gave up on it: that response is
    counted in ``late_responses`` (dispatch_smpp_late_responses_total). The session dropped
    it before the pool saw it, so the counter stayed 0."""
    held: list[bytes] = []

    async def smsc(stream: trio.SocketStream) -> None:
        session = SmscSession(system_id=b"smsc")
        while True:
            with trio.move_on_after(0.05):
                data = await stream.receive_some(65536)
                if not data:
                    return
                for ev in session.receive_data(data):
                    if isinstance(ev, BindRequest):
                        session.accept_bind(ev)
                    elif isinstance(ev, SubmitSm):
                        resp = _pdu(CommandId.SUBMIT_SM_RESP, 0, ev.sequence_number,
                                    b"id%d\x00" % ev.sequence_number)
                        if not held and ev.sequence_number == 2:  # the first submit
                            held.append(resp)
                        else:
                            session.send_raw(resp)
            if held and trio.current_time() > held_since[0] + 0.5:
                session.send_raw(held.pop())
                held_since[0] = float("inf")
            if session.has_data_to_send:
                await stream.send_all(session.data_to_send())

    held_since = [0.0]
    async with pool_against(smsc, response_timeout_s=0.2) as pool:
        held_since[0] = trio.current_time()
        await pool.submit_many(messages(1))
        outcomes: list[SubmitOutcome] = []
        with trio.fail_after(10):
            while not outcomes:
                outcomes += [e for e in await pool.outcomes.receive()
                             if isinstance(e, SubmitOutcome)]
            while pool.statistics().late_responses < 1:
                await trio.sleep(0.05)
        assert pool.statistics().response_timeouts == 1
