"""Ingest throughput: parse + normalise + validate + dedupe + ctn_hash, in MB/s of input.

The file is generated (never committed): mixed number formats as customers upload them
(``+7 (912) 345-67-89``, ``89123456789``, ``0079123456789``, ``+79..``, ``79..``), ~7% invalid
lines, ~5% duplicates, LF and CRLF; plus a CSV variant with a quoted name and a variable.
The extension runs on the whole file (32 MB), the reference on a 2 MB slice of it (it is
~200x slower); MB/s are comparable (the pytest-benchmark times are not: different sizes).
Under ``--benchmark-disable`` the files are small, so the suite stays quick.

    .venv/bin/python -m pytest bench/test_bench_ingest.py -s         # + a MB/s table, ratio
    .venv/bin/python bench/test_bench_ingest.py                      # script: wall and CPU MB/s
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dispatch.benchsuite.ingest import csv_file, head, txt_file
from dispatch.fastpath import IMPLEMENTATION, implementations
from dispatch.ingest import IngestOptions, RecipientStream, TrunkRule

KEY = bytes(range(16))
CHUNK_BYTES = 1 << 20
FULL_BYTES = 32 << 20
REFERENCE_BYTES = 2 << 20
QUICK_BYTES = 256 << 10
IMPLS = implementations()


# The generated files are the bench suite's (``dispatch bench``): both measure the same data.


def parse_all(impl: ModuleType, data: bytes, fmt: str, *, sized: bool = True) -> int:
    """The work measured: the whole file through one parser in 1 MiB chunks. ``sized`` passes
    the file size as ``expected_bytes``, as ``dispatch.ingest.RecipientStream`` does for a file
    whose size it knows (the dedupe set is then sized once instead of grown)."""
    parser = impl.RecipientParser(KEY, fmt=fmt, trunk_prefix="8", trunk_national_length=11,
                                  trunk_country_code="7",
                                  expected_bytes=len(data) if sized else None)
    view = memoryview(data)
    accepted = 0
    for pos in range(0, len(data), CHUNK_BYTES):
        accepted += len(parser.feed(view[pos:pos + CHUNK_BYTES]))
    accepted += len(parser.finish())
    assert parser.invalid > 0 and parser.duplicates > 0
    return accepted


@pytest.fixture(scope="module")
def files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    quick = request.config.getoption("benchmark_disable", False)
    full = QUICK_BYTES if quick else FULL_BYTES
    ref = QUICK_BYTES // 4 if quick else REFERENCE_BYTES
    txt, csv = txt_file(full), csv_file(full)
    path = tmp_path_factory.mktemp("ingest") / "recipients.txt"
    path.write_bytes(txt)
    return {("cython", "txt"): txt, ("cython", "csv"): csv, ("python", "txt"): head(txt, ref),
            ("python", "csv"): head(csv, ref), "path": path}


@pytest.fixture(scope="module")
def rates() -> Iterator[dict[str, float]]:
    """MB/s by test, printed as a table (with the ratio) at the end: run with ``-s``."""
    found: dict[str, float] = {}
    yield found
    if not found:
        return
    print("\n| ingest | MB | MB/s (best of 3) |\n|---|---|---|")
    for name, rate in found.items():
        if not name.endswith(":MB"):
            print(f"| {name} | {found[name + ':MB']:.1f} | {rate:.1f} |")
    for fmt in ("txt", "csv"):
        if f"cython {fmt}" in found and f"python {fmt}" in found:
            print(f"| ratio {fmt} cython/python | | {found[f'cython {fmt}'] / found[f'python {fmt}']:.0f}x |")


def _record_rate(benchmark, rates: dict[str, float], label: str, size: int) -> None:
    stats = getattr(benchmark, "stats", None)
    benchmark.extra_info["bytes"] = size
    if stats is not None:
        rate = size / stats.stats.min / 1e6
        benchmark.extra_info["MB/s"] = round(rate, 1)
        rates[label] = rate
        rates[label + ":MB"] = size / 1e6


@pytest.mark.parametrize("fmt", ["txt", "csv"])
@pytest.mark.parametrize("name", sorted(IMPLS))
def test_ingest_throughput(benchmark, files: dict, rates: dict[str, float], name: str,
                           fmt: str) -> None:
    data = files[(name, fmt)]
    benchmark.group = f"ingest-{fmt}"
    accepted = benchmark.pedantic(parse_all, args=(IMPLS[name], data, fmt), rounds=3,
                                  iterations=1)
    assert accepted > 0
    _record_rate(benchmark, rates, f"{name} {fmt}", len(data))


def test_ingest_file_through_api(benchmark, files: dict, rates: dict[str, float]) -> None:
    """dispatch.ingest end to end: read the file in chunks, parse, build the batches."""
    path: Path = files["path"]
    options = IngestOptions(hash_key=KEY, trunk=TrunkRule.russia())

    def run() -> int:
        return sum(len(batch) for batch in RecipientStream(path, options))

    benchmark.group = "ingest-api"
    assert benchmark.pedantic(run, rounds=3, iterations=1) > 0
    _record_rate(benchmark, rates, f"dispatch.ingest txt file ({IMPLEMENTATION})",
                 path.stat().st_size)


def _best_rate(impl: ModuleType, data: bytes, fmt: str, rounds: int = 3,
               sized: bool = True) -> tuple[float, float]:
    """Best MB/s over ``rounds``: wall clock and CPU time of this process."""
    wall = cpu = 0.0
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        parse_all(impl, data, fmt, sized=sized)
        w1, c1 = time.perf_counter(), time.process_time()
        wall = max(wall, len(data) / (w1 - w0) / 1e6)
        cpu = max(cpu, len(data) / max(c1 - c0, 1e-9) / 1e6)
    return wall, cpu


def main() -> None:
    sizes = {"cython": FULL_BYTES, "python": REFERENCE_BYTES}
    print(f"ingest: parse + normalise + validate + dedupe + SipHash-128, {CHUNK_BYTES >> 20} MiB "
          "chunks, best of 3")
    for fmt in ("txt", "csv"):
        data = txt_file(FULL_BYTES) if fmt == "txt" else csv_file(FULL_BYTES)
        rates = {}
        for name in sorted(IMPLS, reverse=True):
            sample = head(data, sizes[name])
            rates[name] = _best_rate(IMPLS[name], sample, fmt)
            print(f"  {fmt}  {name:7s} {len(sample) / 1e6:6.1f} MB  "
                  f"{rates[name][0]:8.1f} MB/s wall  {rates[name][1]:8.1f} MB/s cpu")
        if "cython" in IMPLS:  # the same without the size hint (a stream of unknown size)
            wall, cpu = _best_rate(IMPLS["cython"], data, fmt, sized=False)
            print(f"  {fmt}  cython, no size hint     {wall:8.1f} MB/s wall  {cpu:8.1f} MB/s cpu")
        if len(rates) == 2:
            print(f"  {fmt}  ratio cython/python: {rates['cython'][0] / rates['python'][0]:.0f}x "
                  f"wall, {rates['cython'][1] / rates['python'][1]:.0f}x cpu")


if __name__ == "__main__":
    main()
