"""Reference SMPP codec (pure Python). See dispatch/_fastpath.pyi for the contract.

This module is the specification the Cython codec (``_fp_codec.pxi``) is tested against: the
same inputs give the same PDU tuples, the same bytes and the same errors (class, message,
sequence number, frame length, status). Section numbers cite SMPP 3.4 (issue 1.2, 1999).

Decisions written down here (the extension follows them exactly):

* Framing (section 3.2): a command_length below 16 or above ``max_pdu_length`` means the stream
  is lost; the error is raised as soon as the 4 length octets are buffered, with
  ``frame_length=None`` and the command id / sequence number when the 16-octet header is there.
* A body that does not parse (truncated fixed field, C-string with no NUL inside the PDU or
  longer than its SMPP maximum, sm_length past the end, broken TLV) raises ``PduError`` with
  ``frame_length`` set: the frame is intact, the session can answer generic_nack and skip it.
* A message_id (submit_sm_resp, deliver_sm_resp, data_sm_resp) that runs to the end of the PDU
  without its NUL is taken whole when it fits (at most 64 octets): SMSCs that leave the NUL
  out exist, and refusing their answer would leave an accepted submit unsettled until it
  times out and is sent again -- a duplicate for the recipient.
* Octets after the last field of a PDU that has no optional part (enquire_link, bind,
  submit_sm_resp, ...) are ignored, as most SMSCs and smpplib do (SMPP 5.0 allows TLVs there).
* A data_sm (section 4.7.1; some SMSCs deliver receipts and MO with it) decodes to the same
  18 fields as a deliver_sm, the ones data_sm has not set to their empty value (protocol_id,
  priority_flag, the times, replace_if_present, sm_default_msg_id 0, short_message empty:
  its text travels in message_payload), so a receiver handles both alike.
* Responses with a non-zero command_status are encoded without a body (section 4.4.2: "The
  submit_sm_resp PDU Body is not returned if the command_status field contains a non-zero
  value"); decoders accept either form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from struct import Struct
from typing import Any

from dispatch.smpp.errors import PduError

__all__ = [
    "decode_pdus",
    "decode_with_receipts",
    "encode_bind",
    "encode_bind_resp",
    "encode_header_only",
    "encode_message_id_resp",
    "encode_message_id_resp_batch",
    "encode_sm_batch",
    "parse_receipt",
    "parse_receipts",
]

_HEADER = Struct(">IIII")
_U32 = Struct(">I")
_TLV_HEAD = Struct(">HH")

# Command ids (SMPP 3.4 section 5.1.2.1), spelled out so this module stands alone like the .pxi.
_GENERIC_NACK = 0x80000000
_BIND_RECEIVER = 0x00000001
_BIND_TRANSMITTER = 0x00000002
_BIND_TRANSCEIVER = 0x00000009
_SUBMIT_SM = 0x00000004
_DELIVER_SM = 0x00000005
_DATA_SM = 0x00000103
_SUBMIT_SM_RESP = 0x80000004
_DELIVER_SM_RESP = 0x80000005
_DATA_SM_RESP = 0x80000103
_BIND_RESPS = (0x80000001, 0x80000002, 0x80000009)
_BINDS = (_BIND_RECEIVER, _BIND_TRANSMITTER, _BIND_TRANSCEIVER)
_HEADER_ONLY = (0x80000000, 0x00000015, 0x80000015, 0x00000006, 0x80000006)
_MESSAGE_ID_RESPS = (_SUBMIT_SM_RESP, _DELIVER_SM_RESP, _DATA_SM_RESP)

_SC_INTERFACE_VERSION = 0x0210
_RECEIPTED_MESSAGE_ID = 0x001E
_MESSAGE_STATE = 0x0427

# Statuses put on PduError for the generic_nack / response (section 5.1.3).
_RINVMSGLEN = 0x01
_RINVCMDLEN = 0x02
_RINVSRCADR = 0x0A
_RINVDSTADR = 0x0B
_RINVOPTPARSTREAM = 0xC0

# C-octet string maxima including the NUL (section 4 tables and 5.2).
_MAX_SYSTEM_ID = 16
_MAX_PASSWORD = 9
_MAX_SYSTEM_TYPE = 13
_MAX_ADDRESS_RANGE = 41
_MAX_SERVICE_TYPE = 6
_MAX_ADDR = 21
_MAX_DATA_SM_ADDR = 65  # data_sm addresses (section 4.7.1)
_MAX_TIME = 17
_MAX_MESSAGE_ID = 65
_MAX_SHORT_MESSAGE = 254  # sm_length range 0..254 (section 5.2.22)

DEFAULT_MAX_PDU_LENGTH = 64 * 1024


# --------------------------------------------------------------------------- decoding


class _BodyError(Exception):
    """Internal: a body field did not parse; turned into PduError with the header's numbers."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _cstring(data: bytes, pos: int, end: int, max_len: int, name: str,
             status: int = _RINVCMDLEN) -> tuple[bytes, int]:
    """Read a C-octet string of at most ``max_len`` octets including its NUL (section 3.1)."""
    limit = min(end, pos + max_len)
    nul = data.find(b"\x00", pos, limit)
    if nul < 0:
        if limit < end:
            raise _BodyError(f"{name} longer than {max_len - 1} octets", status)
        raise _BodyError(f"{name} has no NUL terminator inside the PDU", status)
    return data[pos:nul], nul + 1


