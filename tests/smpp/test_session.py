"""The sans-IO session, driven with bytes alone: an ESME session talks to an SMSC session."""

from __future__ import annotations

import random
import struct

import pytest

from dispatch.fastpath import impl
from dispatch.smpp.constants import MAX_SEQUENCE, CommandId, CommandStatus
from dispatch.smpp.errors import LocalProtocolError
from dispatch.smpp.session import (
    TRANSITIONS,
    BindMode,
    BindRequest,
    BindResponse,
    DeliverSm,
    EnquireLink,
    EsmeSession,
    GenericNack,
    Input,
    ProtocolError,
    Response,
    SessionState,
    SmscSession,
    SubmitSm,
    Unbound,
)

C = CommandId
S = CommandStatus


def sm(dest: bytes = b"4915100000001", text: bytes = b"hello") -> tuple:
    """An SmMessage without the sequence number (17 fields + TLVs)."""
    return (b"", 5, 0, b"Shop", 1, 1, dest, 0, 0, 0, b"", b"", 1, 0, 0, 0, text, None)


def header(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def bound(mode: BindMode = BindMode.TRANSCEIVER) -> tuple[EsmeSession, SmscSession]:
    esme, smsc = EsmeSession(), SmscSession()
    esme.send_bind(mode, b"user", b"pw", system_type=b"cmt", address_range=b"^49")
    (req,) = smsc.receive_data(esme.data_to_send())
    assert isinstance(req, BindRequest)
    smsc.accept_bind(req)
    (resp,) = esme.receive_data(smsc.data_to_send())
    assert isinstance(resp, BindResponse) and resp.command_status == 0
    return esme, smsc


@pytest.mark.parametrize("mode,state", [(BindMode.TRANSMITTER, SessionState.BOUND_TX),
                                        (BindMode.RECEIVER, SessionState.BOUND_RX),
                                        (BindMode.TRANSCEIVER, SessionState.BOUND_TRX)])
def test_bind_handshake_reaches_the_mode_state(mode: BindMode, state: SessionState) -> None:
    esme, smsc = EsmeSession(), SmscSession()
    assert esme.state is SessionState.OPEN
    esme.send_bind(mode, b"user", b"pw", system_type=b"cmt", addr_ton=1, addr_npi=1,
                   address_range=b"^49")
    assert esme.state is SessionState.BINDING
    (req,) = smsc.receive_data(esme.data_to_send())
    assert req == BindRequest(1, mode, b"user", b"pw", b"cmt", 0x34, 1, 1, b"^49")
    smsc.accept_bind(req)
    (resp,) = esme.receive_data(smsc.data_to_send())
    assert isinstance(resp, BindResponse)
    assert (resp.command_status, resp.mode, resp.system_id) == (0, mode, b"dispatch-sim")
    assert esme.state is state and smsc.state is state


def test_rejected_bind_returns_to_open_with_the_status() -> None:
    esme, smsc = EsmeSession(), SmscSession()
    esme.send_bind(BindMode.TRANSCEIVER, b"user", b"wrong")
    (req,) = smsc.receive_data(esme.data_to_send())
    smsc.reject_bind(req, S.ESME_RINVPASWD)
    (resp,) = esme.receive_data(smsc.data_to_send())
    assert resp.command_status == S.ESME_RINVPASWD
    assert esme.state is SessionState.OPEN
    assert smsc.state is SessionState.CLOSED


def test_submit_batch_matches_responses_by_sequence() -> None:
    esme, smsc = bound()
    seqs = esme.send_submit_sm_batch([sm(b"1"), sm(b"2"), sm(b"3")])
    assert seqs == [2, 3, 4] and esme.outstanding == 3
    events = smsc.receive_data(esme.data_to_send())
    assert [type(e) for e in events] == [SubmitSm] * 3
    assert [e.fields[6] for e in events] == [b"1", b"2", b"3"]
    # answered out of order, one with an error status
    smsc.send_submit_sm_resp_batch([(0, 4, b"id4"), (S.ESME_RINVDSTADR, 2, b""), (0, 3, b"id3")])
    resps = esme.receive_data(smsc.data_to_send())
    assert [(r.sequence_number, r.command_status, r.body) for r in resps] == [
        (4, 0, b"id4"), (2, S.ESME_RINVDSTADR, b""), (3, 0, b"id3")]
    assert esme.outstanding == 0


def test_response_to_nothing_is_dropped_and_counted() -> None:
    esme, _ = bound()
    assert esme.receive_data(header(C.SUBMIT_SM_RESP, 0, 999, b"x\x00")) == []
    assert esme.unexpected_responses == 1


def test_sequence_numbers_wrap_and_skip_outstanding() -> None:
    esme, _ = bound()
    esme._next_seq = MAX_SEQUENCE
    assert esme.send_submit_sm_batch([sm(), sm()]) == [MAX_SEQUENCE, 1]
    esme._next_seq = MAX_SEQUENCE
    # MAX and 1 are still outstanding: the next free number is 2... (bind used 1 before)
    assert esme.next_sequence() == 2


def test_enquire_link_both_ways() -> None:
    esme, smsc = bound()
    seq = esme.send_enquire_link()
    (probe,) = smsc.receive_data(esme.data_to_send())
    assert probe == EnquireLink(seq)
    (answer,) = esme.receive_data(smsc.data_to_send())
    assert isinstance(answer, Response) and answer.command_id == C.ENQUIRE_LINK_RESP
    seq2 = smsc.send_enquire_link()
    assert esme.receive_data(smsc.data_to_send()) == [EnquireLink(seq2)]
    (answer2,) = smsc.receive_data(esme.data_to_send())
    assert answer2.command_id == C.ENQUIRE_LINK_RESP and answer2.sequence_number == seq2


def test_unbind_handshake_from_the_esme() -> None:
    esme, smsc = bound()
    esme.send_unbind()
    assert esme.state is SessionState.UNBINDING
    assert smsc.receive_data(esme.data_to_send()) == [Unbound(by_peer=True)]
    assert smsc.state is SessionState.CLOSED
    assert esme.receive_data(smsc.data_to_send()) == [Unbound(by_peer=False)]
    assert esme.state is SessionState.CLOSED


def test_unbind_from_the_smsc_is_answered() -> None:
    esme, smsc = bound()
    smsc.send_unbind()
    assert esme.receive_data(smsc.data_to_send()) == [Unbound(by_peer=True)]
    assert smsc.receive_data(esme.data_to_send()) == [Unbound(by_peer=False)]


def test_deliver_sm_is_surfaced_and_acknowledged_on_request() -> None:
    esme, smsc = bound()
    (seq,) = smsc.send_deliver_sm_batch([sm(text=b"id:1 stat:DELIVRD")])
    (ev,) = esme.receive_data(smsc.data_to_send())
    assert isinstance(ev, DeliverSm) and ev.fields[16] == b"id:1 stat:DELIVRD"
    assert not esme.has_data_to_send  # not acknowledged before the transport hands it on
    esme.send_deliver_sm_resp(ev.sequence_number)
    (resp,) = smsc.receive_data(esme.data_to_send())
    assert (resp.command_id, resp.sequence_number, resp.command_status) == (
        C.DELIVER_SM_RESP, seq, 0)


def test_unknown_command_gets_generic_nack() -> None:
    esme, _ = bound()
    (err,) = esme.receive_data(header(0x00000077, 0, 42))
    assert isinstance(err, ProtocolError) and not err.fatal
    assert esme.data_to_send() == header(C.GENERIC_NACK, S.ESME_RINVCMDID, 42)


def test_malformed_but_framed_pdu_is_nacked_and_the_stream_goes_on() -> None:
    _esme, smsc = bound()
    # a submit_sm whose body is one unterminated C-string: framed, but not a valid body
    bad = header(C.SUBMIT_SM, 0, 9, b"\x01\x02\x03")
    good = EsmeSession()  # a fresh encoder for one valid submit_sm with seq 2
    good.state = SessionState.BOUND_TRX
    good._next_seq = 10
    good.send_submit_sm_batch([sm()])
    events = smsc.receive_data(bad + good.data_to_send())
    assert isinstance(events[0], ProtocolError) and not events[0].fatal
    assert isinstance(events[1], SubmitSm) and events[1].sequence_number == 10
    nack = smsc.data_to_send()
    assert struct.unpack(">IIII", nack[:16])[1:] == (C.GENERIC_NACK, events[0].command_status, 9)


def test_broken_framing_closes_the_session() -> None:
    esme, _ = bound()
    (err,) = esme.receive_data(b"\x00\x00\x00\x05garbage")
    assert isinstance(err, ProtocolError) and err.fatal
    assert esme.state is SessionState.CLOSED
    assert esme.receive_data(b"more") == []


def test_requests_the_state_forbids() -> None:
    rx, smsc = bound(BindMode.RECEIVER)
    with pytest.raises(LocalProtocolError):
        rx.send_submit_sm_batch([sm()])
    # a submit_sm on a receiver bind is answered ESME_RINVBNDSTS by the SMSC side
    (err,) = smsc.receive_data(impl.encode_sm_batch(C.SUBMIT_SM, [(5, *sm())]))
    assert isinstance(err, ProtocolError)
    assert smsc.data_to_send() == header(C.SUBMIT_SM_RESP, S.ESME_RINVBNDSTS, 5)
    fresh = SmscSession()
    fresh.receive_data(header(C.ENQUIRE_LINK, 0, 3))  # before any bind
    assert fresh.data_to_send() == header(C.ENQUIRE_LINK_RESP, S.ESME_RINVBNDSTS, 3)


def test_generic_nack_from_the_peer_names_the_request() -> None:
    esme, _ = bound()
    (seq,) = esme.send_submit_sm_batch([sm()])
    (ev,) = esme.receive_data(header(C.GENERIC_NACK, S.ESME_RINVCMDLEN, seq))
    assert ev == GenericNack(S.ESME_RINVCMDLEN, seq, C.SUBMIT_SM)
    assert esme.outstanding == 0


def test_events_do_not_depend_on_how_bytes_are_split() -> None:
    esme, _smsc = bound()
    esme.send_submit_sm_batch([sm(b"%d" % i, b"x" * i) for i in range(30)])
    esme.send_enquire_link()
    wire = esme.data_to_send()
    whole = SmscSession()
    whole.state = SessionState.BOUND_TRX
    expected = whole.receive_data(wire)
    rng = random.Random(7)
    for chunking in ("bytes", "random"):
        s = SmscSession()
        s.state = SessionState.BOUND_TRX
        got = []
        i = 0
        while i < len(wire):
            step = 1 if chunking == "bytes" else rng.randint(1, 200)
            got += s.receive_data(wire[i:i + step])
            i += step
        assert got == expected
    assert len(expected) == 31


def test_transition_table_every_state_can_close() -> None:
    for state in SessionState:
        assert TRANSITIONS[(state, Input.CLOSE)] is SessionState.CLOSED
    assert TRANSITIONS[(SessionState.BINDING, Input.BIND_FAILED)] is SessionState.OPEN
    with pytest.raises(LocalProtocolError):
        EsmeSession().send_unbind()  # not bound: unbind is not allowed


def test_random_garbage_never_raises() -> None:
    rng = random.Random(3)
    for _ in range(200):
        esme, _ = bound()
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 120)))
        for ev in esme.receive_data(blob):
            assert not isinstance(ev, Exception)
