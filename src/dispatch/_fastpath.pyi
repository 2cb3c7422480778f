"""Signatures of the fast path (``dispatch._fastpath``) and of its reference
(``dispatch._reference``): both export exactly these names with the same behaviour.

This file is the contract between the parts of the engine. Owners:
  * recipients + hashing: see the "Ingest" section (dispatch.ingest uses it);
  * SMPP codec: see the "SMPP codec" section (dispatch.smpp uses it).

SMPP PDU tuples
---------------
Decoders return each PDU as a plain tuple ``(command_id, command_status, sequence_number, body)``
(tuples are what C can build fast; ``dispatch.smpp`` wraps them where a typed view helps).
``body`` by command (C-octet strings come back as ``bytes`` without the NUL):

* header-only PDUs (enquire_link, enquire_link_resp, unbind, unbind_resp, generic_nack, ...):
  ``None``
* submit_sm_resp, deliver_sm_resp, data_sm_resp: ``message_id: bytes`` (``b""`` when the body
  is absent, as SMSCs do on error statuses)
* bind_transmitter/receiver/transceiver_resp: ``(system_id: bytes, tlvs: dict[int, bytes])``
* bind_transmitter/receiver/transceiver: ``(system_id, password, system_type,
  interface_version: int, addr_ton: int, addr_npi: int, address_range)``
* submit_sm, deliver_sm: ``SmFields``, an 18-tuple in spec order (SMPP 3.4 section 4.4.1):
  ``(service_type, source_addr_ton, source_addr_npi, source_addr, dest_addr_ton, dest_addr_npi,
  destination_addr, esm_class, protocol_id, priority_flag, schedule_delivery_time,
  validity_period, registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id,
  short_message, tlvs: dict[int, bytes])``
* any other command: the raw body ``bytes``

Encoders take the same fields. A submit_sm / deliver_sm to encode is ``SmMessage``: the
sequence number followed by the 17 mandatory fields of ``SmFields`` and then ``tlvs`` as a
sequence of ``(tag, value)`` pairs or ``None`` (19 items).
"""

from collections.abc import Iterable, Sequence
from typing import Any

# ---------------------------------------------------------------- Ingest (recipients, hashing)
# The rules (normalisation, CSV, errors, limits) are specified in dispatch/_reference/ingest.py.
# ``RecipientBatch`` and ``Recipient`` are one pure-Python class shared by both implementations.
from dispatch._reference.ingest import Recipient as Recipient
from dispatch._reference.ingest import RecipientBatch as RecipientBatch

REASONS: tuple[str, ...]
DEFAULT_PHONE_COLUMNS: tuple[str, ...]

def siphash128(key: bytes, data: bytes) -> bytes:
    """SipHash-2-4 with 128-bit output; ``key`` is 16 bytes."""

def ctn_hash(key: bytes, digits: str) -> bytes:
    """siphash128 of the normalised E.164 digits (ASCII, no '+')."""

def mask_number(digits: str) -> str:
    """Only the last 4 digits shown: ``*******4567``."""

def normalize_phone(text: str | bytes, trunk_prefix: str = ..., trunk_national_length: int = ...,
                    trunk_country_code: str = ...) -> tuple[str | None, str | None]:
    """``(e164_digits, None)`` or ``(None, reason)``."""

class RecipientParser:
    """Streaming .txt/.csv recipient parser: feed chunks split anywhere, then finish."""

    header: tuple[str, ...] | None
    variable_names: tuple[str, ...]
    bytes_total: int
    lines: int
    valid: int
    invalid: int
    duplicates: int
    errors: list[tuple[int, str]]
    error_counts: dict[str, int]
    def __init__(self, hash_key: bytes, *, fmt: str = ..., delimiter: str | None = ...,
                 has_header: bool | None = ..., phone_column: int | str | None = ...,
                 trunk_prefix: str = ..., trunk_national_length: int = ...,
                 trunk_country_code: str = ..., max_line_bytes: int = ...,
                 max_errors: int = ..., expected_bytes: int | None = ...) -> None:
        """``expected_bytes``: the input's total size when known, a capacity hint only."""
    @property
    def delimiter(self) -> str | None: ...
    @property
    def phone_column_index(self) -> int | None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> RecipientBatch:
        """The recipients completed by this chunk (GIL released while scanning)."""
    def finish(self) -> RecipientBatch: ...

