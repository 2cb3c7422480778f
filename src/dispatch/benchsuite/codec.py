"""Section ``codec``: SMPP PDU encode/decode, the Cython fast path vs the pure-Python
reference vs smpplib, on the same realistic PDUs in batches of 1000.

DESIGN.md "Bars": >= 2M submit_sm encoded/s, >= 2M submit_sm_resp and >= 1M receipts
(deliver_sm with TLVs, receipt text parsed, SMPP 3.4 Appendix B) decoded/s, >= 100x smpplib.
The engine encodes a window of submit_sm into one buffer and decodes every PDU of a received
chunk in one call, so the batch is the unit measured here (as in bench/test_bench_codec.py).
smpplib has no receipt-text parser: its receipt figure does less work than ours.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dispatch._reference import codec as reference
from dispatch.benchsuite.options import SuiteConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult
from dispatch.benchsuite.timing import median_seconds
from dispatch.fastpath import implementations
from dispatch.smpp.constants import CommandId, Tlv

BATCH = 1000
OPS = ("encode submit_sm", "decode submit_sm_resp", "decode receipts")
UNIT = "PDU/s"


def submit_messages(count: int = BATCH) -> list[tuple[Any, ...]]:
    """A campaign window: alphanumeric sender, 11-digit numbers, receipt requested, a
    120-character GSM text, a user_message_reference TLV (SMPP 3.4 section 5.3.2.17)."""
    text = (b"Your order 12345 has shipped and will arrive tomorrow between 10:00 and 14:00. "
            b"Track it at example.com/t/12345 ok")
    return [(i + 1, b"", 5, 0, b"SHOPNAME", 1, 1, b"7999%07d" % i, 0, 0, 0, b"", b"", 1, 0, 0, 0,
             text, [(Tlv.USER_MESSAGE_REFERENCE, (i & 0xFFFF).to_bytes(2, "big"))])
            for i in range(count)]


def submit_resp_stream(count: int = BATCH) -> bytes:
    return reference.encode_message_id_resp_batch(
        CommandId.SUBMIT_SM_RESP, [(0, i + 1, b"%016X" % (0x5F3A0000 + i)) for i in range(count)])


def receipt_stream(count: int = BATCH) -> bytes:
    """deliver_sm receipts as SMSCs send them: Appendix B text plus receipted_message_id,
    message_state and network_error_code TLVs (SMPP 3.4 section 5.3.2)."""
    messages = []
    for i in range(count):
        mid = b"%016X" % (0x5F3A0000 + i)
        text = (b"id:" + mid + b" sub:001 dlvrd:001 submit date:2311230101 done date:2311230102"
                b" stat:DELIVRD err:000 text:Your order 12345 ha")
        messages.append((i + 1, b"", 1, 1, b"7999%07d" % i, 5, 0, b"SHOPNAME", 0x04, 0, 0, b"",
                         b"", 0, 0, 0, 0, text,
                         [(Tlv.RECEIPTED_MESSAGE_ID, mid + b"\x00"), (Tlv.MESSAGE_STATE, b"\x02"),
                          (Tlv.NETWORK_ERROR_CODE, b"\x03\x00\x00")]))
    return reference.encode_sm_batch(CommandId.DELIVER_SM, messages)


def split_frames(data: bytes) -> list[bytes]:
    """One bytes object per PDU (smpplib parses a PDU at a time)."""
    out = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        out.append(data[pos:pos + length])
        pos += length
    return out


class _SmpplibClient:
    """smpplib's make_pdu/parse_pdu want a client for sequence numbers; a fixed one will do."""

    def next_sequence(self) -> int:
        return 1


def smpplib_workloads() -> dict[str, Callable[[], Any]] | None:
    try:
        from smpplib import smpp
    except ImportError:
        return None
    client = _SmpplibClient()
    messages = submit_messages()
    resp_frames = split_frames(submit_resp_stream())
    receipt_frames = split_frames(receipt_stream())

    def encode() -> bytes:
        return b"".join(
            smpp.make_pdu("submit_sm", client=client, sequence=m[0], source_addr_ton=5,
                          source_addr="SHOPNAME", dest_addr_ton=1, dest_addr_npi=1,
                          destination_addr=m[7].decode(), registered_delivery=1,
                          short_message=m[17], user_message_reference=m[0] & 0xFFFF).generate()
            for m in messages)

    return {
        "encode submit_sm": encode,
        "decode submit_sm_resp": lambda: [smpp.parse_pdu(f, client=client) for f in resp_frames],
        "decode receipts": lambda: [smpp.parse_pdu(f, client=client) for f in receipt_frames],
    }


def check_workloads(impl: Any) -> None:
    """Each workload does what it claims before it is timed (a benchmark of a broken call
    would be fast and meaningless)."""
    data = impl.encode_sm_batch(CommandId.SUBMIT_SM, submit_messages())
    assert len(impl.decode_pdus(data)[0]) == BATCH
    pdus, used = impl.decode_pdus(submit_resp_stream())
    assert len(pdus) == BATCH and used == len(submit_resp_stream())
    others, receipts, _ = impl.decode_with_receipts(receipt_stream())
    assert len(receipts) == BATCH and not others and receipts[0][1][5] == b"DELIVRD"


def run(config: SuiteConfig, progress: Progress) -> SectionResult:
    result = SectionResult("codec")
    budget_s = 0.15 if config.quick else 1.5
    result.config = {"batch_pdus": BATCH, "budget_s_per_case": budget_s,
                     "statistic": "median round"}
    messages = submit_messages()
    resp_data = submit_resp_stream()
    receipt_data = receipt_stream()
    cases: dict[str, dict[str, Callable[[], Any]]] = {}
    for name, impl in sorted(implementations().items()):
        check_workloads(impl)
        cases[name] = {
            "encode submit_sm": functools.partial(impl.encode_sm_batch, CommandId.SUBMIT_SM,
                                                  messages),
            "decode submit_sm_resp": functools.partial(impl.decode_pdus, resp_data),
            "decode receipts": functools.partial(impl.decode_with_receipts, receipt_data),
        }
    baseline = smpplib_workloads()
    if baseline is None:
        result.notes.append("smpplib is not installed: no smpplib baseline")
    else:
        cases["smpplib"] = baseline
    for variant, ops in cases.items():
        for op, fn in ops.items():
            progress.update(f"{op} ({variant})")
            # The reference and smpplib are ~100x slower: a smaller budget is still many rounds.
            seconds, rounds, _ = median_seconds(fn, budget_s=budget_s if variant == "cython"
                                             else budget_s / 2)
            result.add(op, variant, BATCH / seconds, UNIT, rounds=rounds)
    for op in OPS:
        result.ratio(op, "cython", "smpplib")
        result.ratio(op, "cython", "python")
    result.notes.append("smpplib parses the receipt PDU and its TLVs but not the receipt text: "
                        "its 'decode receipts' figure does less work than ours.")
    return result
