"""Shared pieces of the observability tests: an engine with its API on a free port, and a
Prometheus text parser that gives ``{(name, labels): value}``."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from control.keys import KeyStore, Role
from dispatch.engine.config import EmbeddedSimulator, EngineConfig
from dispatch.observability.scrape import http_get, scrape_config
from dispatch.simulator import SimulatorConfig

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: bytes | str) -> Samples:
    raw = text.decode() if isinstance(text, bytes) else text
    out: Samples = {}
    for family in text_string_to_metric_families(raw):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (KeyError if absent)."""
    return samples[name, frozenset(labels.items())]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= lbl)


def api_engine_config(data_dir: Path, *, tps: float = 0.0, **sim: object) -> EngineConfig:
    config = scrape_config(data_dir)
    simulator = EmbeddedSimulator(settings=SimulatorConfig(port=0, **sim),  # type: ignore[arg-type]
                                  binds=2, window=256, tps=tps)
    return replace(config, simulator=simulator).resolved()


def viewer_key(config: EngineConfig) -> str:
    """A viewer API key in the engine's key file (created before the engine starts)."""
    return KeyStore(config.control.keys_path).create_key(Role.VIEWER, label="observer")[0]


def write_numbers(path: Path, count: int, seed: int = 3) -> list[str]:
    """``count`` distinct numbers, one a line, as ``+<digits>``; returns the digits."""
    rng = random.Random(seed)
    digits = sorted({f"4917{rng.randrange(10**8):08d}" for _ in range(count * 2)})[:count]
    rng.shuffle(digits)
    path.write_text("".join(f"+{d}\n" for d in digits))
    return digits


__all__ = ["api_engine_config", "http_get", "parse", "total", "value", "viewer_key",
           "write_numbers"]
