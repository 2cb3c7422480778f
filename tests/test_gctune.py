"""dispatch.gctune: what the engine and the simulator do to the collector at start-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dispatch import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)
    gc.unfreeze()


def test_tune_raises_the_young_threshold_and_freezes_what_is_alive(restore_gc: None) -> None:
    older = gc.get_threshold()[1:]
    survivor = {"kept": [1, 2, 3]}  # alive now: frozen, out of every later collection
    gctune.tune(12_345)
    assert gc.get_threshold() == (12_345, *older)
    assert gc.get_freeze_count() > 0
    assert survivor["kept"] == [1, 2, 3]


def test_tune_with_zero_leaves_the_collector_alone(restore_gc: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    gctune.tune(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
