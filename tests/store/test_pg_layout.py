"""PostgreSQL's hot-path layout (migration 5): upgrading a database that has data in every stage
from version 4, HOT updates of ``recipients`` on the dispatch path, and per-node counter rows
that are folded when their node leaves or dies without changing any sum."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from store_fixtures import T0, rows, sending_campaign

from dispatch.campaigns.lifecycle import AuditEntry
from dispatch.campaigns.model import SmsResult
from dispatch.store.base import (
    Receipt,
    RecipientFilter,
    RecoveryPolicy,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.migrations import MIGRATIONS, migrate
from dispatch.store.postgres import PostgresStore

ACC = SubmitKind.ACCEPTED
T0_US = int(T0.timestamp() * 1_000_000)


def sql(dsn: str, text: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else []


def _version_4_database(dsn: str) -> int:
    """A campaign written the way version 4 stored it: recipients New, Held, Sending (one
    leased by a node that is gone, one unowned), Delivered with a message id and a receipt
    still to come; its one counters row and daily row. Returns the campaign id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert migrate(conn, 0, target=4) == (0, 4)
        cid = conn.execute(
            "INSERT INTO campaigns (external_id, sender, sender_lower, text, data_coding, mode, "
            "kind, auto_start, priority, registered_delivery, esme, author, created_at_us, "
            "status, status_changed_at_us) VALUES ('7c3e0c57-0d0e-4a55-9a52-3c2b8d2f4a10', "
            "'ACME', 'acme', 'Hi', 'auto', 'OnDemand', 'bulk', 1, 0, 1, 'smsc1', 'ann', "
            "%s, 'Sending', %s) RETURNING id", (T0_US, T0_US)).fetchone()[0]  # type: ignore[index]
        stages = [("New", None), ("New", None), ("Held", None), ("Held", None),
                  ("Sending", "gone-node"), ("Sending", None), ("Delivered", "gone-node")]
        for i, (stage, owner) in enumerate(stages):
            conn.execute(
                "INSERT INTO recipients (campaign_id, line_no, ctn_hash, masked, number, stage, "
                "created_at_us, lease_owner, attempts, esme, message_ids, segments, "
                "sent_at_us) VALUES (%s, %s, %s, '*****', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (cid, i + 1, i.to_bytes(16, "big"), f"+4917{i:09d}", stage, T0_US, owner,
                 int(stage in ("Sending", "Delivered")),
                 "smsc1" if stage == "Delivered" else None,
                 "old-mid" if stage == "Delivered" else None, int(stage == "Delivered"),
                 T0_US if stage == "Delivered" else None))
        delivered_id = conn.execute("SELECT id FROM recipients WHERE stage = 'Delivered'"
                                    ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO message_ids VALUES ('smsc1', 'old-mid', %s, 0)",
                     (delivered_id,))
        conn.execute("INSERT INTO campaign_counters (campaign_id, total, pending, held, "
                     "inflight, sent) VALUES (%s, 7, 2, 2, 2, 1)", (cid,))
        conn.execute("INSERT INTO campaign_daily_activity (campaign_id, day, sent) "
                     "VALUES (%s, '2026-03-01', 1)", (cid,))
    return int(cid)


def test_a_version_4_database_with_data_upgrades_and_keeps_working(pg_dsn: str) -> None:
    cid = _version_4_database(pg_dsn)
    store = PostgresStore(StoreConfig(dsn=pg_dsn, node_timeout_s=0.5), node_id="new-node")
    try:
        assert store.schema_version == len(MIGRATIONS) == 6
        k = store.counters(cid)
        assert (k.total, k.pending, k.held, k.inflight, k.sent) == (7, 2, 2, 2, 1)
        assert [(d.day, d.sent) for d in store.daily_activity(cid)] == [("2026-03-01", 1)]
        # The in-flight rows of the old layout are leases now: the gone node's and the
        # unowned one are resolved at start, never resent under mark_unknown.
        assert store.recover_inflight(RecoveryPolicy.MARK_UNKNOWN, T0).marked_unknown == 2
        # New rows are claimable (in id order), Held ones only once triggered.
        claimed = store.claim_for_send(cid, 10, T0)
        assert [c.attempts for c in claimed] == [1, 1]
        assert claimed == sorted(claimed)
        assert store.release_held(cid, None, 10, AuditEntry("ann", "trigger", "", T0)).released == 2
        assert len(store.claim_for_send(cid, 10, T0)) == 2
        # The receipt for the submit acknowledged before the upgrade still matches.
        assert store.record_receipts([Receipt("smsc1", "old-mid", "DELIVRD", "000",
                                              SmsResult.DELIVERED, T0)], T0) == 1
        tally = store.record_submit_results(
            [SubmitOutcome(c.id, ACC, "smsc1", (f"m{c.id}",)) for c in claimed], T0)
        assert tally.accepted == 2
        k = store.counters(cid)
        assert (k.pending, k.held, k.inflight, k.sent, k.delivered, k.unknown) == (
            0, 0, 2, 3, 1, 2)
        assert sql(pg_dsn, "SELECT count(*) FROM recipient_queue") == [(0,)]
    finally:
        store.close()


