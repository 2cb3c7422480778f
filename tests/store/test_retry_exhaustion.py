"""A submit that failed once the retries of a transient SMSC error ran out is a job error of
its campaign (seeds/003: "Workflow / infrastructure errors from core (e.g. file parsing
failures, retry exhaustion)"), recorded with the recipient's line number in the transaction
that applies the failure: exactly once, never for a stale replay. Runs on every backend."""

from __future__ import annotations

from store_fixtures import T0, rows, sending_campaign
from test_dispatch_path import assert_consistent

from dispatch.store.base import RETRY_EXHAUSTED, Store, SubmitKind, SubmitOutcome


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
