"""The SMPP codec (fast path and reference): framing, every decoder and encoder, errors,
split-invariance, garbage, and Cython-vs-reference parity. Section numbers cite SMPP 3.4."""

from __future__ import annotations

import random
import struct
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch._reference import codec as reference
from dispatch.fastpath import implementations
from dispatch.smpp.constants import (
    DEFAULT_MAX_PDU_LENGTH,
    CommandId,
    CommandStatus,
    Tlv,
)
from dispatch.smpp.errors import PduError

SUBMIT = CommandId.SUBMIT_SM
DELIVER = CommandId.DELIVER_SM

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def sm(seq: int = 1, *, source: bytes = b"SENDER", dest: bytes = b"79991234567",
       text: bytes = b"hello", esm_class: int = 0, data_coding: int = 0,
       tlvs: Any = None) -> tuple[Any, ...]:
    return (seq, b"", 5, 0, source, 1, 1, dest, esm_class, 0, 0, b"", b"", 1, 0, data_coding,
            0, text, tlvs)


def fields_of(message: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the decoder gives back for an encoded SmMessage."""
    return (*message[1:18], dict(message[18] or ()))


def header(length: int, command_id: int, status: int, seq: int) -> bytes:
    return struct.pack(">IIII", length, command_id, status, seq)


# ------------------------------------------------------------------ encode -> decode

def test_submit_sm_bytes_in_spec_order(impl: ModuleType) -> None:
    """Mandatory fields in the order of section 4.4.1, then TLVs as tag/length/value."""
    data = impl.encode_sm_batch(SUBMIT, [sm(7, tlvs=[(Tlv.USER_MESSAGE_REFERENCE, b"\x00\x2a")])])
    body = (b"\x00" + b"\x05\x00SENDER\x00" + b"\x01\x0179991234567\x00" + b"\x00\x00\x00"
            + b"\x00" + b"\x00" + b"\x01\x00\x00\x00" + b"\x05hello" + b"\x02\x04\x00\x02\x00\x2a")
    assert data == header(16 + len(body), SUBMIT, 0, 7) + body


def test_submit_sm_batch_round_trip(impl: ModuleType) -> None:
    messages = [sm(i, text=b"x" * i, tlvs=[(Tlv.SAR_MSG_REF_NUM, b"\x00\x01"),
                                           (Tlv.SAR_TOTAL_SEGMENTS, b"\x02"),
                                           (Tlv.SAR_SEGMENT_SEQNUM, b"\x01")])
                for i in range(1, 255, 17)]
    data = impl.encode_sm_batch(SUBMIT, messages)
    pdus, used = impl.decode_pdus(data)
    assert used == len(data)
    assert pdus == [(SUBMIT, 0, m[0], fields_of(m)) for m in messages]


def test_deliver_sm_with_receipt_tlvs(impl: ModuleType) -> None:
    tlvs = [(Tlv.RECEIPTED_MESSAGE_ID, b"0A1B\x00"), (Tlv.MESSAGE_STATE, b"\x02")]
    data = impl.encode_sm_batch(DELIVER, [sm(9, esm_class=4, text=b"id:0A1B stat:DELIVRD",
                                             tlvs=tlvs)])
    [(cid, status, seq, body)] = impl.decode_pdus(data)[0]
    assert (cid, status, seq) == (DELIVER, 0, 9)
    assert body[7] == 4 and body[16] == b"id:0A1B stat:DELIVRD"
    assert body[17] == {0x001E: b"0A1B\x00", 0x0427: b"\x02"}


def test_message_payload_tlv_carries_long_text(impl: ModuleType) -> None:
    payload = b"p" * 1000
    data = impl.encode_sm_batch(SUBMIT, [sm(3, text=b"", tlvs=[(Tlv.MESSAGE_PAYLOAD, payload)])])
    assert impl.decode_pdus(data)[0][0][3][17] == {0x0424: payload}


@pytest.mark.parametrize("command_id", [CommandId.SUBMIT_SM_RESP, CommandId.DELIVER_SM_RESP,
                                        CommandId.DATA_SM_RESP])
def test_message_id_resp_round_trip(impl: ModuleType, command_id: int) -> None:
    data = impl.encode_message_id_resp(command_id, 0, 42, b"0A1B")
    assert data == header(21, command_id, 0, 42) + b"0A1B\x00"
    assert impl.decode_pdus(data) == ([(command_id, 0, 42, b"0A1B")], 21)


def test_error_response_has_no_body(impl: ModuleType) -> None:
    """Section 4.4.2: no body when command_status is not zero; the decoder gives b""."""
    data = impl.encode_message_id_resp(CommandId.SUBMIT_SM_RESP, CommandStatus.ESME_RTHROTTLED,
                                       5, b"ignored")
    assert data == header(16, CommandId.SUBMIT_SM_RESP, 0x58, 5)
    assert impl.decode_pdus(data)[0] == [(CommandId.SUBMIT_SM_RESP, 0x58, 5, b"")]


def test_message_id_resp_batch(impl: ModuleType) -> None:
    responses = [(0, i, str(i).encode()) for i in range(1, 50)] + [(0x14, 50, b"")]
    data = impl.encode_message_id_resp_batch(CommandId.SUBMIT_SM_RESP, responses)
    pdus, used = impl.decode_pdus(data)
    assert used == len(data)
    assert pdus == [(CommandId.SUBMIT_SM_RESP, s, q, m) for s, q, m in responses]


@pytest.mark.parametrize("command_id", [CommandId.SUBMIT_SM_RESP, CommandId.DELIVER_SM_RESP])
def test_message_id_resp_with_any_status_and_sequence(impl: ModuleType, command_id: int) -> None:
    """The decoder's inline response path: a body sent with an error status (some SMSCs do),
    statuses above one octet, sequence numbers up to 0x7FFFFFFF, an empty message_id."""
    cases = [(0, 1, b"1"), (0x58, 2, b"X"), (0x400, 0x7FFFFFFF, b"abc"), (0xFFFFFFFF, 3, b""),
             (0, 0x12345678, b"F" * 64)]
    data = b"".join(header(16 + len(m) + 1, command_id, st, sq) + m + b"\x00"
                    for st, sq, m in cases)
    pdus, used = impl.decode_pdus(data)
    assert used == len(data)
    assert pdus == [(command_id, st, sq, m) for st, sq, m in cases]
    assert pdus == reference.decode_pdus(data)[0]


@pytest.mark.parametrize("command_id", [CommandId.ENQUIRE_LINK, CommandId.ENQUIRE_LINK_RESP,
                                        CommandId.UNBIND, CommandId.UNBIND_RESP,
                                        CommandId.GENERIC_NACK])
def test_header_only(impl: ModuleType, command_id: int) -> None:
    data = impl.encode_header_only(command_id, 0, 0x7FFFFFFF)
    assert data == header(16, command_id, 0, 0x7FFFFFFF)
    assert impl.decode_pdus(data) == ([(command_id, 0, 0x7FFFFFFF, None)], 16)


@pytest.mark.parametrize("command_id", [CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER,
                                        CommandId.BIND_TRANSCEIVER])
def test_bind_round_trip(impl: ModuleType, command_id: int) -> None:
    data = impl.encode_bind(command_id, 1, b"system_id_15chr", b"12345678", b"VMA", 0x34, 1, 1,
                            b"^7999")
    assert impl.decode_pdus(data)[0] == [
        (command_id, 0, 1, (b"system_id_15chr", b"12345678", b"VMA", 0x34, 1, 1, b"^7999"))]


def test_bind_resp_with_interface_version(impl: ModuleType) -> None:
    """sc_interface_version TLV 0x0210 (section 5.3.2.25)."""
    data = impl.encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 0, 1, b"SMSC", 0x34)
    assert data == header(26, CommandId.BIND_TRANSCEIVER_RESP, 0, 1) + b"SMSC\x00\x02\x10\x00\x014"
    assert impl.decode_pdus(data)[0] == [(CommandId.BIND_TRANSCEIVER_RESP, 0, 1,
                                          (b"SMSC", {0x0210: b"\x34"}))]
    plain = impl.encode_bind_resp(CommandId.BIND_TRANSMITTER_RESP, 0, 2, b"SMSC", None)
    assert impl.decode_pdus(plain)[0][0][3] == (b"SMSC", {})
    failed = impl.encode_bind_resp(CommandId.BIND_RECEIVER_RESP, 0x0E, 3, b"SMSC", 0x34)
    assert impl.decode_pdus(failed)[0] == [(CommandId.BIND_RECEIVER_RESP, 0x0E, 3, (b"", {}))]


def test_other_commands_give_raw_body(impl: ModuleType) -> None:
    data = header(20, CommandId.QUERY_SM, 0, 4) + b"abcd"
    assert impl.decode_pdus(data)[0] == [(CommandId.QUERY_SM, 0, 4, b"abcd")]


def test_inputs_may_be_bytearray_or_memoryview(impl: ModuleType) -> None:
    data = impl.encode_sm_batch(SUBMIT, [sm(1), sm(2)])
    expected = impl.decode_pdus(data)
    assert impl.decode_pdus(bytearray(data)) == expected
    assert impl.decode_pdus(memoryview(data)) == expected
    assert impl.decode_pdus(b"") == ([], 0)


def test_encoders_accept_bytes_like_fields(impl: ModuleType) -> None:
    message = (1, bytearray(b""), 5, 0, memoryview(b"SENDER"), 1, 1, b"7999", 0, 0, 0, b"", b"",
               1, 0, 0, 0, bytearray(b"hi"), [(0x0204, bytearray(b"\x00\x01"))])
    assert impl.encode_sm_batch(SUBMIT, [message]) == impl.encode_sm_batch(
        SUBMIT, [sm(1, dest=b"7999", text=b"hi", tlvs=[(0x0204, b"\x00\x01")])])


# ------------------------------------------------------------------ framing

def test_partial_pdu_is_left_for_later(impl: ModuleType) -> None:
    data = impl.encode_sm_batch(SUBMIT, [sm(1), sm(2)])
    first_len = struct.unpack(">I", data[:4])[0]
    pdus, used = impl.decode_pdus(data[:-1])
    assert used == first_len and [p[2] for p in pdus] == [1]
    assert impl.decode_pdus(data[:3]) == ([], 0)
    assert impl.decode_pdus(data[:15]) == ([], 0)


@pytest.mark.parametrize("length", [0, 15, DEFAULT_MAX_PDU_LENGTH + 1, 0xFFFFFFFF])
def test_bad_command_length_loses_framing(impl: ModuleType, length: int) -> None:
    data = header(length, CommandId.SUBMIT_SM, 0, 77)
    with pytest.raises(PduError) as info:
        impl.decode_pdus(data)
    err = info.value
    assert err.frame_length is None
    assert (err.sequence_number, err.command_id) == (77, SUBMIT)
    assert err.command_status == CommandStatus.ESME_RINVCMDLEN
    # Raised as soon as the length is known, without the rest of the header.
    with pytest.raises(PduError) as early:
        impl.decode_pdus(data[:4])
    assert early.value.sequence_number is None


def test_configured_max_pdu_length(impl: ModuleType) -> None:
    data = impl.encode_sm_batch(SUBMIT, [sm(1, text=b"x" * 200)])
    assert len(impl.decode_pdus(data, len(data))[0]) == 1
    with pytest.raises(PduError):
        impl.decode_pdus(data, len(data) - 1)


def test_later_malformed_pdu_is_raised_on_next_call(impl: ModuleType) -> None:
    good = impl.encode_header_only(CommandId.ENQUIRE_LINK, 0, 1)
    bad = header(20, SUBMIT, 0, 9) + b"abcd"  # service_type with no NUL inside the PDU
    pdus, used = impl.decode_pdus(good + bad + good)
    assert (len(pdus), used) == (1, 16)
    with pytest.raises(PduError) as info:
        impl.decode_pdus((good + bad + good)[used:])
    err = info.value
    assert (err.sequence_number, err.command_id, err.frame_length) == (9, SUBMIT, 20)
    # The frame is intact: skipping it resumes the stream.
    assert impl.decode_pdus((bad + good)[err.frame_length:])[0] == [(CommandId.ENQUIRE_LINK, 0, 1, None)]


def _sm_body(source: bytes = b"SENDER\x00", sm_length: int = 5, text: bytes = b"hello",
             tail: bytes = b"") -> bytes:
    return (b"\x00\x05\x00" + source + b"\x01\x017999\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00"
            + bytes([sm_length]) + text + tail)


@pytest.mark.parametrize(("body", "status", "reason"), [
    (_sm_body(source=b"S" * 21 + b"\x00"), 0x0A, "source_addr longer than 20 octets"),
    (_sm_body(sm_length=6), 0x01, "short_message runs past the PDU"),
    (_sm_body(tail=b"\x02"), 0xC0, "truncated TLV header"),
    (_sm_body(tail=b"\x02\x04\x00\x05ab"), 0xC0, "TLV 0x0204 value runs past the PDU"),
    (_sm_body()[:18], 0x02, "truncated esm_class/protocol_id/priority_flag"),
    (b"\x00\x05", 0x02, "truncated source_addr_ton/npi"),
])
def test_malformed_sm_bodies(impl: ModuleType, body: bytes, status: int, reason: str) -> None:
    data = header(16 + len(body), DELIVER, 0, 3) + body
    with pytest.raises(PduError, match=reason) as info:
        impl.decode_pdus(data)
    assert info.value.command_status == status
    assert info.value.frame_length == len(data)
    assert info.value.sequence_number == 3


def test_message_id_longer_than_65_octets(impl: ModuleType) -> None:
    data = header(16 + 66, CommandId.SUBMIT_SM_RESP, 0, 1) + b"1" * 65 + b"\x00"
    with pytest.raises(PduError, match="message_id longer than 64 octets"):
        impl.decode_pdus(data)
    ok = header(16 + 65, CommandId.SUBMIT_SM_RESP, 0, 1) + b"1" * 64 + b"\x00"
    assert impl.decode_pdus(ok)[0][0][3] == b"1" * 64


def test_trailing_octets_after_fixed_bodies_are_ignored(impl: ModuleType) -> None:
    data = header(16 + 8, CommandId.SUBMIT_SM_RESP, 0, 1) + b"ab\x00\x04\x27\x00\x01\x02"
    assert impl.decode_pdus(data)[0] == [(CommandId.SUBMIT_SM_RESP, 0, 1, b"ab")]
    data = header(18, CommandId.ENQUIRE_LINK, 0, 1) + b"xx"
    assert impl.decode_pdus(data)[0] == [(CommandId.ENQUIRE_LINK, 0, 1, None)]


# ------------------------------------------------------------------ encoder validation

@pytest.mark.parametrize(("message", "reason"), [
    (sm(source=b"S" * 21), "source_addr is 21 octets, SMPP allows at most 20"),
    (sm(dest=b"1" * 21), "destination_addr is 21 octets"),
    (sm(dest=b"12\x0034"), "destination_addr contains a NUL octet"),
    (sm(text=b"x" * 255), "short_message is 255 octets, at most 254"),
    (sm(esm_class=256), "esm_class must be 0..255"),
    (sm(data_coding=-1), "data_coding must be 0..255"),
    (sm(seq=-1), "sequence_number must be"),
    (sm(tlvs=[(0x10000, b"")]), "TLV tag must be 0..0xFFFF"),
    (sm(tlvs=[(0x0424, b"x" * 65536)]), "TLV 0x0424 value is 65536 octets"),
    (sm()[:18], "19 items"),
])
def test_encode_validates_fields(impl: ModuleType, message: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        impl.encode_sm_batch(SUBMIT, [sm(1), message])


def test_encoders_reject_wrong_command_ids(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.encode_sm_batch(CommandId.QUERY_SM, [])
    with pytest.raises(ValueError):
        impl.encode_message_id_resp(SUBMIT, 0, 1, b"")
    with pytest.raises(ValueError):
        impl.encode_bind(CommandId.BIND_TRANSCEIVER_RESP, 1, b"", b"", b"", 0x34, 0, 0, b"")
    with pytest.raises(ValueError):
        impl.encode_bind_resp(CommandId.BIND_TRANSCEIVER, 0, 1, b"", None)
    with pytest.raises(ValueError, match="password is 9 octets"):
        impl.encode_bind(CommandId.BIND_TRANSCEIVER, 1, b"s", b"p" * 9, b"", 0x34, 0, 0, b"")


# ------------------------------------------------------------------ properties

def cstr(max_len: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_len).map(lambda b: b.replace(b"\x00", b"x"))


u8 = st.integers(0, 255)
sm_messages = st.tuples(
    st.integers(0, 0xFFFFFFFF), cstr(5), u8, u8, cstr(20), u8, u8, cstr(20), u8, u8, u8,
    cstr(16), cstr(16), u8, u8, u8, u8, st.binary(max_size=254),
    st.none() | st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4),
)


@FAST
@given(command_id=st.sampled_from([SUBMIT, DELIVER]), messages=st.lists(sm_messages, max_size=5))
def test_sm_round_trip(impl: ModuleType, command_id: int, messages: list[tuple[Any, ...]]) -> None:
    data = impl.encode_sm_batch(command_id, messages)
    pdus, used = impl.decode_pdus(data)
    assert used == len(data)
    assert pdus == [(command_id, 0, m[0], fields_of(m)) for m in messages]


def _outcome(module: ModuleType, data: bytes) -> Any:
    try:
        return module.decode_pdus(data)
    except PduError as err:
        return ("error", str(err), err.sequence_number, err.command_id, err.frame_length,
                err.command_status)


def _decode_stream(module: ModuleType, chunks: list[bytes]) -> tuple[list[Any], Any]:
    """Feed chunks like a session would; stop at the first error."""
    buffer = b""
    pdus: list[Any] = []
    for chunk in chunks:
        buffer += chunk
        try:
            got, used = module.decode_pdus(buffer)
        except PduError as err:
            return pdus, (err.sequence_number, err.command_id, err.frame_length)
        pdus += got
        buffer = buffer[used:]
    return pdus, buffer


def _stream(impl: ModuleType) -> bytes:
    return (impl.encode_sm_batch(SUBMIT, [sm(1), sm(2, text=b"")])
            + impl.encode_message_id_resp_batch(CommandId.SUBMIT_SM_RESP, [(0, 3, b"a"), (8, 4, b"")])
            + impl.encode_header_only(CommandId.ENQUIRE_LINK, 0, 5)
            + impl.encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 0, 6, b"SMSC", 0x34))


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_whole_byte_by_byte_and_random_splits_agree(impl: ModuleType, seed: int) -> None:
    data = _stream(impl)
    whole = _decode_stream(impl, [data])
    assert whole[1] == b"" and len(whole[0]) == 6
    assert _decode_stream(impl, [data[i:i + 1] for i in range(len(data))]) == whole
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 12)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert _decode_stream(impl, chunks) == whole


@FAST
@given(garbage=st.binary(max_size=300), prefix=st.booleans())
def test_garbage_only_raises_pdu_error(impl: ModuleType, garbage: bytes, prefix: bool) -> None:
    """h11's fuzz rule: random bytes give PDUs, a partial frame, or PduError; nothing else."""
    data = (impl.encode_header_only(CommandId.ENQUIRE_LINK, 0, 1) if prefix else b"") + garbage
    buffer = data
    for _ in range(len(data) + 1):  # bounded: each round consumes >= 1 PDU or stops
        try:
            pdus, used = impl.decode_pdus(buffer, 512)
        except PduError as err:
            if err.frame_length is None:
                break
            buffer = buffer[err.frame_length:]
            continue
        assert 0 <= used <= len(buffer)
        if not pdus:
            break
        buffer = buffer[used:]


def _framed(command_id: int, body: bytes) -> bytes:
    return header(16 + len(body), command_id, 0, 1) + body


cython_only = pytest.mark.skipif("cython" not in implementations(), reason="extension not built")


@cython_only
@FAST
@given(garbage=st.binary(max_size=200),
       command_id=st.sampled_from([SUBMIT, DELIVER, CommandId.SUBMIT_SM_RESP,
                                   CommandId.BIND_TRANSCEIVER, CommandId.BIND_RECEIVER_RESP,
                                   CommandId.ENQUIRE_LINK, CommandId.QUERY_SM]))
def test_parity_on_garbage(garbage: bytes, command_id: int) -> None:
    """Same PDUs or the same error (message and numbers) from both implementations."""
    fast = implementations()["cython"]
    for data in (garbage, _framed(command_id, garbage)):
        assert _outcome(fast, data) == _outcome(reference, data)


@cython_only
@FAST
@given(command_id=st.sampled_from([SUBMIT, DELIVER]), messages=st.lists(sm_messages, max_size=4),
       cut=st.integers(0, 2000))
def test_parity_on_generated_pdus(command_id: int, messages: list[tuple[Any, ...]],
                                  cut: int) -> None:
    fast = implementations()["cython"]
    data = reference.encode_sm_batch(command_id, messages)
    assert fast.encode_sm_batch(command_id, messages) == data
    assert _outcome(fast, data[:cut]) == _outcome(reference, data[:cut])
    responses = [(m[0] % 3, m[0], m[4]) for m in messages]
    assert (fast.encode_message_id_resp_batch(CommandId.SUBMIT_SM_RESP, responses)
            == reference.encode_message_id_resp_batch(CommandId.SUBMIT_SM_RESP, responses))


@cython_only
def test_parity_on_encode_errors() -> None:
    fast = implementations()["cython"]
    bad = [sm(source=b"S" * 21), sm(text=b"x" * 255), sm(esm_class=300), sm(seq=2**32),
           sm(esm_class=2**70), sm(seq=2**80), sm(tlvs=[(2**90, b"")]),
           sm(tlvs=[(-1, b"")]), sm()[:3]]
    for message in bad:
        with pytest.raises(ValueError) as ours:
            fast.encode_sm_batch(SUBMIT, [message])
        with pytest.raises(ValueError) as theirs:
            reference.encode_sm_batch(SUBMIT, [message])
        assert str(ours.value) == str(theirs.value)