def _tlvs(data: bytes, pos: int, end: int) -> dict[int, bytes]:
    """Optional parameters: tag (2), length (2), value (section 3.2.4 / 5.3.1). Last one wins."""
    out: dict[int, bytes] = {}
    while pos < end:
        if end - pos < 4:
            raise _BodyError("truncated TLV header", _RINVOPTPARSTREAM)
        tag, length = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        if length > end - pos:
            raise _BodyError(f"TLV 0x{tag:04X} value runs past the PDU", _RINVOPTPARSTREAM)
        out[tag] = data[pos:pos + length]
        pos += length
    return out


def _addresses(data: bytes, pos: int, end: int, max_addr: int) -> tuple[tuple[Any, ...], int]:
    """service_type and the source and destination addresses, as submit_sm, deliver_sm and
    data_sm begin (sections 4.4.1, 4.6.1, 4.7.1), and where the body goes on."""
    service_type, pos = _cstring(data, pos, end, _MAX_SERVICE_TYPE, "service_type")
    if end - pos < 2:
        raise _BodyError("truncated source_addr_ton/npi", _RINVCMDLEN)
    src_ton = data[pos]
    src_npi = data[pos + 1]
    source_addr, pos = _cstring(data, pos + 2, end, max_addr, "source_addr", _RINVSRCADR)
    if end - pos < 2:
        raise _BodyError("truncated dest_addr_ton/npi", _RINVCMDLEN)
    dst_ton = data[pos]
    dst_npi = data[pos + 1]
    destination_addr, pos = _cstring(data, pos + 2, end, max_addr, "destination_addr",
                                     _RINVDSTADR)
    return (service_type, src_ton, src_npi, source_addr, dst_ton, dst_npi,
            destination_addr), pos


def _sm_body(data: bytes, pos: int, end: int) -> tuple[Any, ...]:
    """submit_sm / deliver_sm mandatory fields in spec order (sections 4.4.1, 4.6.1) + TLVs."""
    addresses, pos = _addresses(data, pos, end, _MAX_ADDR)
    if end - pos < 3:
        raise _BodyError("truncated esm_class/protocol_id/priority_flag", _RINVCMDLEN)
    esm_class = data[pos]
    protocol_id = data[pos + 1]
    priority_flag = data[pos + 2]
    schedule, pos = _cstring(data, pos + 3, end, _MAX_TIME, "schedule_delivery_time")
    validity, pos = _cstring(data, pos, end, _MAX_TIME, "validity_period")
    if end - pos < 5:
        raise _BodyError("truncated registered_delivery..sm_length", _RINVCMDLEN)
    registered = data[pos]
    replace = data[pos + 1]
    data_coding = data[pos + 2]
    default_msg_id = data[pos + 3]
    sm_length = data[pos + 4]
    pos += 5
    if sm_length > end - pos:
        raise _BodyError("short_message runs past the PDU", _RINVMSGLEN)
    short_message = data[pos:pos + sm_length]
    tlvs = _tlvs(data, pos + sm_length, end)
    return (*addresses, esm_class, protocol_id, priority_flag, schedule, validity, registered,
            replace, data_coding, default_msg_id, short_message, tlvs)