def _updates(dsn: str, expected: int) -> tuple[int, int]:
    """(updates, HOT updates) of ``recipients`` once the backends reported ``expected``
    updates (statistics reach the shared view asynchronously; bounded wait)."""
    for _ in range(100):
        row = sql(dsn, "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                  "WHERE relid = 'recipients'::regclass")
        if row and row[0][0] >= expected:
            return int(row[0][0]), int(row[0][1])
        time.sleep(0.1)
    raise AssertionError(f"statistics never reached {expected} updates: {row}")


def test_the_dispatch_cycle_updates_recipients_hot(pg_dsn: str) -> None:
    store = PostgresStore(StoreConfig(dsn=pg_dsn), node_id="n1")
    try:
        cid = sending_campaign(store).id or 0
        store.add_recipients(cid, rows(600), T0)
        for _ in range(20):  # bounded: 600 rows / 100 per claim
            claimed = store.claim_for_send(cid, 100, T0)
            if not claimed:
                break
            store.record_submit_results(
                [SubmitOutcome(c.id, ACC, "smsc1", (f"m{c.id}",)) for c in claimed], T0)
            store.record_receipts([Receipt("smsc1", f"m{c.id}", "DELIVRD", "000",
                                           SmsResult.DELIVERED, T0) for c in claimed], T0)
        assert store.counters(cid).delivered == 600
    finally:
        store.close()  # the pool's backends exit and report their statistics
    updates, hot = _updates(pg_dsn, 3 * 600)
    assert updates == 3 * 600
    assert hot >= updates // 2, (updates, hot)  # measured ~87 %; none before migration 5


def test_counter_rows_of_nodes_that_left_or_died_fold_into_the_base_row(pg_dsn: str) -> None:
    config = StoreConfig(dsn=pg_dsn, node_timeout_s=0.3)
    a, b = PostgresStore(config, node_id="a"), PostgresStore(config, node_id="b")
    try:
        a.register_node()
        b.register_node()
        cid = sending_campaign(a).id or 0
        a.add_recipients(cid, rows(30), T0)
        for node in (a, b):
            claimed = node.claim_for_send(cid, 10, T0)
            node.record_submit_results(
                [SubmitOutcome(c.id, ACC, "smsc1", (f"{node.node_id}{c.id}",))
                 for c in claimed[:6]], T0)
        before = a.counters(cid)
        assert (before.sent, before.inflight, before.pending) == (12, 8, 10)

        def owners() -> list[str]:
            return [r[0] for r in sql(pg_dsn, "SELECT node_id FROM campaign_counter_rows "
                                      "WHERE campaign_id = %s ORDER BY 1", (cid,))]

        assert owners() == ["", "a", "b"]
        b.leave_cluster(RecoveryPolicy.RESEND, T0)  # its 4 unanswered rows go back to New
        assert owners() == ["", "a"]
        k = a.counters(cid)
        assert (k.sent, k.inflight, k.pending) == (12, 4, 14)
        time.sleep(0.5)  # a falls silent; b (back) takes a over
        b.register_node()
        b.take_over_dead_nodes(RecoveryPolicy.MARK_UNKNOWN, T0)
        assert owners() == ["", "b"]  # a folded; b's new row has what the takeover counted
        k = b.counters(cid)
        assert (k.sent, k.inflight, k.pending, k.ambiguous) == (12, 0, 14, 4)
        assert [(d.sent, d.failed) for d in b.daily_activity(cid)] == [(12, 4)]
    finally:
        a.close()
        b.close()


def test_receipts_of_one_multipart_message_on_two_nodes_at_once(pg_dsn: str) -> None:
    """Both nodes ask for the recipient's row lock while a third connection holds it; the
    one that gets it second reads what the first wrote (the per-segment mask), so both
    segments count and the recipient is delivered once."""
    a, b = (PostgresStore(StoreConfig(dsn=pg_dsn), node_id=n) for n in ("a", "b"))
    try:
        cid = sending_campaign(a).id or 0
        a.add_recipients(cid, rows(1), T0)
        (r,) = a.claim_for_send(cid, 1, T0)
        a.record_submit_results([SubmitOutcome(r.id, ACC, "smsc1", ("s0", "s1"))], T0)
        results: dict[str, int] = {}
        with psycopg.connect(pg_dsn) as holder:
            holder.execute("SELECT 1 FROM recipients WHERE id = %s FOR UPDATE", (r.id,))
            threads = [threading.Thread(target=lambda s=s, m=m: results.__setitem__(
                m, s.record_receipts([Receipt("smsc1", m, "DELIVRD", "000",
                                              SmsResult.DELIVERED, T0)], T0)))
                for s, m in ((a, "s0"), (b, "s1"))]
            for t in threads:
                t.start()
            for _ in range(200):  # bounded: both lookups queue behind the holder's lock
                waiting = sql(pg_dsn, "SELECT count(*) FROM pg_stat_activity "
                              "WHERE wait_event_type = 'Lock' AND query LIKE %s",
                              ("SELECT k.esme, k.mid%",))
                if waiting[0][0] == 2:
                    break
                time.sleep(0.05)
            assert waiting[0][0] == 2
            holder.rollback()
        for t in threads:
            t.join(timeout=30)
        assert results == {"s0": 1, "s1": 1}
        k = a.counters(cid)
        assert (k.delivered, k.unknown, k.undelivered) == (1, 0, 0)
        (view,) = a.list_recipients(cid, RecipientFilter()).items
        assert view.sms_result is SmsResult.DELIVERED
        assert sql(pg_dsn, "SELECT dlr_mask, dlr_delivered FROM recipients") == [(3, 2)]
    finally:
        a.close()
        b.close()
