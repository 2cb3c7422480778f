"""Delivery receipts as typed values, and message-id normalisation.

The fast path (``parse_receipt`` / ``parse_receipts`` in ``dispatch.fastpath.impl``) does the
byte work and returns tuples; this module turns them into a frozen ``Receipt`` with the
engine's outcome (``sms_result``) and a message id normalised so it matches the id the SMSC gave
in submit_sm_resp.

Receipt text: SMPP 3.4 Appendix B (``id:... sub:... dlvrd:... submit date:YYMMDDhhmm[ss] done
date:... stat:... err:... text:...``); TLVs: receipted_message_id (section 5.3.2.12) and
message_state (5.3.2.35), which win over the text.

Outcome mapping (stat -> sms_result), per PRODUCT.md "sms_result: delivered / failed / unknown":

* DELIVRD -> delivered
* UNDELIV, EXPIRED, REJECTD, DELETED, SKIPPED -> failed (final: the carrier gave up)
* UNKNOWN, and any stat word we do not know -> unknown (final: the SMSC will say no more)
* ACCEPTD, ENROUTE -> ``None``: an intermediate notification (esm_class 0x20); the recipient
  stays pending and a final receipt is still expected (``Receipt.final`` is False).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch.fastpath import impl


class SmsResult(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


_RESULT_BY_STAT: dict[str, SmsResult | None] = {
    "DELIVRD": SmsResult.DELIVERED,
    "UNDELIV": SmsResult.FAILED,
    "EXPIRED": SmsResult.FAILED,
    "REJECTD": SmsResult.FAILED,
    "DELETED": SmsResult.FAILED,
    "SKIPPED": SmsResult.FAILED,
    "UNKNOWN": SmsResult.UNKNOWN,
    "ACCEPTD": None,
    "ENROUTE": None,
}


def sms_result_for(stat: str | None) -> SmsResult | None:
    """The engine outcome for a receipt stat word; ``None`` means still pending."""
    if stat is None:
        return SmsResult.UNKNOWN
    return _RESULT_BY_STAT.get(stat.upper(), SmsResult.UNKNOWN)


#: the stat words of ``_RESULT_BY_STAT`` as ``parse_receipt`` gives them -> (stat, result):
#: nearly every receipt has one, and skips decoding and ``sms_result_for``
_KNOWN_STATS: dict[bytes | None, tuple[str | None, SmsResult | None]] = {
    word.encode(): (word, result) for word, result in _RESULT_BY_STAT.items()}


class IdFormat(enum.StrEnum):
    """How an SMSC writes a message id in one place (submit_sm_resp or the receipt)."""

    TEXT = "text"  # opaque string: compared after case / leading-zero folding only
    HEX = "hex"
    DECIMAL = "decimal"


@dataclass(frozen=True)
class MessageIdPolicy:
    """Per-ESME setting: many SMSCs answer submit_sm_resp with a hex id and put the same number
    in decimal in the receipt (or the reverse). Both sides normalise to one canonical key."""

    submit_resp_format: IdFormat = IdFormat.TEXT
    receipt_format: IdFormat = IdFormat.TEXT
    ignore_case: bool = True
    strip_leading_zeros: bool = True

    def for_submit_resp(self, message_id: str | bytes) -> str:
        return self._submit_resp_key(message_id)

    def for_receipt(self, message_id: str | bytes) -> str:
        return self._receipt_key(message_id)

    @property
    def submit_resp_normaliser(self) -> Callable[[str | bytes], str]:
        """``for_submit_resp`` itself, for a loop over many ids (a call less per id)."""
        return self._submit_resp_key

    # Called twice per message (its submit_sm_resp and its receipt): each side gets its
    # normaliser once, specialised for the common case (text ids, default folding).
    @functools.cached_property
    def _submit_resp_key(self) -> Callable[[str | bytes], str]:
        return _normaliser(self.submit_resp_format, self)

    @functools.cached_property
    def _receipt_key(self) -> Callable[[str | bytes], str]:
        return _normaliser(self.receipt_format, self)


def _normaliser(id_format: IdFormat, policy: MessageIdPolicy) -> Callable[[str | bytes], str]:
    if id_format is IdFormat.TEXT and policy.ignore_case and policy.strip_leading_zeros:
        def text_key(message_id: str | bytes) -> str:
            # the same steps as normalize_message_id, inlined
            text = (message_id.decode("latin-1") if isinstance(message_id, bytes)
                    else message_id).replace("\x00", "").strip().lower()
            return text.lstrip("0") or ("0" if text else "")
        return text_key
    return functools.partial(normalize_message_id, id_format=id_format, policy=policy)


_DEFAULT_POLICY = MessageIdPolicy()


def normalize_message_id(message_id: str | bytes, id_format: IdFormat = IdFormat.TEXT,
                         policy: MessageIdPolicy = _DEFAULT_POLICY) -> str:
    """Canonical key of a message id. Numeric formats become lower-case hex without leading
    zeros, so "0A1B" read as hex and "2587" read as decimal give the same key ("a1b"). An id
    that does not parse in its declared format falls back to the text rules. NUL characters
    are dropped wherever they are."""
    text = message_id.decode("latin-1") if isinstance(message_id, bytes) else message_id
    text = text.replace("\x00", "").strip()
    if id_format is not IdFormat.TEXT and text:
        try:
            number = int(text, 16 if id_format is IdFormat.HEX else 10)
        except ValueError:
            pass
        else:
            if number >= 0:
                return format(number, "x")
    if policy.ignore_case:
        text = text.lower()
    if policy.strip_leading_zeros:
        text = text.lstrip("0") or ("0" if text else "")
    return text


@functools.lru_cache(maxsize=1024)
def parse_receipt_date(value: bytes | str | None) -> datetime | None:
    """``YYMMDDhhmm`` or ``YYMMDDhhmmss`` (Appendix B) -> naive datetime in the SMSC's clock;
    ``None`` when absent or not a valid date. Cached: receipts arriving together share their
    minute, so most calls are repeats (datetime is immutable, sharing it is safe)."""
    if value is None:
        return None
    digits = value.decode("latin-1") if isinstance(value, bytes) else value
    if len(digits) not in (10, 12) or not digits.isdigit():
        return None
    try:
        return datetime(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]),
                        int(digits[6:8]), int(digits[8:10]),
                        int(digits[10:12]) if len(digits) == 12 else 0)
    except ValueError:
        return None


def _count(value: bytes | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


def _text(value: bytes | None) -> str | None:
    # NULs dropped: an SMSC's text is never worth failing a store write over (PostgreSQL's
    # text type refuses the NUL character).
    return None if value is None else value.decode("latin-1").replace("\x00", "")


def receipt_essentials(fields: tuple[Any, ...], policy: MessageIdPolicy = _DEFAULT_POLICY,
                       ) -> tuple[str | None, str | None, str | None, SmsResult | None]:
    """From a ``parse_receipt`` tuple, what matching it needs: (message id key, stat, err,
    engine result; ``None`` while intermediate). The pool's per-receipt path uses this
    alone; ``Receipt.from_tuple`` adds the rest."""
    message_id, stat = fields[0], fields[5]
    known = _KNOWN_STATS.get(stat)
    if known is not None:
        stat_text, result = known
    else:
        stat_text = _text(stat)
        result = sms_result_for(stat_text)
    return (None if message_id is None else policy._receipt_key(message_id), stat_text,
            _text(fields[6]), result)



@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt, typed. ``message_id`` is the canonical key (see
    ``MessageIdPolicy``); ``raw_message_id`` is what the SMSC sent."""

    message_id: str | None
    raw_message_id: str | None
    stat: str | None
    sms_result: SmsResult | None
    final: bool
    err: str | None
    submit_date: datetime | None
    done_date: datetime | None
    submitted_count: int | None
    delivered_count: int | None
    text: str | None
    message_state: int | None

    @classmethod
    def from_tuple(cls, fields: tuple[Any, ...],
                   policy: MessageIdPolicy = _DEFAULT_POLICY) -> Receipt:
        (message_id, sub, dlvrd, submit_date, done_date, _, _, text, state) = fields
        key, stat_text, err_text, result = receipt_essentials(fields, policy)
        return cls(
            message_id=key,
            raw_message_id=_text(message_id),
            stat=stat_text,
            sms_result=result,
            final=result is not None,
            err=err_text,
            submit_date=parse_receipt_date(submit_date),
            done_date=parse_receipt_date(done_date),
            submitted_count=_count(sub),
            delivered_count=_count(dlvrd),
            text=_text(text),
            message_state=state,
        )