def _data_sm_body(data: bytes, pos: int, end: int) -> tuple[Any, ...]:
    """data_sm (section 4.7.1) in the deliver_sm field layout (see the module doc)."""
    addresses, pos = _addresses(data, pos, end, _MAX_DATA_SM_ADDR)
    if end - pos < 3:
        raise _BodyError("truncated esm_class/registered_delivery/data_coding", _RINVCMDLEN)
    esm_class = data[pos]
    registered = data[pos + 1]
    data_coding = data[pos + 2]
    tlvs = _tlvs(data, pos + 3, end)
    return (*addresses, esm_class, 0, 0, b"", b"", registered, 0, data_coding, 0, b"", tlvs)


def _bind_body(data: bytes, pos: int, end: int) -> tuple[Any, ...]:
    """bind_transmitter/receiver/transceiver (section 4.1.1)."""
    system_id, pos = _cstring(data, pos, end, _MAX_SYSTEM_ID, "system_id")
    password, pos = _cstring(data, pos, end, _MAX_PASSWORD, "password")
    system_type, pos = _cstring(data, pos, end, _MAX_SYSTEM_TYPE, "system_type")
    if end - pos < 3:
        raise _BodyError("truncated interface_version/addr_ton/addr_npi", _RINVCMDLEN)
    version = data[pos]
    ton = data[pos + 1]
    npi = data[pos + 2]
    address_range, pos = _cstring(data, pos + 3, end, _MAX_ADDRESS_RANGE, "address_range")
    return (system_id, password, system_type, version, ton, npi, address_range)


def _body(command_id: int, data: bytes, pos: int, end: int) -> Any:
    if command_id in _MESSAGE_ID_RESPS:
        if pos == end:
            return b""
        if end - pos < _MAX_MESSAGE_ID and data.find(b"\x00", pos, end) < 0:
            return data[pos:end]  # the NUL left out (see the module docstring)
        return _cstring(data, pos, end, _MAX_MESSAGE_ID, "message_id")[0]
    if command_id in _HEADER_ONLY:
        return None
    if command_id in (_SUBMIT_SM, _DELIVER_SM):
        return _sm_body(data, pos, end)
    if command_id == _DATA_SM:
        return _data_sm_body(data, pos, end)
    if command_id in _BIND_RESPS:
        if pos == end:
            return (b"", {})
        system_id, pos = _cstring(data, pos, end, _MAX_SYSTEM_ID, "system_id")
        return (system_id, _tlvs(data, pos, end))
    if command_id in _BINDS:
        return _bind_body(data, pos, end)
    return data[pos:end]


def decode_pdus(data: bytes | bytearray | memoryview,
                max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH) -> tuple[list[tuple[int, int, int, Any]], int]:
    """Decode every complete PDU at the start of ``data``; return them and the bytes consumed.

    Frame splitter and batch decoder in one pass (SMPP 3.4 section 3.2: the 4-octet
    command_length counts the whole PDU, header included).
    """
    buf = bytes(data)
    total = len(buf)
    pdus: list[tuple[int, int, int, Any]] = []
    pos = 0
    while total - pos >= 4:
        (length,) = _U32.unpack_from(buf, pos)
        if length < 16 or length > max_pdu_length:
            if pdus:
                break
            command_id = sequence = None
            if total - pos >= 16:
                _, command_id, _, sequence = _HEADER.unpack_from(buf, pos)
            raise PduError(
                f"command_length {length} outside 16..{max_pdu_length}",
                sequence_number=sequence, command_id=command_id, frame_length=None,
                command_status=_RINVCMDLEN)
        if total - pos < length:
            break
        _, command_id, status, sequence = _HEADER.unpack_from(buf, pos)
        try:
            body = _body(command_id, buf, pos + 16, pos + length)
        except _BodyError as exc:
            if pdus:
                break
            raise PduError(
                f"malformed PDU 0x{command_id:08X} seq {sequence}: {exc}",
                sequence_number=sequence, command_id=command_id, frame_length=length,
                command_status=exc.status) from None
        pdus.append((command_id, status, sequence, body))
        pos += length
    return pdus, pos


# --------------------------------------------------------------------------- encoding


def _u8(value: int, name: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be 0..255, got {value}")
    return value


def _u32(value: int, name: str) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} must be 0..0xFFFFFFFF, got {value}")
    return value


