"""Integrity of the message-id table when two submits get the same (normalised) id: the SMSC
recycled it, or two ids differ only in case or leading zeros, which the engine folds
(``dispatch.smpp.receipt.normalize_message_id``). The latest submit owns the id, where
"latest" is the order of the results in the batch (the order the answers came), the same on
every backend."""

from __future__ import annotations

from store_fixtures import T0, query, rows, sending_campaign

from dispatch.campaigns.model import SmsResult
from dispatch.smpp.receipt import MessageIdPolicy
from dispatch.store.base import Receipt, RecipientFilter, Store, SubmitKind, SubmitOutcome


def test_an_id_given_twice_in_one_batch_belongs_to_the_later_result(store: Store) -> None:
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(2), T0)
    low, high = store.claim_for_send(cid, 2, T0)
    policy = MessageIdPolicy()
    # The higher id's answer came first ("0ABC"), the lower id's second ("abc"): one key.
    first = policy.for_submit_resp("0ABC")
    second = policy.for_submit_resp("abc")
    assert first == second
    store.record_submit_results(
        [SubmitOutcome(high.id, SubmitKind.ACCEPTED, "smsc1", (first,)),
         SubmitOutcome(low.id, SubmitKind.ACCEPTED, "smsc1", (second,))], T0)
    assert query(store, "SELECT recipient_id FROM message_ids WHERE message_id = ?",
                 (first,)) == [(low.id,)]
    assert store.record_receipts(
        [Receipt("smsc1", policy.for_receipt("ABC"), "DELIVRD", "000", SmsResult.DELIVERED)],
        T0) == 1
    assert dict(query(store, "SELECT id, sms_result FROM recipients WHERE campaign_id = ?",
                      (cid,))) == {low.id: "delivered", high.id: None}


def test_a_stale_result_does_not_take_an_id_from_an_applied_one(store: Store) -> None:
    """A replayed answer for a recipient already settled is stale: it stores nothing, so it
    must not hide the id from the result applied next to it in the batch."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(2), T0)
    settled, live = store.claim_for_send(cid, 2, T0)
    store.record_submit_results([SubmitOutcome(settled.id, SubmitKind.FAILED, "smsc1")], T0)
    tally = store.record_submit_results(
        [SubmitOutcome(live.id, SubmitKind.ACCEPTED, "smsc1", ("x1", "x2")),
         SubmitOutcome(settled.id, SubmitKind.ACCEPTED, "smsc1", ("x2",))], T0)
    assert (tally.accepted, tally.stale) == (1, 1)
    assert query(store, "SELECT message_id, recipient_id, segment FROM message_ids "
                 "ORDER BY message_id") == [("x1", live.id, 0), ("x2", live.id, 1)]
    assert store.record_receipts(
        [Receipt("smsc1", m, "DELIVRD", "000", SmsResult.DELIVERED) for m in ("x1", "x2")],
        T0) == 2
    k = store.counters(cid)
    assert (k.sent, k.failed, k.delivered) == (1, 1, 1)
    assert store.unmatched_receipt_count() == 0


def test_a_message_id_too_long_for_an_index_is_stored_and_matched(store: Store) -> None:
    """An id of thousands of characters (an SMSC's broken submit_sm_resp or receipt text):
    PostgreSQL's B-tree refused it (index row size limit), so the accepted submit was
    recorded as unknown and the receipt dropped by the writer, where SQLite kept both."""
    cid = sending_campaign(store).id or 0
    store.add_recipients(cid, rows(1), T0)
    (r,) = store.claim_for_send(cid, 1, T0)
    long_id = "".join(f"{i:x}" for i in range(2000))  # 6,000+ characters, incompressible
    other = long_id[::-1]
    tally = store.record_submit_results(
        [SubmitOutcome(r.id, SubmitKind.ACCEPTED, "smsc1", (long_id,))], T0)
    assert tally.accepted == 1
    assert store.record_receipts(
        [Receipt("smsc1", other, "DELIVRD", "000", SmsResult.DELIVERED)], T0) == 0
    assert store.unmatched_receipt_count() == 1
    assert store.record_receipts(
        [Receipt("smsc1", long_id, "DELIVRD", "000", SmsResult.DELIVERED)], T0) == 1
    (view,) = store.list_recipients(cid, RecipientFilter()).items
    assert view.message_ids == (long_id,) and view.sms_result is SmsResult.DELIVERED
    assert store.counters(cid).delivered == 1
