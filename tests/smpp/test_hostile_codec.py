"""The codec (fast path and reference) on responses odd SMSCs send."""

from __future__ import annotations

import struct
from types import ModuleType

import pytest

from dispatch.smpp.constants import CommandId
from dispatch.smpp.errors import PduError


def header(length: int, command_id: int, status: int, seq: int) -> bytes:
    return struct.pack(">IIII", length, command_id, status, seq)


@pytest.mark.parametrize("command_id", [CommandId.SUBMIT_SM_RESP, CommandId.DELIVER_SM_RESP,
                                        CommandId.DATA_SM_RESP])
def test_message_id_without_its_nul_is_taken_whole(impl: ModuleType, command_id: int) -> None:
    """Section 4.4.2 makes message_id a C-Octet String, but SMSCs that end it at the end of
    the PDU without the NUL exist: the id is still read, and the next PDU after it too."""
    nul_less = header(16 + 6, command_id, 0, 3) + b"5A0F1C"
    enquire = header(16, CommandId.ENQUIRE_LINK, 0, 4)
    pdus, used = impl.decode_pdus(nul_less + enquire)
    assert pdus == [(command_id, 0, 3, b"5A0F1C"), (CommandId.ENQUIRE_LINK, 0, 4, None)]
    assert used == len(nul_less + enquire)
    longest = header(16 + 64, command_id, 0, 5) + b"9" * 64
    assert impl.decode_pdus(longest)[0] == [(command_id, 0, 5, b"9" * 64)]


def test_a_nul_less_message_id_over_64_octets_is_still_an_error(impl: ModuleType) -> None:
    data = header(16 + 65, CommandId.SUBMIT_SM_RESP, 0, 1) + b"1" * 65
    with pytest.raises(PduError) as info:
        impl.decode_pdus(data)
    assert info.value.frame_length == len(data)


RECEIPT = (b"id:0012345 sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 "
           b"stat:DELIVRD err:000 text:hello")


@pytest.mark.parametrize("rid", [b"", b"\x00", b"\x00\x00"])
def test_an_empty_receipted_message_id_does_not_hide_the_text_id(impl: ModuleType,
                                                                  rid: bytes) -> None:
    """receipted_message_id (section 5.3.2.12) wins over the text, but an SMSC that sends it
    empty has said nothing: the id of the Appendix B text is used, in both the receipt parser
    and the decoder that parses receipts on the way."""
    tlvs = {0x001E: rid, 0x0427: b"\x02"}
    assert impl.parse_receipt(RECEIPT, tlvs)[0] == b"0012345"
    deliver = impl.encode_sm_batch(CommandId.DELIVER_SM, [(
        7, b"", 1, 1, b"4915100000001", 5, 0, b"Shop", 0x04, 0, 0, b"", b"", 0, 0, 0, 0,
        RECEIPT, list(tlvs.items()))])
    _, receipts, _ = impl.decode_with_receipts(deliver)
    assert [(seq, r[0], r[5]) for seq, r in receipts] == [(7, b"0012345", b"DELIVRD")]
    # with no id in the text either, the (empty) TLV is what there is
    assert impl.parse_receipt(b"stat:DELIVRD", tlvs)[0] == b""


def _data_sm(seq: int, source: bytes, esm_class: int, tlvs: bytes) -> bytes:
    body = (b"\x00" + b"\x01\x01" + source + b"\x00" + b"\x05\x00" + b"Shop\x00"
            + bytes([esm_class, 1, 8]) + tlvs)
    return header(16 + len(body), CommandId.DATA_SM, 0, seq) + body


def test_data_sm_decodes_in_the_deliver_sm_layout(impl: ModuleType) -> None:
    """Section 4.7.1: some SMSCs deliver receipts (and MO) as data_sm. Its fields land where a
    deliver_sm's are, the ones it lacks empty, so a receiver treats both alike. Addresses may
    be up to 64 octets there (21 in deliver_sm)."""
    tlvs = (struct.pack(">HH", 0x001E, 5) + b"77AB\x00" + struct.pack(">HH", 0x0427, 1)
            + b"\x02")
    long_source = b"4" * 64
    pdus, _ = impl.decode_pdus(_data_sm(9, long_source, 0x04, tlvs))
    assert pdus == [(CommandId.DATA_SM, 0, 9, (
        b"", 1, 1, long_source, 5, 0, b"Shop", 0x04, 0, 0, b"", b"", 1, 0, 8, 0, b"",
        {0x001E: b"77AB\x00", 0x0427: b"\x02"}))]
    with pytest.raises(PduError) as info:  # 65 octets and no NUL within: too long
        impl.decode_pdus(_data_sm(9, b"4" * 65, 0x04, b""))
    assert info.value.command_status == 0x0A  # ESME_RINVSRCADR
