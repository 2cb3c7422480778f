"""SMPP codec throughput: the Cython fast path, the pure-Python reference and smpplib side by side
on the same realistic PDUs, in batches of 1000 (DESIGN.md: encode a window into one buffer,
parse every PDU of a received chunk in one call).

Targets (DESIGN.md "Bars"): >= 2M submit_sm encoded/s, >= 2M submit_sm_resp and >= 1M receipts
(deliver_sm with TLVs + receipt text parsed) decoded/s, >= 100x smpplib.

    .venv/bin/python -m pytest bench/test_bench_codec.py --benchmark-columns=median,ops -s

Each benchmark stores PDUs/s (from the median round, robust to the other work on a shared
machine) in ``extra_info["pdus_per_s"]``; the last test prints the table and the ratios. With
``--benchmark-disable`` every body runs once, as a quick correctness check.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from dispatch._reference import codec as reference
from dispatch.benchsuite.codec import (
    BATCH,
    receipt_stream,
    split_frames,
    submit_messages,
    submit_resp_stream,
)
from dispatch.fastpath import implementations
from dispatch.smpp.constants import CommandId

smpp = pytest.importorskip("smpplib.smpp")

RATES: dict[tuple[str, str], float] = {}
IMPLS = sorted(implementations())


class _Client:
    def next_sequence(self) -> int:
        return 1


CLIENT = _Client()


# The workloads are the bench suite's (``dispatch bench``), so both measure the same PDUs.
_split = split_frames


def _run(benchmark: Any, key: tuple[str, str], fn: Callable[[], Any], slow: bool) -> Any:
    if slow:
        result = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    else:
        result = benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and not getattr(benchmark, "disabled", False):
        rate = BATCH / stats.stats.median  # median: robust to other work on a shared machine
        benchmark.extra_info["pdus_per_s"] = round(rate)
        RATES[key] = rate
    return result


# ------------------------------------------------------------------ submit_sm encode

@pytest.mark.parametrize("name", IMPLS)
def test_encode_submit_sm(benchmark: Any, name: str) -> None:
    impl: ModuleType = implementations()[name]
    messages = submit_messages()
    data = _run(benchmark, ("encode submit_sm", name),
                lambda: impl.encode_sm_batch(CommandId.SUBMIT_SM, messages), name == "python")
    assert len(impl.decode_pdus(data)[0]) == BATCH


def test_encode_submit_sm_smpplib(benchmark: Any) -> None:
    messages = submit_messages()

    def encode() -> bytes:
        return b"".join(
            smpp.make_pdu("submit_sm", client=CLIENT, sequence=m[0], source_addr_ton=5,
                          source_addr="SHOPNAME", dest_addr_ton=1, dest_addr_npi=1,
                          destination_addr=m[7].decode(), registered_delivery=1,
                          short_message=m[17], user_message_reference=m[0] & 0xFFFF).generate()
            for m in messages)

    data = _run(benchmark, ("encode submit_sm", "smpplib"), encode, True)
    assert len(reference.decode_pdus(data)[0]) == BATCH


# ------------------------------------------------------------------ submit_sm_resp decode

@pytest.mark.parametrize("name", IMPLS)
def test_decode_submit_sm_resp(benchmark: Any, name: str) -> None:
    impl: ModuleType = implementations()[name]
    data = submit_resp_stream()
    pdus, used = _run(benchmark, ("decode submit_sm_resp", name),
                      lambda: impl.decode_pdus(data), name == "python")
    assert len(pdus) == BATCH and used == len(data)


def test_decode_submit_sm_resp_smpplib(benchmark: Any) -> None:
    frames = _split(submit_resp_stream())
    pdus = _run(benchmark, ("decode submit_sm_resp", "smpplib"),
                lambda: [smpp.parse_pdu(f, client=CLIENT) for f in frames], True)
    assert len(pdus) == BATCH


# ------------------------------------------------------------------ receipts decode

@pytest.mark.parametrize("name", IMPLS)
def test_decode_receipts(benchmark: Any, name: str) -> None:
    """The receiving bind's path: frames split, deliver_sm checked, receipts parsed in one call."""
    impl: ModuleType = implementations()[name]
    data = receipt_stream()
    others, receipts, used = _run(benchmark, ("decode receipts", name),
                                lambda: impl.decode_with_receipts(data), name == "python")
    assert len(receipts) == BATCH and receipts[0][1][5] == b"DELIVRD" and used == len(data)
    assert others == []


@pytest.mark.parametrize("name", IMPLS)
def test_decode_receipts_two_steps(benchmark: Any, name: str) -> None:
    """decode_pdus (full SmFields tuples) then parse_receipts: what a caller that wants every
    deliver_sm field pays."""
    impl: ModuleType = implementations()[name]
    data = receipt_stream()

    def decode() -> list[Any]:
        pdus, _ = impl.decode_pdus(data)
        return impl.parse_receipts(pdus)

    receipts = _run(benchmark, ("decode_pdus + parse_receipts", name), decode, name == "python")
    assert len(receipts) == BATCH and receipts[0][1][5] == b"DELIVRD"


def test_decode_receipts_smpplib(benchmark: Any) -> None:
    """smpplib parses the PDU and its TLVs; it has no receipt-text parser, so this baseline
    does less work than ours (the ratio is conservative)."""
    frames = _split(receipt_stream())
    pdus = _run(benchmark, ("decode receipts", "smpplib"),
                lambda: [smpp.parse_pdu(f, client=CLIENT) for f in frames], True)
    assert len(pdus) == BATCH and pdus[0].message_state == 2


def test_report() -> None:
    """Print PDUs/s per implementation and the ratios (only when benchmarks ran)."""
    if not RATES:
        return
    print(f"\n\nSMPP codec, PDUs/s (batches of {BATCH})")
    for op in ("encode submit_sm", "decode submit_sm_resp", "decode receipts",
               "decode_pdus + parse_receipts"):
        row = {name: RATES.get((op, name)) for name in ("cython", "python", "smpplib")}
        cells = "  ".join(f"{n}={r / 1e6:.3f}M" for n, r in row.items() if r)
        ratios = ""
        baseline = row["smpplib"] or RATES.get(("decode receipts", "smpplib"))
        if row["cython"] and baseline:
            ratios += f"  cython/smpplib={row['cython'] / baseline:.0f}x"
        if row["cython"] and row["python"]:
            ratios += f"  cython/python={row['cython'] / row['python']:.1f}x"
        print(f"  {op:24s} {cells}{ratios}")
