"""Spread mode on a real engine (simulator, SQLite store): a campaign that sends all of its
recipients before its end time is Done, not Expired; and the per-campaign rate (Spread rate,
TPS cap) is granted in full also when it is below one message per feed tick."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.model import Campaign, CampaignMode, CampaignStatus
from dispatch.engine.config import SchedulerConfig
from dispatch.engine.core import Engine
from dispatch.engine.route import Route
from dispatch.simulator import destination_hash
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.sqlite import SqliteStore
from dispatch.store.writer import GroupCommitWriter
from dispatch.transport.config import EsmeConfig
from dispatch.transport.pool import BindPool

from .helpers import MovableClock, approved, engine_config, parts, until, write_numbers


async def test_spread_campaign_that_sent_everyone_is_done_not_expired(tmp_path: Path) -> None:
    # Few recipients, so claims are far apart: none finds the list already empty (which
    # would have marked the route's feed exhausted and hidden the bug).
    numbers = write_numbers(tmp_path / "r.txt", 5)
    clock = MovableClock()
    engine = Engine(engine_config(tmp_path / "var"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        service, store, sim = parts(engine)
        now = clock()
        cid = await approved(service, Campaign(
            sender="S", text="Spread", author="t", esme="sim", mode=CampaignMode.SPREAD,
            start_at=now, end_at=now + timedelta(seconds=4),
            source_path=str(tmp_path / "r.txt")))

        async def ended() -> bool:
            return (await service.get(cid)).status.is_terminal
        await until(ended, timeout_s=30)
        k = await store.counters(cid)
        assert (k.total, k.sent, k.pending, k.inflight, k.expired) == (5, 5, 0, 0, 0)
        assert (await service.get(cid)).status is CampaignStatus.DONE
        sent_to = Counter(r.destination_hash for r in sim.stats.submit_log)
        assert sent_to == Counter(destination_hash(n) for n in numbers)
        engine.stop()
        await engine.wait_stopped()


@contextlib.contextmanager
def _capped_route(tmp_path: Path, tps_cap: float) -> Iterator[tuple[Route, MovableClock]]:
    """A route with one campaign capped at ``tps_cap`` (the pieces are real: a BindPool not
    yet bound, a SQLite store, a writer not yet run); the test plays the feed loop's part."""
    sync = SqliteStore(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    store = AsyncStore(sync)
    try:
        clock = MovableClock()
        pool = BindPool(EsmeConfig(name="sim", host="127.0.0.1", port=1, system_id="x",
                                   password="y"))
        route = Route("sim", pool, store, GroupCommitWriter(store, StoreConfig(), clock),
                      SchedulerConfig(), clock)
        route.set_campaigns([Campaign(sender="S", text="t", author="a", esme="sim",
                                      tps_cap=tps_cap, id=1)], {1: 10_000})
        yield route, clock
    finally:
        sync.close()


@pytest.mark.parametrize("tps_cap", [10.0, 30.0, 34.0, 45.0, 70.0])
@pytest.mark.parametrize("tick_s", [0.02, 0.021])
def test_a_rate_below_one_message_a_tick_is_granted_in_full(
        tmp_path: Path, tps_cap: float, tick_s: float) -> None:
    """The route's allowance for a capped campaign, over ten seconds of feed ticks, is the cap
    (the test asks for the allowance every tick and claims it, as the feed loop does)."""
    with _capped_route(tmp_path, tps_cap) as (route, clock):
        room = route._config.max_claimed_per_route
        granted = 0
        ticks = round(10 / tick_s)  # ten seconds of ticks
        for _ in range(ticks):
            n = route._allow(route._rates(clock()), tick_s, room).get(1, 0)
            granted += n
            feed = route._feeds[1]
            feed.allowance = max(0.0, feed.allowance - n)  # what a claim of n does
        assert granted == pytest.approx(tps_cap * ticks * tick_s, abs=1.0)


def test_a_stall_earns_a_capped_campaign_no_burst(tmp_path: Path) -> None:
    """After the feed waited a second (the writer's backlog, no room), a 50 TPS campaign may
    claim about what ten ticks earn, not the second it waited (twice that, before)."""
    with _capped_route(tmp_path, 50.0) as (route, clock):
        counts = route._allow(route._rates(clock()), 1.0, route._config.max_claimed_per_route)
        assert counts.get(1, 0) <= 2 * 50.0 * 10 * route._config.tick_s
