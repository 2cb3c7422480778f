"""``AsyncStore``'s reader thread: reads run off the loop, one at a time in order, errors reach
the caller, a cancelled caller still waits for its call, and close ends the thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import trio

from dispatch.store.asyncstore import AsyncStore, ReaderThread
from dispatch.store.base import StoreConfig
from dispatch.store.sqlite import SqliteStore


def test_calls_run_in_order_on_one_thread_off_the_loop() -> None:
    async def main() -> None:
        reader = ReaderThread()
        seen: list[tuple[int, str]] = []

        def call(i: int) -> int:
            time.sleep(0.001)
            seen.append((i, threading.current_thread().name))
            return i * 2

        results: list[int] = []

        async def one(i: int) -> None:
            results.append(await reader.run(call, i))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, i)
                await trio.sleep(0)  # queue them in order
        assert [i for i, _ in seen] == list(range(20))
        assert {name for _, name in seen} == {"store-reader"}
        assert threading.current_thread().name != "store-reader"
        assert sorted(results) == [i * 2 for i in range(20)]
        with pytest.raises(ZeroDivisionError):
            await reader.run(lambda: 1 / 0)
        await reader.close()
        assert not reader._thread.is_alive()
    trio.run(main)


def test_a_cancelled_caller_waits_for_its_call() -> None:
    async def main() -> None:
        reader = ReaderThread()
        release = threading.Event()
        done: list[bool] = []

        def slow() -> None:
            release.wait(10)
            done.append(True)

        with trio.move_on_after(0.05):
            trio.lowlevel.current_trio_token().run_sync_soon(
                lambda: threading.Timer(0.2, release.set).start())
            await reader.run(slow)
        assert done == [True]  # not abandoned: the read finished before the caller went on
        await reader.close()
    trio.run(main)


def test_async_store_reads_through_the_reader_thread(tmp_path: Path) -> None:
    async def main() -> None:
        config = StoreConfig(path=str(tmp_path / "s.sqlite3"))
        store = AsyncStore(SqliteStore(config), SqliteStore(config))
        assert (await store.kpi()).total == 0
        assert await store.campaign_detail(12345) is None
        await store.aclose()
    trio.run(main)


def test_a_store_that_is_its_own_reader_is_closed_once(tmp_path: Path) -> None:
    closed: list[int] = []

    class Counting(SqliteStore):
        def close(self) -> None:
            closed.append(1)
            super().close()

    async def main() -> None:
        store = Counting(StoreConfig(path=str(tmp_path / "s.sqlite3")))
        facade = AsyncStore(store, store)  # a pooled store (PostgreSQL) can read in parallel
        assert (await facade.kpi()).total == 0
        await facade.aclose()
    trio.run(main)
    assert closed == [1]
