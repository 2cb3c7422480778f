"""The shape of a bench result: figures, ratios, time series, per section; JSON out.

A ``Figure`` is one measured number with its unit and the variant that produced it
(``cython``, ``python``, ``smpplib``, ``BindPool w=100 b=2`` ...); a ``Ratio`` puts two
figures of the same run side by side (ours / the baseline). ``Series`` are samples over time
(throughput, window occupancy) or raw distributions (latencies) the report plots.

``SCHEMA`` names the layout; ``validate_result`` checks a loaded JSON against it (the bench
smoke test and tests/benchsuite use it), so a consumer can rely on the keys below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "dispatch-bench/1"
STATUSES = ("ok", "skipped", "failed", "dry-run")


@dataclass(frozen=True, slots=True)
class Figure:
    metric: str  # what: "encode submit_sm", "throughput", "p99 submit->resp"
    variant: str  # who: "cython", "smpplib", "BindPool w=100 b=1"
    value: float
    unit: str  # "PDU/s", "MB/s", "msg/s", "ms", "B", "%"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ratio:
    metric: str
    numerator: str  # variant
    denominator: str  # variant (the baseline)
    value: float


@dataclass(slots=True)
class Series:
    """Samples for a plot: ``kind`` is "timeline" (x = seconds since start) or
    "distribution" (``y`` only: raw values, e.g. latencies in ms)."""

    name: str
    kind: str
    unit: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    group: str = ""  # plots draw the series of one group together


@dataclass(slots=True)
class SectionResult:
    name: str
    status: str = "ok"
    reason: str = ""  # why skipped / failed
    duration_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, variant: str, value: float, unit: str, **detail: Any) -> Figure:
        fig = Figure(metric, variant, float(value), unit, detail)
        self.figures.append(fig)
        return fig

    def figure(self, metric: str, variant: str) -> Figure | None:
        for f in self.figures:
            if f.metric == metric and f.variant == variant:
                return f
        return None

    def ratio(self, metric: str, numerator: str, denominator: str) -> Ratio | None:
        """Add ``numerator / denominator`` of ``metric`` when both were measured."""
        a, b = self.figure(metric, numerator), self.figure(metric, denominator)
        if a is None or b is None or b.value <= 0:
            return None
        r = Ratio(metric, numerator, denominator, a.value / b.value)
        self.ratios.append(r)
        return r

    def to_json(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def histogram_percentile(bounds: tuple[float, ...], counts: tuple[int, ...], q: float) -> float:
    """The upper bound of the histogram bucket holding the ``q``-th percentile (a
    conservative estimate: the true value is at most this)."""
    total = sum(counts)
    if total == 0:
        return math.nan
    need = q / 100 * total
    seen = 0
    for bound, count in zip(bounds, counts, strict=False):
        seen += count
        if seen >= need:
            return bound
    return bounds[-1]


def validate_result(doc: dict[str, Any]) -> list[str]:
    """Problems with a loaded result document (empty list: it matches ``SCHEMA``)."""
    problems = []
    if doc.get("schema") != SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}, want {SCHEMA!r}")
    for key in ("machine", "versions", "fastpath", "config", "sections", "targets",
                "started_at", "duration_s"):
        if key not in doc:
            problems.append(f"missing {key!r}")
    machine = doc.get("machine", {})
    for key in ("cpu_count", "cpu_model", "python", "os"):
        if key not in machine:
            problems.append(f"machine lacks {key!r}")
    for name, section in doc.get("sections", {}).items():
        if section.get("status") not in STATUSES:
            problems.append(f"section {name}: status {section.get('status')!r}")
        for fig in section.get("figures", []):
            if not {"metric", "variant", "value", "unit"} <= set(fig):
                problems.append(f"section {name}: figure {fig} incomplete")
        for ratio in section.get("ratios", []):
            if not {"metric", "numerator", "denominator", "value"} <= set(ratio):
                problems.append(f"section {name}: ratio {ratio} incomplete")
    return problems
