"""Campaign rows, transitions with history and audit, lists with filters/sort/pagination, KPI,
recipient filters with keyset pagination, job errors."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from store_fixtures import T0, TO_SENDING, move, new_campaign, rows, sending_campaign

from dispatch.campaigns.errors import Conflict, NotFound
from dispatch.campaigns.lifecycle import AuditEntry, Event, StateChange, apply
from dispatch.campaigns.model import (
    CampaignKind,
    CampaignMode,
    CampaignStatus,
    DailyWindow,
    RecipientStage,
    SmsResult,
)
from dispatch.campaigns.schedule import window_open
from dispatch.store.base import (
    CampaignFilter,
    CampaignSort,
    JobError,
    Receipt,
    RecipientFilter,
    Store,
    SubmitKind,
    SubmitOutcome,
)

S = CampaignStatus


def test_transition_writes_history_and_audit_and_is_compare_and_set(store: Store) -> None:
    c = new_campaign(store)
    cid = c.id or 0
    t = apply(Event.APPROVE, S.NEW, False, None)
    out = store.apply_transition(cid, t, StateChange(S.PENDING, "approve", "ok", T0, S.NEW),
                                 AuditEntry("mod", "approve", "looks fine", T0), auto_start=True)
    assert out.status is S.PENDING and out.auto_start is True
    with pytest.raises(Conflict):  # same transition again: status is no longer New
        store.apply_transition(cid, t, StateChange(S.PENDING, "approve", "ok", T0, S.NEW), None)
    with pytest.raises(NotFound):
        store.apply_transition(999, t, StateChange(S.PENDING, "approve", "ok", T0, S.NEW), None)
    assert [h.phase for h in store.state_history(cid)] == [S.NEW, S.PENDING]
    assert store.state_history(cid)[1].from_status is S.NEW
    assert [(a.actor, a.action, a.note) for a in store.audit_trail(cid)] == [
        ("ann", "create", ""), ("mod", "approve", "looks fine")]


def test_list_filters_sort_and_pagination(store: Store) -> None:
    made = []
    for i in range(12):
        made.append(new_campaign(
            store, sender=["Alpha", "beta", "Gamma"][i % 3],
            mode=CampaignMode.ON_TIME if i % 2 else CampaignMode.ON_DEMAND,
            start_at=T0 + timedelta(hours=12 - i) if i % 2 else None,
            created_at=T0 - timedelta(hours=i * 5)))
    move(store, made[0].id or 0, Event.APPROVE)
    move(store, made[1].id or 0, Event.REJECT)
    move(store, made[1].id or 0, Event.ARCHIVE)
    everything = store.list_campaigns(CampaignFilter(limit=200))
    assert everything.total == 11  # the archived one is in the archive list only
    assert [c.id for c in everything.items] == [c.id for c in made if c.id != made[1].id]
    archive = store.list_campaigns(CampaignFilter(archived=True))
    assert [c.id for c in archive.items] == [made[1].id]
    pages = [store.list_campaigns(CampaignFilter(offset=o, limit=4)).items for o in (0, 4, 8)]
    assert [c.id for p in pages for c in p] == [c.id for c in everything.items]
    recent = store.list_campaigns(CampaignFilter(since=T0 - timedelta(hours=24)))
    assert recent.total == 5 - 1  # created 0,5,10,15,20 h ago; #1 archived
    pending = store.list_campaigns(CampaignFilter(statuses=frozenset({S.PENDING, S.CANCELLED})))
    assert [c.id for c in pending.items] == [made[0].id]
    ontime = store.list_campaigns(CampaignFilter(modes=frozenset({CampaignMode.ON_TIME})))
    assert ontime.total == 5
    by_sender = store.list_campaigns(CampaignFilter(search="ETA", limit=200))
    assert {c.sender for c in by_sender.items} == {"beta"}
    prefix = str(made[5].external_id)[:8].upper()
    assert [c.id for c in store.list_campaigns(CampaignFilter(search=prefix)).items] == \
        [made[5].id]
    asc = store.list_campaigns(CampaignFilter(sort=CampaignSort.SENDER, descending=False,
                                              limit=200)).items
    assert [c.sender.lower() for c in asc] == sorted(c.sender.lower() for c in asc)
    by_start = store.list_campaigns(CampaignFilter(sort=CampaignSort.START, descending=False,
                                                   limit=200)).items
    starts = [c.start_at for c in by_start]
    known = [s for s in starts if s is not None]
    assert known == sorted(known) and starts[len(known):] == [None] * (len(starts) - len(known))
    assert store.list_campaigns(CampaignFilter(search="100%_")).total == 0
    # Terms whose "next string" is not simple to form: the last code point, and the one
    # before the surrogates (SQLite's prefix bound raised, or could not be encoded).
    for term in ("a\U0010ffff", "\U0010ffff\U0010ffff", "x\ud7ff"):
        assert store.list_campaigns(CampaignFilter(search=term)).total == 0


def test_kpi_and_active(store: Store) -> None:
    a = new_campaign(store).id or 0
    b = new_campaign(store).id or 0
    new_campaign(store)
    for e in (Event.APPROVE, Event.START, Event.BUILT):
        move(store, a, e)
    move(store, b, Event.APPROVE)
    store.add_recipients(a, rows(4), T0)
    claimed = store.claim_for_send(a, 4, T0)
    store.record_submit_results([SubmitOutcome(r.id, SubmitKind.ACCEPTED, "e", (str(r.id),))
                                 for r in claimed], T0)
    store.record_receipts([Receipt("e", str(claimed[0].id), "DELIVRD", None,
                                   SmsResult.DELIVERED)], T0)
    move(store, a, Event.FINISH)
    kpi = store.kpi()
    assert (kpi.total, kpi.active, kpi.completed, kpi.errors) == (3, 1, 1, 0)
    assert (kpi.sms_sent, kpi.sms_delivered) == (4, 1)
    assert [c.id for c in store.active_campaigns()] == [b]
    # A list page's progress in one read: the same figures as one by one; unknown ids absent.
    many = store.counters_many([a, b, 999, a])
    assert set(many) == {a, b}
    assert many[a] == store.counters(a) and (many[a].sent, many[a].delivered) == (4, 1)
    assert many[b] == store.counters(b) and many[b].total == 0
    assert store.counters_many([]) == {}


def test_recipient_filters_and_keyset_pages(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(30), T0)
    claimed = store.claim_for_send(cid, 20, T0)
    store.record_submit_results(
        [SubmitOutcome(r.id, SubmitKind.FAILED if i < 3 else SubmitKind.ACCEPTED, "e",
                       () if i < 3 else (f"m{r.id}",)) for i, r in enumerate(claimed)], T0)
    stats = ["DELIVRD"] * 10 + ["UNDELIV"] * 4 + ["EXPIRED"] * 3
    store.record_receipts([Receipt("e", f"m{r.id}", st, None,
                                   SmsResult.DELIVERED if st == "DELIVRD" else SmsResult.FAILED)
                           for r, st in zip(claimed[3:], stats, strict=True)], T0)

    def ids(**kw: Any) -> list[int]:
        out: list[int] = []
        after = 0
        for _ in range(50):
            page = store.list_recipients(cid, RecipientFilter(after_id=after, limit=4, **kw))
            out.extend(v.id for v in page.items)
            assert page.total >= len(out)
            if page.next_after is None:
                return out
            after = page.next_after
        raise AssertionError("pagination did not end")

    assert len(ids()) == 30
    assert len(ids(stages=frozenset({RecipientStage.NEW}))) == 10
    assert len(ids(stages=frozenset({RecipientStage.FAILED}))) == 3
    assert len(ids(sms_results=frozenset({SmsResult.FAILED}))) == 7
    assert len(ids(stats=frozenset({"UNDELIV"}), include_null_stat=False)) == 4
    assert len(ids(stats=frozenset({"UNDELIV", "DELIVRD"}), include_null_stat=False)) == 14
    assert len(ids(stats=frozenset({"EXPIRED"}), include_null_stat=True)) == 3 + 13
    assert len(ids(include_null_stat=False)) == 17
    assert store.list_recipients(cid, RecipientFilter(limit=5)).total == 30
    page = store.list_recipients(cid, RecipientFilter(limit=1)).items[0]
    assert page.number is None and page.masked.startswith("*")
    found = store.find_by_ctn_hash(page.ctn_hash)
    assert [v.id for v in found] == [page.id]
    assert store.find_by_ctn_hash(page.ctn_hash, cid + 1) == []


def test_job_errors_and_rebuild(store: Store) -> None:
    cid = new_campaign(store).id or 0
    assert store.add_job_errors(cid, [JobError(3, "invalid_number", "line 3: too short"),
                                      JobError(9, "encoding", "not UTF-8")], T0) == 2
    assert store.add_job_errors(cid, [], T0) == 0
    page = store.job_errors(cid, 0, 1)
    assert page.total == 2 and page.items[0].line_no == 3
    store.add_recipients(cid, rows(5), T0)
    assert store.delete_recipients(cid) == 5
    assert (store.counters(cid).total, store.counters(cid).job_errors) == (0, 0)
    store.add_recipients(cid, rows(5), T0)
    for event in TO_SENDING:
        move(store, cid, event)
    assert len(store.claim_for_send(cid, 1, T0)) == 1
    with pytest.raises(Conflict):
        store.delete_recipients(cid)
    with pytest.raises(NotFound):
        store.counters(12345)


def test_pending_messages_counts_active_transactional(store: Store) -> None:
    t = new_campaign(store, kind=CampaignKind.TRANSACTIONAL).id or 0
    b = new_campaign(store).id or 0
    for cid in (t, b):
        for event in TO_SENDING:
            move(store, cid, event)
        store.add_recipients(cid, rows(6), T0)
    assert len(store.claim_for_send(t, 2, T0)) == 2
    assert store.pending_messages(CampaignKind.TRANSACTIONAL) == 6
    assert store.pending_messages() == 12


def test_a_window_stored_with_an_offset_reads_back_as_wall_clock_time(store: Store) -> None:
    # Validation refuses such edges now; a campaign stored before it did must still load
    # into something the engine's window check can evaluate (it raised TypeError).
    c = new_campaign(store, window=DailyWindow(time(9, tzinfo=UTC), time(17, tzinfo=UTC),
                                               "Europe/Berlin"))
    loaded = store.get_campaign(c.id or 0)
    assert loaded is not None and loaded.window is not None
    assert (loaded.window.start, loaded.window.end) == (time(9), time(17))
    assert window_open(loaded.window, datetime(2026, 1, 5, 9, 30, tzinfo=ZoneInfo("Europe/Berlin")))
    assert not window_open(loaded.window, datetime(2026, 1, 5, 7, 0, tzinfo=UTC))  # 08:00 local
