"""Integrity of crash recovery: recipients a crash (or a node leaving) left in flight in a
campaign that has since expired are not given back to New under ``RESEND``; nothing claims
from an Expired campaign, so they would stay pending in it forever (the rule a late retry
already follows: tests/store/test_expiry_races.py). Runs on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from store_fixtures import T0, end_unmarked, move, new_campaign, query, rows

from dispatch.campaigns.lifecycle import AuditEntry, Event
from dispatch.campaigns.model import CampaignMode, CampaignStatus
from dispatch.store.base import (
    ClaimedRecipient,
    RecoveryPolicy,
    Store,
    SubmitKind,
    SubmitOutcome,
)


def expired_with_inflight(store: Store) -> tuple[int, list[ClaimedRecipient]]:
    """A campaign of 10 that expired with 6 claimed (in flight) and the other 4 marked."""
    c = new_campaign(store, end_at=T0 + timedelta(hours=1))
    cid = c.id or 0
    store.add_recipients(cid, rows(10), T0)
    for event in (Event.APPROVE, Event.BUILD, Event.BUILT):
        move(store, cid, event)
    claimed = store.claim_for_send(cid, 6, T0)
    move(store, cid, Event.EXPIRE)
    assert store.counters(cid).expired == 4  # only the unclaimed ones were New
    return cid, claimed


def test_resend_recovery_in_an_expired_campaign_marks_them_expired(store: Store) -> None:
    cid, claimed = expired_with_inflight(store)
    n = len(claimed)
    # The engine crashed with 6 recipients in flight; it restarts with at-least-once.
    counts = store.recover_inflight(RecoveryPolicy.RESEND, T0 + timedelta(minutes=1))
    assert counts.by_campaign == {cid: n}
    k = store.counters(cid)
    assert (k.pending, k.inflight, k.failed, k.expired) == (0, 0, 10, 10)
    assert query(store, "SELECT stage, error, COUNT(*) FROM recipients WHERE campaign_id = ? "
                 "GROUP BY stage, error", (cid,)) == [("Failed", "campaign expired", 10)]
    days = store.daily_activity(cid)
    assert sum(d.failed for d in days) == 10


def test_mark_unknown_recovery_in_an_expired_campaign_is_unchanged(store: Store) -> None:
    cid, claimed = expired_with_inflight(store)
    n = len(claimed)
    store.recover_inflight(RecoveryPolicy.MARK_UNKNOWN, T0 + timedelta(minutes=1))
    k = store.counters(cid)
    assert (k.pending, k.inflight, k.failed, k.expired, k.ambiguous) == (0, 0, 10, 4, n)


def test_a_node_leaving_with_resend_in_an_expired_campaign_marks_them_expired(
        pg_dsn: str) -> None:
    """PostgreSQL: a node's leave (and a takeover, which resolves leases the same way)."""
    from dispatch.store.base import StoreConfig
    from dispatch.store.postgres import PostgresStore

    a = PostgresStore(StoreConfig(dsn=pg_dsn, insert_batch_rows=500), node_id="a")
    try:
        a.register_node()
        cid, claimed = expired_with_inflight(a)
        n = len(claimed)
        counts = a.leave_cluster(RecoveryPolicy.RESEND, T0 + timedelta(minutes=1))
        assert counts.by_campaign == {cid: n}
        k = a.counters(cid)
        assert (k.pending, k.inflight, k.failed, k.expired) == (0, 0, 10, 10)
        assert query(a, "SELECT COUNT(*) FROM recipient_queue WHERE campaign_id = ?",
                     (cid,)) == [(0,)]
    finally:
        a.close()


@pytest.mark.parametrize("policy", list(RecoveryPolicy))
def test_recovery_finishes_an_expiry_a_crash_cut_short(store: Store,
                                                        policy: RecoveryPolicy) -> None:
    """Expiring was two steps in older code (the status, then the marking); a kill -9
    between them left New (and Held) rows in a campaign that nothing claims from or expires
    again: its progress never completed. The startup recovery finishes the marking."""
    c = new_campaign(store, end_at=T0 + timedelta(hours=1))
    cid = c.id or 0
    store.add_recipients(cid, rows(6), T0)
    store.add_recipients(cid, rows(2, start=100), T0, held=True)
    for event in (Event.APPROVE, Event.BUILD, Event.BUILT):
        move(store, cid, event)
    store.claim_for_send(cid, 2, T0)
    end_unmarked(store, cid, CampaignStatus.EXPIRED)  # killed before the marking
    store.recover_inflight(policy, T0 + timedelta(minutes=1))
    k = store.counters(cid)
    assert (k.pending, k.held, k.inflight) == (0, 0, 0)
    assert k.expired == (8 if policy is RecoveryPolicy.RESEND else 6)
    assert dict(query(store, "SELECT error, COUNT(*) FROM recipients WHERE campaign_id = ? "
                      "AND stage = 'Failed' AND error IN ('campaign expired', 'not triggered') "
                      "GROUP BY error", (cid,))) == {
        "campaign expired": k.expired - 2, "not triggered": 2}
    assert sum(d.failed for d in store.daily_activity(cid)) == k.failed


def test_recovery_marks_the_never_triggered_recipients_of_a_done_trigger_campaign(
        store: Store) -> None:
    """A Trigger campaign ends Done at its end time when everything released was sent, and its
    Held recipients are marked "not triggered" (older code: in a second step): a crash
    between the two left them Held in a Done campaign for ever. The startup recovery
    finishes it."""
    c = new_campaign(store, mode=CampaignMode.TRIGGER, start_at=T0,
                     end_at=T0 + timedelta(hours=1))
    cid = c.id or 0
    store.add_recipients(cid, rows(5), T0, held=True)
    for event in (Event.APPROVE, Event.BUILD, Event.BUILT):
        move(store, cid, event)
    assert store.release_held(cid, None, 2, AuditEntry("op", "trigger", "", T0)).released == 2
    claimed = store.claim_for_send(cid, 2, T0)
    store.record_submit_results([SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e", (f"t{r.id}",))
                                 for r in claimed], T0)
    end_unmarked(store, cid, CampaignStatus.DONE)  # killed before the marking
    store.recover_inflight(RecoveryPolicy.MARK_UNKNOWN, T0 + timedelta(hours=2))
    k = store.counters(cid)
    assert (k.held, k.pending, k.sent, k.expired) == (0, 0, 2, 3)
    assert query(store, "SELECT error, COUNT(*) FROM recipients WHERE campaign_id = ? "
                 "AND stage = 'Failed' GROUP BY error", (cid,)) == [("not triggered", 3)]
