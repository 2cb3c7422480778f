"""What the fuzz targets check, shared by the atheris targets (``fuzz_*.py``) and the
hypothesis suite (``tests/hardening/test_fuzz_parity.py``).

Every check runs one input through both implementations of the fast path -- the Cython
extension ``dispatch._fastpath`` and the pure-Python reference ``dispatch._reference`` -- and
raises ``Mismatch`` when they disagree, or when one implementation disagrees with itself under a
different chunking of the same bytes (STYLE.md: every decoder is fed whole input and random
splits and must give the same events). The only exceptions a decoder may raise on garbage are
its own (``PduError`` for PDUs, ``ValueError`` for a recipient file configuration); anything
else propagates and the fuzzer reports it as a crash.
"""

from __future__ import annotations

import itertools
from types import ModuleType
from typing import Any

from dispatch.fastpath import implementations
from dispatch.smpp.errors import PduError

IMPLS: dict[str, ModuleType] = implementations()
HASH_KEY = bytes(range(16))
#: max_pdu_length values a fuzzed stream is decoded with (the session default is 64 KiB)
MAX_PDU_LENGTHS = (16, 64, 512, 65536)
#: inputs up to this size are also fed one byte at a time (quadratic: keep it small)
BYTE_BY_BYTE_MAX = 512


class Mismatch(AssertionError):
    """Two implementations, or two chunkings, gave different results for one input."""


# ------------------------------------------------------------------------- input layout

def split_header(data: bytes, fixed: int) -> tuple[bytes, list[int], bytes]:
    """``fixed`` selector bytes, then a cut count (0-4) and two bytes per cut, then the
    payload. An explicit layout (not atheris' FuzzedDataProvider) so seeds are easy to
    write by hand and the hypothesis suite can build inputs the same way."""
    head = data[:fixed]
    count = data[fixed] % 5 if len(data) > fixed else 0
    pos = fixed + 1
    cuts = [int.from_bytes(data[pos + 2 * i:pos + 2 * i + 2], "big") for i in range(count)]
    return head.ljust(fixed, b"\0"), cuts, data[pos + 2 * count:]


def join_header(head: bytes, cuts: list[int], payload: bytes) -> bytes:
    """The inverse of ``split_header`` (for seeds)."""
    return (head + bytes([len(cuts)]) + b"".join(c.to_bytes(2, "big") for c in cuts)
            + payload)


# ------------------------------------------------------------------------------ PDU decoder

def _error(exc: PduError, exact: bool) -> tuple[Any, ...]:
    if exc.frame_length is None and not exact:
        # Framing lost: the header fields are reported only when 16 bytes were buffered
        # already, which depends on the chunking. What must not depend on it: the verdict.
        return ("framing lost", exc.command_status)
    return ("pdu error" if exc.frame_length is not None else "framing lost",
            exc.frame_length, exc.sequence_number, exc.command_id, exc.command_status)


def decode_stream(impl: ModuleType, data: bytes, max_pdu_length: int, cuts: list[int],
                  *, with_receipts: bool = False, exact: bool = True) -> list[tuple[Any, ...]]:
    """Events of a receive loop like ``dispatch.smpp.session``'s: bytes arrive cut at
    ``cuts``; every complete PDU is decoded; a bad frame with an intact length is skipped
    (generic_nack in the session), lost framing ends the stream (session reset)."""
    events: list[tuple[Any, ...]] = []
    rx = bytearray()
    decode = impl.decode_with_receipts if with_receipts else impl.decode_pdus
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    for start, end in itertools.pairwise(bounds):
        rx += data[start:end]
        while rx:
            try:
                result = decode(rx, max_pdu_length)
            except PduError as exc:
                events.append(_error(exc, exact))
                if exc.frame_length is None:
                    return events
                if exc.frame_length <= 0 or exc.frame_length > len(rx):
                    raise Mismatch(f"{impl.__name__}: PduError.frame_length "
                                   f"{exc.frame_length} outside the buffer ({len(rx)})") from None
                del rx[:exc.frame_length]
                continue
            if with_receipts:
                pdus, receipts, consumed = result
                events += [("receipt", *r) for r in receipts]
            else:
                pdus, consumed = result
            events += [("pdu", *p) for p in pdus]
            if consumed < 0 or consumed > len(rx):
                raise Mismatch(f"{impl.__name__}: consumed {consumed} of {len(rx)}")
            del rx[:consumed]
            if not pdus and not (with_receipts and result[1]):
                if consumed:
                    raise Mismatch(f"{impl.__name__}: consumed {consumed} bytes, decoded none")
                break
    return events


