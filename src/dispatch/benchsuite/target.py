"""Aiming the suite at a real SMSC: the message budget (safety cap) and the dry-run plan.

A benchmark against a live network sends real, billable SMS to real phones. So: messages go
only to the numbers given with ``--to``; every sender asks ``MessageBudget`` before it sends
and gets at most what is left of ``--max-messages`` (default small); in-flight submits are
never resent (``InflightPolicy.UNKNOWN``), so a dropped link cannot turn into duplicates;
``--dry-run`` prints the plan and connects to nothing.
"""

from __future__ import annotations

from dispatch.benchsuite.options import SECTIONS, SuiteConfig, Target
from dispatch.ingest import mask_number

#: sections that never send SMPP traffic
LOCAL_SECTIONS = ("ingest", "codec")
#: sections that can aim at ``--target`` (the others need the simulator: e2e and api measure
#: the engine with receipts, which a real SMSC delivers on its own schedule)
TARGET_SECTIONS = ("pool",)


class BudgetExhausted(RuntimeError):
    pass


class MessageBudget:
    """How many messages may still be sent to the target. Not thread-safe: one trio loop."""

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError("cap must be >= 0")
        self.cap = cap
        self.granted = 0

    @property
    def remaining(self) -> int:
        return self.cap - self.granted

    def grant(self, wanted: int) -> int:
        """Reserve up to ``wanted`` messages; returns how many may be sent (maybe 0)."""
        n = max(0, min(wanted, self.remaining))
        self.granted += n
        return n


def mask(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    return mask_number(digits) if digits else "****"


def section_plan(config: SuiteConfig, name: str) -> str:
    """One line: what ``name`` would do with this config."""
    t = config.target
    if t is not None and name not in LOCAL_SECTIONS and name not in TARGET_SECTIONS:
        return f"{name}: skipped (needs the built-in simulator; not run against --target)"
    if t is not None and name in TARGET_SECTIONS:
        return (f"{name}: BindPool -> {t.describe()}, {t.binds} bind(s) x window {t.window}, "
                f"TPS cap {t.tps_cap or 'none'}, at most {config.max_messages} message(s)")
    what = {
        "ingest": "parse generated recipient files in memory (Cython vs reference)",
        "codec": "encode/decode PDUs in memory (Cython vs reference vs smpplib)",
        "pool": "BindPool vs a smpplib sender against a local simulator process",
        "e2e": "a campaign through the engine against a local simulator process",
        "api": "API latency under load: engine + local simulator + HTTP load process",
    }
    return f"{name}: {what[name]}"


def describe_plan(config: SuiteConfig) -> list[str]:
    lines = [f"dispatch bench ({config.profile} profile), results to {config.out_dir}/"]
    t: Target | None = config.target
    if t is not None:
        lines.append(f"target: {t.describe()} (system_type {t.system_type!r}), source "
                     f"{t.source_addr!r}, destinations {', '.join(mask(d) for d in t.destinations)}")
        lines.append(f"safety cap: at most {config.max_messages} message(s) in total; in-flight "
                     f"submits are never resent")
    for name in SECTIONS:
        if name in config.sections:
            lines.append("  " + section_plan(config, name))
    if config.dry_run:
        lines.append("dry run: nothing was run and no connection was made")
    return lines
