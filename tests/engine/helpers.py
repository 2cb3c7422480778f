"""Shared pieces of the engine tests: configs rooted in tmp dirs, generated recipient files."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.campaigns.service import CampaignService
from dispatch.engine.config import EmbeddedSimulator, EngineConfig, SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.simulator import OutcomeRule, SimulatorConfig, SmscSimulator, SubmitStatusRule
from dispatch.store.asyncstore import AsyncStore


def engine_config(data_dir: Path, **sim: object) -> EngineConfig:
    settings = SimulatorConfig(port=0, **sim)  # type: ignore[arg-type]
    config = EngineConfig(
        data_dir=str(data_dir), api_enabled=False, hash_key_hex="00112233445566778899aabbccddeeff",
        simulator=EmbeddedSimulator(settings=settings, binds=2, window=256),
        scheduler=SchedulerConfig(control_interval_s=0.05),
    )
    return replace(config).resolved()


def write_numbers(path: Path, count: int, seed: int = 1, prefix: str = "7900") -> list[str]:
    """``count`` distinct valid numbers, one a line, in mixed spellings; returns the digits."""
    rng = random.Random(seed)
    digits = sorted({f"{prefix}{rng.randrange(10**7):07d}" for _ in range(count * 2)})[:count]
    rng.shuffle(digits)
    styles = ("+{}", "{}", "00{}")
    lines = [styles[i % 3].format(d) for i, d in enumerate(digits)]
    path.write_text("\n".join(lines) + "\n")
    return digits


class MovableClock:
    """The engine's only wall clock in these tests: ``at`` plus the real time elapsed since it
    was set, so the test can jump to any moment and time still runs."""

    def __init__(self, at: datetime | None = None) -> None:
        self.set(at or datetime.now(UTC))

    def set(self, at: datetime) -> None:
        self._base, self._since = at, datetime.now(UTC)

    def __call__(self) -> datetime:
        return self._base + (datetime.now(UTC) - self._since)


def parts(engine: Engine) -> tuple[CampaignService, AsyncStore, SmscSimulator]:
    """A running engine's service, store and embedded simulator (set once ``run`` started)."""
    service, store, sim = engine.service, engine.store, engine.simulator
    assert service is not None and store is not None and sim is not None
    return service, store, sim


async def approved(service: CampaignService, campaign: Campaign) -> int:
    """Create ``campaign``, approve it with auto-start, and return its id."""
    created = await service.create(campaign)
    assert created.id is not None
    await service.approve(created.id, "mod", auto_start=True)
    return created.id


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    """Poll an async predicate every 20 ms, bounded in time."""
    with trio.fail_after(timeout_s):
        while not await check():
            await trio.sleep(0.02)


async def until_status(service: CampaignService, campaign_id: int, status: CampaignStatus,
                       timeout_s: float = 30) -> None:
    """Wait, bounded in time, until the campaign is in ``status``."""
    async def reached() -> bool:
        return (await service.get(campaign_id)).status is status
    await until(reached, timeout_s)


__all__ = ["MovableClock", "OutcomeRule", "SubmitStatusRule", "approved", "engine_config",
           "parts", "until", "until_status", "write_numbers"]
