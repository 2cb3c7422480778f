"""Section ``ingest``: recipient-file parse + normalise + validate + dedupe + keyed hash
(SipHash-128 ctn_hash), MB/s of input, the Cython fast path vs the pure-Python reference.

The file is generated as customers upload them: mixed spellings (``+7 (912) 345-67-89``,
``89123456789``, ``0079...``), ~7% invalid lines, ~5% duplicates, LF and CRLF; plus a CSV
with a quoted name and a variable. The reference runs on a slice (it is ~200x slower); MB/s
are comparable. DESIGN.md "Bars": >= 200 MB/s and >= 25x the reference.
"""

from __future__ import annotations

import functools
import random
from types import ModuleType

from dispatch.benchsuite.options import SuiteConfig
from dispatch.benchsuite.progress import Progress
from dispatch.benchsuite.results import SectionResult
from dispatch.benchsuite.timing import median_seconds
from dispatch.fastpath import implementations

KEY = bytes(range(16))
CHUNK_BYTES = 1 << 20
INVALID_SHARE = 0.07
DUPLICATE_SHARE = 0.05
_INVALID = [b"12345", b"7912abc4567", b"+7 912 345 67 89 00 00 0", b"n/a", b"0123456789", b"x"]
#: (extension bytes, reference bytes) by profile
SIZES = {"quick": (1 << 20, 64 << 10), "full": (32 << 20, 1 << 20)}


def _formatted(rng: random.Random, national: int) -> bytes:
    s = b"%010d" % national
    style = rng.randrange(5)
    if style == 0:
        return b"+7 (%s) %s-%s-%s" % (s[:3], s[3:6], s[6:8], s[8:])
    return (b"8", b"007", b"+7", b"7")[style - 1] + s


def phone_lines(target_bytes: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    seen: list[int] = []
    size = 0
    while size < target_bytes:
        roll = rng.random()
        if roll < INVALID_SHARE:
            line = rng.choice(_INVALID)
        elif roll < INVALID_SHARE + DUPLICATE_SHARE and seen:
            line = _formatted(rng, rng.choice(seen))
        else:
            national = 9_000_000_000 + rng.randrange(999_999_999)
            seen.append(national)
            line = _formatted(rng, national)
        lines.append(line)
        size += len(line) + 2
    return lines


def txt_file(target_bytes: int, seed: int = 2026) -> bytes:
    return b"".join(line + (b"\r\n" if i % 3 == 0 else b"\n")
                    for i, line in enumerate(phone_lines(target_bytes, seed)))


def csv_file(target_bytes: int, seed: int = 2026) -> bytes:
    rows = [b"%s;%s;%d\n" % (b'"Ivanov; Ivan"' if i % 4 == 0 else b"Petr", line, i % 1000)
            for i, line in enumerate(phone_lines(target_bytes * 2 // 3, seed))]
    return b"name;phone;amount\n" + b"".join(rows)


def head(data: bytes, size: int) -> bytes:
    """The first ``size`` bytes, cut after a line end."""
    cut = data.rfind(b"\n", 0, size)
    return data[:cut + 1] if cut >= 0 else data


def parse_all(impl: ModuleType, data: bytes, fmt: str) -> int:
    """The work measured: the whole file through one parser in 1 MiB chunks."""
    parser = impl.RecipientParser(KEY, fmt=fmt, trunk_prefix="8", trunk_national_length=11,
                                  trunk_country_code="7")
    view = memoryview(data)
    accepted = 0
    for pos in range(0, len(data), CHUNK_BYTES):
        accepted += len(parser.feed(view[pos:pos + CHUNK_BYTES]))
    accepted += len(parser.finish())
    if parser.invalid == 0 or parser.duplicates == 0:
        raise AssertionError("generated file lacks invalid lines or duplicates")
    return accepted


def run(config: SuiteConfig, progress: Progress) -> SectionResult:
    result = SectionResult("ingest")
    full_bytes, ref_bytes = SIZES[config.profile]
    budget_s = 0.2 if config.quick else 3.0
    result.config = {"file_bytes": full_bytes, "reference_bytes": ref_bytes,
                     "chunk_bytes": CHUNK_BYTES, "invalid_share": INVALID_SHARE,
                     "duplicate_share": DUPLICATE_SHARE, "hash": "SipHash-2-4 128-bit",
                     "statistic": "median round"}
    progress.update("generating files")
    files = {"txt": txt_file(full_bytes, config.seed), "csv": csv_file(full_bytes, config.seed)}
    impls = implementations()
    for fmt, data in files.items():
        for name, impl in sorted(impls.items()):
            sample = data if name == "cython" else head(data, ref_bytes)
            progress.update(f"{fmt} ({name}, {len(sample) / 1e6:.1f} MB)")
            seconds, rounds, accepted = median_seconds(
                functools.partial(parse_all, impl, sample, fmt), budget_s=budget_s,
                min_rounds=1 if config.quick or name != "cython" else 3)
            result.add(f"{fmt} parse+dedupe+hash", name, len(sample) / seconds / 1e6, "MB/s",
                       bytes=len(sample), recipients=accepted, rounds=rounds,
                       recipients_per_s=round(accepted / seconds))
        result.ratio(f"{fmt} parse+dedupe+hash", "cython", "python")
    return result
