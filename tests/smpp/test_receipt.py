"""Delivery receipts: the fast-path parser (both implementations) and the typed wrapper.
Receipt text per SMPP 3.4 Appendix B; TLVs per sections 5.3.2.12 and 5.3.2.35."""

from __future__ import annotations

from datetime import datetime
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch._reference import codec as reference
from dispatch.fastpath import implementations
from dispatch.smpp.constants import CommandId, Tlv
from dispatch.smpp.errors import PduError
from dispatch.smpp.receipt import (
    IdFormat,
    MessageIdPolicy,
    Receipt,
    SmsResult,
    normalize_message_id,
    parse_receipt,
    parse_receipt_date,
    receipt_essentials,
    receipts_from_pdus,
    sms_result_for,
)

STANDARD = (b"id:0A1B2C sub:001 dlvrd:001 submit date:2311230101 done date:2311230102 "
            b"stat:DELIVRD err:000 text:Hello world")


def test_standard_text(impl: ModuleType) -> None:
    assert impl.parse_receipt(STANDARD, None) == (
        b"0A1B2C", b"001", b"001", b"2311230101", b"2311230102", b"DELIVRD", b"000",
        b"Hello world", None)


@pytest.mark.parametrize("stat", [b"t", b"q", b"ok", b"enroute!", b""])
def test_a_short_lower_case_stat_is_upper_cased_without_touching_shared_bytes(
        impl: ModuleType, stat: bytes) -> None:
    """CPython shares its single-byte bytes objects: the Cython parser used to upper-case a
    one-letter stat in place, which turned every later ``b"t"`` of the process into
    ``b"T"`` (found by the PDU fuzzer)."""
    text = b"id:1 sub:001 dlvrd:001 submit date:2311230101 done date:2311230102 stat:%s err:0" % stat
    parsed = impl.parse_receipt(text, None)
    assert parsed is not None and parsed[5] == stat.upper()
    for one in (b"t", b"q", b"o", b"k"):  # the shared objects still hold what they should
        assert bytes([one[0]]) == one and one.upper() != one
        assert b"part"[:1] == b"p" and b"xt"[1:] == b"t"


@pytest.mark.parametrize("text", [
    b"ID:0A1B2C SUB:001 DLVRD:001 SUBMIT DATE:2311230101 DONE DATE:2311230102 STAT:delivrd "
    b"ERR:000 TEXT:Hello world",
    b"  id: 0A1B2C   sub:001 dlvrd:001  submit  date:2311230101 done_date:2311230102 "
    b"stat :DELIVRD err:000 text:Hello world \r\n",
])
def test_tolerates_case_and_spacing(impl: ModuleType, text: bytes) -> None:
    assert impl.parse_receipt(text, None) == impl.parse_receipt(STANDARD, None)


def test_missing_and_empty_fields(impl: ModuleType) -> None:
    assert impl.parse_receipt(b"id:77 stat:UNDELIV", None) == (
        b"77", None, None, None, None, b"UNDELIV", None, None, None)
    assert impl.parse_receipt(b"id:77 err: stat:EXPIRED", None)[5:7] == (b"EXPIRED", b"")
    assert impl.parse_receipt(b"", None) == (None,) * 9
    assert impl.parse_receipt(b"no receipt here at all", {}) == (None,) * 9


def test_twelve_digit_dates(impl: ModuleType) -> None:
    r = impl.parse_receipt(b"id:1 submit date:231123010203 done date:231123010204 stat:DELIVRD")
    assert r[3:5] == (b"231123010203", b"231123010204")


def test_tlvs_take_precedence(impl: ModuleType) -> None:
    tlvs = {Tlv.RECEIPTED_MESSAGE_ID: b"ABC\x00", Tlv.MESSAGE_STATE: b"\x05"}
    r = impl.parse_receipt(b"id:XYZ stat:DELIVRD", tlvs)
    assert (r[0], r[5], r[8]) == (b"ABC", b"UNDELIV", 5)
    # Only TLVs, no text at all.
    r = impl.parse_receipt(b"", {Tlv.RECEIPTED_MESSAGE_ID: b"99", Tlv.MESSAGE_STATE: b"\x02"})
    assert (r[0], r[5], r[8]) == (b"99", b"DELIVRD", 2)
    # A message_state outside the table keeps the text's stat but is reported.
    r = impl.parse_receipt(b"stat:ENROUTE", {Tlv.MESSAGE_STATE: b"\x2a"})
    assert (r[5], r[8]) == (b"ENROUTE", 42)


def test_text_keeps_spaces_and_colons(impl: ModuleType) -> None:
    r = impl.parse_receipt(b"id:1 stat:DELIVRD text:a: b  id:2", None)
    assert (r[0], r[7]) == (b"1", b"a: b  id:2")


