"""Single-number helpers over the active fast path: normalise, ctn_hash, mask.

For numbers that do not come from a file (a lookup by number, a transactional message):
they follow exactly the file rules, so a hash computed here matches the stored one.
"""

from __future__ import annotations

from dispatch import fastpath
from dispatch.ingest.options import TrunkRule


def normalize_phone(text: str, trunk: TrunkRule | None = None) -> tuple[str | None, str | None]:
    """``(e164_digits, None)`` when valid, else ``(None, reason)`` (a REASONS code)."""
    if trunk is None:
        result: tuple[str | None, str | None] = fastpath.impl.normalize_phone(text)
    else:
        result = fastpath.impl.normalize_phone(text, trunk.trunk_prefix, trunk.national_length,
                                               trunk.country_code)
    return result


def ctn_hash(key: bytes, digits: str) -> bytes:
    """SipHash-2-4-128 of normalised digits under ``key``: the stored lookup hash."""
    result: bytes = fastpath.impl.ctn_hash(key, digits)
    return result


def mask_number(digits: str) -> str:
    """Show only the last 4 digits: ``79123454567`` -> ``*******4567``."""
    result: str = fastpath.impl.mask_number(digits)
    return result