def parse_receipt(short_message: bytes, tlvs: dict[int, bytes] | None = None,
                  policy: MessageIdPolicy = _DEFAULT_POLICY) -> Receipt:
    """Parse one receipt (text + TLVs, TLVs first) through the active fast path."""
    return Receipt.from_tuple(impl.parse_receipt(short_message, tlvs), policy)


def receipts_from_pdus(pdus: Iterable[tuple[int, int, int, Any]],
                       policy: MessageIdPolicy = _DEFAULT_POLICY) -> list[tuple[int, Receipt]]:
    """``(sequence_number, Receipt)`` for every deliver_sm receipt in a decoded batch."""
    return [(seq, Receipt.from_tuple(fields, policy))
            for seq, fields in impl.parse_receipts(pdus)]


def decode_chunk_with_receipts(
    data: bytes | bytearray | memoryview, policy: MessageIdPolicy = _DEFAULT_POLICY,
    max_pdu_length: int = 64 * 1024,
) -> tuple[list[tuple[int, int, int, Any]], list[tuple[int, Receipt]], int]:
    """A received chunk -> ``(other PDUs, [(sequence_number, Receipt)], bytes consumed)`` in one
    fast-path pass (``decode_with_receipts``); the caller acknowledges each receipt's
    deliver_sm with a deliver_sm_resp of that sequence number (SMPP 3.4 section 4.6.2)."""
    pdus, receipts, used = impl.decode_with_receipts(data, max_pdu_length)
    return pdus, [(seq, Receipt.from_tuple(fields, policy)) for seq, fields in receipts], used
