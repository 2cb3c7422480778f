"""Marking an ended campaign's unsent recipients is bounded per transaction: the ending
transition marks at most ``unsent_mark_rows`` (New first, then Held, lowest ids first), and
``mark_unsent(limit=...)`` marks the rest chunk by chunk, each chunk its own transaction with
its counters, until it returns 0. Marking a whole campaign in the transition held the store
for seconds per million rows (minutes for a 70 M-row file) while every other campaign's
results and receipts waited. Every backend."""

from __future__ import annotations

from collections.abc import Callable

from store_fixtures import T0, end_unmarked, move, query, rows, sending_campaign
from test_dispatch_path import assert_consistent

from dispatch.campaigns.lifecycle import AuditEntry, Event
from dispatch.campaigns.model import CampaignMode, CampaignStatus
from dispatch.store.base import RecoveryPolicy, Store

CHUNK = 100
TOTAL = 1000


def _store(open_more: Callable[..., Store]) -> Store:
    return open_more(unsent_mark_rows=CHUNK, insert_batch_rows=500)


def _bulk(store: Store, n: int = TOTAL) -> int:
    cid = sending_campaign(store).id or 0
    assert store.add_recipients(cid, rows(n), T0) == n
    return cid


def _errors(store: Store, cid: int) -> dict[str | None, int]:
    return dict(query(store, "SELECT error, COUNT(*) FROM recipients WHERE campaign_id = ? "
                      "AND stage = 'Failed' GROUP BY error", (cid,)))


def test_cancel_marks_one_chunk_and_mark_unsent_the_rest(
        open_more: Callable[..., Store]) -> None:
    store = _store(open_more)
    cid = _bulk(store)
    claimed = store.claim_for_send(cid, 10, T0)  # in flight: not marked, counted apart
    move(store, cid, Event.CANCEL)
    k = store.counters(cid)
    assert (k.failed, k.pending, k.inflight) == (CHUNK, TOTAL - 10 - CHUNK, 10)
    assert_consistent(store, cid)
    # The chunk is the lowest New ids (the claimed ones were lower still).
    ids = [r[0] for r in query(store, "SELECT id FROM recipients WHERE campaign_id = ? "
                               "ORDER BY id", (cid,))]
    marked = [r[0] for r in query(store, "SELECT id FROM recipients WHERE campaign_id = ? "
                                  "AND stage = 'Failed' ORDER BY id", (cid,))]
    assert marked == ids[10:10 + CHUNK]
    assert {c.id for c in claimed} == set(ids[:10])
    assert store.campaigns_with_unsent() == [cid]

    steps = []
    for _ in range(TOTAL // CHUNK + 2):  # bounded: the loop must end well before
        n = store.mark_unsent(cid, T0, limit=CHUNK)
        steps.append(n)
        assert_consistent(store, cid)
        k = store.counters(cid)
        assert k.pending + k.held + k.inflight + k.failed + k.sent == k.total == TOTAL
        if n == 0:
            break
    assert steps == [CHUNK] * 8 + [TOTAL - 10 - 9 * CHUNK, 0]
    k = store.counters(cid)
    assert (k.failed, k.pending, k.held, k.expired, k.inflight) == (TOTAL - 10, 0, 0, 0, 10)
    assert _errors(store, cid) == {"campaign cancelled": TOTAL - 10}
    assert query(store, "SELECT COUNT(*) FROM recipients WHERE campaign_id = ? "
                 "AND stage IN ('New', 'Held')", (cid,)) == [(0,)]
    assert store.campaigns_with_unsent() == []
    day = {d.day: d.failed for d in store.daily_activity(cid)}
    assert sum(day.values()) == TOTAL - 10


def test_new_before_held_and_expired_counted(open_more: Callable[..., Store]) -> None:
    """A Trigger campaign expired with 100 New and 250 Held: the transition marks the New
    ones, the chunks after it the Held ones ("not triggered"); all count as expired."""
    store = _store(open_more)
    cid = sending_campaign(store, mode=CampaignMode.TRIGGER).id or 0
    store.add_recipients(cid, rows(350), T0, held=True)
    assert store.release_held(cid, None, 100, AuditEntry("op", "trigger", "", T0)).released == 100
    move(store, cid, Event.EXPIRE)
    k = store.counters(cid)
    assert (k.pending, k.held, k.failed, k.expired) == (0, 250, 100, 100)
    assert _errors(store, cid) == {"campaign expired": 100}
    assert store.campaigns_with_unsent() == [cid]
    assert [store.mark_unsent(cid, T0, limit=CHUNK) for _ in range(4)] == [100, 100, 50, 0]
    assert_consistent(store, cid)
    k = store.counters(cid)
    assert (k.pending, k.held, k.failed, k.expired) == (0, 0, 350, 350)
    assert _errors(store, cid) == {"campaign expired": 100, "not triggered": 250}
    assert store.campaigns_with_unsent() == []


def test_small_campaign_marked_whole_by_its_transition(open_more: Callable[..., Store]) -> None:
    store = _store(open_more)
    cid = _bulk(store, CHUNK)
    move(store, cid, Event.CANCEL)
    assert store.counters(cid).failed == CHUNK
    assert store.campaigns_with_unsent() == []
    assert store.mark_unsent(cid, T0, limit=CHUNK) == 0


def test_recovery_marks_one_chunk_per_campaign(open_more: Callable[..., Store]) -> None:
    """A crash (or older code) left two ended campaigns unmarked: start-up recovery marks
    one chunk of each, and names them for the engine to finish."""
    store = _store(open_more)
    sending = _bulk(store, 300)
    first, second = _bulk(store), _bulk(store, 250)
    end_unmarked(store, first, CampaignStatus.CANCELLED)
    end_unmarked(store, second, CampaignStatus.EXPIRED)
    assert sorted(store.campaigns_with_unsent()) == [first, second]
    store.recover_inflight(RecoveryPolicy.MARK_UNKNOWN, T0)
    for cid, total in ((first, TOTAL), (second, 250)):
        k = store.counters(cid)
        assert (k.failed, k.pending) == (CHUNK, total - CHUNK)
        assert_consistent(store, cid)
    assert store.counters(second).expired == CHUNK
    assert store.counters(sending).pending == 300  # a Sending campaign is not touched
    assert sorted(store.campaigns_with_unsent()) == [first, second]
    assert store.mark_unsent(second, T0) == 150  # no limit: the rest at once, as before
    assert store.campaigns_with_unsent() == [first]
