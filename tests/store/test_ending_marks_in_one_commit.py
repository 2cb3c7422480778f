"""A transition that ends a campaign with recipients unsent (cancel, expire) marks them in its own
transaction: the service used to commit the status and mark the rows in a second transaction,
so a store failing right after the first commit left a Cancelled campaign with New and Held
rows (pending > 0) until the next start's recovery. Here every commit after the first fails,
as on a disk filling up at that instant (the house fault seam, ``fault_hook``). Runs through
the campaign service on every backend."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import trio
from store_fixtures import T0, rows, sending_campaign
from test_dispatch_path import assert_consistent

from dispatch.campaigns.lifecycle import AuditEntry
from dispatch.campaigns.model import Campaign, CampaignMode, CampaignStatus, RecipientStage
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import RecipientFilter, Store

FAILED = RecipientFilter(stages=frozenset({RecipientStage.FAILED}), limit=50)


class FailAfterCommits:
    """A ``fault_hook`` that lets ``allowed`` commits through and fails every later one the
    way a full disk fails it on this backend."""

    def __init__(self, allowed: int, backend_error: type[Exception]) -> None:
        self.allowed = allowed
        self.commits = 0
        self.failed = 0
        self._error = backend_error

    def __call__(self) -> None:
        if self.commits >= self.allowed:
            self.failed += 1
            raise self._error("database or disk is full")
        self.commits += 1


def _error_of(store: Store) -> type[Exception]:
    return psycopg.OperationalError if store.config.dsn else sqlite3.OperationalError  # type: ignore[attr-defined]


def _trigger_campaign_with_inflight(store: Store) -> int:
    """A Sending Trigger campaign of 10: 2 never triggered (Held), 3 claimed, 5 New."""
    c = sending_campaign(store, mode=CampaignMode.TRIGGER, start_at=T0,
                         end_at=T0 + timedelta(hours=1))
    cid = c.id or 0
    store.add_recipients(cid, rows(10), T0, held=True)
    assert store.release_held(cid, None, 8, AuditEntry("op", "trigger", "", T0)).released == 8
    assert len(store.claim_for_send(cid, 3, T0)) == 3
    return cid


def _end(store: Store, action: Callable[[CampaignService, int], Awaitable[Campaign]]
         ) -> tuple[Campaign, FailAfterCommits]:
    """Run ``action`` through the service with only one commit allowed."""
    hook = FailAfterCommits(1, _error_of(store))

    async def main() -> Campaign:
        svc = CampaignService(AsyncStore(store), ServiceConfig(), lambda: T0)
        store.fault_hook = hook  # type: ignore[attr-defined]
        try:
            return await action(svc, cid)
        finally:
            store.fault_hook = None  # type: ignore[attr-defined]

    cid = _trigger_campaign_with_inflight(store)
    return trio.run(main), hook


def _cancel(svc: CampaignService, cid: int) -> Awaitable[Campaign]:
    return svc.cancel(cid, "ann", "stop it")


def _expire(svc: CampaignService, cid: int) -> Awaitable[Campaign]:
    return svc.expire(cid)


@pytest.mark.parametrize(("action", "status", "error", "expired"), [
    (_cancel, CampaignStatus.CANCELLED, "campaign cancelled", 0),
    (_expire, CampaignStatus.EXPIRED, "campaign expired", 7)])
def test_an_ending_transition_and_its_marking_are_one_commit(
        store: Store, action: Callable[..., Any], status: CampaignStatus, error: str,
        expired: int) -> None:
    campaign, hook = _end(store, action)
    assert (hook.commits, hook.failed) == (1, 0)  # one commit did it all
    cid = campaign.id or 0
    assert campaign.status is status
    k = store.counters(cid)
    assert (k.pending, k.held, k.inflight, k.failed, k.expired) == (0, 0, 3, 7, expired)
    marked = {r.error for r in store.list_recipients(cid, FAILED).items}
    assert marked <= {error, "not triggered"} and error in marked
    assert store.mark_unsent(cid, T0) == 0  # nothing left for a second step
    assert [h.phase for h in store.state_history(cid)][-1] is status
    assert_consistent(store, cid)


def test_a_failed_commit_leaves_the_campaign_as_it_was(store: Store) -> None:
    """The other side of one transaction: when the cancel's commit itself fails, neither the
    status nor any row changed, and the cancel can simply be tried again."""
    hook = FailAfterCommits(0, _error_of(store))
    cid = _trigger_campaign_with_inflight(store)
    before = store.counters(cid)

    async def main() -> None:
        svc = CampaignService(AsyncStore(store), ServiceConfig(), lambda: T0)
        store.fault_hook = hook  # type: ignore[attr-defined]
        try:
            with pytest.raises(_error_of(store)):
                await svc.cancel(cid, "ann")
        finally:
            store.fault_hook = None  # type: ignore[attr-defined]
        assert (await svc.get(cid)).status is CampaignStatus.SENDING
        assert store.counters(cid) == before
        assert (await svc.cancel(cid, "ann")).status is CampaignStatus.CANCELLED

    trio.run(main)
    k = store.counters(cid)
    assert (k.pending, k.held, k.failed) == (0, 0, 7)
    assert_consistent(store, cid)
