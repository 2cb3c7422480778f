"""A claim leases nothing from a campaign that is not Sending (a pause or cancel that raced it,
one another node made); a cancelled campaign's unsent recipients end Failed "campaign
cancelled" like an expired one's, also those given back after the cancel and those a crash
left unmarked. Counters stay equal to COUNT(*) over the rows. Runs on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from store_fixtures import T0, TO_SENDING, move, new_campaign, query, rows, sending_campaign
from test_dispatch_path import assert_consistent

from dispatch.campaigns.lifecycle import AuditEntry, Event
from dispatch.campaigns.model import CampaignMode, CampaignStatus
from dispatch.store.base import (
    ClaimedRecipient,
    RecoveryPolicy,
    Store,
    SubmitKind,
    SubmitOutcome,
)

S = CampaignStatus
LATER = T0 + timedelta(minutes=1)


def errors_of(store: Store, cid: int) -> dict[tuple[str, str | None], int]:
    return {(stage, error): n for stage, error, n in query(
        store, "SELECT stage, error, COUNT(*) FROM recipients WHERE campaign_id = ? "
        "GROUP BY stage, error", (cid,))}


def test_only_a_sending_campaign_is_claimed_from(store: Store) -> None:
    c = new_campaign(store)
    cid = c.id or 0
    store.add_recipients(cid, rows(10), T0)
    for event in TO_SENDING:  # New, Pending, Building: nothing may be sent yet
        assert store.claim_for_send(cid, 5, T0) == []
        move(store, cid, event)
    assert len(store.claim_for_send(cid, 2, T0)) == 2
    move(store, cid, Event.PAUSE)
    assert store.claim_for_send(cid, 5, T0) == []
    move(store, cid, Event.RESUME)
    assert len(store.claim_for_send(cid, 2, T0)) == 2
    move(store, cid, Event.CANCEL)
    assert store.claim_for_send(cid, 5, T0) == []
    k = store.counters(cid)
    assert (k.pending, k.inflight, k.failed) == (0, 4, 6)  # the cancel marked the rest
    assert_consistent(store, cid)


def test_a_cancel_on_one_node_stops_the_claims_of_another_at_once(
        store: Store, open_more: Callable[..., Store]) -> None:
    """Another process on the same data (on PostgreSQL another cluster node) cancels: the
    next claim here leases nothing, without waiting for this node's control tick."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(10), T0)
    assert len(store.claim_for_send(cid, 3, T0)) == 3
    other = open_more(node_id="other")
    move(other, cid, Event.CANCEL)
    assert store.claim_for_send(cid, 5, T0) == []
    assert store.counters(cid).inflight == 3


def _cancelled_with_inflight(store: Store) -> tuple[int, list[ClaimedRecipient]]:
    """A Trigger campaign of 10 (2 of them never triggered) cancelled with 4 claimed; the rest
    marked by the cancel's own transaction."""
    c = sending_campaign(store, mode=CampaignMode.TRIGGER, start_at=T0,
                         end_at=T0 + timedelta(hours=1))
    cid = c.id or 0
    store.add_recipients(cid, rows(10), T0, held=True)
    assert store.release_held(cid, None, 8, AuditEntry("op", "trigger", "", T0)).released == 8
    claimed = store.claim_for_send(cid, 4, T0)
    move(store, cid, Event.CANCEL)
    assert store.mark_unsent(cid, T0) == 0  # the cancel marked the 6
    return cid, claimed


def test_cancel_marks_new_and_held_recipients_cancelled(store: Store) -> None:
    cid, _ = _cancelled_with_inflight(store)
    k = store.counters(cid)
    assert (k.pending, k.held, k.inflight, k.failed, k.expired) == (0, 0, 4, 6, 0)
    assert errors_of(store, cid) == {("Failed", "campaign cancelled"): 6, ("Sending", None): 4}
    assert sum(d.failed for d in store.daily_activity(cid)) == 6
    assert store.mark_unsent(cid, LATER) == 0  # done once
    assert_consistent(store, cid)


def test_given_back_after_the_cancel_are_marked_cancelled(store: Store) -> None:
    """The route takes back what the pool still queued (released unsent) and a throttled
    submit comes back to retry: after the cancel, both end Failed, not New for ever."""
    cid, claimed = _cancelled_with_inflight(store)
    tally = store.record_submit_results(
        [SubmitOutcome(claimed[0].id, SubmitKind.ACCEPTED, "smsc1", ("m0",), "ESME_ROK")]
        + [SubmitOutcome(r.id, SubmitKind.RETRY, "smsc1", error="released unsent")
           for r in claimed[1:]], LATER)
    assert (tally.accepted, tally.retried) == (1, 3)
    k = store.counters(cid)
    assert (k.pending, k.inflight, k.sent, k.failed, k.expired) == (0, 0, 1, 9, 0)
    assert errors_of(store, cid)[("Failed", "campaign cancelled")] == 9
    assert_consistent(store, cid)


@pytest.mark.parametrize("policy", list(RecoveryPolicy))
def test_recovery_finishes_a_cancel_a_crash_cut_short(
        store: Store, open_more: Callable[..., Store], policy: RecoveryPolicy) -> None:
    """Cancelling is two steps (the status, then the marking); a kill -9 between them left
    New and Held rows in a campaign nothing claims from. The startup recovery marks them
    (and, under RESEND, the in-flight ones it gives back)."""
    c = sending_campaign(store, mode=CampaignMode.TRIGGER, start_at=T0,
                         end_at=T0 + timedelta(hours=1))
    cid = c.id or 0
    store.add_recipients(cid, rows(6), T0)
    store.add_recipients(cid, rows(2, start=100), T0, held=True)
    store.claim_for_send(cid, 2, T0)
    move(store, cid, Event.CANCEL)
    store.close()  # killed here: the marking never ran
    restarted = open_more()
    restarted.recover_inflight(policy, LATER)
    k = restarted.counters(cid)
    assert (k.pending, k.held, k.inflight, k.expired) == (0, 0, 0, 0)
    cancelled = 8 if policy is RecoveryPolicy.RESEND else 6
    assert errors_of(restarted, cid)[("Failed", "campaign cancelled")] == cancelled
    assert k.failed == 8
    assert restarted.get_campaign(cid).status is S.CANCELLED  # type: ignore[union-attr]
    assert_consistent(restarted, cid)
