"""A campaign's TPS cap holds at send time: never more than ``tps_cap`` of its submits in any
one-second window, as the SMSC counts them. Real engine, real simulator over loopback, real
SQLite; the simulator's log of submit times (the engine's trio clock) is the reference.

Sized at claim time only, the cap was exceeded: by the claim allowance's rounding alone
(52 in a second for a cap of 50), and by a burst whenever claimed messages had waited in the
pool, behind a throttle pause (101) or behind another campaign's queue (58)."""

from __future__ import annotations

import bisect
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.engine.route import _CapWindow
from dispatch.simulator import SmscSimulator, destination_hash
from dispatch.smpp.constants import CommandStatus

from .helpers import (
    SubmitStatusRule,
    approved,
    engine_config,
    parts,
    until_status,
    write_numbers,
)

CAP = 50
CAPPED_PREFIX = "7902"


def most_in_one_second(times: list[float]) -> int:
    """The most of ``times`` in any half-open window [t, t + 1)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)),
               default=0)


def submit_times(sim: SmscSimulator, numbers: list[str]) -> list[float]:
    """When the simulator received each submit_sm to ``numbers`` (every attempt counts)."""
    hashes = {destination_hash(n) for n in numbers}
    return [r.time for r in sim.stats.submit_log if r.destination_hash in hashes]


async def run_capped(tmp_path: Path, count: int, *, other: int = 0,
                     **sim_settings: object) -> list[float]:
    """Send a campaign of ``count`` capped at ``CAP`` (beside an uncapped one of ``other``
    recipients on the same route, if any) and return its submit times."""
    capped = write_numbers(tmp_path / "capped.txt", count, seed=5, prefix=CAPPED_PREFIX)
    engine = Engine(engine_config(tmp_path / "var", **sim_settings))
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            service, store, sim = parts(engine)
            if other:
                write_numbers(tmp_path / "other.txt", other, seed=6, prefix="7903")
                await approved(service, Campaign(sender="S", text="U", author="t", esme="sim",
                                                 source_path=str(tmp_path / "other.txt")))
            cid = await approved(service, Campaign(sender="S", text="C", author="t",
                                                   esme="sim", tps_cap=CAP,
                                                   source_path=str(tmp_path / "capped.txt")))

            await until_status(service, cid, CampaignStatus.DONE, timeout_s=80)
            assert (await store.counters(cid)).delivered == count
            engine.stop()
            await engine.wait_stopped()
    return submit_times(sim, capped)


async def test_cap_holds_in_every_second(tmp_path: Path) -> None:
    times = await run_capped(tmp_path, 200)
    assert len(times) == 200
    assert most_in_one_second(times) <= CAP


async def test_cap_holds_after_a_throttle_pause(tmp_path: Path) -> None:
    """The SMSC throttles the campaign's first submit: the pool pauses a second while the
    route goes on claiming; those messages must not all go out at once after the pause."""
    times = await run_capped(tmp_path, 200, submit_status_rules=(
        SubmitStatusRule(CAPPED_PREFIX, CommandStatus.ESME_RTHROTTLED, times=1),))
    assert len(times) == 201  # the throttled attempt and its retry
    assert most_in_one_second(times) <= CAP


async def test_cap_holds_behind_an_uncapped_campaigns_queue(tmp_path: Path) -> None:
    """An uncapped campaign keeps the pool's queue deep; the capped one's messages wait in it
    for varying times and must still not bunch up above the cap."""
    times = await run_capped(tmp_path, 150, other=20_000)
    assert len(times) == 150
    assert most_in_one_second(times) <= CAP


def test_cap_window_counts_messages_until_a_window_after_their_outcome() -> None:
    window = _CapWindow(1.0)
    assert window.room(3, 0.0) == 3
    window.claimed(3)
    assert window.room(3, 0.5) == 0
    window.ended(2, 0.6)  # outcomes of two: they still count for a window after
    assert window.room(3, 1.5) == 0
    assert window.room(3, 1.61) == 2
    window.ended(1, 5.0)
    assert window.room(2.5, 5.5) == 1  # a fraction of a message cannot be sent
    assert not window.idle(5.9) and window.idle(6.0)


def test_a_cap_below_one_allows_one_message_per_window_over_cap() -> None:
    """Cap 0.5 (or a cluster node's share of a small cap): one message per 2 windows, not
    one per window (which sent twice the cap)."""
    window = _CapWindow(1.0)
    assert window.room(0.5, 0.0) == 1
    window.claimed(1)
    window.ended(1, 0.1)
    assert window.room(0.5, 1.2) == 0  # one window after its outcome: still counts
    assert window.room(0.5, 2.05) == 0
    assert window.room(0.5, 2.11) == 1  # two windows (1 / 0.5) after it
    window.claimed(1)
    window.ended(1, 2.2)
    assert window.room(0.25, 5.0) == 0  # four windows (1 / 0.25) after the outcome at 2.2
    assert not window.idle(6.1)
    assert window.room(0.25, 6.21) == 1 and window.idle(6.21)
