"""A submit that failed once the retries of a transient SMSC error ran out is a job error of
its campaign (seeds/003: "Workflow / infrastructure errors from core (e.g. file parsing
failures, retry exhaustion)"), recorded with the recipient's line number in the transaction
that applies the failure: exactly once, never for a stale replay. An SMSC refusing everything
must not write one per recipient: past ``StoreConfig.retry_exhausted_errors_listed`` a
campaign's exhaustions are counted in one summary row, and the list's total stays true. Runs
on every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from store_fixtures import T0, query, rows, sending_campaign
from test_dispatch_path import assert_consistent

from dispatch.store.base import (
    RETRY_EXHAUSTED,
    ClaimedRecipient,
    JobError,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)


def _exhausted(claimed: list[ClaimedRecipient]) -> list[SubmitOutcome]:
    return [SubmitOutcome(r.id, SubmitKind.FAILED, "smsc1", (), "ESME_RSYSERR", "ESME_RSYSERR",
                          exhausted_after=4) for r in claimed]


def test_retry_exhaustion_is_a_job_error_with_the_line_number(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(6), T0)
    a, f, x, r, u = store.claim_for_send(cid, 5, T0)
    batch = [SubmitOutcome(a.id, SubmitKind.ACCEPTED, "smsc1", ("m1",), "ESME_ROK"),
             SubmitOutcome(f.id, SubmitKind.FAILED, "smsc1", (), "ESME_RINVDSTADR",
                           "ESME_RINVDSTADR"),
             SubmitOutcome(x.id, SubmitKind.FAILED, "smsc1", (), "ESME_RSYSERR",
                           "ESME_RSYSERR", exhausted_after=4),
             SubmitOutcome(r.id, SubmitKind.RETRY, "smsc1", error="released unsent"),
             SubmitOutcome(u.id, SubmitKind.UNKNOWN, "smsc1", (), "ESME_RUNKNOWNERR")]
    tally = store.record_submit_results(batch, T0)
    assert (tally.accepted, tally.failed, tally.retried, tally.unknown) == (1, 2, 1, 1)
    page = store.job_errors(cid, 0, 10)
    assert page.total == 1 and store.counters(cid).job_errors == 1
    (e,) = page.items
    assert (e.line_no, e.reason) == (3, RETRY_EXHAUSTED)  # rows(6): line = index + 1
    assert e.message == "submit failed after 4 attempts: retries of ESME_RSYSERR exhausted"
    assert "+4917" not in e.message
    # A replay (the writer retrying a batch whose commit it did not see) is stale.
    assert store.record_submit_results(batch, T0).stale == 5
    assert store.job_errors(cid, 0, 10).total == 1
    assert_consistent(store, cid)


def test_only_applied_exhaustions_are_recorded(store: Store) -> None:
    """A batch of nothing but exhaustions, one for a row no longer in flight."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(3), T0)
    first, second = store.claim_for_send(cid, 2, T0)
    store.record_submit_results([SubmitOutcome(first.id, SubmitKind.ACCEPTED, "smsc1",
                                               ("m1",))], T0)
    tally = store.record_submit_results(
        [SubmitOutcome(rid, SubmitKind.FAILED, "smsc1", (), "ESME_RSYSERR", "ESME_RSYSERR",
                       exhausted_after=2) for rid in (first.id, second.id)], T0)
    assert (tally.failed, tally.stale) == (1, 1)
    assert [(e.line_no, e.reason) for e in store.job_errors(cid, 0, 10).items] == [
        (2, RETRY_EXHAUSTED)]
    assert_consistent(store, cid)


def test_the_default_lists_a_thousand_per_campaign() -> None:
    assert StoreConfig().retry_exhausted_errors_listed == 1000


