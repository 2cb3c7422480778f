"""The SMSC's unbind, driven with bytes alone (SMPP 3.4 section 4.2): what the ESME session
still takes after it, what it answers, and in which order."""

from __future__ import annotations

import random
import struct

from test_session import bound

from dispatch.fastpath import impl
from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.session import (
    DeliverSm,
    EsmeSession,
    ProtocolError,
    Response,
    SessionState,
    Unbound,
)

C = CommandId
S = CommandStatus


def sm(text: bytes = b"hello") -> tuple:
    return (b"", 5, 0, b"Shop", 1, 1, b"4915100000001", 0, 0, 0, b"", b"", 1, 0, 0, 0, text,
            None)


def header(command_id: int, status: int, seq: int) -> bytes:
    return struct.pack(">IIII", 16, command_id, status, seq)


def pdus(wire: bytes) -> list[tuple[int, int, int]]:
    """(command_id, status, sequence_number) of every PDU in ``wire``."""
    out = []
    while wire:
        length, command_id, status, seq = struct.unpack(">IIII", wire[:16])
        out.append((command_id, status, seq))
        wire = wire[length:]
    return out


def submits_then_unbind(late: int) -> tuple[EsmeSession, list[int], bytes, bytes]:
    """Three submits outstanding; the SMSC answers the first, unbinds, answers ``late`` more.
    Returns the ESME, the sequence numbers, the wire up to the unbind and the rest."""
    esme, smsc = bound()
    seqs = esme.send_submit_sm_batch([sm(), sm(), sm()])
    smsc.receive_data(esme.data_to_send())
    smsc.send_submit_sm_resp_batch([(0, seqs[0], b"m1")])
    smsc.send_unbind()
    head = smsc.data_to_send()
    smsc.send_submit_sm_resp_batch([(0, s, b"m%d" % s) for s in seqs[1:1 + late]])
    return esme, seqs, head, smsc.data_to_send()


def test_responses_behind_the_unbind_in_the_same_read_settle_their_requests() -> None:
    esme, seqs, head, tail = submits_then_unbind(late=2)
    events = esme.receive_data(head + tail)
    assert [type(e) for e in events] == [Response, Unbound, Response, Response]
    assert [e.sequence_number for e in events if isinstance(e, Response)] == seqs
    assert events[1] == Unbound(by_peer=True)
    assert pdus(esme.data_to_send()) == [(C.UNBIND_RESP, 0, 1)]  # the SMSC's first request
    assert esme.state is SessionState.CLOSED and esme.unexpected_responses == 0


