"""Cross-check against smpplib, an independent SMPP 3.4 codec: what we encode it parses with the
same fields, and what it generates we decode with the same fields."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.smpp.constants import CommandId, Tlv

smpp = pytest.importorskip("smpplib.smpp")


class _Client:
    """smpplib builds PDUs through a client that hands out sequence numbers."""

    def next_sequence(self) -> int:
        return 1


CLIENT = _Client()
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

printable = st.text(alphabet="0123456789ABCDEFabcdef+", max_size=20).map(str.encode)
u8 = st.integers(0, 255)


@SETTINGS
@given(seq=st.integers(1, 0x7FFFFFFF), source=printable, dest=printable,
       ton=u8, esm=u8, coding=u8, registered=u8, text=st.binary(max_size=254),
       ref=st.integers(0, 0xFFFF), umr=st.integers(0, 0xFFFF))
def test_our_submit_sm_parses_in_smpplib(impl: ModuleType, seq: int, source: bytes, dest: bytes,
                                         ton: int, esm: int, coding: int, registered: int,
                                         text: bytes, ref: int, umr: int) -> None:
    tlvs = [(Tlv.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")), (Tlv.SAR_TOTAL_SEGMENTS, b"\x03"),
            (Tlv.SAR_SEGMENT_SEQNUM, b"\x02"), (Tlv.USER_MESSAGE_REFERENCE, umr.to_bytes(2, "big"))]
    data = impl.encode_sm_batch(CommandId.SUBMIT_SM, [
        (seq, b"CMT", ton, 1, source, 1, 1, dest, esm, 0, 2, b"", b"", registered, 0, coding, 0,
         text, tlvs)])
    pdu = smpp.parse_pdu(data, client=CLIENT)
    assert (pdu.command, pdu.sequence, pdu.status) == ("submit_sm", seq, 0)
    assert (pdu.service_type, pdu.source_addr_ton, pdu.source_addr, pdu.destination_addr) == (
        b"CMT", ton, source, dest)
    assert (pdu.esm_class, pdu.priority_flag, pdu.registered_delivery, pdu.data_coding) == (
        esm, 2, registered, coding)
    assert pdu.short_message == text
    assert (pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum) == (ref, 3, 2)
    assert pdu.user_message_reference == umr


def test_our_responses_and_binds_parse_in_smpplib(impl: ModuleType) -> None:
    resp = smpp.parse_pdu(impl.encode_message_id_resp(CommandId.SUBMIT_SM_RESP, 0, 12, b"0A1B"),
                          client=CLIENT)
    assert (resp.command, resp.sequence, resp.message_id) == ("submit_sm_resp", 12, b"0A1B")
    bind = smpp.parse_pdu(impl.encode_bind(CommandId.BIND_TRANSCEIVER, 3, b"sys", b"pw", b"VMA",
                                           0x34, 1, 1, b""), client=CLIENT)
    assert (bind.command, bind.system_id, bind.password, bind.system_type,
            bind.interface_version) == ("bind_transceiver", b"sys", b"pw", b"VMA", 0x34)
    link = smpp.parse_pdu(impl.encode_header_only(CommandId.ENQUIRE_LINK, 0, 4), client=CLIENT)
    assert (link.command, link.sequence) == ("enquire_link", 4)


@SETTINGS
@given(seq=st.integers(1, 0x7FFFFFFF), message_id=printable)
def test_smpplib_submit_sm_resp_decodes_here(impl: ModuleType, seq: int, message_id: bytes) -> None:
    data = smpp.make_pdu("submit_sm_resp", client=CLIENT, sequence=seq,
                         message_id=message_id.decode()).generate()
    assert impl.decode_pdus(data) == ([(CommandId.SUBMIT_SM_RESP, 0, seq, message_id)], len(data))


@SETTINGS
@given(seq=st.integers(1, 0x7FFFFFFF), rid=printable.filter(bool), state=st.integers(1, 8),
       text=st.binary(max_size=200))
def test_smpplib_receipt_decodes_here(impl: ModuleType, seq: int, rid: bytes, state: int,
                                      text: bytes) -> None:
    data = smpp.make_pdu("deliver_sm", client=CLIENT, sequence=seq, source_addr="79991234567",
                         destination_addr="SENDER", esm_class=4, short_message=text,
                         receipted_message_id=rid.decode(), message_state=state).generate()
    [(cid, status, got_seq, body)] = impl.decode_pdus(data)[0]
    assert (cid, status, got_seq) == (CommandId.DELIVER_SM, 0, seq)
    assert (body[3], body[6], body[7], body[16]) == (b"79991234567", b"SENDER", 4, text)
    assert body[17][Tlv.MESSAGE_STATE] == bytes([state])
    [(_, receipt)] = impl.parse_receipts([(cid, status, got_seq, body)])
    assert receipt[0] == rid and receipt[8] == state


def test_smpplib_bind_resp_and_enquire_link_decode_here(impl: ModuleType) -> None:
    data = (smpp.make_pdu("bind_transceiver_resp", client=CLIENT, sequence=1,
                          system_id="SMSC").generate()
            + smpp.make_pdu("enquire_link", client=CLIENT, sequence=2).generate()
            + smpp.make_pdu("unbind_resp", client=CLIENT, sequence=3).generate())
    pdus, used = impl.decode_pdus(data)
    assert used == len(data)
    assert pdus[0][:3] == (CommandId.BIND_TRANSCEIVER_RESP, 0, 1) and pdus[0][3][0] == b"SMSC"
    assert pdus[1:] == [(CommandId.ENQUIRE_LINK, 0, 2, None), (CommandId.UNBIND_RESP, 0, 3, None)]
