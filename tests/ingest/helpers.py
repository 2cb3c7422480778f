"""Run a parser over data split at given offsets and collect everything it reports."""

from __future__ import annotations

from types import ModuleType
from typing import Any

KEY = bytes(range(16))


def parse(impl: ModuleType, data: bytes, splits: list[int] | None = None,
          **options: Any) -> dict[str, Any]:
    """Feed ``data`` cut at ``splits`` (offsets), finish, and return results and counters."""
    parser = impl.RecipientParser(KEY, **options)
    batches = []
    pos = 0
    for cut in splits or []:
        batches.append(parser.feed(data[pos:cut]))
        pos = cut
    batches.append(parser.feed(data[pos:]))
    batches.append(parser.finish())
    return {
        "recipients": [r for b in batches for r in b],
        "bytes": parser.bytes_total, "lines": parser.lines, "valid": parser.valid,
        "invalid": parser.invalid, "duplicates": parser.duplicates, "errors": parser.errors,
        "error_counts": parser.error_counts, "header": parser.header,
        "delimiter": parser.delimiter, "variable_names": parser.variable_names,
    }


def numbers(result: dict[str, Any]) -> list[str]:
    return [r.number for r in result["recipients"]]