# ---------------------------------------------------------------- SMPP codec

SmMessage = tuple[Any, ...]
Pdu = tuple[int, int, int, Any]

def decode_pdus(data: bytes | bytearray | memoryview, max_pdu_length: int = ...) -> tuple[list[Pdu], int]:
    """Decode every complete PDU at the start of ``data``; return them and the bytes consumed.

    A partial PDU at the end is left unconsumed (return nothing until a whole length-prefixed
    PDU is buffered). If the PDU at offset 0 is malformed it raises ``dispatch.smpp.errors.PduError``
    (with ``sequence_number``/``command_id`` when known and ``frame_length`` when the frame can
    be skipped, ``None`` when framing is lost); if a later one is, the PDUs before it are
    returned and the error is raised by the next call.
    """

def encode_sm_batch(command_id: int, messages: Iterable[SmMessage]) -> bytes:
    """Encode many submit_sm (or deliver_sm) into one buffer, one PDU after another."""

def encode_header_only(command_id: int, command_status: int, sequence_number: int) -> bytes:
    """enquire_link(_resp), unbind(_resp), generic_nack."""

def encode_message_id_resp(command_id: int, command_status: int, sequence_number: int,
                           message_id: bytes) -> bytes:
    """submit_sm_resp / deliver_sm_resp / data_sm_resp; no body when ``command_status`` is not
    zero (SMPP 3.4 section 4.4.2). Every encoder raises ``ValueError`` on a field too long for
    SMPP 3.4 (e.g. addresses 20 octets, message_id 64), a NUL inside a C-string or an integer
    out of range."""
def encode_message_id_resp_batch(command_id: int, responses: Sequence[tuple[int, int, bytes]]) -> bytes:
    """Many ``(command_status, sequence_number, message_id)`` responses into one buffer."""

def encode_bind(command_id: int, sequence_number: int, system_id: bytes, password: bytes,
                system_type: bytes, interface_version: int, addr_ton: int, addr_npi: int,
                address_range: bytes) -> bytes:
    """bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 section 4.1.1)."""

def encode_bind_resp(command_id: int, command_status: int, sequence_number: int,
                     system_id: bytes, sc_interface_version: int | None) -> bytes:
    """bind_*_resp with the sc_interface_version TLV when not ``None`` (section 4.1.2)."""

# (message_id, sub, dlvrd, submit_date, done_date, stat, err, text, message_state):
# bytes or None each (stat upper-cased), message_state int or None. TLVs win over the text.
Receipt = tuple[bytes | None, bytes | None, bytes | None, bytes | None, bytes | None,
                bytes | None, bytes | None, bytes | None, int | None]

def parse_receipt(short_message: bytes, tlvs: dict[int, bytes] | None = ...) -> Receipt:
    """Delivery receipt text (SMPP 3.4 Appendix B) + receipted_message_id / message_state TLVs."""

def parse_receipts(pdus: Iterable[Pdu]) -> list[tuple[int, Receipt]]:
    """``(sequence_number, receipt)`` for each deliver_sm in ``pdus`` that is a receipt
    (esm_class & 0x24, i.e. delivery receipt or intermediate notification, or a
    receipted_message_id TLV)."""

def decode_with_receipts(data: bytes | bytearray | memoryview,
                         max_pdu_length: int = ...) -> tuple[list[Pdu], list[tuple[int, Receipt]], int]:
    """``decode_pdus`` with receipts parsed on the way (the fast path for receiving binds):
    ``(pdus, receipts, consumed)``; ``receipts`` exactly as ``parse_receipts`` of the decoded
    PDUs, ``pdus`` every PDU that is not a receipt. Same framing, errors and consumption."""
