"""The events of the sans-IO SMPP session (``dispatch.smpp.session``): what ``receive_data``
returns for the PDUs it read, frozen dataclasses, one class per kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.smpp.states import BindMode


@dataclass(frozen=True, slots=True)
class BindRequest:
    """SMSC side: the peer asked to bind; answer with ``accept_bind`` or ``reject_bind``."""

    sequence_number: int
    mode: BindMode
    system_id: bytes
    password: bytes
    system_type: bytes
    interface_version: int
    addr_ton: int
    addr_npi: int
    address_range: bytes


@dataclass(frozen=True, slots=True)
class BindResponse:
    """ESME side: our bind was answered; ``command_status`` 0 means bound (section 4.1.2)."""

    sequence_number: int
    command_status: int
    mode: BindMode
    system_id: bytes
    tlvs: dict[int, bytes]


@dataclass(frozen=True, slots=True)
class Response:
    """A response to one of our requests (submit_sm_resp, deliver_sm_resp, enquire_link_resp).

    ``body`` is the decoder's body (the message id bytes for submit_sm_resp).
    """

    command_id: int
    command_status: int
    sequence_number: int
    body: Any


@dataclass(frozen=True, slots=True)
class GenericNack:
    """The peer rejected one of our PDUs with generic_nack (section 4.3).

    ``request_command_id`` is the request it answered, or ``None`` when the sequence number
    matched nothing outstanding.
    """

    command_status: int
    sequence_number: int
    request_command_id: int | None


@dataclass(frozen=True, slots=True)
class SubmitSm:
    """SMSC side: a submit_sm; ``fields`` is the decoder's 18-tuple (``SmFields``)."""

    sequence_number: int
    fields: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SubmitSmBatch:
    """SMSC side with ``batch_events``: submit_sm read one after another, in order, as the
    decoder's PDU tuples ``(command_id, command_status, sequence_number, fields)``."""

    pdus: list[tuple[int, int, int, tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class DeliverSmRespBatch:
    """SMSC side with ``batch_events``: deliver_sm_resp read one after another, in order, each
    answering one of our deliver_sm (it is settled), as the decoder's PDU tuples
    ``(command_id, command_status, sequence_number, message_id)``."""

    pdus: list[tuple[int, int, int, Any]]


@dataclass(frozen=True, slots=True)
class SubmitSmRespBatch:
    """ESME side with ``batch_events``: submit_sm_resp read one after another, in order, each
    answering one of our submit_sm (it is settled), as the decoder's PDU tuples
    ``(command_id, command_status, sequence_number, message_id)``."""

    pdus: list[tuple[int, int, int, Any]]


@dataclass(frozen=True, slots=True)
class DeliverSmBatch:
    """ESME side with ``batch_events``: deliver_sm read one after another, in order, as the
    decoder's PDU tuples ``(command_id, command_status, sequence_number, fields)``; answer
    them with ``send_deliver_sm_resps``."""

    pdus: list[tuple[int, int, int, tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class DeliverSm:
    """ESME side: a deliver_sm, or a data_sm in the same field layout (receipt or MO);
    answer it with ``send_deliver_sm_resp``."""

    sequence_number: int
    fields: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class EnquireLink:
    """The peer probed the link; the session already answered it."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class Unbound:
    """The session is ending. ``by_peer=False``: our unbind was answered, it is closed.
    ``by_peer=True``: the peer sent unbind; the session is closed, or ``UNBOUND`` while
    deliver_sm read before the unbind wait for their answer (the unbind_resp follows them)
    or responses to our submits are outstanding (they are still matched)."""

    by_peer: bool


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer sent something wrong (a remote error). ``fatal``: framing is lost, the session
    is closed and the transport must drop the connection; otherwise it was answered."""

    reason: str
    command_status: int
    fatal: bool


Event = (BindRequest | BindResponse | Response | GenericNack | SubmitSm | DeliverSm
         | EnquireLink | Unbound | ProtocolError | SubmitSmBatch | DeliverSmRespBatch
         | SubmitSmRespBatch | DeliverSmBatch)
