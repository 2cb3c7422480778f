"""A claim that commits on PostgreSQL with its answer lost, against a real engine: one engine
in-process on a throwaway PostgreSQL server (the ``pg`` fixture), the real built-in simulator
over loopback -- ``test_a_claim_committed_with_its_answer_lost_is_sent_all_the_same``
(``test_store_faults.py``) on the PostgreSQL store.

The fault: ``claim_for_send`` runs for real (its statement commits: the rows are stage Sending
and leased to this node in ``recipient_leases``), then the call fails with
``psycopg.OperationalError``, what psycopg raises when the connection drops between the
COMMIT and its answer. The route got none of those rows, so it marks the campaign in doubt
and, before claiming for it again, waits until the results it has queued are durable and
puts back to New the rows ``in_flight_ids`` (this node's leases) lists but it does not hold
(``Route._release_orphans``). Every recipient must still be sent, exactly once, and the
campaign reach Done with its counters balanced.

The second case loses the claim while the answers to the claims before it are still being
written: their rows are still leased to this node and no longer held by the route (it hands
an answer to the writer as it drops the row), so they would look like orphans to a check that
did not wait for them. A commit already under way when the route asks is not enough to show
it (the store runs one call at a time, in order: the commit would end before
``in_flight_ids`` runs); answers still in the writer's queue, not yet taken by a commit, are.
So the claim is lost while the pool still has messages to send, the commits after it are
slowed, and the test checks that such answers were queued at the in-doubt check.
Without the route's wait (checked by hand, monkeypatching ``Route._release_orphans`` without
its ``wait_durable``) the route released 2 to 2.5 times the lost claim's rows; without the
release the campaign never reaches Done.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from pg_cluster import PgCluster
from test_pg_outage import _assert_sent_once, _query, _store_config
from test_store_faults import _config, _finish, _numbers, _start_campaign

from dispatch.campaigns.model import CampaignStatus
from dispatch.engine.core import Engine
from dispatch.store.base import SubmitKind, SubmitOutcome
from dispatch.store.postgres import PostgresStore

COUNT = 3000  # at the route's 1500/s the campaign lasts ~2 s
# The second case: once a quarter is sent, every commit of submit results takes PRE_SLOW_S
# longer (claims wait behind it for the store's one thread slot, so they come larger and the
# pool holds more); the claim is lost once answers wait in the writer's queue and the pool
# still holds UNSENT_AT_FAULT messages or more (at 1500/s: 40 ms more of answers); the next
# SLOW_WRITES commits take SLOW_WRITE_S longer, far more than the route's retry delay after a
# failed claim (50 ms), so its in-doubt check comes while those answers are not yet written.
PRE_SLOW_S = 0.05
UNSENT_AT_FAULT = 60
SLOW_WRITES = 2
SLOW_WRITE_S = 0.3

# What libpq reports when the server's answer never arrives (psycopg raises it as is).
LOST = ("consuming input failed: server closed the connection unexpectedly\n\tThis probably "
        "means the server terminated abnormally\n\tbefore or while processing the request. "
        "(injected after COMMIT)")


def _answered(items: Any) -> frozenset[int]:
    """The recipients a list of writer items answers (released rows are not answers)."""
    return frozenset(i.recipient_id for i in items
                     if type(i) is SubmitOutcome and i.kind is not SubmitKind.RETRY)


@pytest.mark.slow
@pytest.mark.parametrize("writes_pending", [False, True],
                         ids=["lost-claim", "lost-while-answers-are-written"])
async def test_a_postgres_claim_committed_with_its_answer_lost_is_sent_all_the_same(
        tmp_path: Path, pg: PgCluster, writes_pending: bool) -> None:
    dsn = pg.create_database("lostclaim")
    numbers = _numbers(tmp_path / "r.txt", COUNT, seed=31)
    # process=False: the store in the engine's thread, so the wrappers below can stand in for
    # its methods and look at the writer and the route while they run
    config = replace(_config(tmp_path / "var"),
                     store=replace(_store_config(dsn), process=False)).resolved()
    engine = Engine(config)
    with trio.fail_after(60):  # the whole run; the waits inside have shorter bounds
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                await nursery.start(engine.run)
            assert engine.simulator is not None and engine.store is not None
            assert engine.writer is not None and engine.service is not None
            sim, writer, route = engine.simulator, engine.writer, engine.routes["sim"]
            store = engine.store.sync
            assert isinstance(store, PostgresStore)
            real_claim, real_record = store.claim_for_send, store.record_submit_results
            lost: list[int] = []
            leased_at_fault: list[int] = []  # this node's leases right after the lost claim
            answers_at_fault: list[int] = []  # answers queued in the writer, not yet written
            slow_writes = [0]  # commits still to slow down after the fault (second case)
            writing = [frozenset[int]()]  # the rows the commit in progress answers

            # Both wrappers run in the store's thread (one at a time: AsyncStore's limiter).
            def claim_then_lose_the_answer(campaign_id: int, limit: int,
                                           now: Any) -> list[Any]:
                claimed = real_claim(campaign_id, limit, now)  # committed
                if claimed and not lost and sim.stats.submits > COUNT // 4:
                    waiting = _answered(list(writer._queue))  # list(): one atomic copy
                    unsent = route._unresolved  # what the pool holds (this claim not yet)
                    if not writes_pending or (waiting and unsent >= UNSENT_AT_FAULT):
                        lost.extend(r.id for r in claimed)
                        answers_at_fault.extend(waiting)
                        leased_at_fault.extend(store.in_flight_ids(campaign_id))
                        slow_writes[0] = SLOW_WRITES if writes_pending else 0
                        raise psycopg.OperationalError(LOST)
                return claimed

            def record_slowly(outcomes: Any, now: Any) -> Any:
                writing[0] = _answered(outcomes)
                try:
                    if slow_writes[0] > 0:
                        slow_writes[0] -= 1
                        time.sleep(SLOW_WRITE_S)
                    elif writes_pending and not lost and sim.stats.submits > COUNT // 4:
                        time.sleep(PRE_SLOW_S)
                    return real_record(outcomes, now)
                finally:
                    writing[0] = frozenset()

            # At the in-doubt check (the one caller of wait_durable): the rows whose answers
            # the route has handed to the writer and that are not durable yet -- still leased
            # in the store, no longer held by the route: orphans, unless it waits for them.
            real_wait_durable = writer.wait_durable
            results_pending: list[int] = []
            results_writing: list[int] = []

            async def wait_durable_watched(seq: int) -> None:
                held = set(route._campaign_of)
                results_pending.append(len(_answered(writer._queue) - held))
                results_writing.append(len(writing[0] - held))
                await real_wait_durable(seq)

            store.claim_for_send = claim_then_lose_the_answer  # type: ignore[method-assign]
            store.record_submit_results = record_slowly  # type: ignore[method-assign]
            writer.wait_durable = wait_durable_watched  # type: ignore[method-assign]

            cid = await _start_campaign(engine, tmp_path / "r.txt")
            await _finish(engine, cid, limit_s=30)
            assert lost, "the fault never fired"
            # The lost rows really were committed: leased to this node. So were the rows whose
            # answers were waiting to be written (the second case).
            assert set(lost) | set(answers_at_fault) <= set(leased_at_fault)
            assert (await engine.service.get(cid)).status is CampaignStatus.DONE
            stats = route.statistics()
            assert stats.orphans_released == len(lost), (stats.orphans_released, len(lost))
            assert len(results_pending) == 1  # one failed claim, one in-doubt check
            if writes_pending:
                assert results_pending[0] > 0, "no answer was queued at the in-doubt check"
            engine.stop()
            with trio.fail_after(20):
                await engine.wait_stopped()

    ambiguous, accepted = _assert_sent_once(dsn, cid, numbers, sim, COUNT)
    assert ambiguous == [] and sum(accepted.values()) == sim.stats.submits == COUNT
    assert _query(dsn, "SELECT count(*) FROM recipient_leases") == [(0,)]
    print(f"\nlost claim of {len(lost)} rows at {len(leased_at_fault)} leased, released "
          f"{stats.orphans_released}; answers being written: {len(answers_at_fault)} at the "
          f"fault, {results_pending[0]} queued + {results_writing[0]} being committed at the "
          f"in-doubt check")
