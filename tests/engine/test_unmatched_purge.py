"""Receipts that never match a submit are parked, then deleted by the engine once older than
``store.unmatched_receipt_retention_s``: they would pile up for ever otherwise."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import trio

from dispatch.campaigns.model import SmsResult
from dispatch.engine.core import Engine
from dispatch.store.base import Receipt

from .helpers import MovableClock, engine_config, until


async def test_parked_receipts_older_than_the_retention_are_purged(tmp_path: Path) -> None:
    config = engine_config(tmp_path / "var")
    config = replace(config, store=replace(config.store, unmatched_receipt_retention_s=0.4))
    clock = MovableClock()
    engine = Engine(config, clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        store = engine.store
        assert store is not None
        old = [Receipt("sim", f"nobody{i}", "DELIVRD", "000", SmsResult.DELIVERED, clock())
               for i in range(3)]
        assert await store.record_receipts(old, clock()) == 0  # parked
        clock.set(clock() + timedelta(days=1))  # a day later, one more arrives
        fresh = Receipt("sim", "late", "DELIVRD", "000", SmsResult.DELIVERED, clock())
        assert await store.record_receipts([fresh], clock()) == 0

        async def only_the_fresh_one_left() -> bool:
            return await store.run_sync(store.sync.unmatched_receipt_count) == 1

        await until(only_the_fresh_one_left, timeout_s=20)
        engine.stop()
