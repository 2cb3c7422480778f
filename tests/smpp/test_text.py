"""GSM 03.38 / UCS-2 / Latin-1 encoding and segmentation (3GPP TS 23.038, TS 23.040 9.2.3.24)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.smpp.constants import (
    DATA_CODING_DEFAULT,
    DATA_CODING_LATIN1,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    Tlv,
)
from dispatch.smpp.errors import TextEncodingError
from dispatch.smpp.text import (
    GSM_BASIC,
    Concatenation,
    TextOptions,
    choose_data_coding,
    gsm7_decode,
    gsm7_encode,
    gsm7_septets,
    segment_count,
    split_text,
)


def test_gsm_table_landmarks() -> None:
    assert len(GSM_BASIC) == 128
    assert gsm7_encode("@") == b"\x00"
    assert gsm7_encode("£$¥") == b"\x01\x02\x03"
    assert gsm7_encode("Δ_") == b"\x10\x11"
    assert gsm7_encode(" A a 0") == b"\x20\x41\x20\x61\x20\x30"
    assert gsm7_encode("¡¿äà§") == b"\x40\x60\x7b\x7f\x5f"
    assert gsm7_encode("\n\r") == b"\x0a\x0d"


def test_extension_chars_are_escaped_and_count_double() -> None:
    assert gsm7_encode("€") == b"\x1b\x65"
    assert gsm7_encode("^{}\\[~]|") == b"\x1b\x14\x1b\x28\x1b\x29\x1b\x2f\x1b\x3c\x1b\x3d\x1b\x3e\x1b\x40"
    assert gsm7_septets("a€") == 3
    assert gsm7_septets("Привет") is None


def test_gsm_round_trip_of_whole_alphabet() -> None:
    text = GSM_BASIC.replace("\x1b", "") + "€^{}\\[~]|\x0c"
    assert gsm7_decode(gsm7_encode(text)) == text


def test_not_gsm_raises() -> None:
    with pytest.raises(TextEncodingError, match="U\\+0416"):
        gsm7_encode("Ж")


def test_choose_data_coding() -> None:
    assert choose_data_coding("Hello @ €") == DATA_CODING_DEFAULT
    assert choose_data_coding("Привет") == DATA_CODING_UCS2
    assert choose_data_coding("ô") == DATA_CODING_UCS2  # not in GSM 03.38
    assert choose_data_coding("ô", TextOptions(allow_latin1=True)) == DATA_CODING_LATIN1
    assert choose_data_coding("ô€", TextOptions(allow_latin1=True)) == DATA_CODING_UCS2
    assert choose_data_coding("abc", TextOptions(force_ucs2=True)) == DATA_CODING_UCS2


def test_single_segment_limits() -> None:
    assert split_text("a" * 160) == [(b"a" * 160, 0, DATA_CODING_DEFAULT, ())]
    assert len(split_text("a" * 161)) == 2
    assert len(split_text("€" * 80)) == 1  # 160 septets
    assert len(split_text("€" * 80 + "a")) == 2
    assert len(split_text("Ж" * 70)) == 1
    assert len(split_text("Ж" * 71)) == 2
    latin = TextOptions(allow_latin1=True)
    assert split_text("ô" * 140, latin) == [(b"\xf4" * 140, 0, DATA_CODING_LATIN1, ())]
    assert len(split_text("ô" * 141, latin)) == 2


def test_udh_8bit_bytes_exactly() -> None:
    parts = split_text("a" * 306, reference=0x42)
    assert [p.short_message[:6] for p in parts] == [b"\x05\x00\x03\x42\x02\x01",
                                                     b"\x05\x00\x03\x42\x02\x02"]
    assert all(p.esm_class == ESM_CLASS_UDHI for p in parts)
    assert [len(p.short_message) - 6 for p in parts] == [153, 153]  # exact fit
    assert len(split_text("a" * 307)) == 3


def test_udh_16bit_bytes_exactly() -> None:
    parts = split_text("a" * 161, TextOptions(Concatenation.UDH_16BIT), reference=0x1234)
    assert [p.short_message[:7] for p in parts] == [b"\x06\x08\x04\x12\x34\x02\x01",
                                                     b"\x06\x08\x04\x12\x34\x02\x02"]
    assert [len(p.short_message) - 7 for p in parts] == [152, 9]


def test_sar_tlvs() -> None:
    parts = split_text("Ж" * 134, TextOptions(Concatenation.SAR), reference=0x0102)
    assert [len(p.short_message) for p in parts] == [134, 134]  # 67 UCS-2 units each
    assert parts[1].tlvs == ((Tlv.SAR_MSG_REF_NUM, b"\x01\x02"), (Tlv.SAR_TOTAL_SEGMENTS, b"\x02"),
                             (Tlv.SAR_SEGMENT_SEQNUM, b"\x02"))
    assert parts[0].esm_class == 0


def test_ucs2_67_units_exact_fit() -> None:
    parts = split_text("Ж" * 134)
    assert [len(p.short_message) - 6 for p in parts] == [134, 134]
    assert parts[0].data_coding == DATA_CODING_UCS2
    assert parts[0].short_message[6:8] == "Ж".encode("utf-16-be")


def test_escape_pair_never_split() -> None:
    parts = split_text("a" * 152 + "€" + "b" * 10)
    payloads = [p.short_message[6:] for p in parts]
    assert payloads[0] == b"a" * 152  # the € would be septets 153 and 154
    assert payloads[1] == b"\x1b\x65" + b"b" * 10


def test_surrogate_pair_never_split() -> None:
    parts = split_text("Ж" * 66 + "😀" + "Ж" * 5)
    payloads = [p.short_message[6:] for p in parts]
    assert len(payloads[0]) == 132
    assert payloads[1].startswith("😀".encode("utf-16-be"))


def test_reference_range_is_checked() -> None:
    with pytest.raises(ValueError):
        split_text("a" * 200, reference=256)
    assert split_text("a" * 200, TextOptions(Concatenation.UDH_16BIT), reference=65535)


def test_too_many_segments() -> None:
    with pytest.raises(TextEncodingError, match="segments"):
        split_text("a" * 153 * 256)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab€^@ЖΩ😀ô")), max_size=600),
       concat=st.sampled_from(list(Concatenation)))
def test_segments_reassemble_to_the_text(text: str, concat: Concatenation) -> None:
    parts = split_text(text, TextOptions(concat), reference=7)
    assert segment_count(text, TextOptions(concat)) == len(parts)
    udh = {Concatenation.UDH_8BIT: 6, Concatenation.UDH_16BIT: 7, Concatenation.SAR: 0}[concat]
    skip = udh if len(parts) > 1 else 0
    body = b"".join(p.short_message[skip:] for p in parts)
    coding = parts[0].data_coding
    assert {p.data_coding for p in parts} == {coding}
    decoded = gsm7_decode(body) if coding == DATA_CODING_DEFAULT else body.decode("utf-16-be")
    assert decoded == text
    for p in parts:
        payload = p.short_message[skip:]
        if coding == DATA_CODING_UCS2:
            payload.decode("utf-16-be")  # no half surrogate pair at either end
        else:
            assert not payload.endswith(b"\x1b")  # no escape without its character
        assert len(p.short_message) <= 160
