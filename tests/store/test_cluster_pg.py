"""Cluster primitives on PostgreSQL: several store handles with their own node ids stand for
several engine processes on one database.

Claims never overlap (``FOR UPDATE SKIP LOCKED``), heartbeats decide who is live, a dead
node's in-flight rows follow the recovery policy (acknowledged submits are never resent), a
node declared dead is fenced (its late results are stale), a node that leaves says so, and a
receipt matches on whichever node it arrives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from store_fixtures import T0, new_campaign, query, rows, sending_campaign

from dispatch.campaigns.lifecycle import AuditEntry, Event, StateChange, apply
from dispatch.campaigns.model import CampaignStatus, SmsResult
from dispatch.store.base import (
    COUNTER_FIELDS,
    Receipt,
    RecoveryPolicy,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.cluster import SingleNode, share_of
from dispatch.store.postgres import PostgresStore

ACC, RETRY = SubmitKind.ACCEPTED, SubmitKind.RETRY
TIMEOUT_S = 0.5


@pytest.fixture
def nodes(pg_dsn: str) -> Iterator[Callable[[str], PostgresStore]]:
    opened: list[PostgresStore] = []

    def make(node_id: str) -> PostgresStore:
        s = PostgresStore(StoreConfig(dsn=pg_dsn, node_timeout_s=TIMEOUT_S,
                                      insert_batch_rows=500), node_id=node_id)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def assert_counters_match_rows(store: PostgresStore, cid: int) -> None:
    k = store.counters(cid)
    stages = dict(query(store, "SELECT stage, COUNT(*) FROM recipients WHERE campaign_id = ? "
                        "GROUP BY stage", (cid,)))
    amb = query(store, "SELECT COUNT(*) FROM recipients WHERE campaign_id = ? AND ambiguous = 1",
                (cid,))[0][0]
    assert (k.pending, k.inflight, k.sent, k.failed, k.held, k.ambiguous) == (
        stages.get("New", 0), stages.get("Sending", 0), stages.get("Delivered", 0),
        stages.get("Failed", 0), stages.get("Held", 0), amb)
    assert k.total == sum(stages.values())
    assert set(COUNTER_FIELDS) >= {"pending", "inflight"}


def wait_past_timeout() -> None:
    time.sleep(TIMEOUT_S * 1.5)


def test_concurrent_claimers_never_get_the_same_recipient(
        nodes: Callable[[str], PostgresStore]) -> None:
    a, b = nodes("a"), nodes("b")
    cid = sending_campaign(a).id or 0
    a.add_recipients(cid, rows(3000), T0)
    got: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(store: PostgresStore, name: str) -> None:
        start.wait(timeout=10)
        for _ in range(1000):  # bounded: 3000 rows / 25 per claim, shared by two
            batch = store.claim_for_send(cid, 25, T0)
            if not batch:
                return
            got[name].extend(r.id for r in batch)

    threads = [threading.Thread(target=claimer, args=(s, s.node_id)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 3000
    assert got["a"] and got["b"]  # both did work
    owners = dict(query(a, "SELECT lease_owner, COUNT(*) FROM recipients GROUP BY 1"))
    assert owners == {"a": len(got["a"]), "b": len(got["b"])}
    assert_counters_match_rows(a, cid)


def test_heartbeats_decide_who_is_live(nodes: Callable[[str], PostgresStore]) -> None:
    a, b = nodes("a"), nodes("b")
    a.register_node()
    b.register_node()
    assert [n.node_id for n in a.live_nodes()] == ["a", "b"]
    assert share_of(100.0, len(a.live_nodes())) == 50.0
    wait_past_timeout()
    assert a.heartbeat()  # b stays silent
    assert [n.node_id for n in b.live_nodes()] == ["a"]
    assert b.heartbeat()  # silent, but nobody declared it dead yet: it is live again
    assert len(a.live_nodes()) == 2


@pytest.mark.parametrize("policy", list(RecoveryPolicy))
def test_takeover_of_a_dead_node(nodes: Callable[[str], PostgresStore],
                                 policy: RecoveryPolicy) -> None:
    a, b = nodes("a"), nodes("b")
    a.register_node()
    b.register_node()
    cid = sending_campaign(a).id or 0
    a.add_recipients(cid, rows(20), T0)
    mine = a.claim_for_send(cid, 5, T0)
    theirs = b.claim_for_send(cid, 10, T0)
    acked = theirs[:3]
    b.record_submit_results([SubmitOutcome(r.id, ACC, "smsc1", (f"m{r.id}",)) for r in acked],
                            T0)
    # b dies (no more heartbeats); a keeps beating and takes over after the timeout.
    assert a.take_over_dead_nodes(policy, T0).dead_nodes == ()  # not yet: b is fresh
    wait_past_timeout()
    assert a.heartbeat()
    result = a.take_over_dead_nodes(policy, T0)
    assert result.dead_nodes == ("b",)
    assert result.counts.by_campaign == {cid: 7}
    assert a.take_over_dead_nodes(policy, T0).counts.by_campaign == {}  # nothing twice
    k = a.counters(cid)
    assert k.sent == 3 and k.inflight == 5  # a's own rows are untouched
    if policy is RecoveryPolicy.MARK_UNKNOWN:
        assert (k.ambiguous, k.unknown, k.pending) == (7, 7, 5)
        reclaimed = a.claim_for_send(cid, 100, T0)
        assert {r.id for r in reclaimed}.isdisjoint({r.id for r in theirs})
    else:
        assert (k.ambiguous, k.pending) == (0, 12)
        reclaimed = a.claim_for_send(cid, 100, T0)
        assert {r.id for r in theirs[3:]} <= {r.id for r in reclaimed}
    assert {r.id for r in acked}.isdisjoint({r.id for r in reclaimed})  # acked: never again
    # b wakes up: fenced. Its late answers for rows it no longer holds are stale.
    assert not b.heartbeat()
    late = b.record_submit_results(
        [SubmitOutcome(r.id, ACC, "smsc1", (f"late{r.id}",)) for r in theirs[3:]], T0)
    assert late.stale == 7 and late.accepted == 0
    b.register_node()  # it may rejoin, with nothing in flight
    assert [n.node_id for n in a.live_nodes()] == ["a", "b"]
    a.record_submit_results([SubmitOutcome(r.id, ACC, "smsc1", (f"n{r.id}",))
                             for r in mine + reclaimed], T0)
    assert_counters_match_rows(a, cid)


def test_a_starting_node_leaves_live_nodes_rows_alone(
        nodes: Callable[[str], PostgresStore]) -> None:
    a = nodes("a")
    a.register_node()
    cid = sending_campaign(a).id or 0
    a.add_recipients(cid, rows(10), T0)
    a.claim_for_send(cid, 4, T0)
    # A crashed node "old" that never came back, with rows in flight:
    old = nodes("old")
    old.claim_for_send(cid, 3, T0)
    c = nodes("c")  # starts now, runs startup recovery before claiming
    counts = c.recover_inflight(RecoveryPolicy.MARK_UNKNOWN, T0)
    assert counts.by_campaign == {cid: 3}  # old's rows (never registered): not a's
    k = c.counters(cid)
    assert (k.inflight, k.ambiguous, k.pending) == (4, 3, 3)
    assert_counters_match_rows(c, cid)


def test_leave_cluster_releases_and_stops(nodes: Callable[[str], PostgresStore]) -> None:
    a, b = nodes("a"), nodes("b")
    a.register_node()
    b.register_node()
    cid = sending_campaign(a).id or 0
    a.add_recipients(cid, rows(10), T0)
    claimed = b.claim_for_send(cid, 5, T0)
    # Graceful shutdown: what the pool never wrote goes back as retries first...
    b.record_submit_results([SubmitOutcome(r.id, RETRY, "smsc1") for r in claimed[:2]], T0)
    b.record_submit_results([SubmitOutcome(r.id, ACC, "smsc1", (f"m{r.id}",))
                             for r in claimed[2:4]], T0)
    # ...and what is still in flight (answer lost) follows the policy.
    counts = b.leave_cluster(RecoveryPolicy.MARK_UNKNOWN, T0)
    assert counts.marked_unknown == 1
    assert [n.node_id for n in a.live_nodes()] == ["a"]  # at once, no timeout to wait
    assert not b.heartbeat()
    k = a.counters(cid)
    assert (k.pending, k.sent, k.ambiguous, k.inflight) == (7, 2, 1, 0)
    assert_counters_match_rows(a, cid)


def test_receipts_match_on_any_node_and_transitions_are_cluster_wide(
        nodes: Callable[[str], PostgresStore]) -> None:
    a, b = nodes("a"), nodes("b")
    cid = sending_campaign(a).id or 0
    a.add_recipients(cid, rows(4), T0)
    claimed = a.claim_for_send(cid, 4, T0)
    # One receipt races ahead of a's submit result and lands on b's bind: parked, then
    # applied in a's transaction that stores its message id.
    assert b.record_receipts([Receipt("smsc1", f"m{claimed[0].id}", "DELIVRD", "000",
                                      SmsResult.DELIVERED)], T0) == 0
    tally = a.record_submit_results([SubmitOutcome(r.id, ACC, "smsc1", (f"m{r.id}",))
                                     for r in claimed], T0)
    assert tally.receipts_matched == 1
    matched = b.record_receipts([Receipt("smsc1", f"m{r.id}", "DELIVRD", "000",
                                         SmsResult.DELIVERED) for r in claimed[1:]], T0)
    assert matched == 3 and a.counters(cid).delivered == 4
    # A transition through b's API is what a's scheduler reads next.
    c = new_campaign(a)
    cid = c.id or 0
    t = apply(Event.APPROVE, c.status, c.archived, c.paused_by)
    b.apply_transition(cid, t, StateChange(t.to_status, "approve", "ok", T0, c.status),
                       AuditEntry("mod", "approve", "", T0))
    got = a.get_campaign(cid)
    assert got is not None and got.status is CampaignStatus.PENDING


def test_single_node_stand_in() -> None:
    one = SingleNode()
    one.register_node()
    assert one.heartbeat() and one.live_nodes() == []
    assert one.take_over_dead_nodes(RecoveryPolicy.MARK_UNKNOWN, T0).dead_nodes == ()
    assert share_of(300.0, 0) == 300.0 and share_of(300.0, 3) == 100.0
    assert share_of(0.0, 3) == 0.0  # unlimited stays unlimited


def test_one_builder_per_campaign(nodes: Callable[[str], PostgresStore]) -> None:
    a, b = nodes("a"), nodes("b")
    a.register_node()
    b.register_node()
    cid = new_campaign(a).id or 0
    assert a.claim_build(cid) and a.claim_build(cid)  # taken, and kept by its holder
    assert not b.claim_build(cid)  # a is live: b must not ingest the same file
    wait_past_timeout()
    assert b.heartbeat()
    assert b.claim_build(cid)  # a went silent: the build passes to b
    assert not a.claim_build(cid)
    assert SingleNode().claim_build(cid)
