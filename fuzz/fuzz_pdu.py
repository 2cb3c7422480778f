#!/usr/bin/env python3
"""atheris target: the SMPP PDU decoder and frame splitter (``decode_pdus``,
``decode_with_receipts``, ``parse_receipt``) of both implementations, on any bytes.

Checked (``parity.check_pdus``): both implementations give the same PDUs, the same errors and
the same consumption; whole input, random cuts and byte-by-byte feeding agree; the fused
receipt decoder equals decode + parse_receipts; only ``PduError`` may be raised.

    .venv/bin/python fuzz/fuzz_pdu.py -max_total_time=20 fuzz/corpus/pdu
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import parity

    from dispatch._reference import codec  # noqa: F401  (instrumented: coverage guidance)


def test_one_input(data: bytes) -> None:
    parity.check_pdu_input(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