def _put_cstring(out: bytearray, value: bytes, max_len: int, name: str) -> None:
    if len(value) > max_len - 1:
        raise ValueError(f"{name} is {len(value)} octets, SMPP allows at most {max_len - 1}")
    if b"\x00" in value:
        raise ValueError(f"{name} contains a NUL octet")
    out += value
    out.append(0)


def _put_tlvs(out: bytearray, tlvs: Iterable[tuple[int, bytes]] | None) -> None:
    if tlvs is None:
        return
    for tag, value in tlvs:
        if not 0 <= tag <= 0xFFFF:
            raise ValueError(f"TLV tag must be 0..0xFFFF, got {tag}")
        if len(value) > 0xFFFF:
            raise ValueError(f"TLV 0x{tag:04X} value is {len(value)} octets, at most 65535")
        out += _TLV_HEAD.pack(tag, len(value))
        out += value


def _put_sm(out: bytearray, command_id: int, message: Sequence[Any]) -> None:
    if len(message) != 19:
        raise ValueError(f"a submit_sm/deliver_sm message has 19 items, got {len(message)}")
    (seq, service_type, src_ton, src_npi, source_addr, dst_ton, dst_npi, destination_addr,
     esm_class, protocol_id, priority_flag, schedule, validity, registered, replace,
     data_coding, default_msg_id, short_message, tlvs) = message
    start = len(out)
    out += _HEADER.pack(0, command_id, 0, _u32(seq, "sequence_number"))
    _put_cstring(out, service_type, _MAX_SERVICE_TYPE, "service_type")
    out.append(_u8(src_ton, "source_addr_ton"))
    out.append(_u8(src_npi, "source_addr_npi"))
    _put_cstring(out, source_addr, _MAX_ADDR, "source_addr")
    out.append(_u8(dst_ton, "dest_addr_ton"))
    out.append(_u8(dst_npi, "dest_addr_npi"))
    _put_cstring(out, destination_addr, _MAX_ADDR, "destination_addr")
    out.append(_u8(esm_class, "esm_class"))
    out.append(_u8(protocol_id, "protocol_id"))
    out.append(_u8(priority_flag, "priority_flag"))
    _put_cstring(out, schedule, _MAX_TIME, "schedule_delivery_time")
    _put_cstring(out, validity, _MAX_TIME, "validity_period")
    out.append(_u8(registered, "registered_delivery"))
    out.append(_u8(replace, "replace_if_present_flag"))
    out.append(_u8(data_coding, "data_coding"))
    out.append(_u8(default_msg_id, "sm_default_msg_id"))
    if len(short_message) > _MAX_SHORT_MESSAGE:
        raise ValueError(f"short_message is {len(short_message)} octets, at most 254 "
                         "(use the message_payload TLV)")
    out.append(len(short_message))
    out += short_message
    _put_tlvs(out, tlvs)
    _U32.pack_into(out, start, len(out) - start)


def encode_sm_batch(command_id: int, messages: Iterable[Sequence[Any]]) -> bytes:
    """Encode many submit_sm (or deliver_sm) into one buffer, one PDU after another.

    Each header is reserved first and its command_length filled once the body is written
    (SMPP 3.4 sections 3.2, 4.4.1, 4.6.1).
    """
    if command_id != _SUBMIT_SM and command_id != _DELIVER_SM:
        raise ValueError(f"encode_sm_batch encodes submit_sm or deliver_sm, not 0x{command_id:08X}")
    out = bytearray()
    for message in messages:
        _put_sm(out, command_id, message)
    return bytes(out)


def encode_header_only(command_id: int, command_status: int, sequence_number: int) -> bytes:
    """enquire_link(_resp), unbind(_resp), generic_nack: a bare 16-octet header (section 4.3-4.11)."""
    return _HEADER.pack(16, _u32(command_id, "command_id"), _u32(command_status, "command_status"),
                        _u32(sequence_number, "sequence_number"))


def _put_message_id_resp(out: bytearray, command_id: int, command_status: int,
                         sequence_number: int, message_id: bytes) -> None:
    start = len(out)
    out += _HEADER.pack(0, command_id, _u32(command_status, "command_status"),
                        _u32(sequence_number, "sequence_number"))
    if command_status == 0:
        _put_cstring(out, message_id, _MAX_MESSAGE_ID, "message_id")
    _U32.pack_into(out, start, len(out) - start)


