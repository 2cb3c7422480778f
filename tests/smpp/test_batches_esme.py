"""``EsmeSession(batch_events=True)`` against the per-PDU session, with bytes alone: the same
PDUs give the same events (a batch event counts as the per-PDU events of its PDUs), the same
answers on the wire and the same pending state; ``send_deliver_sm_resps`` queues the bytes
``send_deliver_sm_resp`` queues one by one."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from test_session import bound, header, sm

from dispatch.fastpath import impl
from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.events import DeliverSmBatch, SubmitSmRespBatch
from dispatch.smpp.session import BindMode, DeliverSm, EsmeSession, Response, SmscSession

C = CommandId
S = CommandStatus
# data_sm (section 4.7.1): service_type, source, destination, esm_class, registered_delivery,
# data_coding; no TLVs
DATA_SM_BODY = b"\x00\x01\x014915100000001\x00\x05\x00Shop\x00\x04\x00\x00"


def per_pdu(events: list[Any]) -> list[Any]:
    """The events of the per-PDU session for ``events`` of the batching one."""
    out: list[Any] = []
    for ev in events:
        if type(ev) is SubmitSmRespBatch:
            out += [Response(cid, status, seq, body) for cid, status, seq, body in ev.pdus]
        elif type(ev) is DeliverSmBatch:
            out += [DeliverSm(seq, fields) for _, _, seq, fields in ev.pdus]
        else:
            out.append(ev)
    return out


def state_of(esme: EsmeSession) -> tuple[Any, ...]:
    return (esme.state, dict(esme._pending), dict(esme._unanswered), esme._unbind_to_answer,
            esme.pdus_received, esme.unexpected_responses, esme.nacks_sent,
            esme.protocol_errors, esme._next_seq)


def pair(submits: int) -> tuple[EsmeSession, EsmeSession, SmscSession, list[int]]:
    """A per-PDU and a batching ESME in the same state, ``submits`` submit_sm outstanding on
    each (the same sequence numbers), and the SMSC session of the first."""
    plain, smsc = bound()
    batched, _ = bound()
    batched.batch_events = True
    seqs = plain.send_submit_sm_batch([sm() for _ in range(submits)])
    assert batched.send_submit_sm_batch([sm() for _ in range(submits)]) == seqs
    smsc.receive_data(plain.data_to_send())
    batched.data_to_send()
    return plain, batched, smsc, seqs


def delivers(smsc: SmscSession, count: int) -> None:
    smsc.send_deliver_sm_batch([sm(text=b"id:%d stat:DELIVRD" % i) for i in range(count)])


def mixed_stream(with_unbind: bool) -> tuple[EsmeSession, EsmeSession, bytes]:
    """submit_sm_resp runs interrupted by everything else the SMSC may send."""
    plain, batched, smsc, seqs = pair(16)
    smsc.send_submit_sm_resp_batch([(0, s, b"m%d" % s) for s in seqs[:4]]
                                   + [(S.ESME_RTHROTTLED, seqs[4], b"")])
    delivers(smsc, 3)
    smsc.send_submit_sm_resp_batch([(0, s, b"m%d" % s) for s in seqs[5:7]])
    smsc.send_generic_nack(S.ESME_RSYSERR, seqs[7])
    smsc.send_submit_sm_resp_batch([(0, seqs[8], b"0008")])
    smsc.send_enquire_link()
    # late: a request we no longer have, one settled above, then one of the wrong kind
    smsc.send_submit_sm_resp_batch([(0, 9999, b"late"), (0, seqs[0], b"again")])
    smsc.send_raw(header(C.DELIVER_SM_RESP, 0, seqs[9], b"\x00"))
    smsc.send_submit_sm_resp_batch([(0, seqs[9], b"m9")])
    smsc.send_raw(header(C.DATA_SM, 0, 900, DATA_SM_BODY))
    delivers(smsc, 2)
    smsc.send_raw(header(0x00000777, 0, 901))  # unknown: generic_nack
    smsc.send_raw(header(C.SUBMIT_SM_RESP, 0, seqs[10], b"no-nul"))  # body does not parse
    smsc.send_submit_sm_resp_batch([(0, s, b"m%d" % s) for s in seqs[11:13]])
    if with_unbind:
        delivers(smsc, 2)
        smsc.send_unbind()
        # after the unbind: late answers still settle; a deliver_sm is refused
        smsc.send_submit_sm_resp_batch([(0, s, b"m%d" % s) for s in seqs[13:15]])
        smsc.send_raw(impl.encode_sm_batch(C.DELIVER_SM, [(902, *sm())]))
    return plain, batched, smsc.data_to_send()


@pytest.mark.parametrize("with_unbind", [False, True])
def test_a_mixed_stream_gives_the_same_events_answers_and_state(with_unbind: bool) -> None:
    plain, batched, wire = mixed_stream(with_unbind)
    expected = plain.receive_data(wire)
    events = batched.receive_data(wire)
    assert per_pdu(events) == expected
    assert state_of(batched) == state_of(plain)
    assert batched.data_to_send() == plain.data_to_send()
    # the runs did come as batches, in their place among the other events
    kinds = [type(ev).__name__ for ev in events]
    assert kinds[:3] == ["SubmitSmRespBatch", "DeliverSmBatch", "SubmitSmRespBatch"]
    assert max(len(ev.pdus) for ev in events if type(ev) is SubmitSmRespBatch) == 5
    # answering every deliver_sm and data_sm: the same bytes (after the unbind: with the
    # unbind_resp behind the last answer), the same end state
    seqs = [ev.sequence_number for ev in expected if type(ev) is DeliverSm]
    for seq in seqs:
        plain.send_deliver_sm_resp(seq)
    batched.send_deliver_sm_resps(seqs)
    assert batched.data_to_send() == plain.data_to_send()
    assert state_of(batched) == state_of(plain)


@pytest.mark.parametrize("seed", range(8))
def test_the_same_in_random_splits(seed: int) -> None:
    plain, batched, wire = mixed_stream(with_unbind=True)
    expected = plain.receive_data(wire)
    rng, events, at = random.Random(seed), [], 0
    while at < len(wire):
        step = rng.randint(1, 120)
        events += batched.receive_data(wire[at:at + step])
        at += step
    assert per_pdu(events) == expected
    assert state_of(batched) == state_of(plain)
    assert batched.data_to_send() == plain.data_to_send()


def test_responses_before_the_bind_completes_are_not_batched() -> None:
    # deliver_sm before the bind_resp is refused, the one behind it in the same read is taken
    esme = EsmeSession(batch_events=True)
    seq = esme.send_bind(BindMode.TRANSCEIVER, b"user", b"pw")
    wire = (impl.encode_sm_batch(C.DELIVER_SM, [(7, *sm())])
            + impl.encode_bind_resp(C.BIND_TRANSCEIVER_RESP, 0, seq, b"smsc", 0x34)
            + impl.encode_sm_batch(C.DELIVER_SM, [(8, *sm())]))
    esme.data_to_send()
    kinds = [type(ev).__name__ for ev in esme.receive_data(wire)]
    assert kinds == ["ProtocolError", "BindResponse", "DeliverSmBatch"]
    assert struct.unpack(">IIII", esme.data_to_send()) == (
        16, C.DELIVER_SM_RESP, S.ESME_RINVBNDSTS, 7)
    assert esme._unanswered == {8: C.DELIVER_SM_RESP}


def test_batched_answers_are_the_per_pdu_bytes() -> None:
    plain, batched, smsc, _ = pair(0)
    delivers(smsc, 3)
    smsc.send_raw(header(C.DATA_SM, 0, 900, DATA_SM_BODY))
    delivers(smsc, 2)
    wire = smsc.data_to_send()
    plain.receive_data(wire)
    batched.receive_data(wire)
    seqs = [1, 2, 3, 900, 4, 5, 12345]  # the last is no deliver_sm of ours
    for seq in seqs:
        plain.send_deliver_sm_resp(seq, S.ESME_RX_T_APPN)
    batched.send_deliver_sm_resps(seqs, S.ESME_RX_T_APPN)
    expected = plain.data_to_send()
    assert batched.data_to_send() == expected
    assert [struct.unpack(">I", expected[i + 4:i + 8])[0] for i in range(0, 7 * 16, 16)] == [
        C.DELIVER_SM_RESP] * 3 + [C.DATA_SM_RESP] + [C.DELIVER_SM_RESP] * 3
    assert state_of(batched) == state_of(plain)
    batched.send_deliver_sm_resps([])
    assert not batched.has_data_to_send
