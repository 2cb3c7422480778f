"""Shared pieces of the engine tests: configs rooted in tmp dirs, generated recipient files."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from dispatch.engine.config import EmbeddedSimulator, EngineConfig, SchedulerConfig
from dispatch.simulator import OutcomeRule, SimulatorConfig, SubmitStatusRule


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


__all__ = ["OutcomeRule", "SubmitStatusRule", "engine_config", "write_numbers"]