def _sorted_by_kind(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # decode_with_receipts returns receipts and other PDUs in two lists: compare per kind,
    # each in its own order (the order inside a kind is part of the contract)
    return ([e for e in events if e[0] == "receipt"] + [e for e in events if e[0] == "pdu"]
            + [e for e in events if e[0] not in ("receipt", "pdu")])


def check_pdus(data: bytes, max_pdu_length: int, cuts: list[int]) -> int:
    """Parity of ``decode_pdus`` / ``decode_with_receipts`` on a byte stream; returns the
    number of events seen (for statistics)."""
    reference = IMPLS["python"]
    expected = decode_stream(reference, data, max_pdu_length, [])
    for name, impl in IMPLS.items():
        whole = decode_stream(impl, data, max_pdu_length, [])
        if whole != expected:
            raise Mismatch(f"decode_pdus: {name} != python on whole input\n"
                           f"{name}: {whole!r}\npython: {expected!r}")
        splits = [("random cuts", cuts)]
        if len(data) <= BYTE_BY_BYTE_MAX:
            splits.append(("byte by byte", list(range(len(data)))))
        for label, split in splits:
            got = decode_stream(impl, data, max_pdu_length, split, exact=False)
            want = decode_stream(impl, data, max_pdu_length, [], exact=False)
            if got != want:
                raise Mismatch(f"decode_pdus ({name}, {label} {split}) != whole input\n"
                               f"split: {got!r}\nwhole: {want!r}")
        with_receipts = decode_stream(impl, data, max_pdu_length, cuts, with_receipts=True,
                                      exact=False)
        plain = _receipts_of(impl, decode_stream(impl, data, max_pdu_length, cuts, exact=False))
        if _sorted_by_kind(with_receipts) != _sorted_by_kind(plain):
            raise Mismatch(f"decode_with_receipts ({name}) != decode_pdus + parse_receipts\n"
                           f"fused: {with_receipts!r}\nplain: {plain!r}")
    return len(expected)


def _receipts_of(impl: ModuleType, events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``decode_pdus`` events with receipts split out the way ``decode_with_receipts`` does."""
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if ev[0] != "pdu":
            out.append(ev)
            continue
        pdu = ev[1:]
        receipts = impl.parse_receipts([pdu])
        if receipts:
            out += [("receipt", *r) for r in receipts]
        else:
            out.append(ev)
    return out


def check_pdu_input(data: bytes) -> int:
    """One fuzz input for the PDU target: byte 0 picks ``max_pdu_length``, byte 1 the mode
    (bit 0: a receipt text for ``parse_receipt``, bit 1: with TLVs), then cuts and payload."""
    head, cuts, payload = split_header(data, 2)
    max_pdu_length = MAX_PDU_LENGTHS[head[0] % len(MAX_PDU_LENGTHS)]
    if not head[1] & 1:
        return check_pdus(payload, max_pdu_length, cuts)
    tlvs = None
    if head[1] & 2 and payload:
        n = payload[0]
        tlvs = {0x001E: payload[1:1 + n], 0x0427: payload[1 + n:2 + n]}
        payload = payload[2 + n:]
    check_receipt_text(payload, tlvs)
    return 1


def check_receipt_text(short_message: bytes, tlvs: dict[int, bytes] | None) -> None:
    """``parse_receipt`` parity on any text and TLVs (it must never raise)."""
    results = {name: impl.parse_receipt(short_message, tlvs) for name, impl in IMPLS.items()}
    if len(set(map(repr, results.values()))) > 1:
        raise Mismatch(f"parse_receipt({short_message!r}, {tlvs!r}): {results!r}")


# ------------------------------------------------------------------------ recipient parser

def parse_recipients(impl: ModuleType, data: bytes, cuts: list[int],
                     options: dict[str, Any]) -> dict[str, Any]:
    """Everything a parser reports for ``data`` fed in chunks cut at ``cuts``."""
    try:
        parser = impl.RecipientParser(HASH_KEY, **options)
        batches = []
        pos = 0
        for cut in sorted(c for c in cuts if 0 < c < len(data)):
            batches.append(parser.feed(data[pos:cut]))
            pos = cut
        batches.append(parser.feed(data[pos:]))
        batches.append(parser.finish())
    except ValueError as exc:  # a file-level configuration error: must match too
        return {"ValueError": str(exc)}
    return {
        "recipients": [tuple(r) for b in batches for r in b],
        "bytes": parser.bytes_total, "lines": parser.lines, "valid": parser.valid,
        "invalid": parser.invalid, "duplicates": parser.duplicates, "errors": parser.errors,
        "error_counts": parser.error_counts, "header": parser.header,
        "delimiter": parser.delimiter, "variable_names": parser.variable_names,
        "phone_column": parser.phone_column_index,
    }


def check_recipients(data: bytes, options: dict[str, Any], cuts: list[int]) -> int:
    """Parity of ``RecipientParser`` on a file; returns the number of recipients."""
    expected = parse_recipients(IMPLS["python"], data, [], options)
    for name, impl in IMPLS.items():
        for label, split in (("whole", []), ("random cuts", cuts)):
            got = parse_recipients(impl, data, split, options)
            if got != expected:
                diff = {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected)
                        if got.get(k) != expected.get(k)}
                raise Mismatch(f"RecipientParser {name} ({label} {split}) != python whole, "
                               f"options {options}: {diff!r}")
    recipients = expected.get("recipients")
    return len(recipients) if isinstance(recipients, list) else 0


def check_recipient_input(data: bytes) -> int:
    """One fuzz input for the recipient target: two option bytes, a column byte, then cuts
    and the file."""
    head, cuts, payload = split_header(data, 3)
    return check_recipients(payload, recipient_options(int.from_bytes(head[:2], "big"),
                                                       head[2]), cuts)


def recipient_options(selector: int, column: int) -> dict[str, Any]:
    """Parser options from two fuzzed integers (so the fuzzer explores them too)."""
    fmt = ("txt", "csv")[selector % 2]
    options: dict[str, Any] = {"fmt": fmt,
                               "max_line_bytes": (16, 64, 65536)[(selector >> 2) % 3],
                               "max_errors": (0, 3, 1000)[(selector >> 4) % 3]}
    if selector & 0x40:
        options.update(trunk_prefix="8", trunk_national_length=11, trunk_country_code="7")
    if fmt == "csv":
        options["has_header"] = (None, True, False)[(selector >> 7) % 3]
        options["delimiter"] = (None, ",", ";", "\t", "|")[(selector >> 9) % 5]
        options["phone_column"] = (None, 0, 1, column % 8, "phone", "msisdn")[
            (selector >> 12) % 6]
    return options
