"""Trigger mode in the store: Held recipients are invisible to claims until a trigger event
releases them, counters follow every move, and the end of the campaign marks the rest."""

from __future__ import annotations

from datetime import timedelta

from store_fixtures import T0, rows, sending_campaign

from dispatch.campaigns.lifecycle import AuditEntry
from dispatch.campaigns.model import CampaignMode, RecipientStage
from dispatch.store.base import RecipientFilter


def _audit(note: str = "") -> AuditEntry:
    return AuditEntry("operator", "trigger", note, T0)


def _trigger_campaign(store):
    c = sending_campaign(store, mode=CampaignMode.TRIGGER, start_at=T0,
                         end_at=T0 + timedelta(hours=1))
    assert store.add_recipients(c.id, rows(20), T0, held=True) == 20
    return c


def test_held_recipients_are_not_claimed_until_released(store) -> None:
    c = _trigger_campaign(store)
    k = store.counters(c.id)
    assert (k.total, k.held, k.pending) == (20, 20, 0)
    assert store.claim_for_send(c.id, 100, T0) == []

    named = [r.ctn_hash for r in rows(3, start=5)] + [b"\xff" * 16]
    result = store.release_held(c.id, named, 0, _audit("campaign hit"))
    assert (result.released, result.already_released, result.not_found) == (3, 0, 1)
    k = store.counters(c.id)
    assert (k.held, k.pending) == (17, 3)
    claimed = store.claim_for_send(c.id, 100, T0)
    assert sorted(r.number for r in claimed) == sorted(r.number for r in rows(3, start=5))

    # The same event again releases nothing: a recipient goes out at most once.
    again = store.release_held(c.id, named, 0, _audit())
    assert (again.released, again.already_released, again.not_found) == (0, 3, 1)

    by_count = store.release_held(c.id, None, 4, _audit())
    assert by_count.released == 4
    ids = [r.id for r in store.claim_for_send(c.id, 100, T0)]
    assert len(ids) == 4 and ids == sorted(ids)  # file order
    k = store.counters(c.id)
    assert (k.held, k.pending, k.inflight) == (13, 0, 7)
    audit = store.audit_trail(c.id)
    assert [a.action for a in audit].count("trigger") == 3
    assert any("campaign hit; released 3" in a.note for a in audit)


def test_held_is_a_listable_stage_and_expiry_marks_it_not_triggered(store) -> None:
    c = _trigger_campaign(store)
    store.release_held(c.id, None, 2, _audit())
    held = store.list_recipients(c.id, RecipientFilter(stages=frozenset({RecipientStage.HELD}),
                                                       limit=50))
    assert held.total == 18 and {r.stage for r in held.items} == {RecipientStage.HELD}

    assert store.mark_unsent(c.id, T0 + timedelta(hours=2)) == 20
    k = store.counters(c.id)
    assert (k.held, k.pending, k.failed, k.expired) == (0, 0, 20, 20)
    failed = store.list_recipients(c.id, RecipientFilter(limit=50))
    errors = [r.error for r in failed.items]
    assert errors.count("not triggered") == 18 and errors.count("campaign expired") == 2


def test_rebuild_drops_held_recipients(store) -> None:
    c = _trigger_campaign(store)
    assert store.delete_recipients(c.id) == 20
    k = store.counters(c.id)
    assert (k.total, k.held) == (0, 0)