def _check_message_id_resp(command_id: int) -> None:
    if command_id not in _MESSAGE_ID_RESPS:
        raise ValueError(f"0x{command_id:08X} is not submit_sm_resp, deliver_sm_resp or data_sm_resp")


def encode_message_id_resp(command_id: int, command_status: int, sequence_number: int,
                           message_id: bytes) -> bytes:
    """submit_sm_resp / deliver_sm_resp / data_sm_resp (sections 4.4.2, 4.6.2, 4.7.2).

    With a non-zero status the body is left out, as section 4.4.2 says.
    """
    _check_message_id_resp(command_id)
    out = bytearray()
    _put_message_id_resp(out, command_id, command_status, sequence_number, message_id)
    return bytes(out)


def encode_message_id_resp_batch(command_id: int,
                                 responses: Sequence[tuple[int, int, bytes]]) -> bytes:
    """Many ``(command_status, sequence_number, message_id)`` responses into one buffer."""
    _check_message_id_resp(command_id)
    out = bytearray()
    for command_status, sequence_number, message_id in responses:
        _put_message_id_resp(out, command_id, command_status, sequence_number, message_id)
    return bytes(out)


def encode_bind(command_id: int, sequence_number: int, system_id: bytes, password: bytes,
                system_type: bytes, interface_version: int, addr_ton: int, addr_npi: int,
                address_range: bytes) -> bytes:
    """bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 section 4.1.1)."""
    if command_id not in _BINDS:
        raise ValueError(f"0x{command_id:08X} is not a bind command")
    out = bytearray(_HEADER.pack(0, command_id, 0, _u32(sequence_number, "sequence_number")))
    _put_cstring(out, system_id, _MAX_SYSTEM_ID, "system_id")
    _put_cstring(out, password, _MAX_PASSWORD, "password")
    _put_cstring(out, system_type, _MAX_SYSTEM_TYPE, "system_type")
    out.append(_u8(interface_version, "interface_version"))
    out.append(_u8(addr_ton, "addr_ton"))
    out.append(_u8(addr_npi, "addr_npi"))
    _put_cstring(out, address_range, _MAX_ADDRESS_RANGE, "address_range")
    _U32.pack_into(out, 0, len(out))
    return bytes(out)


def encode_bind_resp(command_id: int, command_status: int, sequence_number: int,
                     system_id: bytes, sc_interface_version: int | None) -> bytes:
    """bind_*_resp (section 4.1.2) with the optional sc_interface_version TLV (5.3.2.25).

    With a non-zero status the body is left out (section 4.1.2 / 4.4.2 rule).
    """
    if command_id not in _BIND_RESPS:
        raise ValueError(f"0x{command_id:08X} is not a bind response")
    out = bytearray(_HEADER.pack(0, command_id, _u32(command_status, "command_status"),
                                 _u32(sequence_number, "sequence_number")))
    if command_status == 0:
        _put_cstring(out, system_id, _MAX_SYSTEM_ID, "system_id")
        if sc_interface_version is not None:
            out += _TLV_HEAD.pack(_SC_INTERFACE_VERSION, 1)
            out.append(_u8(sc_interface_version, "sc_interface_version"))
    _U32.pack_into(out, 0, len(out))
    return bytes(out)


# --------------------------------------------------------------------------- receipts

# message_state TLV values (section 5.2.28) -> the stat word SMSCs put in receipt texts
# (SMPP 3.4 Appendix B). SKIPPED is SMPP 5.0.
_STATE_WORDS: dict[int, bytes] = {
    1: b"ENROUTE", 2: b"DELIVRD", 3: b"EXPIRED", 4: b"DELETED", 5: b"UNDELIV",
    6: b"ACCEPTD", 7: b"UNKNOWN", 8: b"REJECTD", 9: b"SKIPPED",
}

# Receipt keys (Appendix B), longest first so "submit date" wins over "sub"; index = slot in
# the result tuple. A space inside a key matches one or more spaces or underscores.
_KEYS: tuple[tuple[bytes, int], ...] = (
    (b"submit date", 3), (b"done date", 4), (b"dlvrd", 2), (b"stat", 5), (b"text", 7),
    (b"err", 6), (b"sub", 1), (b"id", 0),
)
_SPACE = b" \t\r\n"


