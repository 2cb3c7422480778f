"""Message text -> submit_sm segments: GSM 03.38, UCS-2 or Latin-1, and concatenation.

Why this is its own module: the choice of alphabet decides how many segments (and so how many
submits, how much TPS) a campaign costs, and the rules are easy to get subtly wrong.

* GSM 03.38 default alphabet (3GPP TS 23.038 section 6.2.1) with its extension table reached
  through the escape 0x1B; an extension character costs two septets. SMPP carries it unpacked,
  one septet per octet, with data_coding 0x00 (SMPP 3.4 section 5.2.19).
* UCS-2 (data_coding 0x08) when a character is outside GSM (and outside Latin-1 when Latin-1 is
  allowed): UTF-16-BE, so a character outside the BMP is a surrogate pair of two code units.
* Latin-1 (data_coding 0x03) only when the account is configured for it.
* Limits per segment (TS 23.040 section 9.2.3.24): 160 septets / 70 UCS-2 units / 140 octets
  alone; with a concatenation header 153 / 67 / 134 (8-bit reference, IEI 0x00, 6 octets) or
  152 / 66 / 133 (16-bit reference, IEI 0x08, 7 octets). With SAR TLVs (SMPP 3.4 section
  5.3.2.22-24) the SMSC adds the header itself, so segments keep the 8-bit-UDH limits.
* A segment never ends between an escape and its character, nor inside a surrogate pair.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from dispatch.smpp.constants import (
    DATA_CODING_DEFAULT,
    DATA_CODING_LATIN1,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    Tlv,
)
from dispatch.smpp.errors import TextEncodingError

GSM_ESCAPE = 0x1B

# 3GPP TS 23.038 section 6.2.1: the default alphabet, index = septet value.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Section 6.2.1.1: the extension table, reached with 0x1B (form feed, ^ { } \ [ ~ ] | €).
GSM_EXTENSION = {
    "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}

_GSM_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(GSM_BASIC) if i != 0x1B}
_GSM_ENCODE.update({ch: bytes([GSM_ESCAPE, code]) for ch, code in GSM_EXTENSION.items()})
_GSM_DECODE_EXT = {code: ch for ch, code in GSM_EXTENSION.items()}

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08
MAX_SEGMENTS = 255


class Concatenation(enum.Enum):
    """How a long text is tied together: a UDH in the message or SAR TLVs for the SMSC."""

    UDH_8BIT = "udh8"  # IEI 0x00, 8-bit reference (TS 23.040 section 9.2.3.24.1)
    UDH_16BIT = "udh16"  # IEI 0x08, 16-bit reference (section 9.2.3.24.8)
    SAR = "sar"  # sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs


@dataclass(frozen=True)
class TextOptions:
    """Per-ESME text settings."""

    concatenation: Concatenation = Concatenation.UDH_8BIT
    allow_latin1: bool = False  # data_coding 0x03 when the text fits Latin-1 but not GSM
    force_ucs2: bool = False


class Segment(NamedTuple):
    """One submit_sm's worth of text, ready for ``encode_sm_batch``."""

    short_message: bytes
    esm_class: int  # bits to OR into esm_class (UDHI 0x40 when a UDH leads short_message)
    data_coding: int
    tlvs: tuple[tuple[int, bytes], ...]


# (alone, with 6-octet UDH or SAR, with 7-octet UDH) in units of the coding.
_LIMITS = {
    DATA_CODING_DEFAULT: (160, 153, 152),
    DATA_CODING_UCS2: (70, 67, 66),
    DATA_CODING_LATIN1: (140, 134, 133),
}


def gsm7_encode(text: str) -> bytes:
    """Unpacked GSM 03.38 septets, extension characters as 0x1B + code."""
    try:
        return b"".join([_GSM_ENCODE[ch] for ch in text])
    except KeyError as exc:
        raise TextEncodingError(f"character U+{ord(exc.args[0]):04X} is not in GSM 03.38") from None


def gsm7_decode(data: bytes) -> str:
    """Unpacked septets back to text; an unknown escape gives the basic character (23.038)."""
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        septet = data[i] & 0x7F
        if septet == GSM_ESCAPE and i + 1 < n:
            code = data[i + 1] & 0x7F
            out.append(_GSM_DECODE_EXT.get(code, GSM_BASIC[code] if code != GSM_ESCAPE else " "))
            i += 2
            continue
        out.append(GSM_BASIC[septet] if septet != GSM_ESCAPE else " ")
        i += 1
    return "".join(out)