def test_batch_picks_receipts_only(impl: ModuleType) -> None:
    def deliver(seq: int, esm: int, text: bytes, tlvs: list[tuple[int, bytes]] | None) -> tuple:
        return (seq, b"", 1, 1, b"79991234567", 5, 0, b"SENDER", esm, 0, 0, b"", b"", 0, 0, 0, 0,
                text, tlvs)
    data = impl.encode_sm_batch(CommandId.DELIVER_SM, [
        deliver(1, 0x04, STANDARD, None),
        deliver(2, 0x00, b"an MO message", None),
        deliver(3, 0x00, b"", [(Tlv.RECEIPTED_MESSAGE_ID, b"7\x00")]),
        deliver(4, 0x20, b"id:5 stat:ENROUTE", None),
    ]) + impl.encode_header_only(CommandId.ENQUIRE_LINK, 0, 5)
    pdus, _ = impl.decode_pdus(data)
    got = impl.parse_receipts(pdus)
    assert [seq for seq, _ in got] == [1, 3, 4]
    assert [r[0] for _, r in got] == [b"0A1B2C", b"7", b"5"]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.binary(max_size=200) | st.lists(st.sampled_from(
    [b"id:", b"ID :", b"sub:", b"submit", b" date:", b"done", b"stat:", b"err:", b"text:", b" ",
     b"  ", b"_", b"DELIVRD", b"0A1B", b"\t", b":"]), max_size=30).map(b"".join),
       state=st.none() | st.binary(max_size=2))
def test_parity_and_never_raises(text: bytes, state: bytes | None) -> None:
    tlvs: dict[int, bytes] | None = None if state is None else {Tlv.MESSAGE_STATE.value: state}
    expected = reference.parse_receipt(text, tlvs)
    for module in implementations().values():
        assert module.parse_receipt(text, tlvs) == expected


# ------------------------------------------------------------------ typed wrapper

def test_receipt_dataclass() -> None:
    r = parse_receipt(STANDARD)
    assert isinstance(r, Receipt)
    assert r.sms_result is SmsResult.DELIVERED and r.final
    assert r.raw_message_id == "0A1B2C" and r.message_id == "a1b2c"
    assert r.submit_date == datetime(2023, 11, 23, 1, 1)
    assert (r.submitted_count, r.delivered_count, r.err, r.text) == (1, 1, "000", "Hello world")


@pytest.mark.parametrize(("stat", "result"), [
    ("DELIVRD", SmsResult.DELIVERED), ("UNDELIV", SmsResult.FAILED),
    ("EXPIRED", SmsResult.FAILED), ("REJECTD", SmsResult.FAILED), ("DELETED", SmsResult.FAILED),
    ("UNKNOWN", SmsResult.UNKNOWN), ("WHATEVER", SmsResult.UNKNOWN), (None, SmsResult.UNKNOWN),
    ("ACCEPTD", None), ("ENROUTE", None),
])
def test_stat_mapping(stat: str | None, result: SmsResult | None) -> None:
    assert sms_result_for(stat) == result


def test_intermediate_receipt_is_not_final() -> None:
    r = parse_receipt(b"id:1 stat:ENROUTE")
    assert r.sms_result is None and not r.final


def test_dates() -> None:
    assert parse_receipt_date(b"2311230101") == datetime(2023, 11, 23, 1, 1)
    assert parse_receipt_date(b"231123010259") == datetime(2023, 11, 23, 1, 2, 59)
    assert parse_receipt_date(b"2313230101") is None  # month 13
    assert parse_receipt_date(b"23112301") is None
    assert parse_receipt_date(None) is None


def test_hex_submit_id_matches_decimal_receipt_id() -> None:
    policy = MessageIdPolicy(submit_resp_format=IdFormat.HEX, receipt_format=IdFormat.DECIMAL)
    assert policy.for_submit_resp(b"0A1B") == policy.for_receipt(b"2587")
    r = parse_receipt(b"id:2587 stat:DELIVRD", None, policy)
    assert r.message_id == policy.for_submit_resp("0a1b")


