"""Random dispatch-path sequences checked against a small Python model of the store's rules
(``dispatch.store.base``), on every backend: per-recipient stage, result, receipt mask and
stat, and every counter and daily-activity sum, after claims, submit results of every kind
(multipart up to 63 segments, duplicated and replayed batches, results for rows no longer in
flight), receipts (final, intermediate, duplicated, ahead of their submit result, for unknown
ids, ids differing only in case), releases of held recipients, expiry, purge and retry of
parked receipts, and restarts that lose the results of the last batch."""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from store_fixtures import T0, move, query, rows, sending_campaign

from dispatch.campaigns.lifecycle import AuditEntry, Event
from dispatch.campaigns.model import CampaignStatus, SmsResult
from dispatch.store import open_store
from dispatch.store.base import (
    COUNTER_FIELDS,
    Receipt,
    RecoveryPolicy,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.rows import day_of, to_us

ESMES = ("smsc1", "smsć-ünïcode-" + "é" * 40)
LONG = "ошибка " * 700  # long unicode text


@dataclass
class Rec:
    cid: int
    stage: str = "New"
    result: str | None = None
    mask: int = 0
    dlv: int = 0
    segs: int = 0
    stat: str | None = None
    ambiguous: int = 0
    expired: bool = False
    sent_day: str | None = None
    done_day: str | None = None


class Model:
    def __init__(self) -> None:
        self.recs: dict[int, Rec] = {}
        self.mids: dict[tuple[str, str], tuple[int, int]] = {}
        self.parked: list[tuple[tuple[str, str, str | None, str | None, str | None],
                                int]] = []
        self.expired_campaigns: set[int] = set()

    def receipt(self, esme: str, mid: str, stat: str | None, result: str | None,
                done_day: str | None, day: str) -> bool:
        entry = self.mids.get((esme, mid))
        if entry is None:
            return False
        r = self.recs[entry[0]]
        bit = 1 << entry[1]
        if r.mask & bit:
            return True
        if result is None:
            if r.result is None:
                r.stat = stat
            return True
        r.mask |= bit
        if result == "delivered":
            r.dlv += 1
        if r.result == "failed":
            return True
        r.stat = stat
        new = r.result
        if result == "failed":
            new = "failed"
        elif r.mask.bit_count() >= r.segs:
            new = "delivered" if r.dlv >= r.segs else "unknown"
        if new != r.result:
            r.result = new
            r.done_day = done_day or day
        return True

    def expire_new(self, cid: int, day: str, stages: tuple[str, ...] = ("New",)) -> None:
        for r in self.recs.values():
            if r.cid == cid and r.stage in stages:
                r.stage, r.expired, r.done_day = "Failed", True, day

    def counters(self, cid: int) -> dict[str, int]:
        rs = [r for r in self.recs.values() if r.cid == cid]
        stage = Counter(r.stage for r in rs)
        res = Counter(r.result for r in rs)
        return {"total": len(rs), "pending": stage["New"], "inflight": stage["Sending"],
                "sent": stage["Delivered"], "failed": stage["Failed"],
                "expired": sum(r.expired for r in rs), "delivered": res["delivered"],
                "undelivered": res["failed"], "unknown": res["unknown"],
                "ambiguous": sum(r.ambiguous for r in rs), "held": stage["Held"]}

    def daily(self, cid: int) -> dict[str, tuple[int, int, int]]:
        acc: dict[str, Counter[str]] = {}
        for r in self.recs.values():
            if r.cid != cid:
                continue
            if r.sent_day:
                acc.setdefault(r.sent_day, Counter())["sent"] += 1
            if r.result == "delivered":
                acc.setdefault(r.done_day or "", Counter())["delivered"] += 1
            if r.stage == "Failed" or r.result == "failed":
                acc.setdefault(r.done_day or "", Counter())["failed"] += 1
        return {d: (c["sent"], c["delivered"], c["failed"]) for d, c in acc.items()}


def check(store: Store, model: Model, cids: list[int], seed: int) -> None:
    for cid in cids:
        k = store.counters(cid)
        got = {f: getattr(k, f) for f in COUNTER_FIELDS if f != "job_errors"}
        assert got == model.counters(cid), f"seed {seed} campaign {cid}"
        assert k.total == k.pending + k.inflight + k.sent + k.failed + k.held, f"seed {seed}"
        assert k.delivered + k.undelivered + k.unknown - k.ambiguous <= k.sent, f"seed {seed}"
        days = {d.day: (d.sent, d.delivered, d.failed) for d in store.daily_activity(cid)
                if (d.sent, d.delivered, d.failed) != (0, 0, 0)}
        assert days == model.daily(cid), f"seed {seed} campaign {cid}"
        assert (sum(d[0] for d in days.values()), sum(d[1] for d in days.values()),
                sum(d[2] for d in days.values())) == (
            k.sent, k.delivered, k.failed + k.undelivered), f"seed {seed} campaign {cid}"
    db = {r[0]: r[1:] for r in query(
        store, "SELECT id, stage, sms_result, dlr_mask, receipt_stat, ambiguous, segments "
        "FROM recipients")}
    want = {rid: (r.stage, r.result, r.mask, r.stat, r.ambiguous, r.segs)
            for rid, r in model.recs.items()}
    assert db == want, f"seed {seed}"


# More seeds for a longer hunt: INTEGRITY_SEEDS=1-200 (a range) or a comma list.
_SPEC = os.environ.get("INTEGRITY_SEEDS", "11,12,13")
SEEDS = (list(range(int(_SPEC.split("-")[0]), int(_SPEC.split("-")[1]) + 1)) if "-" in _SPEC
         else [int(x) for x in _SPEC.split(",")])


@pytest.mark.parametrize("seed", SEEDS)
def test_random_sequences_match_the_model(store_config: StoreConfig, seed: int) -> None:
    rng = random.Random(seed)
    store = open_store(store_config)
    model = Model()
    try:
        cids = [sending_campaign(store).id or 0 for _ in range(2)]
        inflight: list[int] = []  # claimed, results not recorded yet
        last_batch: list[SubmitOutcome] = []
        seq = 0
        for step in range(160):
            now = T0 + timedelta(hours=5 * step)
            day = day_of(to_us(now))
            cid = rng.choice(cids)
            op = rng.random()
            if op < 0.12:
                held = rng.random() < 0.3
                n = rng.randint(1, 9)
                before = set(model.recs)
                store.add_recipients(cid, rows(n, start=step * 100), now, held=held)
                new_ids = sorted(r[0] for r in query(
                    store, "SELECT id FROM recipients WHERE campaign_id = ?", (cid,))
                    if r[0] not in before)
                for rid in new_ids:
                    model.recs[rid] = Rec(cid, stage="Held" if held else "New")
            elif op < 0.17:
                held_ids = sorted(rid for rid, r in model.recs.items()
                                  if r.cid == cid and r.stage == "Held")
                count = rng.randint(0, 4)
                out = store.release_held(cid, None, count, AuditEntry("t", "trigger", "", now))
                assert out.released == min(count, len(held_ids)), f"seed {seed}"
                for rid in held_ids[:count]:
                    model.recs[rid].stage = "New"
            elif op < 0.40:
                claimed = store.claim_for_send(cid, rng.randint(1, 8), now)
                want = sorted(rid for rid, r in model.recs.items()
                              if r.cid == cid and r.stage == "New")[:len(claimed)]
                assert [c.id for c in claimed] == want, f"seed {seed}"
                # Only a Sending campaign is claimed from (recipients added after expiry stay)
                assert not (claimed and cid in model.expired_campaigns), f"seed {seed}"
                for c in claimed:
                    model.recs[c.id].stage = "Sending"
                inflight.extend(c.id for c in claimed)
            elif op < 0.62 and inflight:
                rng.shuffle(inflight)
                k = rng.randint(1, 6)
                take, inflight = inflight[:k], inflight[k:]
                outcomes = []
                batch_ids: list[tuple[str, str]] = []
                for rid in take:
                    kind = rng.choice([SubmitKind.ACCEPTED] * 4 + [SubmitKind.FAILED,
                                      SubmitKind.RETRY, SubmitKind.UNKNOWN])
                    esme = rng.choice(ESMES)
                    if kind is SubmitKind.ACCEPTED:
                        nseg = rng.choice([1, 1, 2, 3, 63])
                        mids = []
                        for _ in range(nseg):
                            reuse = [m for e, m in list(model.mids) + batch_ids if e == esme]
                            if reuse and rng.random() < 0.1:  # recycled by the SMSC
                                mids.append(rng.choice(reuse))
                            else:
                                seq += 1
                                mids.append(f"m{seq:x}")
                        batch_ids.extend((esme, m) for m in mids)
                        outcomes.append(SubmitOutcome(rid, kind, esme, tuple(mids), "ESME_ROK"))
                    else:
                        outcomes.append(SubmitOutcome(rid, kind, esme, (), "ESME_RX",
                                                      rng.choice([None, "", LONG])))
                if outcomes and rng.random() < 0.2:  # a duplicate in the batch: first wins
                    outcomes.append(outcomes[0]._replace(kind=SubmitKind.FAILED))
                if rng.random() < 0.1:
                    # a crash: the results of this batch were never written; restart
                    inflight.extend(take)
                    store.close()
                    store = open_store(store_config)
                    policy = rng.choice(list(RecoveryPolicy))
                    store.recover_inflight(policy, now)
                    for rid in inflight:
                        r = model.recs[rid]
                        if policy is RecoveryPolicy.RESEND:
                            r.stage = "New"
                        else:
                            r.stage, r.result, r.ambiguous, r.done_day = (
                                "Failed", "unknown", 1, day)
                    for c in model.expired_campaigns:  # nothing New or Held stays there
                        model.expire_new(c, day, ("New", "Held"))
                    inflight = []
                    last_batch = outcomes  # arrives late, after the restart: all stale
                    continue
                tally = store.record_submit_results(outcomes, now)
                applied = set()
                retried_cids = set()
                for o in outcomes:
                    if o.recipient_id in applied:
                        continue
                    applied.add(o.recipient_id)
                    r = model.recs[o.recipient_id]
                    assert r.stage == "Sending"
                    if o.kind is SubmitKind.ACCEPTED:
                        r.stage, r.segs, r.sent_day = "Delivered", len(o.message_ids), day
                        for i, m in enumerate(o.message_ids):
                            model.mids[(o.esme, m)] = (o.recipient_id, i)
                    elif o.kind is SubmitKind.RETRY:
                        r.stage = "New"
                        retried_cids.add(r.cid)
                    elif o.kind is SubmitKind.UNKNOWN:
                        r.stage, r.result, r.ambiguous, r.done_day = "Failed", "unknown", 1, day
                    else:
                        r.stage, r.done_day = "Failed", day
                for c in retried_cids & model.expired_campaigns:
                    model.expire_new(c, day)
                still = []
                matched = 0
                stored = {(o.esme, m) for o in outcomes if o.kind is SubmitKind.ACCEPTED
                          for m in o.message_ids}
                for rc, at in model.parked:
                    if (rc[0], rc[1]) in stored:
                        model.receipt(*rc, day=day)
                        matched += 1
                    else:
                        still.append((rc, at))
                model.parked = still
                assert tally.stale == 0 and tally.receipts_matched == matched, f"seed {seed}"
                last_batch = outcomes
            elif op < 0.66 and last_batch and all(
                    model.recs[o.recipient_id].stage != "Sending" for o in last_batch):
                # (a replay after its recipient was claimed again would apply to the new
                # attempt: results name recipients, not attempts)
                tally = store.record_submit_results(last_batch, now)  # a replay: all stale
                assert tally.stale == len({o.recipient_id for o in last_batch}), f"seed {seed}"
                assert tally.accepted == tally.failed == tally.retried == 0, f"seed {seed}"
            elif op < 0.86:
                batch: list[Receipt] = []
                known = list(model.mids)
                for _ in range(rng.randint(1, 8)):
                    res = rng.choice([SmsResult.DELIVERED, SmsResult.DELIVERED,
                                      SmsResult.FAILED, SmsResult.UNKNOWN, None])
                    stat = {SmsResult.DELIVERED: "DELIVRD", SmsResult.FAILED: "UNDELIV",
                            SmsResult.UNKNOWN: "UNKNOWN", None: "ENROUTE"}[res]
                    pick = rng.random()
                    if known and pick < 0.75:
                        esme, mid = rng.choice(known)
                    elif pick < 0.9:  # ahead of its submit result (the next ids drawn)
                        esme, mid = rng.choice(ESMES), f"m{seq + rng.randint(1, 6):x}"
                    else:  # a receipt for an id never seen, or one differing in case only
                        esme, mid = rng.choice(ESMES), rng.choice(["nope", "M1", "0m1"])
                    batch.append(Receipt(esme, mid, stat, "000", res,
                                         now if rng.random() < 0.5 else None))
                if batch and rng.random() < 0.3:
                    batch.append(batch[0])  # a duplicate
                matched = store.record_receipts(batch, now)
                want = 0
                for rc in batch:
                    result = None if rc.sms_result is None else rc.sms_result.value
                    done = None if rc.done_at is None else day_of(to_us(rc.done_at))
                    if model.receipt(rc.esme, rc.message_id, rc.stat, result, done, day):
                        want += 1
                    else:
                        model.parked.append(((rc.esme, rc.message_id, rc.stat, result, done),
                                             step))
                assert matched == want, f"seed {seed}"
            elif op < 0.90:
                matched = store.retry_unmatched_receipts(now)
                still, want = [], 0
                for rc, at in model.parked:
                    if model.receipt(*rc, day=day):
                        want += 1
                    else:
                        still.append((rc, at))
                model.parked = still
                assert matched == want, f"seed {seed}"
            elif op < 0.93:
                cutoff = step - 10
                purged = store.purge_unmatched_receipts(T0 + timedelta(hours=5 * cutoff))
                before = len(model.parked)
                model.parked = [(rc, at) for rc, at in model.parked if at >= cutoff]
                assert purged == before - len(model.parked), f"seed {seed}"
            elif op < 0.95 and cid not in model.expired_campaigns:
                _expire(store, cid, now)
                model.expired_campaigns.add(cid)
                model.expire_new(cid, day, ("New", "Held"))
            assert store.unmatched_receipt_count() == len(model.parked), f"seed {seed}"
            if step % 10 == 0:
                check(store, model, cids, seed)
        check(store, model, cids, seed)
    finally:
        store.close()


def _expire(store: Store, cid: int, now: datetime) -> None:
    """Expired at ``now`` (through the lifecycle's own transitions), which marks the unsent."""
    c = store.get_campaign(cid)
    assert c is not None
    if c.status is CampaignStatus.NEW:
        for event in (Event.APPROVE, Event.BUILD, Event.BUILT):
            move(store, cid, event)
    move(store, cid, Event.EXPIRE, at=now)
    assert store.mark_unsent(cid, now) == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_two_postgres_nodes_match_the_model(pg_dsn: str, seed: int) -> None:
    """Two nodes on one database: claims, results and receipts on either node, a node
    leaving (its leases resolved by policy, its counter rows folded) and coming back while
    its last answers arrive late (stale: fenced by the lease)."""
    from dispatch.store.postgres import PostgresStore

    rng = random.Random(seed)
    config = StoreConfig(dsn=pg_dsn, insert_batch_rows=5)
    nodes = {n: PostgresStore(config, node_id=n) for n in ("a", "b")}
    model = Model()
    try:
        for s in nodes.values():
            s.register_node()
        cids = [sending_campaign(nodes["a"]).id or 0 for _ in range(2)]
        inflight: dict[str, list[int]] = {"a": [], "b": []}
        late: dict[str, list[SubmitOutcome]] = {"a": [], "b": []}
        seq = 0
        for step in range(120):
            now = T0 + timedelta(hours=5 * step)
            day = day_of(to_us(now))
            name = rng.choice("ab")
            node = nodes[name]
            cid = rng.choice(cids)
            op = rng.random()
            if op < 0.12:
                before = set(model.recs)
                node.add_recipients(cid, rows(rng.randint(1, 9), start=step * 100), now)
                for (rid,) in query(node, "SELECT id FROM recipients WHERE campaign_id = ?",
                                    (cid,)):
                    if rid not in before:
                        model.recs[rid] = Rec(cid)
            elif op < 0.35:
                claimed = node.claim_for_send(cid, rng.randint(1, 8), now)
                for c in claimed:
                    assert model.recs[c.id].stage == "New", f"seed {seed}"
                    model.recs[c.id].stage = "Sending"
                inflight[name].extend(c.id for c in claimed)
            elif op < 0.6 and inflight[name]:
                k = rng.randint(1, 6)
                take, inflight[name] = inflight[name][:k], inflight[name][k:]
                outcomes = []
                for rid in take:
                    kind = rng.choice([SubmitKind.ACCEPTED] * 3 + [SubmitKind.FAILED,
                                      SubmitKind.RETRY, SubmitKind.UNKNOWN])
                    mids: tuple[str, ...] = ()
                    if kind is SubmitKind.ACCEPTED:
                        n = rng.choice([1, 2, 3])
                        mids = tuple(f"m{seq + i + 1:x}" for i in range(n))
                        seq += n
                    outcomes.append(SubmitOutcome(rid, kind, "smsc1", mids))
                tally = node.record_submit_results(outcomes, now)
                assert tally.stale == 0, f"seed {seed}"
                stored = set()
                for o in outcomes:
                    r = model.recs[o.recipient_id]
                    if o.kind is SubmitKind.ACCEPTED:
                        r.stage, r.segs, r.sent_day = "Delivered", len(o.message_ids), day
                        for i, m in enumerate(o.message_ids):
                            model.mids[(o.esme, m)] = (o.recipient_id, i)
                            stored.add((o.esme, m))
                    elif o.kind is SubmitKind.RETRY:
                        r.stage = "New"
                    elif o.kind is SubmitKind.UNKNOWN:
                        r.stage, r.result, r.ambiguous, r.done_day = "Failed", "unknown", 1, day
                    else:
                        r.stage, r.done_day = "Failed", day
                still = []
                for rc, at in model.parked:
                    if (rc[0], rc[1]) in stored:
                        model.receipt(*rc, day=day)
                    else:
                        still.append((rc, at))
                model.parked = still
            elif op < 0.8:
                batch = []
                for _ in range(rng.randint(1, 6)):
                    res = rng.choice([SmsResult.DELIVERED, SmsResult.FAILED,
                                      SmsResult.UNKNOWN, None])
                    mid = (rng.choice([m for _, m in model.mids]) if model.mids
                           and rng.random() < 0.8 else f"m{seq + rng.randint(1, 4):x}")
                    batch.append(Receipt("smsc1", mid, "S", None, res, None))
                node.record_receipts(batch, now)
                for rc in batch:
                    result = None if rc.sms_result is None else rc.sms_result.value
                    if not model.receipt("smsc1", rc.message_id, rc.stat, result, None, day):
                        model.parked.append((("smsc1", rc.message_id, rc.stat, result, None),
                                             step))
            elif op < 0.85:
                node.retry_unmatched_receipts(now)
                still = []
                for rc, at in model.parked:
                    if not model.receipt(*rc, day=day):
                        still.append((rc, at))
                model.parked = still
            elif op < 0.92:
                # The node leaves with answers still to come; they arrive after its return.
                policy = rng.choice(list(RecoveryPolicy))
                node.leave_cluster(policy, now)
                for rid in inflight[name]:
                    r = model.recs[rid]
                    if policy is RecoveryPolicy.RESEND:
                        r.stage = "New"
                    else:
                        r.stage, r.result, r.ambiguous, r.done_day = "Failed", "unknown", 1, day
                late[name] = [SubmitOutcome(rid, SubmitKind.ACCEPTED, "smsc1", (f"late{rid}",))
                              for rid in inflight[name]]
                inflight[name] = []
                node.register_node()
            elif late[name]:
                # Late answers for leases resolved when the node left: all stale, unless the
                # recipient was claimed again by this node (results name recipients).
                batch_late = [o for o in late[name] if o.recipient_id not in inflight[name]]
                tally = node.record_submit_results(batch_late, now)
                assert tally.stale == len(batch_late), f"seed {seed}"
                late[name] = []
            if step % 10 == 0:
                for s in nodes.values():
                    check(s, model, cids, seed)
        check(nodes["b"], model, cids, seed)
    finally:
        for s in nodes.values():
            s.close()
