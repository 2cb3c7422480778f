"""The ESME session against PDUs an odd or hostile SMSC sends, bytes only (sans-IO)."""

from __future__ import annotations

import struct

from dispatch.smpp.constants import CommandId as C
from dispatch.smpp.constants import CommandStatus as S
from dispatch.smpp.session import (
    BindMode,
    BindResponse,
    EsmeSession,
    ProtocolError,
    Response,
    SessionState,
)


def pdu(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def sm() -> tuple[object, ...]:
    return (b"", 5, 0, b"Shop", 1, 1, b"4915100000001", 0, 0, 0, b"", b"", 1, 0, 0, 0,
            b"hello", None)


def bound() -> EsmeSession:
    esme = EsmeSession()
    esme.send_bind(BindMode.TRANSCEIVER, b"me", b"pw")
    esme.data_to_send()
    esme.receive_data(pdu(C.BIND_TRANSCEIVER_RESP, 0, 1, b"smsc\x00"))
    assert esme.state is SessionState.BOUND_TRX
    return esme


def test_bind_resp_with_an_unparsable_body_still_answers_the_bind() -> None:
    """Section 4.1.2 caps system_id at 16 octets with its NUL; an SMSC with a longer one
    still bound us, and a refusal with junk after the header is still a refusal."""
    esme = EsmeSession()
    esme.send_bind(BindMode.TRANSCEIVER, b"me", b"pw")
    esme.data_to_send()
    events = esme.receive_data(pdu(C.BIND_TRANSCEIVER_RESP, 0, 1, b"x" * 20 + b"\x00"))
    assert isinstance(events[0], ProtocolError) and not events[0].fatal
    assert events[1] == BindResponse(1, 0, BindMode.TRANSCEIVER, b"", {})
    assert esme.state is SessionState.BOUND_TRX
    assert esme.data_to_send() == b""  # a response is never nacked

    refused = EsmeSession()
    refused.send_bind(BindMode.TRANSMITTER, b"me", b"pw")
    refused.data_to_send()
    events = refused.receive_data(pdu(C.BIND_TRANSMITTER_RESP, S.ESME_RINVPASWD, 1, b"smsc"))
    assert [e.command_status for e in events if isinstance(e, BindResponse)] == [
        S.ESME_RINVPASWD]
    assert refused.state is SessionState.OPEN
    assert refused.data_to_send() == b""


def test_submit_sm_resp_with_an_unparsable_body_settles_the_submit() -> None:
    """A message_id over 64 octets (section 4.4.2 allows 65 with the NUL): the submit was
    answered, with the header's status; waiting on would resend it after the timeout."""
    esme = bound()
    (seq,) = esme.send_submit_sm_batch([sm()])
    esme.data_to_send()
    events = esme.receive_data(pdu(C.SUBMIT_SM_RESP, 0, seq, b"7" * 70 + b"\x00")
                               + pdu(C.ENQUIRE_LINK, 0, 40))
    assert [type(e).__name__ for e in events] == ["ProtocolError", "Response", "EnquireLink"]
    assert events[1] == Response(C.SUBMIT_SM_RESP, 0, seq, None)
    assert esme.outstanding == 0
    assert esme.data_to_send() == pdu(C.ENQUIRE_LINK_RESP, 0, 40)  # and no generic_nack


def test_alert_notification_gets_no_response() -> None:
    """Section 4.12: alert_notification has no response PDU; 0x80000102 does not exist."""
    esme = bound()
    body = b"\x01\x01123\x00\x01\x01456\x00"
    esme.receive_data(pdu(C.ALERT_NOTIFICATION, 0, 7, body))
    assert esme.data_to_send() == b""
    assert esme.state is SessionState.BOUND_TRX


def test_outbind_gets_no_response() -> None:
    """Section 4.1.7: outbind has no response PDU either (0x8000000B does not exist)."""
    esme = bound()
    events = esme.receive_data(pdu(C.OUTBIND, 0, 8, b"smsc\x00pw\x00"))
    assert esme.data_to_send() == b""
    assert all(isinstance(e, ProtocolError) and not e.fatal for e in events)