def test_responses_after_the_unbind_in_later_reads_still_match() -> None:
    esme, seqs, head, tail = submits_then_unbind(late=2)
    assert [type(e) for e in esme.receive_data(head)] == [Response, Unbound]
    assert pdus(esme.data_to_send()) == [(C.UNBIND_RESP, 0, 1)]  # answered at once
    assert esme.state is SessionState.UNBOUND and esme.outstanding == 2
    first, second = tail[:len(tail) // 2], tail[len(tail) // 2:]
    assert [e.sequence_number for e in esme.receive_data(first)] == [seqs[1]]
    assert esme.state is SessionState.UNBOUND
    assert [e.sequence_number for e in esme.receive_data(second)] == [seqs[2]]
    assert esme.state is SessionState.CLOSED


def test_events_behind_the_unbind_do_not_depend_on_how_bytes_are_split() -> None:
    _, _, head, tail = submits_then_unbind(late=2)
    expected = submits_then_unbind(late=2)[0].receive_data(head + tail)
    rng = random.Random(11)
    for chunking in ("bytes", "random"):
        esme = submits_then_unbind(late=2)[0]
        wire, got, i = head + tail, [], 0
        while i < len(wire):
            step = 1 if chunking == "bytes" else rng.randint(1, 40)
            got += esme.receive_data(wire[i:i + step])
            i += step
        assert got == expected and esme.state is SessionState.CLOSED


def test_giving_up_on_the_drain_closes_and_forgets_what_is_outstanding() -> None:
    esme, _seqs, head, _ = submits_then_unbind(late=0)
    esme.receive_data(head)
    esme.data_to_send()
    esme.end_unbound()
    assert esme.state is SessionState.CLOSED and esme.outstanding == 0
    assert esme.data_to_send() == b""  # the unbind_resp had gone out already


def test_a_timed_out_last_request_ends_the_drain() -> None:
    esme, seqs, head, _ = submits_then_unbind(late=1)
    esme.receive_data(head)
    esme.forget(seqs[1])
    esme.forget(seqs[2])
    assert esme.state is SessionState.CLOSED


def test_enquire_link_outstanding_is_not_waited_for() -> None:
    esme, smsc = bound()
    esme.send_enquire_link()
    smsc.send_unbind()
    assert esme.receive_data(smsc.data_to_send()) == [Unbound(by_peer=True)]
    assert esme.state is SessionState.CLOSED


def test_the_unbind_resp_waits_for_the_deliver_sm_read_before_it() -> None:
    esme, smsc = bound()
    smsc.send_deliver_sm_batch([sm(b"id:1 stat:DELIVRD"), sm(b"id:2 stat:DELIVRD")])
    smsc.send_unbind()
    events = esme.receive_data(smsc.data_to_send())
    assert [type(e) for e in events] == [DeliverSm, DeliverSm, Unbound]
    assert not esme.has_data_to_send  # nothing answered before the transport hands them on
    assert esme.state is SessionState.UNBOUND
    esme.send_deliver_sm_resp(events[0].sequence_number)
    assert pdus(esme.data_to_send()) == [(C.DELIVER_SM_RESP, 0, 1)]
    esme.send_deliver_sm_resp(events[1].sequence_number)
    # the last answer lets the unbind_resp out, behind it
    assert pdus(esme.data_to_send()) == [(C.DELIVER_SM_RESP, 0, 2), (C.UNBIND_RESP, 0, 3)]
    assert esme.state is SessionState.CLOSED


def test_giving_up_answers_an_unbind_still_waiting_for_deliver_sm_resp() -> None:
    esme, smsc = bound()
    smsc.send_deliver_sm_batch([sm(b"id:1 stat:DELIVRD")])
    smsc.send_unbind()
    esme.receive_data(smsc.data_to_send())
    esme.end_unbound()
    assert pdus(esme.data_to_send()) == [(C.UNBIND_RESP, 0, 2)]
    assert esme.state is SessionState.CLOSED


def test_a_deliver_sm_after_the_smscs_unbind_is_refused_not_surfaced() -> None:
    """SMPP 3.4 section 4.2: the SMSC that sent unbind no longer delivers on this session
    (SMPP 5.0 section 2.4 allows no deliver_sm in the Unbound state). ESME_RINVBNDSTS tells
    it so; it keeps the message for the next bind, and nobody here has seen it."""
    esme, smsc = bound()
    smsc.send_unbind()
    unbind = smsc.data_to_send()
    late = impl.encode_sm_batch(C.DELIVER_SM, [(7, *sm(b"id:9 stat:DELIVRD"))])
    events = esme.receive_data(unbind + late)
    assert events[0] == Unbound(by_peer=True)
    assert not any(isinstance(e, DeliverSm) for e in events)
    # no outstanding request: the session closed at the unbind; the rest is not read
    assert esme.state is SessionState.CLOSED
    assert pdus(esme.data_to_send()) == [(C.UNBIND_RESP, 0, 1)]


def test_a_deliver_sm_during_the_drain_gets_esme_rinvbndsts() -> None:
    esme, _seqs, head, _ = submits_then_unbind(late=0)
    esme.receive_data(head)
    esme.data_to_send()
    late = impl.encode_sm_batch(C.DELIVER_SM, [(7, *sm(b"id:9 stat:DELIVRD"))])
    (err,) = esme.receive_data(late)
    assert isinstance(err, ProtocolError) and not err.fatal
    assert err.command_status == S.ESME_RINVBNDSTS
    assert pdus(esme.data_to_send()) == [(C.DELIVER_SM_RESP, S.ESME_RINVBNDSTS, 7)]
    assert esme.state is SessionState.UNBOUND and esme.outstanding == 2


def test_a_data_sm_before_the_unbind_is_answered_with_data_sm_resp_first() -> None:
    esme, smsc = bound()
    # data_sm (section 4.7.1): service_type, source, destination, esm_class,
    # registered_delivery, data_coding; no TLVs
    body = b"\x00\x01\x014915100000001\x00\x05\x00Shop\x00\x04\x00\x00"
    smsc.send_raw(struct.pack(">IIII", 16 + len(body), C.DATA_SM, 0, 5) + body)
    smsc.send_unbind()
    events = esme.receive_data(smsc.data_to_send())
    assert [type(e) for e in events] == [DeliverSm, Unbound]
    esme.send_deliver_sm_resp(5)
    assert [p[0] for p in pdus(esme.data_to_send())] == [C.DATA_SM_RESP, C.UNBIND_RESP]


def test_the_smsc_side_still_closes_at_once_on_the_esmes_unbind() -> None:
    esme, smsc = bound()
    smsc.send_deliver_sm_batch([sm()])  # outstanding on the SMSC side: not waited for
    esme.receive_data(smsc.data_to_send())
    esme.send_unbind()
    assert smsc.receive_data(esme.data_to_send()) == [Unbound(by_peer=True)]
    assert smsc.state is SessionState.CLOSED and smsc.outstanding == 0
