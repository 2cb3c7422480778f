"""Expiry racing the dispatch path: recipients claimed when the campaign expired and given
back afterwards (released unsent, or a throttled submit to retry) end Failed "campaign
expired", never New in an Expired campaign. Runs on every backend."""

from __future__ import annotations

from datetime import timedelta

from store_fixtures import T0
from test_integrity_recovery import expired_with_inflight

from dispatch.campaigns.model import CampaignStatus
from dispatch.store.base import Store, SubmitKind, SubmitOutcome


def test_released_after_expiry_are_marked_expired(store: Store) -> None:
    cid, claimed = expired_with_inflight(store)
    assert store.get_campaign(cid).status is CampaignStatus.EXPIRED  # type: ignore[union-attr]

    later = T0 + timedelta(minutes=1)
    store.record_submit_results(
        [SubmitOutcome(claimed[0].id, SubmitKind.ACCEPTED, "smsc1", ("m0",), "ESME_ROK")]
        + [SubmitOutcome(r.id, SubmitKind.RETRY, "smsc1", error="released unsent")
           for r in claimed[1:]], later)
    k = store.counters(cid)
    assert (k.pending, k.inflight, k.sent, k.failed, k.expired) == (0, 0, 1, 9, 9)
