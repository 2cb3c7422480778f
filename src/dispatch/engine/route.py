"""One ESME route: feeds its Sending campaigns into the route's ``BindPool`` and turns the
pool's events into store writes.

Feeding: every ``tick_s`` the route splits its capacity between its campaigns by weighted
max-min fairness (``fair_share``: priority is the weight, a campaign's demand is its TPS cap or
its Spread rate), accrues each campaign's allowance, and claims that many recipients from the
store (claimed = durably in stage Sending before any byte is written), builds the messages and
queues them on the pool. A route never holds more than ``max_claimed_per_route`` recipients
claimed but unresolved: that bounds memory, the pool queue, and what a crash can leave
ambiguous. When the ESME has no TPS contract (``tps = 0``) the capacity is "as fast as the
window allows", so allowances are split by weight from the free claim room instead.

A campaign's TPS cap is also held at send time (``_CapWindow``): sized at claim time alone, a
claim that waited in the pool's queue (behind other campaigns, a throttle pause, a bind coming
back) went out in a burst, 100 messages in one second for a cap of 50.

Outcomes: ``SubmitOutcome`` and ``ReceiptEvent`` batches from the pool go to the group-commit
writer; ``MoMessage`` and ``BindFailure`` are counted and logged (numbers masked).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from dispatch.campaigns.model import Campaign, CampaignMode, SmsResult
from dispatch.campaigns.schedule import ShareRequest, fair_share, spread_rate_tps
from dispatch.engine.config import SchedulerConfig
from dispatch.engine.messages import MessageFactory
from dispatch.logs import log_event
from dispatch.smpp.receipt import SmsResult as ReceiptSmsResult
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import Receipt, SubmitKind, SubmitOutcome
from dispatch.store.cluster import share_of
from dispatch.store.faults import STORE_FAULTS
from dispatch.store.writer import GroupCommitWriter
from dispatch.transport import pool as pool_events
from dispatch.transport.pool import BindPool, SubmitStatus

log = logging.getLogger(__name__)

_BUILD_SLICE = 256

_RESULT = {r: SmsResult(r.value) for r in ReceiptSmsResult}
_KIND = {SubmitStatus.ACCEPTED: SubmitKind.ACCEPTED, SubmitStatus.FAILED: SubmitKind.FAILED,
         SubmitStatus.UNKNOWN: SubmitKind.UNKNOWN}


@dataclass
class _Feed:
    """A Sending campaign as the route sees it."""

    campaign: Campaign
    factory: MessageFactory
    allowance: float = 0.0
    exhausted: bool = False  # the last claim found no New recipient
    remaining_hint: int = 0  # New recipients, from the last counters read (Spread rate)


class _CapWindow:
    """Holds a campaign's TPS cap where the SMSC counts it, at send time, without knowing
    when the pool sends: at most ``cap`` of the campaign's messages may be *active* in any
    window of ``window_s``, a message being active from its claim until its submit outcome
    came back. Every submit of a message lies in that span, so the messages sent in any
    one-second window were all active within one window ending at the last claim among them,
    which allowed it only while at most ``cap`` were: never more than ``cap`` sends in any
    second, however long they waited in the pool. The price: a message waiting in the queue
    keeps its place in the count, so a campaign behind a deep queue sends below its cap.

    Counted in messages, like the claim allowance: a multipart message counts once, though
    each of its segments is a submit of its own. A cap below one message a second (0.5, or a
    cluster node's share of a small cap) allows one message per ``window_s / cap``: the one
    message counts that long after its outcome."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._span_s = window_s  # how long an outcome counts: window_s / cap below cap 1
        self.open = 0  # claimed, no outcome yet
        self._ended: deque[tuple[float, int]] = deque()  # (outcome time, messages)
        self._ended_count = 0

    def room(self, cap: float, now: float) -> int:
        """How many more messages may be claimed now under ``cap`` (a fraction of a message
        cannot go out; below one, one message per ``window_s / cap``)."""
        self._span_s = self.window_s if cap >= 1 else self.window_s / cap
        self._forget(now)
        return max(0, max(1, math.floor(cap)) - self.open - self._ended_count)

    def claimed(self, n: int) -> None:
        self.open += n

    def ended(self, n: int, now: float) -> None:
        """``n`` messages were resolved (outcome, withdrawn, given back) at ``now``."""
        self.open -= n
        if self._ended and self._ended[-1][0] == now:
            self._ended[-1] = (now, self._ended[-1][1] + n)
        else:
            self._ended.append((now, n))
        self._ended_count += n

    def idle(self, now: float) -> bool:
        self._forget(now)
        return self.open <= 0 and not self._ended

    def _forget(self, now: float) -> None:
        horizon = now - self._span_s
        ended = self._ended
        while ended and ended[0][0] <= horizon:
            self._ended_count -= ended.popleft()[1]


@dataclass
class RouteStatistics:
    esme: str
    campaigns: int
    claimed_unresolved: int
    claimed: int
    outcomes: int
    receipts: int
    mo_messages: int
    bind_failures: int
    last_bind_error: str
    released_on_shutdown: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    #: rows a claim leased whose answer was lost, put back to New (``Route._release_orphans``)
    orphans_released: int = 0


class Route:
    def __init__(self, name: str, pool: BindPool, store: AsyncStore, writer: GroupCommitWriter,
                 config: SchedulerConfig, clock: Callable[[], datetime]) -> None:
        self.name = name
        self.pool = pool
        self._store = store
        self._writer = writer
        self._config = config
        self._clock = clock
        self._feeds: dict[int, _Feed] = {}
        self._wakeup = trio.Event()
        self._unresolved = 0
        self._room_freed = trio.Event()
        self._claimed = self._outcomes = self._receipts = self._mo = self._bind_failures = 0
        self._released = 0
        self._campaign_of: dict[int, int] = {}  # claimed, unresolved recipient -> campaign
        self._withdrawn_pending: list[int] = []  # taken back from the pool, to release
        # Campaigns whose last claim failed: it may have committed with its answer lost.
        self._claims_in_doubt: set[int] = set()
        self._orphans_released = 0
        self._last_bind_error = ""
        # Capped campaigns' send-time windows; kept past a campaign's feed (paused and resumed
        # at once, its messages still in windows count) until idle.
        self._caps: dict[int, _CapWindow] = {}
        # A second as the SMSC counts it, with the pool's allowance for clock jitter.
        self._cap_window_s = 1.0 + pool.config.tps_guard_s
        # In a PostgreSQL cluster, the live nodes (``set_live_nodes``). 0 or 1: alone.
        self.live_nodes = 0
        self._contract_tps = pool.config.tps

    def set_live_nodes(self, live: int) -> None:
        """The cluster's live nodes changed (``ClusterMembership``): the ESME's TPS contract
        and each campaign's rates (TPS cap, Spread) are the cluster's, and this node sends its
        share of them (the pool its share of the contract; the feed reads ``pool.tps``)."""
        self.live_nodes = live
        self.pool.set_tps(share_of(self._contract_tps, live))

    # ------------------------------------------------------------------ campaign set

    def set_campaigns(self, campaigns: list[Campaign], remaining: dict[int, int]) -> None:
        """The control loop's view of this route's Sending campaigns (called every interval)."""
        wanted = {c.id: c for c in campaigns if c.id is not None}
        gone = [cid for cid in self._feeds if cid not in wanted]
        for cid in gone:
            del self._feeds[cid]
        if gone:
            self._withdraw(set(gone))
        for cid, campaign in wanted.items():
            feed = self._feeds.get(cid)
            if feed is None:
                self._feeds[cid] = _Feed(campaign, MessageFactory(campaign),
                                         remaining_hint=remaining.get(cid, 0))
                self._wakeup.set()
            else:
                feed.campaign = campaign
                feed.remaining_hint = remaining.get(cid, feed.remaining_hint)
                if feed.exhausted and feed.remaining_hint > 0:
                    feed.exhausted = False
                    self._wakeup.set()
        if self._caps:
            now = trio.current_time()
            for cid in [cid for cid, w in self._caps.items()
                        if cid not in self._feeds and w.idle(now)]:
                del self._caps[cid]

    def _withdraw(self, campaign_ids: set[int]) -> None:
        """Campaigns left the Sending set (paused, cancelled, expired): messages of theirs
        still queued in the pool are taken back and released to New at once, so a pause
        stops sending within one window's worth of in-flight submits."""
        refs = {rid for rid, cid in self._campaign_of.items() if cid in campaign_ids}
        taken = self.pool.withdraw(refs)
        if taken:
            ids = [m.ref for m in taken]
            self._resolved_caps([self._campaign_of.pop(rid, None) for rid in ids])
            self._unresolved -= len(ids)
            self._room_freed.set()
            self._withdrawn_pending.extend(ids)
            self._wakeup.set()

    def wake(self, campaign_id: int) -> None:
        """New recipients appeared for a campaign (trigger event, transactional add): claim
        again now. A campaign not yet fed (still Pending, Paused) is picked up by the control
        loop as usual."""
        feed = self._feeds.get(campaign_id)
        if feed is not None:
            feed.exhausted = False
            self._wakeup.set()

    def exhausted(self, campaign_id: int) -> bool:
        feed = self._feeds.get(campaign_id)
        return feed is None or feed.exhausted

    # ------------------------------------------------------------------ feeding

    def _rates(self, now: datetime) -> dict[int, float]:
        requests = []
        for cid, feed in self._feeds.items():
            if feed.exhausted:
                continue
            c = feed.campaign
            demand = self._cap_share(c) or math.inf
            if c.mode is CampaignMode.SPREAD and c.end_at is not None:
                if feed.remaining_hint <= 0:
                    # Nothing New by the last counters: the campaign has no demand, so no
                    # claim would ever come back short to mark it exhausted, and the control
                    # loop (which finishes a bulk campaign only once its feed is exhausted)
                    # would let it run into its end time and expire although all was sent.
                    feed.exhausted = True
                    continue
                # remaining_hint counts the whole cluster's New rows: share that rate too.
                spread = spread_rate_tps(feed.remaining_hint, now, c.end_at, c.window)
                demand = min(demand, share_of(spread, self.live_nodes))
            requests.append(ShareRequest(cid, float(c.priority), demand))
        # What the pool sends at now (in a cluster, this node's share of the contract):
        # splitting the whole contract while the pool sent a share made the route claim
        # faster than it sent, and the queue held thousands of claimed recipients.
        capacity = self.pool.tps if self.pool.tps > 0 else math.inf
        if math.isinf(capacity):
            # No contract: the window is the limit. Finite demands are met; the rest share by
            # weight whatever room the claim bound leaves (see _allow).
            return {r.key: r.demand_tps for r in requests}  # type: ignore[misc]
        return fair_share(capacity, requests)  # type: ignore[return-value]

    def _allow(self, rates: dict[int, float], dt_s: float, room: int) -> dict[int, int]:
        """How many recipients each campaign may claim now."""
        counts: dict[int, int] = {}
        unlimited = [cid for cid, r in rates.items() if math.isinf(r)]
        burst = self._config.claim_batch
        # Time the feed spent waiting (for the writer's backlog, for room, a stalled loop)
        # earns no catch-up: a TPS cap is a ceiling, and a second of waiting made a 50 TPS
        # campaign claim 100 at once. Ten ticks still cover a loop that runs late.
        dt_s = min(dt_s, 10 * self._config.tick_s)
        for cid, rate in rates.items():
            feed = self._feeds[cid]
            if math.isinf(rate):
                continue
            # At most two ticks' worth is kept (or one message plus a tick's worth, when a
            # tick grants less than one message): a campaign that could not claim for a
            # while does not burst. The cap is never below what is left over from the last
            # claim plus this tick's grant, or fractions would be cut off every few ticks
            # (a 30 TPS cap got 25 at 20 ms ticks, and Spread fell behind its schedule).
            grant = rate * dt_s
            feed.allowance = min(feed.allowance + grant, max(1.0, grant) + grant)
            counts[cid] = int(feed.allowance)
        used = sum(counts.values())
        left = max(0, room - used)
        if unlimited and left:
            weights = {cid: float(self._feeds[cid].campaign.priority) for cid in unlimited}
            total = sum(weights.values())
            for cid in unlimited:
                counts[cid] = min(burst, max(1, int(left * weights[cid] / total)))
        # Never claim past the room, highest priority first.
        order = sorted(counts, key=lambda cid: -self._feeds[cid].campaign.priority)
        for cid in order:
            take = min(counts[cid], room, burst)
            counts[cid] = take
            room -= take
        return {cid: n for cid, n in counts.items() if n > 0}

    def _held_to_caps(self, counts: dict[int, int]) -> dict[int, int]:
        """``counts`` with each capped campaign's claim cut to what its ``_CapWindow`` lets
        go now (the allowance sizes claims to the cap on average; this makes it a ceiling for
        every second of sending)."""
        now = trio.current_time()
        held: dict[int, int] = {}
        for cid, n in counts.items():
            cap = self._cap_share(self._feeds[cid].campaign)
            if cap:
                window = self._caps.get(cid)
                if window is None:
                    window = self._caps[cid] = _CapWindow(self._cap_window_s)
                n = min(n, window.room(cap, now))
            if n > 0:
                held[cid] = n
        return held

    def _cap_share(self, campaign: Campaign) -> float:
        """The campaign's TPS cap this node holds it to (0: none): all of it alone, its share
        in a cluster, or the cluster would send the cap once per node."""
        return share_of(campaign.tps_cap, self.live_nodes) if campaign.tps_cap else 0.0

    async def feed(self) -> None:
        """Claim and queue recipients until cancelled."""
        tick = self._config.tick_s
        last = trio.current_time()
        while True:
            if self._withdrawn_pending:
                ids, self._withdrawn_pending = self._withdrawn_pending, []
                await self._release(ids)
            if not any(not f.exhausted for f in self._feeds.values()):
                self._wakeup = trio.Event()
                with trio.move_on_after(1.0):
                    await self._wakeup.wait()
                last = trio.current_time()
                continue
            if self._writer.backlog >= self._config.max_write_backlog:
                await self._writer.wait_backlog_below(self._config.max_write_backlog)
                continue
            room = self._config.max_claimed_per_route - self._unresolved
            if room <= 0:
                self._room_freed = trio.Event()
                with trio.move_on_after(tick * 10):
                    await self._room_freed.wait()
                continue
            now_t = trio.current_time()
            dt = max(now_t - last, 1e-3)
            last = now_t
            now = self._clock()
            counts = self._held_to_caps(self._allow(self._rates(now), dt, room))
            for cid, n in counts.items():
                await self._claim_and_queue(cid, n, now)
            await trio.sleep(tick)

    async def _claim_and_queue(self, campaign_id: int, n: int, now: datetime) -> None:
        feed = self._feeds.get(campaign_id)
        if feed is None:
            return
        health = self._writer.health
        if health.blocks("claims"):
            # The store cannot record results now (dispatch.store.faults): send nothing more
            # until it can; the claim below is the probe once only claims are failing.
            health.affect((campaign_id,))
            return
        try:
            if campaign_id in self._claims_in_doubt:
                await self._release_orphans(campaign_id)
                self._claims_in_doubt.discard(campaign_id)
            claimed = await self._store.claim_for_send(campaign_id, n, now)
        except STORE_FAULTS as exc:
            # Usually the claim rolled back and nothing was leased. But a claim can commit and
            # its answer be lost (PostgreSQL: the connection dropped in the round trip): the
            # rows are then leased to us, stage Sending, and nobody will ever send them. So
            # before this campaign claims again, such rows go back to New.
            self._claims_in_doubt.add(campaign_id)
            await trio.sleep(health.fault("claims", exc, (campaign_id,)))
            return
        health.ok("claims")
        if campaign_id not in self._feeds:
            # Paused or cancelled while the claim ran: give the claim back at once.
            await self._release([r.id for r in claimed])
            return
        feed.allowance = max(0.0, feed.allowance - len(claimed))
        if len(claimed) < n:
            feed.exhausted = True
        if not claimed:
            return
        self._claimed += len(claimed)
        window = self._caps.get(campaign_id)
        if window is not None:
            window.claimed(len(claimed))
        campaign_of = self._campaign_of
        for r in claimed:
            campaign_of[r.id] = campaign_id
        self._unresolved += len(claimed)
        # Built and queued in slices with a checkpoint between: rendering and splitting a whole
        # claim (~14 us a message) in one go would hold the event loop for tens of ms, and
        # the API and the pool's readers would wait that long.
        queued = 0
        try:
            for i in range(0, len(claimed), _BUILD_SLICE):
                await self.pool.submit_many(feed.factory.build(claimed[i:i + _BUILD_SLICE]))
                queued = min(len(claimed), i + _BUILD_SLICE)
                await trio.lowlevel.checkpoint()
        except trio.ClosedResourceError:
            pass  # the pool closed while this claim ran (the engine is stopping): see below
        finally:
            if queued < len(claimed):
                self._give_back_unqueued([r.id for r in claimed[queued:]])

    def _give_back_unqueued(self, ids: list[int]) -> None:
        """Queueing a claim was cut short (the engine stopping cancelled the feed, or closed
        the pool, while the claim ran): the rows the pool never got go back to New now, in the
        writer's queue before shutdown commits it. What the pool did get is released with the
        rest of its unsent messages, or answered by the SMSC. Synchronous: this runs in a
        ``finally`` of a cancelled task."""
        held = self.pool.holds(set(ids))
        lost = [rid for rid in ids if rid not in held]
        self._resolved_caps([self._campaign_of.pop(rid, None) for rid in lost])
        self._unresolved -= len(lost)
        self._release_now(lost)

    def _resolved_caps(self, campaign_ids: list[int | None]) -> None:
        """Messages of these campaigns (one id each) left the pool: their capped campaigns'
        ``_CapWindow`` counts them as ended now."""
        if not self._caps:
            return
        now = trio.current_time()
        for cid, n in Counter(campaign_ids).items():
            window = self._caps.get(cid) if cid is not None else None
            if window is not None:
                window.ended(n, now)

    async def _release_orphans(self, campaign_id: int) -> None:
        """Put back to New the campaign's rows the store says we hold in flight but this
        route never received (a claim committed with its answer lost). Once every result
        queued so far is durable, a row leased to us is either held here (in the pool, or
        withdrawn and waiting for release) or an orphan: its outcome, if any, was queued
        before the snapshot and is committed by then."""
        held = {rid for rid, cid in self._campaign_of.items() if cid == campaign_id}
        held.update(self._withdrawn_pending)
        await self._writer.wait_durable(self._writer.last_seq)
        orphans = [rid for rid in await self._store.in_flight_ids(campaign_id)
                   if rid not in held]
        if orphans:
            log_event(log, logging.WARNING, "claimed recipients never received go back to New",
                      esme=self.name, campaign=campaign_id, count=len(orphans))
            self._orphans_released += len(orphans)
            await self._release(orphans)

    async def _release(self, recipient_ids: list[int]) -> None:
        """Put claimed-but-unsent recipients back to New (they were never written)."""
        self._release_now(recipient_ids)
        await self._writer.wait_for_room()

    def _release_now(self, recipient_ids: list[int]) -> None:
        """``_release`` without waiting for room in the writer's queue."""
        if recipient_ids:
            name = self.name
            self._writer.add(SubmitOutcome(rid, SubmitKind.RETRY, name, error="released unsent")
                             for rid in recipient_ids)
            self._released += len(recipient_ids)

    async def release_unsent(self) -> None:
        """After the pool closed: everything it never fully submitted goes back to New."""
        ids, self._withdrawn_pending = self._withdrawn_pending, []
        await self._release(ids)  # withdrawn at a pause, not yet released
        refs = [m.ref for m in self.pool.unsent()]
        await self._release(refs)
        self._unresolved -= len(refs)
        # Half-sent multipart: its first segments reached the handset's SMSC, so it is never
        # sent again (that would duplicate them); counted as ambiguous, like a lost response.
        for msg, accepted in self.pool.interrupted():
            await self._writer.submit_result(SubmitOutcome(
                msg.ref, SubmitKind.UNKNOWN, self.name,
                error=f"shutdown after {accepted} of {len(msg.segments)} segments accepted"))
            self._unresolved -= 1

    # ------------------------------------------------------------------ outcomes

    async def consume(self) -> None:
        """Pool events -> store writes, until the pool's outcome channel closes."""
        name = self.name
        writer = self._writer
        campaign_of = self._campaign_of
        policy = self.pool.config.status_policy
        # A failure with a retryable status means its retries ran out (the pool retries
        # those ``max_retries`` times first): recorded as a job error too (seeds/003).
        exhausting = policy.retry_statuses if policy.max_retries > 0 else frozenset()
        caps = self._caps
        async for batch in self.pool.outcomes:
            resolved = 0
            capped: list[int | None] = []
            # done_at is when the receipt reached us: an SMSC's "done date" has no time zone
            # and SMSC clocks drift, so it is not comparable across routes.
            arrived = self._clock()
            items: list[SubmitOutcome | Receipt] = []
            for ev in batch:
                if type(ev) is pool_events.SubmitOutcome:
                    resolved += 1
                    cid = campaign_of.pop(ev.ref, None)
                    if caps:
                        capped.append(cid)
                    if ev.status is SubmitStatus.ACCEPTED:
                        items.append(SubmitOutcome(ev.ref, SubmitKind.ACCEPTED, name,
                                                   ev.message_ids, ev.status_name))
                    else:
                        exhausted = (ev.attempts if ev.status is SubmitStatus.FAILED
                                     and ev.command_status in exhausting else 0)
                        items.append(SubmitOutcome(ev.ref, _KIND[ev.status], name,
                                                   ev.message_ids, ev.status_name,
                                                   ev.status_name, exhausted))
                elif type(ev) is pool_events.ReceiptEvent:
                    if ev.message_id is None:
                        continue
                    self._receipts += 1
                    result = _RESULT[ev.sms_result] if ev.sms_result else None
                    items.append(Receipt(name, ev.message_id, ev.stat, ev.err, result,
                                         arrived))
                elif type(ev) is pool_events.DeliverAck:
                    # deliver_sm_resp only once the receipts before it are committed: a crash
                    # in between leaves them unanswered, and the SMSC delivers them again.
                    writer.add(items)
                    items = []
                    writer.call_when_durable(writer.last_seq, ev.ack)
                elif type(ev) is pool_events.MoMessage:
                    self._mo += 1
                    log_event(log, logging.INFO, "mobile-originated message", esme=name,
                              bind=ev.bind_id, length=len(ev.short_message))
                elif type(ev) is pool_events.BindFailure:
                    self._bind_failures += 1
                    self._last_bind_error = ev.reason
                    log_event(log, logging.WARNING, "bind failed", esme=name, bind=ev.bind_id,
                              reason=ev.reason, retry_in_s=round(ev.retry_in_s, 2))
            if capped:
                self._resolved_caps(capped)
            if items:
                writer.add(items)
            await writer.wait_for_room()  # a slow store slows the pool's readers
            if resolved:
                self._outcomes += resolved
                self._unresolved -= resolved
                self._room_freed.set()

    def statistics(self) -> RouteStatistics:
        return RouteStatistics(self.name, len(self._feeds), self._unresolved, self._claimed,
                               self._outcomes, self._receipts, self._mo, self._bind_failures,
                               self._last_bind_error, self._released,
                               orphans_released=self._orphans_released)
