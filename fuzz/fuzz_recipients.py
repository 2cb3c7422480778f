#!/usr/bin/env python3
"""atheris target: the streaming recipient parser (.txt and .csv) of both implementations.

Checked (``parity.check_recipients``): for parser options chosen by the fuzzer, both
implementations report the same recipients (numbers, ctn hashes, line numbers, CSV
variables), counters, per-line errors, header and delimiter, fed whole or cut anywhere; only
a ``ValueError`` for a bad configuration may be raised, by both alike.

    .venv/bin/python fuzz/fuzz_recipients.py -max_total_time=20 fuzz/corpus/recipients
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import parity

    from dispatch._reference import ingest  # noqa: F401  (instrumented: coverage guidance)


def test_one_input(data: bytes) -> None:
    parity.check_recipient_input(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
