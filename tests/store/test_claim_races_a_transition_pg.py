"""PostgreSQL: a claim never leases rows of a campaign whose pause or cancel committed before the
claim returned. The claim statement used to read the status from its own snapshot only, so a
status change committing while the claim ran (here: it waits on a recipient row the other
transaction holds, a stand-in for any delay) let that batch through. Two real connections on
the throwaway server: one holds the status change open, the store's claim runs in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from store_fixtures import T0, rows, sending_campaign
from test_dispatch_path import assert_consistent

from dispatch.campaigns.model import CampaignStatus
from dispatch.store.base import ClaimedRecipient, StoreConfig
from dispatch.store.postgres import PostgresStore

WAIT_S = 10.0


@pytest.fixture
def pg_store(pg_dsn: str) -> Iterator[PostgresStore]:
    s = PostgresStore(StoreConfig(dsn=pg_dsn), node_id="claimer")
    yield s
    s.close()


class ClaimInThread:
    """``claim_for_send`` on a thread of its own: its result (or error) once it returns."""

    def __init__(self, store: PostgresStore, cid: int, limit: int) -> None:
        self.result: list[ClaimedRecipient] | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = store.claim_for_send(cid, limit, T0)
            except BaseException as exc:  # reported by the test
                self.error = exc

        self._thread = threading.Thread(target=run, name="claim", daemon=True)
        self._thread.start()

    def returned(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> list[ClaimedRecipient]:
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the claim never returned"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_until_blocked(dsn: str, claim: ClaimInThread) -> None:
    """Until the claim's backend waits on a lock (bounded)."""
    deadline = time.monotonic() + WAIT_S
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            assert not claim.returned(), "the claim returned without waiting"
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'dispatch claimer' AND wait_event_type = 'Lock'").fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the claim never waited on a lock")


@pytest.mark.parametrize("status", [CampaignStatus.PAUSED, CampaignStatus.CANCELLED])
def test_a_status_change_committing_during_a_claim_leases_nothing(
        pg_store: PostgresStore, pg_dsn: str, status: CampaignStatus) -> None:
    cid = sending_campaign(pg_store).id or 0
    pg_store.add_recipients(cid, rows(10), T0)
    with psycopg.connect(pg_dsn) as other:  # one transaction until the commit below
        other.execute("UPDATE campaigns SET status = %s WHERE id = %s", (status.value, cid))
        # ... and a row the claim would update: whatever order the claim takes its locks
        # in, it cannot finish before this transaction does.
        other.execute("SELECT id FROM recipients WHERE campaign_id = %s ORDER BY id LIMIT 1 "
                      "FOR UPDATE", (cid,))
        claim = ClaimInThread(pg_store, cid, 5)
        wait_until_blocked(pg_dsn, claim)
        other.commit()
    assert claim.join() == []
    k = pg_store.counters(cid)
    assert (k.pending, k.inflight) == (10, 0)
    assert_consistent(pg_store, cid)


def test_the_claim_locks_the_campaign_before_any_queue_row(
        pg_store: PostgresStore, pg_dsn: str) -> None:
    """The order that keeps a claim and a cancel free of deadlock: a cancel under way (the
    campaign row locked by its UPDATE) makes the claim wait before it touches the queue, so
    the cancel's marking deletes every queued row without waiting for the claim."""
    cid = sending_campaign(pg_store).id or 0
    pg_store.add_recipients(cid, rows(10), T0)
    with psycopg.connect(pg_dsn) as cancel:
        cancel.execute("UPDATE campaigns SET status = 'Cancelled' WHERE id = %s", (cid,))
        claim = ClaimInThread(pg_store, cid, 5)
        wait_until_blocked(pg_dsn, claim)
        cancel.execute("SET LOCAL lock_timeout = '2s'")
        deleted = cancel.execute("DELETE FROM recipient_queue WHERE campaign_id = %s "
                                 "RETURNING id", (cid,)).fetchall()
        assert len(deleted) == 10  # none locked by the waiting claim
        cancel.rollback()  # the test only needed to see the locks
    assert len(claim.join()) == 5  # still Sending: the claim goes on
