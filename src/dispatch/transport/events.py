"""What goes into a ``BindPool`` and what comes out of it: ``OutboundMessage`` in (``submit``),
``PoolEvent`` out, in lists on ``BindPool.outcomes``; and ``aggregate_segments``, which makes
one result of a multipart message's receipts. Their meaning is documented with the pool's
API in ``dispatch.transport.pool``, which re-exports them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from dispatch.smpp.receipt import SmsResult


@dataclass(slots=True)
class OutboundMessage:
    """One message to one recipient. ``segments`` are ``(short_message, esm_class,
    data_coding, tlvs)`` as ``dispatch.smpp.text.split_text`` makes them; ``ref`` is opaque
    (the engine's recipient id) and comes back in the outcome."""

    ref: Any
    source_addr: bytes
    destination_addr: bytes
    segments: Sequence[tuple[bytes, int, int, Any]]
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    registered_delivery: int = 1
    validity_period: bytes = b""
    service_type: bytes = b""
    protocol_id: int = 0
    priority_flag: int = 0


class SubmitStatus(StrEnum):
    ACCEPTED = "accepted"
    FAILED = "failed"
    UNKNOWN = "unknown"


class SubmitOutcome(NamedTuple):
    """The final submit result of one message. (Pool events on the per-message path are
    NamedTuples: as immutable as a frozen dataclass, and built ~3x faster.)"""

    ref: Any
    status: SubmitStatus
    message_ids: tuple[str, ...]  # normalised, one per accepted segment, in order
    command_status: int  # the last status seen (0 when accepted)
    status_name: str  # "ESME_ROK", "ESME_RINVDSTADR", "response timeout", ...
    attempts: int  # submit_sm sent for this message, all segments and retries
    bind_id: str  # the bind that settled it
    latency_s: float  # last submit -> its response


class ReceiptEvent(NamedTuple):
    """A delivery receipt; ``message_id`` matches a ``SubmitOutcome.message_ids`` entry.
    ``raw`` is the fast path's ``parse_receipt`` tuple: ``Receipt.from_tuple`` (in
    ``dispatch.smpp.receipt``) makes it a typed ``Receipt`` with every field, when wanted."""

    esme: str
    message_id: str | None
    stat: str | None
    err: str | None
    sms_result: SmsResult | None  # None: intermediate (ENROUTE/ACCEPTD), more will come
    raw: tuple[Any, ...]
    bind_id: str


@dataclass(frozen=True, slots=True)
class MoMessage:
    """A mobile-originated message (deliver_sm that is not a receipt)."""

    esme: str
    source_addr: bytes
    destination_addr: bytes
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    bind_id: str


@dataclass(frozen=True, slots=True)
class BindFailure:
    """A bind attempt failed; emitted when the reason changes, not at every retry."""

    esme: str
    bind_id: str
    reason: str
    command_status: int | None
    retry_in_s: float


class DeliverAck:
    """Ends a batch when ``EsmeConfig.defer_deliver_acks`` is set: the deliver_sm PDUs behind
    the batch's ``ReceiptEvent``/``MoMessage`` events are answered only when the consumer
    calls ``ack()``, once it has made them durable. If the connection is gone by then the ack
    is dropped (counted) and the SMSC delivers them again: the store applies a receipt once.
    ``events`` are those receipts and MO, one per sequence number, read at ``read_at``: the
    pool counts them when they are answered (``BindPool._count_answered``).
    """

    __slots__ = ("_bind", "bind_id", "events", "read_at", "sequence_numbers")

    def __init__(self, bind: Any, sequence_numbers: tuple[int, ...],
                 events: tuple[Any, ...] = (), read_at: float = 0.0) -> None:
        self._bind = bind
        self.bind_id: str = bind.bind_id
        self.sequence_numbers = sequence_numbers
        self.events = events
        self.read_at = read_at

    def ack(self) -> None:
        self._bind.ack_delivers(self.sequence_numbers, self.events, self.read_at)


PoolEvent = SubmitOutcome | ReceiptEvent | MoMessage | BindFailure | DeliverAck


def aggregate_segments(results: Iterable[SmsResult | None]) -> SmsResult | None:
    """One result for a multipart message from its segments' receipt results.

    ``FAILED`` as soon as a segment failed, ``DELIVERED`` only when every segment was,
    ``UNKNOWN`` when all are final and some unknown, ``None`` while any is still pending.
    """
    seen = list(results)
    if any(r is SmsResult.FAILED for r in seen):
        return SmsResult.FAILED
    if not seen or any(r is None for r in seen):
        return None
    if all(r is SmsResult.DELIVERED for r in seen):
        return SmsResult.DELIVERED
    return SmsResult.UNKNOWN
