"""Typed views over the fast path's PDU tuples, for code off the hot path (tests, simulator,
logging). The hot path keeps the plain tuples (see ``dispatch/_fastpath.pyi``): these views
are ``NamedTuple``s with the same layout, so wrapping costs one allocation and no copy of
fields, and a view compares equal to the tuple it wraps.

Field order is SMPP 3.4 section 4.4.1 (submit_sm) / 4.6.1 (deliver_sm) and 4.1.1 (bind).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from dispatch.smpp.constants import CommandId, command_name, status_name


class SmFields(NamedTuple):
    """Body of a decoded submit_sm / deliver_sm (the 18-tuple of the .pyi)."""

    service_type: bytes
    source_addr_ton: int
    source_addr_npi: int
    source_addr: bytes
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: bytes
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: bytes
    validity_period: bytes
    registered_delivery: int
    replace_if_present_flag: int
    data_coding: int
    sm_default_msg_id: int
    short_message: bytes
    tlvs: dict[int, bytes]


class BindFields(NamedTuple):
    """Body of a decoded bind_transmitter / bind_receiver / bind_transceiver."""

    system_id: bytes
    password: bytes
    system_type: bytes
    interface_version: int
    addr_ton: int
    addr_npi: int
    address_range: bytes


class Pdu(NamedTuple):
    """One decoded PDU: header fields and the body as the fast path returns it."""

    command_id: int
    command_status: int
    sequence_number: int
    body: Any

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & 0x80000000)

    def sm(self) -> SmFields:
        """The body of a submit_sm / deliver_sm as a typed view."""
        if self.command_id not in (CommandId.SUBMIT_SM, CommandId.DELIVER_SM):
            raise TypeError(f"{command_name(self.command_id)} has no submit/deliver fields")
        return SmFields._make(self.body)

    def bind(self) -> BindFields:
        if self.command_id not in (CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER,
                                   CommandId.BIND_TRANSCEIVER):
            raise TypeError(f"{command_name(self.command_id)} is not a bind")
        return BindFields._make(self.body)

    def describe(self) -> str:
        """A one-line summary for logs: command, status, sequence; never the addresses or
        text (clear phone numbers must not reach logs, PRODUCT.md)."""
        return (f"{command_name(self.command_id)} seq={self.sequence_number} "
                f"status={status_name(self.command_status)}")


def views(pdus: Iterable[tuple[int, int, int, Any]]) -> list[Pdu]:
    """Wrap a decoded batch."""
    return [Pdu._make(p) for p in pdus]


def sm_message(sequence_number: int, fields: SmFields | Sequence[Any],
               tlvs: Iterable[tuple[int, bytes]] | None = None) -> tuple[Any, ...]:
    """An ``SmMessage`` for ``encode_sm_batch`` from decoded fields (e.g. the simulator
    echoing a submit_sm as a deliver_sm): sequence number, the 17 mandatory fields, TLVs
    (default: those of ``fields``)."""
    items = tuple(fields)
    if len(items) != 18:
        raise ValueError(f"SmFields has 18 items, got {len(items)}")
    pairs = tuple(items[17].items()) if tlvs is None else tuple(tlvs)
    return (sequence_number, *items[:17], pairs)
