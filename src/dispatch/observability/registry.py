"""The engine's one ``CollectorRegistry``: process and platform metrics plus every collector.

``build_registry(engine)`` is called once by the engine; the registry goes to
``control.create_app(registry=...)`` so the API's ``/metrics`` exposes it. Collectors hold
callables over the engine, not snapshots, so pools and the writer created after the registry
(they start inside ``Engine.run``) are seen at every scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

import dispatch
from dispatch import fastpath
from dispatch.observability.collectors import (
    CampaignCollector,
    EngineCollector,
    IngestCollector,
    PoolCollector,
    RouteCollector,
    SimulatorCollector,
    WriterCollector,
)

if TYPE_CHECKING:
    from dispatch.engine.core import Engine

__all__ = ["ObservabilityConfig", "build_registry"]


@dataclass(frozen=True)
class ObservabilityConfig:
    """Knobs of the metrics side. ``campaign_sample_interval_s``: how often campaign and
    recipient counts are read from the store (``CampaignSampler``); ``top_campaigns``: how many
    active campaigns get their own series."""

    campaign_sample_interval_s: float = 5.0
    campaign_sample_timeout_s: float = 10.0
    top_campaigns: int = 10

    def __post_init__(self) -> None:
        # 0 s would sample the store in a busy loop; a negative top_campaigns would slice
        # "all but the last n" and give every active campaign its own series.
        if not self.campaign_sample_interval_s > 0 or not self.campaign_sample_timeout_s > 0:
            raise ValueError("campaign_sample_interval_s and campaign_sample_timeout_s must "
                             "be positive")
        if self.top_campaigns < 0:
            raise ValueError("top_campaigns must be 0 or more")


def build_registry(engine: Engine) -> CollectorRegistry:
    """A fresh registry over ``engine`` (no global state: two engines in one process, as in
    tests, each get their own)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(EngineCollector(engine.statistics, dispatch.__version__,
                                      fastpath.IMPLEMENTATION))
    registry.register(PoolCollector(
        lambda: [route.pool.statistics() for route in list(engine.routes.values())]))
    registry.register(RouteCollector(
        lambda: [route.statistics() for route in list(engine.routes.values())]))
    registry.register(WriterCollector(
        lambda: engine.writer.statistics() if engine.writer is not None else None))
    registry.register(CampaignCollector(
        lambda: engine.campaign_sampler.snapshot if engine.campaign_sampler else None))
    registry.register(IngestCollector(engine.ingest_stats))
    registry.register(SimulatorCollector(
        lambda: engine.simulator.stats if engine.simulator is not None else None))
    return registry
