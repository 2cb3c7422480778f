"""Multipart messages as the simulator sees them: which part of which message a submit_sm is
(UDH or SAR TLVs), and the text of a reassembled message (tests compare it to what was sent)."""

from __future__ import annotations

from dispatch.smpp import text
from dispatch.smpp.constants import DATA_CODING_UCS2, ESM_CLASS_UDHI, Tlv

# plain ints: hashing an IntEnum member goes through enum's machinery on every submit
_SAR_MSG_REF_NUM = int(Tlv.SAR_MSG_REF_NUM)
_SAR_TOTAL_SEGMENTS = int(Tlv.SAR_TOTAL_SEGMENTS)
_SAR_SEGMENT_SEQNUM = int(Tlv.SAR_SEGMENT_SEQNUM)


def concatenation_info(esm_class: int, short_message: bytes,
                       tlvs: dict[int, bytes]) -> tuple[int | None, int, int, bytes]:
    """(reference, total, part, payload) from a UDH (TS 23.040 9.2.3.24.1/.8) or SAR TLVs
    (SMPP 3.4 section 5.3.2.22-24); ``(None, 1, 1, short_message)`` for a single part."""
    if esm_class & ESM_CLASS_UDHI and short_message:
        udh_len = short_message[0]
        udh, payload = short_message[1:1 + udh_len], short_message[1 + udh_len:]
        i = 0
        while i + 2 <= len(udh):
            iei, length = udh[i], udh[i + 1]
            value = udh[i + 2:i + 2 + length]
            if iei == 0x00 and length == 3:
                return value[0], value[1], value[2], payload
            if iei == 0x08 and length == 4:
                return (value[0] << 8) | value[1], value[2], value[3], payload
            i += 2 + length
        return None, 1, 1, payload
    if not tlvs:  # the common single part: no TLV at all
        return None, 1, 1, short_message
    ref = tlvs.get(_SAR_MSG_REF_NUM)
    if ref is not None:
        total = tlvs.get(_SAR_TOTAL_SEGMENTS, b"\x01")
        part = tlvs.get(_SAR_SEGMENT_SEQNUM, b"\x01")
        return int.from_bytes(ref, "big"), total[0], part[0], short_message
    return None, 1, 1, short_message


def _decode_text(data_coding: int, payload: bytes) -> str:
    if data_coding == DATA_CODING_UCS2:
        return payload.decode("utf-16-be", "replace")
    if data_coding == 0:
        return text.gsm7_decode(payload)
    return payload.decode("latin-1")


def decoded_text(data_coding: int, payload: bytes) -> str:
    """Text of a reassembled multipart message (as stored in ``stats.multipart_texts``)."""
    return _decode_text(data_coding, payload)