def test_exhaustions_past_the_cap_are_counted_in_one_summary_row(
        open_more: Callable[..., Store]) -> None:
    store = open_more(retry_exhausted_errors_listed=3)
    cid = sending_campaign(store).id or 0
    other = sending_campaign(store).id or 0  # its own cap and summary
    store.add_recipients(cid, rows(12), T0)
    store.add_recipients(other, rows(2, start=100), T0)
    # 2 + 3 in one batch across the cap, then 4 more, then 2 in another campaign
    first = store.claim_for_send(cid, 2, T0)
    store.record_submit_results(_exhausted(first), T0)
    across = store.claim_for_send(cid, 3, T0)
    store.record_submit_results(_exhausted(across), T0)
    page = store.job_errors(cid, 0, 50)
    assert [(e.line_no, e.reason, e.occurrences) for e in page.items] == [
        (1, RETRY_EXHAUSTED, 1), (2, RETRY_EXHAUSTED, 1), (3, RETRY_EXHAUSTED, 1),
        (0, RETRY_EXHAUSTED, 2)]
    assert page.total == store.counters(cid).job_errors == 5
    more = store.claim_for_send(cid, 4, T0)
    store.record_submit_results(_exhausted(more), T0 + timedelta(minutes=1))
    store.record_submit_results(_exhausted(more), T0)  # a replay: stale, nothing counted
    store.record_submit_results(_exhausted(store.claim_for_send(other, 2, T0)), T0)
    page = store.job_errors(cid, 0, 50)
    assert len(page.items) == 4  # 9 exhaustions, 4 rows
    summary = page.items[-1]
    assert (summary.line_no, summary.occurrences, summary.at) == (0, 6, T0 + timedelta(minutes=1))
    assert summary.message == ("6 more submits failed after their retries ran out (the first 3 "
                               "are listed one by one)")
    assert page.total == store.counters(cid).job_errors == 9 == store.counters(cid).failed
    assert [(e.line_no, e.occurrences) for e in store.job_errors(other, 0, 50).items] == [
        (101, 1), (102, 1)]
    assert query(store, "SELECT COUNT(*) FROM campaign_job_errors WHERE campaign_id = ?",
                 (cid,)) == [(4,)]
    assert_consistent(store, cid)
    assert_consistent(store, other)


def test_a_summary_row_does_not_hide_other_job_errors(open_more: Callable[..., Store]) -> None:
    """Only retry exhaustions are capped: a file's parse errors (line numbers too) and
    engine job errors stay listed one by one, before and after the summary row."""
    store = open_more(retry_exhausted_errors_listed=1)
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(4), T0)
    store.add_job_errors(cid, [JobError(7, "parse", "bad line")], T0)
    store.record_submit_results(_exhausted(store.claim_for_send(cid, 3, T0)), T0)
    store.add_job_errors(cid, [JobError(0, "store_unavailable", "store unavailable")], T0)
    page = store.job_errors(cid, 0, 50)
    assert [(e.line_no, e.reason, e.occurrences) for e in page.items] == [
        (7, "parse", 1), (1, RETRY_EXHAUSTED, 1), (0, RETRY_EXHAUSTED, 2),
        (0, "store_unavailable", 1)]
    assert page.total == 5
    assert_consistent(store, cid)


def test_two_nodes_exhausting_one_campaign_at_once_keep_one_summary(
        open_more: Callable[..., Store], backend: str) -> None:
    """PostgreSQL: each node applies the failures of its own leases in its own transaction,
    at the same moment; the cap stays exact and the summary row one."""
    if backend != "postgres":
        pytest.skip("one writer on SQLite")
    nodes = [open_more(node_id=f"n{i}", retry_exhausted_errors_listed=5) for i in range(2)]
    cid = sending_campaign(nodes[0]).id or 0
    nodes[0].add_recipients(cid, rows(200), T0)
    batches = [[_exhausted(node.claim_for_send(cid, 20, T0)) for _ in range(5)]
               for node in nodes]
    start = threading.Barrier(len(nodes))
    errors: list[BaseException] = []

    def apply(node: Store, outcomes: list[list[SubmitOutcome]]) -> None:
        try:
            start.wait(10)
            for batch in outcomes:
                node.record_submit_results(batch, T0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(n, b)) for n, b in zip(nodes, batches,
                                                                            strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and not any(t.is_alive() for t in threads)
    page = nodes[0].job_errors(cid, 0, 50)
    assert [e.line_no for e in page.items if e.line_no] and len(page.items) == 6
    assert [e.occurrences for e in page.items if e.line_no == 0] == [195]
    assert page.total == nodes[0].counters(cid).job_errors == 200
    assert_consistent(nodes[0], cid)


def test_an_smsc_refusing_everything_writes_a_bounded_list(store: Store) -> None:
    """With the default cap: 1200 exhaustions are 1000 rows with their line numbers and one
    summary row for the other 200, not 1200 rows."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(1200), T0)
    for _ in range(3):
        store.record_submit_results(_exhausted(store.claim_for_send(cid, 400, T0)), T0)
    assert query(store, "SELECT COUNT(*) FROM campaign_job_errors WHERE campaign_id = ?",
                 (cid,)) == [(1001,)]
    page = store.job_errors(cid, 1000, 50)
    assert [(e.line_no, e.reason) for e in page.items] == [(0, RETRY_EXHAUSTED)]
    assert page.total == store.counters(cid).job_errors == 1200
    assert page.items[0].message.startswith("200 more submits failed")
    assert_consistent(store, cid)