def test_nul_characters_an_smsc_sends_are_dropped(impl: ModuleType) -> None:
    """NULs inside a receipt's id, stat or err never reach the engine (PostgreSQL's text type
    refuses them, and a store write that fails on data would stop the writer): the key is
    the one the clean submit_sm_resp id gives, the stat still maps to its result."""
    fields = impl.parse_receipt(b"id:0A\x001B2C sub:001 dlvrd:001 submit date:2311230101 "
                                b"done date:2311230102 stat:DELIV\x00RD err:0\x0000 text:x", None)
    key, stat, err, result = receipt_essentials(fields)
    assert (key, stat, err, result) == ("a1b2c", "DELIVRD", "000", SmsResult.DELIVERED)
    assert key == MessageIdPolicy().for_submit_resp(b"0A1B2C")
    for fmt in IdFormat:
        assert "\x00" not in normalize_message_id(b"\x0012\x00ab\x00", fmt)
    tlv = impl.parse_receipt(b"", {Tlv.RECEIPTED_MESSAGE_ID: b"77\x00", Tlv.MESSAGE_STATE: b"\x02"})
    assert receipt_essentials(tlv)[0] == "77"


def test_text_ids_fold_case_and_leading_zeros() -> None:
    assert normalize_message_id("000ABC") == "abc"
    assert normalize_message_id("0000") == "0"
    assert normalize_message_id("") == ""
    keep = MessageIdPolicy(ignore_case=False, strip_leading_zeros=False)
    assert normalize_message_id("00Ab", IdFormat.TEXT, keep) == "00Ab"
    # A declared-numeric id that is not a number falls back to the text rules.
    assert normalize_message_id("xyz-1", IdFormat.DECIMAL) == "xyz-1"


def test_receipts_from_pdus() -> None:
    from dispatch.fastpath import impl
    data = impl.encode_sm_batch(CommandId.DELIVER_SM, [
        (9, b"", 1, 1, b"1", 5, 0, b"S", 4, 0, 0, b"", b"", 0, 0, 0, 0, STANDARD, None)])
    [(seq, r)] = receipts_from_pdus(impl.decode_pdus(data)[0])
    assert seq == 9 and r.stat == "DELIVRD"


def _receipt_stream(impl: ModuleType) -> bytes:
    def deliver(seq: int, esm: int, text: bytes, tlvs: list[tuple[int, bytes]] | None) -> tuple:
        return (seq, b"", 1, 1, b"79991234567", 5, 0, b"SENDER", esm, 0, 0, b"", b"", 0, 0, 0, 0,
                text, tlvs)
    return (impl.encode_sm_batch(CommandId.DELIVER_SM, [
        deliver(1, 0x04, STANDARD, [(Tlv.MESSAGE_STATE, b"\x05"), (Tlv.MESSAGE_STATE, b"\x02")]),
        deliver(2, 0x00, b"an MO message", None),
        deliver(3, 0x00, b"", [(Tlv.RECEIPTED_MESSAGE_ID, b"7\x00x"), (0x1400, b"vendor")]),
    ]) + impl.encode_header_only(CommandId.ENQUIRE_LINK, 0, 5)
        + impl.encode_sm_batch(CommandId.DELIVER_SM, [deliver(6, 0x20, b"stat:ENROUTE", None)]))


def test_decode_with_receipts_equals_two_steps(impl: ModuleType) -> None:
    data = _receipt_stream(impl)
    for cut in range(len(data) + 1):
        pdus, used = impl.decode_pdus(data[:cut])
        expected = ([p for p in pdus if p[2] in (2, 5)], impl.parse_receipts(pdus), used)
        assert impl.decode_with_receipts(data[:cut]) == expected
    pdus, receipts, _ = impl.decode_with_receipts(data)
    assert [r[0] for r in receipts] == [1, 3, 6]
    assert receipts[0][1][5] == b"DELIVRD" and receipts[1][1][0] == b"7"


@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=200), esm=st.sampled_from([0, 4, 0x20]))
def test_decode_with_receipts_parity_on_garbage(garbage: bytes, esm: int) -> None:
    framed = (len(garbage) + 16).to_bytes(4, "big") + b"\x00\x00\x00\x05" + bytes(8) + garbage
    for data in (garbage, framed, framed[:40] + bytes([esm]) + framed[41:]):
        outcomes = []
        for module in [reference, *implementations().values()]:
            try:
                outcomes.append(module.decode_with_receipts(data, 512))
            except PduError as err:
                outcomes.append((str(err), err.sequence_number, err.frame_length))
        assert all(o == outcomes[0] for o in outcomes)


def test_decode_chunk_with_receipts_wrapper() -> None:
    from dispatch.fastpath import impl
    from dispatch.smpp.receipt import decode_chunk_with_receipts
    data = _receipt_stream(impl)
    pdus, receipts, used = decode_chunk_with_receipts(data[:-1])
    assert [p[2] for p in pdus] == [2, 5] and used < len(data)
    assert [(seq, r.sms_result) for seq, r in receipts] == [(1, SmsResult.DELIVERED),
                                                            (3, SmsResult.UNKNOWN)]