def _match_key(low: bytes, i: int, n: int) -> tuple[int, int]:
    """At ``i``, a receipt key then optional spaces then ':'? Return (slot, index after ':')."""
    for key, slot in _KEYS:
        j = i
        ok = True
        for ch in key:
            if ch == 0x20:
                if j >= n or low[j] not in b" _":
                    ok = False
                    break
                while j < n and low[j] in b" _":
                    j += 1
            else:
                if j >= n or low[j] != ch:
                    ok = False
                    break
                j += 1
        if not ok:
            continue
        while j < n and low[j] == 0x20:
            j += 1
        if j < n and low[j] == 0x3A:  # ':'
            return slot, j + 1
    return -1, i


def parse_receipt(short_message: bytes,
                  tlvs: dict[int, bytes] | None = None) -> tuple[Any, ...]:
    """Parse a delivery receipt (SMPP 3.4 Appendix B text, section 5.3.2.12/5.3.2.35 TLVs).

    Returns ``(message_id, sub, dlvrd, submit_date, done_date, stat, err, text,
    message_state)``: raw ``bytes`` or ``None`` when absent; ``stat`` upper-cased;
    ``message_state`` an int from the TLV or ``None``. The receipted_message_id and
    message_state TLVs take precedence over the text, except an empty receipted_message_id
    when the text has an id. Never raises on odd input.
    """
    fields: list[Any] = [None] * 8
    data = bytes(short_message)
    low = data.lower()
    n = len(data)
    i = 0
    while i < n:
        while i < n and data[i] in _SPACE:
            i += 1
        if i >= n:
            break
        slot, j = _match_key(low, i, n)
        if slot < 0:
            while i < n and data[i] not in _SPACE:
                i += 1
            continue
        while j < n and data[j] == 0x20:
            j += 1
        if slot == 7:
            k = n
            while k > j and data[k - 1] in _SPACE:
                k -= 1
            value = data[j:k]
            i = n
        elif _match_key(low, j, n)[0] >= 0:
            value = b""  # "err: stat:..." : an empty value, the next key follows
            i = j
        else:
            k = j
            while k < n and data[k] not in _SPACE:
                k += 1
            value = data[j:k]
            i = k
        if fields[slot] is None:
            fields[slot] = value
    if fields[5] is not None:
        fields[5] = fields[5].upper()
    message_state = None
    if tlvs:
        rid = tlvs.get(_RECEIPTED_MESSAGE_ID)
        if rid is not None:
            nul = rid.find(b"\x00")
            rid = rid if nul < 0 else rid[:nul]
            if rid or fields[0] is None:  # an empty TLV says nothing: the text's id stands
                fields[0] = rid
        state = tlvs.get(_MESSAGE_STATE)
        if state is not None and len(state) == 1:
            message_state = state[0]
            word = _STATE_WORDS.get(message_state)
            if word is not None:
                fields[5] = word
    return (*fields, message_state)


def _is_receipt(pdu: tuple[int, int, int, Any]) -> bool:
    """A deliver_sm whose esm_class says delivery receipt (0x04) or intermediate notification
    (0x20) (section 5.2.12), or that carries receipted_message_id."""
    if pdu[0] != _DELIVER_SM:
        return False
    body = pdu[3]
    return bool(body[7] & 0x24) or _RECEIPTED_MESSAGE_ID in body[17]


def parse_receipts(pdus: Iterable[tuple[int, int, int, Any]]) -> list[tuple[int, tuple[Any, ...]]]:
    """``(sequence_number, receipt)`` for each deliver_sm in ``pdus`` that is a receipt
    (see ``_is_receipt``); other PDUs are skipped."""
    return [(pdu[2], parse_receipt(pdu[3][16], pdu[3][17])) for pdu in pdus if _is_receipt(pdu)]


def decode_with_receipts(
    data: bytes | bytearray | memoryview, max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
) -> tuple[list[tuple[int, int, int, Any]], list[tuple[int, tuple[Any, ...]]], int]:
    """``decode_pdus`` for a receiving bind with receipts parsed on the way: ``(pdus, receipts,
    consumed)``; ``receipts`` as ``parse_receipts`` gives them, ``pdus`` every other PDU.
    Same framing, errors and consumption as ``decode_pdus``."""
    decoded, used = decode_pdus(data, max_pdu_length)
    pdus = [pdu for pdu in decoded if not _is_receipt(pdu)]
    receipts = parse_receipts(decoded)
    return pdus, receipts, used
