"""bind_resp as odd SMSCs send it, over loopback with the real codec: a body that does not
parse (a system_id longer than SMPP 3.4 section 4.1.2 allows, no NUL, a broken TLV) must not
hide the answer in the header. The status there decides: bound, or refused with it."""

from __future__ import annotations

import struct
from typing import Any

import trio

from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.session import BindRequest, SmscSession, SubmitSm
from dispatch.transport.pool import BindFailure, SubmitOutcome, SubmitStatus
from pool_harness import messages, pool_against


def _pdu(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def _smsc(status: int, body: bytes) -> Any:
    """An SMSC that answers every bind_transceiver with exactly ``status`` and ``body`` and,
    once bound (status 0), accepts every submit_sm."""
    async def smsc(stream: trio.SocketStream) -> None:
        session = SmscSession(system_id=b"smsc")
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            for ev in session.receive_data(data):
                if isinstance(ev, BindRequest):
                    session.accept_bind(ev)  # the state; its bytes are replaced below
                    session.data_to_send()
                    session.send_raw(_pdu(CommandId.BIND_TRANSCEIVER_RESP, status,
                                          ev.sequence_number, body))
                    if status:
                        await stream.send_all(session.data_to_send())
                        return
                elif isinstance(ev, SubmitSm):
                    session.send_submit_sm_resp_batch(
                        [(0, ev.sequence_number, b"M%d" % ev.sequence_number)])
            if session.has_data_to_send:
                await stream.send_all(session.data_to_send())
    return smsc


async def test_refusal_with_an_unparsable_body_keeps_its_status() -> None:
    """ESME_RINVPASWD with a system_id of 20 octets and no NUL: still a refusal for bad
    credentials (so the long back-off applies), not a bind_resp that never came."""
    async with pool_against(_smsc(CommandStatus.ESME_RINVPASWD, b"S" * 20),
                            bind_timeout_s=0.5) as pool:
        with trio.fail_after(10):
            while True:
                batch = await pool.outcomes.receive()
                failures = [e for e in batch if isinstance(e, BindFailure)]
                if failures:
                    break
    assert failures[0].command_status == CommandStatus.ESME_RINVPASWD
    assert failures[0].retry_in_s >= 0.8 * pool.config.reconnect.bad_credentials_s


async def test_acceptance_with_a_long_system_id_and_a_broken_tlv_binds() -> None:
    """ESME_ROK whose system_id is longer than 15 octets and whose TLV is cut short: the SMSC
    bound us; we are bound too and traffic flows."""
    async with pool_against(_smsc(0, b"a-very-long-smsc-system-id\x00\x02\x10\x00"),
                            bind_timeout_s=0.5) as pool:
        await pool.submit_many(messages(3))
        outcomes: list[SubmitOutcome] = []
        with trio.fail_after(10):
            while len(outcomes) < 3:
                outcomes += [e for e in await pool.outcomes.receive()
                             if isinstance(e, SubmitOutcome)]
    assert {o.status for o in outcomes} == {SubmitStatus.ACCEPTED}
    assert pool.stats_bind_failures == 0