def gsm7_septets(text: str) -> int | None:
    """Septets the text costs in GSM 03.38 (extension characters count two); ``None`` if it
    does not fit the alphabet."""
    total = 0
    for ch in text:
        code = _GSM_ENCODE.get(ch)
        if code is None:
            return None
        total += len(code)
    return total


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM_ENCODE for ch in text)


def choose_data_coding(text: str, options: TextOptions = TextOptions()) -> int:
    """GSM 03.38 when possible, else Latin-1 when allowed and enough, else UCS-2."""
    if options.force_ucs2:
        return DATA_CODING_UCS2
    if is_gsm7(text):
        return DATA_CODING_DEFAULT
    if options.allow_latin1:
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            pass
        else:
            return DATA_CODING_LATIN1
    return DATA_CODING_UCS2


def _units(text: str, data_coding: int) -> list[bytes]:
    """The encoded text cut into indivisible units: one character each (an escape pair or a
    surrogate pair stays one unit)."""
    if data_coding == DATA_CODING_DEFAULT:
        return [_GSM_ENCODE[ch] for ch in text]
    if data_coding == DATA_CODING_LATIN1:
        return [ch.encode("latin-1") for ch in text]
    return [ch.encode("utf-16-be") for ch in text]


def _chunks(units: list[bytes], limit_octets: int) -> list[bytes]:
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for unit in units:
        if size + len(unit) > limit_octets:
            chunks.append(b"".join(current))
            current = []
            size = 0
        current.append(unit)
        size += len(unit)
    chunks.append(b"".join(current))
    return chunks


def split_text(text: str, options: TextOptions = TextOptions(), reference: int = 0) -> list[Segment]:
    """Text -> the segments to submit, in order, each ``(short_message, esm_class bits,
    data_coding, tlvs)``. ``reference`` ties the parts of one text together (0..255 for an
    8-bit UDH, 0..65535 for a 16-bit UDH or SAR); the caller picks it per recipient.
    """
    data_coding = choose_data_coding(text, options)
    units = _units(text, data_coding)
    octets_per_unit = 2 if data_coding == DATA_CODING_UCS2 else 1
    alone, with_udh8, with_udh16 = _LIMITS[data_coding]
    total_octets = sum(len(u) for u in units)
    if total_octets <= alone * octets_per_unit:
        return [Segment(b"".join(units), 0, data_coding, ())]
    concat = options.concatenation
    limit = with_udh16 if concat is Concatenation.UDH_16BIT else with_udh8
    chunks = _chunks(units, limit * octets_per_unit)
    count = len(chunks)
    if count > MAX_SEGMENTS:
        raise TextEncodingError(f"text needs {count} segments, at most {MAX_SEGMENTS}")
    max_reference = 0xFF if concat is Concatenation.UDH_8BIT else 0xFFFF
    if not 0 <= reference <= max_reference:
        raise ValueError(f"concatenation reference must be 0..{max_reference}, got {reference}")
    segments: list[Segment] = []
    for seq, chunk in enumerate(chunks, start=1):
        if concat is Concatenation.SAR:
            tlvs = (
                (Tlv.SAR_MSG_REF_NUM.value, reference.to_bytes(2, "big")),
                (Tlv.SAR_TOTAL_SEGMENTS.value, bytes([count])),
                (Tlv.SAR_SEGMENT_SEQNUM.value, bytes([seq])),
            )
            segments.append(Segment(chunk, 0, data_coding, tlvs))
        elif concat is Concatenation.UDH_16BIT:
            udh = bytes([6, IEI_CONCAT_16BIT, 4, reference >> 8, reference & 0xFF, count, seq])
            segments.append(Segment(udh + chunk, ESM_CLASS_UDHI, data_coding, ()))
        else:
            udh = bytes([5, IEI_CONCAT_8BIT, 3, reference, count, seq])
            segments.append(Segment(udh + chunk, ESM_CLASS_UDHI, data_coding, ()))
    return segments


def segment_count(text: str, options: TextOptions = TextOptions()) -> int:
    """How many submits ``text`` costs (for pricing and TPS planning) without building them."""
    return len(split_text(text, options))
