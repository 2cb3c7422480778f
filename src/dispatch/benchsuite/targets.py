"""DESIGN.md's performance bars beside the figures measured in this run.

Each bar names the section, metric and variant of the figure it judges, the bound, and
whether higher is better. ``evaluate`` returns one row per bar: measured value (or None when
the section did not run), and ``met`` (True/False/None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.benchsuite.results import SectionResult


@dataclass(frozen=True)
class Bar:
    label: str
    section: str
    kind: str  # "figure" or "ratio"
    metric: str
    variant: str  # figure variant, or "numerator/denominator" for a ratio
    bound: float
    unit: str
    higher_is_better: bool = True


BARS = (
    Bar("ingest txt (parse+normalise+dedupe+hash)", "ingest", "figure", "txt parse+dedupe+hash",
        "cython", 200.0, "MB/s"),
    Bar("ingest txt vs pure-Python reference", "ingest", "ratio", "txt parse+dedupe+hash",
        "cython/python", 25.0, "x"),
    Bar("submit_sm encoded", "codec", "figure", "encode submit_sm", "cython", 2e6, "PDU/s"),
    Bar("submit_sm_resp decoded", "codec", "figure", "decode submit_sm_resp", "cython", 2e6,
        "PDU/s"),
    Bar("receipts decoded + parsed", "codec", "figure", "decode receipts", "cython", 1e6,
        "PDU/s"),
    Bar("submit_sm encode vs smpplib", "codec", "ratio", "encode submit_sm", "cython/smpplib",
        100.0, "x"),
    Bar("submit_sm_resp decode vs smpplib", "codec", "ratio", "decode submit_sm_resp",
        "cython/smpplib", 100.0, "x"),
    Bar("receipt decode vs smpplib", "codec", "ratio", "decode receipts", "cython/smpplib",
        100.0, "x"),
    Bar("end to end, SQLite + receipts (until the last receipt is stored)", "e2e", "figure",
        "throughput with receipts settled", "engine+sqlite (2x512)", 30_000.0, "msg/s"),
    Bar("RSS per queued recipient", "e2e", "figure", "RSS growth per recipient",
        "engine+sqlite (2x512)", 150.0, "B", higher_is_better=False),
    Bar("API p99, campaign detail, while dispatching", "api", "figure", "p99 latency",
        "campaign detail", 50.0, "ms", higher_is_better=False),
    Bar("API p99, campaign list, while dispatching", "api", "figure", "p99 latency",
        "campaign list", 50.0, "ms", higher_is_better=False),
    Bar("dispatch slowdown under API load", "api", "figure", "dispatch slowdown under API load",
        "engine", 10.0, "%", higher_is_better=False),
)


def _measured(bar: Bar, section: SectionResult | None) -> float | None:
    if section is None or section.status not in ("ok", "failed"):
        return None
    if bar.kind == "figure":
        fig = section.figure(bar.metric, bar.variant)
        return fig.value if fig is not None else None
    numerator, denominator = bar.variant.split("/")
    for r in section.ratios:
        if (r.metric, r.numerator, r.denominator) == (bar.metric, numerator, denominator):
            return r.value
    return None


def evaluate(sections: dict[str, SectionResult]) -> list[dict[str, Any]]:
    rows = []
    for bar in BARS:
        value = _measured(bar, sections.get(bar.section))
        met = None
        if value is not None and value == value:  # not NaN
            met = value >= bar.bound if bar.higher_is_better else value < bar.bound
        rows.append({"label": bar.label, "section": bar.section, "metric": bar.metric,
                     "variant": bar.variant, "target": (">= " if bar.higher_is_better else "< ")
                     + f"{bar.bound:g} {bar.unit}", "bound": bar.bound, "unit": bar.unit,
                     "measured": value, "met": met})
    return rows
