"""BindPool: every bind of one ESME account, fed from one queue, reporting on one channel.

API (what the dispatcher uses)::

    pool = BindPool(EsmeConfig(name="op1", host=..., port=..., system_id=..., password=...,
                               binds=2, window=256, tps=5000))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)          # returns at once; binds come up in background
        await pool.wait_bound()                # optional: until at least one bind is up
        await pool.submit(OutboundMessage(ref=recipient_id, source_addr=b"Shop",
                                          destination_addr=b"4915112345678",
                                          segments=split_text("hello")))
        async for batch in pool.outcomes:      # lists of SubmitOutcome | ReceiptEvent | ...
            ...
        pool.close()                           # graceful: drain, unbind, then run() returns

* ``submit(msg)`` / ``submit_many(msgs)`` wait while ``queue_size`` messages are queued
  (backpressure); messages are sent in queue order, spread over the healthy binds (each bind
  takes work while its window has room, so faster binds take more).
* ``outcomes`` is a bounded channel of *lists* of events (one list per chunk read from the
  SMSC: one channel operation per many PDUs). A consumer that stops reading stops the
  readers, then the windows fill, then ``submit`` blocks.
* ``SubmitOutcome`` is final for a message: ``ACCEPTED`` (every segment acknowledged;
  ``message_ids`` normalised, one per segment, in order), ``FAILED`` (a permanent status, or
  retries of ESME_RSYSERR exhausted; ``status_name`` says which) or ``UNKNOWN`` (in-flight
  when the link dropped or the response timed out, under ``InflightPolicy.UNKNOWN``).
* ``ReceiptEvent``: a delivery receipt, its message id normalised like the submit's.
  ``MoMessage``: a mobile-originated deliver_sm. Both are acknowledged (deliver_sm_resp)
  only after they were put on ``outcomes``, and counted in ``statistics()`` once
  acknowledged (one the SMSC delivers again because it went unanswered counts once).
  ``BindFailure``: a bind could not be established (emitted once per distinct reason, not
  once per attempt).

Multipart: segment k+1 is submitted only after segment k was accepted, so neither a retry
nor a reconnect can reorder the parts; different messages are pipelined. Whether a
multipart message was delivered is decided from its per-segment receipts with
``aggregate_segments``.

Status policy (``StatusPolicy``) and in-flight policy (``InflightPolicy``): see
``dispatch.transport.config``. Every case is counted in ``statistics()``.

This module is the pool itself: its queue, the status and in-flight policies, receipts and
MO, the counters. Around it: the events above are defined in ``dispatch.transport.events``
and ``PoolStatistics`` in ``dispatch.transport.stats`` (both importable from here), each
connection is a ``Bind`` (``dispatch.transport.bind``), and each bind slot is kept bound,
reconnecting with backoff, by ``dispatch.transport.reconnect``.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from dispatch.fastpath import impl
from dispatch.observability.receipts import ReceiptStatistics
from dispatch.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    ESM_CLASS_TYPE_MASK,
    CommandStatus,
    Tlv,
    status_name,
)
from dispatch.smpp.receipt import receipt_essentials
from dispatch.smpp.session import BindMode
from dispatch.transport.config import EsmeConfig, InflightPolicy
from dispatch.transport.events import (
    BindFailure,
    DeliverAck,
    MoMessage,
    OutboundMessage,
    PoolEvent,
    ReceiptEvent,
    SubmitOutcome,
    SubmitStatus,
    aggregate_segments,
)
from dispatch.transport.ratelimit import RateLimiter
from dispatch.transport.reconnect import keep_bound
from dispatch.transport.stats import LATENCY_BUCKETS_S, PoolStatistics

if TYPE_CHECKING:
    from trio import TaskStatus

    from dispatch.transport.bind import Bind

# The pool's API, as documented above: defined here, in ``events`` and in ``stats``.
__all__ = ["LATENCY_BUCKETS_S", "BindFailure", "BindPool", "DeliverAck", "MoMessage",
           "OutboundMessage", "PoolEvent", "PoolStatistics", "ReceiptEvent", "SubmitOutcome",
           "SubmitStatus", "aggregate_segments"]


class _Job:
    """A message on its way: which segment is next, what the SMSC said so far."""

    __slots__ = ("attempts", "message_ids", "msg", "part", "sent_at", "sys_retries")

    def __init__(self, msg: OutboundMessage) -> None:
        self.msg = msg
        self.part = 0
        self.message_ids: list[str] = []
        self.attempts = 0
        self.sys_retries = 0
        self.sent_at = 0.0

    def fields(self) -> tuple[Any, ...]:
        """The SmMessage of the current segment, without the sequence number."""
        m = self.msg
        short_message, esm_class, data_coding, tlvs = m.segments[self.part]
        return (m.service_type, m.source_addr_ton, m.source_addr_npi, m.source_addr,
                m.dest_addr_ton, m.dest_addr_npi, m.destination_addr, esm_class, m.protocol_id,
                m.priority_flag, b"", m.validity_period, m.registered_delivery, 0, data_coding,
                0, short_message, tlvs or None)


_RECEIPTED_MESSAGE_ID = int(Tlv.RECEIPTED_MESSAGE_ID)
_ACCEPTED = SubmitStatus.ACCEPTED
_MESSAGE_PAYLOAD = int(Tlv.MESSAGE_PAYLOAD)
_DATA_CODING_UCS2 = 0x08


def _receipt_text(fields: tuple[Any, ...]) -> bytes:
    """The Appendix B text of a receipt deliver_sm, as octets ``parse_receipt`` can read.

    * In message_payload when short_message is empty (SMPP 3.4 section 5.3.2.32: the two
      are mutually exclusive; an SMSC may use either).
    * In UCS-2 when the SMSC copied the submit's data_coding 0x08 (section 5.2.19) and wrote
      the text to match: decoded to one octet per character. The receipt keys are ASCII, so
      UCS-2 text starts with a 0x00 octet, which ASCII text never does; many SMSCs copy 0x08
      and still write ASCII, and that text is left as it is.
    """
    text: bytes = fields[16] or fields[17].get(_MESSAGE_PAYLOAD, b"")
    if fields[14] == _DATA_CODING_UCS2 and text[:1] == b"\x00" and not len(text) % 2:
        text = text.decode("utf-16-be", "replace").encode("latin-1", "replace")
    return text


# --------------------------------------------------------------------------------- pool

class BindPool:
    """The binds of one ESME account. See the module docstring for the API."""

    def __init__(self, config: EsmeConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.name = config.name
        self._rng = rng or random.Random()
        self._limiter = RateLimiter(config.tps, burst=config.tps_burst,
                                    window_s=1.0 + config.tps_guard_s)
        self._queue: deque[_Job] = deque()
        self._front: deque[_Job] = deque()  # next segments and requeued jobs: served first
        self._retry: list[tuple[float, int, _Job]] = []  # heap by not-before time
        self._retry_seq = itertools.count()
        self._work = trio.Event()
        self._space = trio.Event()
        self._bound_changed = trio.Event()
        self._closing = False
        self._binds: list[Bind] = []
        # outcomes of binds that went down, emitted by their slot task (``_settle_later``)
        self._lost_outcomes: list[PoolEvent] = []
        self.stats_deliver_acks_dropped = 0
        self.paused_until = 0.0
        self._out_send, self.outcomes = trio.open_memory_channel[list[PoolEvent]](
            config.outcome_queue_batches)
        # counters (plain ints; statistics() reads them)
        self.stats_submits = 0
        self.stats_accepted = 0
        self.stats_failed = 0
        self.stats_unknown = 0
        self.stats_throttled = 0
        self.stats_retries = 0
        self.stats_inflight_retried = 0
        self.stats_inflight_unknown = 0
        self.stats_response_timeouts = 0
        self.stats_late_responses = 0
        self.stats_generic_nacks = 0
        self.stats_protocol_errors = 0
        self.stats_connection_drops = 0
        self.stats_reconnects = 0
        self.stats_bind_failures = 0
        self.stats_receipts = 0
        self.stats_mo = 0
        self.last_bind_error = ""
        self._resps_by_status: Counter[int] = Counter()
        self._latency_counts = [0] * len(LATENCY_BUCKETS_S)
        self._latency_sum_s = 0.0
        self.receipt_stats = ReceiptStatistics()  # by stat + sampled delay (plain ints)
        self._policy = config.status_policy
        self._ids = config.message_ids

    # -------------------------------------------------------------------- service
    async def run(self, *, task_status: TaskStatus[BindPool] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Keep the configured binds up until ``close()``; then drain and unbind them."""
        cfg = self.config
        slots: list[tuple[str, BindMode]] = []
        if cfg.bind_mode is BindMode.TRANSCEIVER:
            slots += [(f"{cfg.name}/trx{i}", BindMode.TRANSCEIVER) for i in range(cfg.binds)]
        else:
            slots += [(f"{cfg.name}/tx{i}", BindMode.TRANSMITTER) for i in range(cfg.binds)]
            slots += [(f"{cfg.name}/rx{i}", BindMode.RECEIVER) for i in range(cfg.receivers)]
        try:
            async with trio.open_nursery() as nursery:
                for bind_id, mode in slots:
                    nursery.start_soon(keep_bound, self, bind_id, mode)
                task_status.started(self)
        finally:
            self._out_send.close()

    def close(self) -> None:
        """Graceful shutdown: binds stop taking work, drain, unbind; ``run`` then returns.
        Messages still queued stay in ``unsent()``."""
        self._closing = True
        for bind in self._binds:
            bind.stop()
        self._work.set()
        self._bound_changed.set()

    def _waiting_jobs(self) -> list[_Job]:
        """Jobs not in a window: next segments and requeued ones, retries, the queue."""
        return list(self._front) + [j for _, _, j in self._retry] + list(self._queue)

    def unsent(self) -> list[OutboundMessage]:
        """Messages of which no segment was submitted (after ``close``): safe to send again
        later, for the engine to release."""
        return [j.msg for j in self._waiting_jobs() if j.part == 0]

    def interrupted(self) -> list[tuple[OutboundMessage, int]]:
        """Multipart messages (after ``close``) with some segments accepted and the rest not
        sent, with the count accepted: sending them again would duplicate those segments."""
        return [(j.msg, j.part) for j in self._waiting_jobs() if j.part > 0]

    def holds(self, refs: set[Any]) -> set[Any]:
        """Which of ``refs`` the pool has a message of: waiting, in a bind's hands or in a
        window (a caller interrupted while queueing learns what it did hand over)."""
        jobs = self._waiting_jobs()
        for bind in self._binds:
            jobs += list(bind.held) + list(bind.inflight.values())
        return {j.msg.ref for j in jobs if j.msg.ref in refs}

    def withdraw(self, refs: set[Any]) -> list[OutboundMessage]:
        """Take back queued messages whose ``ref`` is in ``refs`` and of which nothing was
        submitted yet (a campaign paused or cancelled: what is still queued must not go
        out). Messages already in a window or half-submitted are left to finish."""
        if not refs:
            return []
        taken = [j.msg for j in self._queue if j.msg.ref in refs]
        taken += [e[2].msg for e in self._retry if e[2].part == 0 and e[2].msg.ref in refs]
        if taken:
            # in place: the dispatcher and submit_many hold references to both
            kept = [j for j in self._queue if j.msg.ref not in refs]
            self._queue.clear()
            self._queue.extend(kept)
            self._retry[:] = [e for e in self._retry
                              if not (e[2].part == 0 and e[2].msg.ref in refs)]
            heapq.heapify(self._retry)
            self._space.set()
        return taken

    async def wait_bound(self, count: int = 1) -> None:
        """Until at least ``count`` sending binds are up."""
        while self.binds_up() < count:
            if self._bound_changed.is_set():
                self._bound_changed = trio.Event()
            await self._bound_changed.wait()

    def binds_up(self) -> int:
        return sum(1 for b in self._binds if b.bound and b.sends)

    # --------------------------------------------------------------------- input
    async def submit(self, msg: OutboundMessage) -> None:
        """Queue one message; waits while the queue is full."""
        while len(self._queue) >= self.config.queue_size:
            if self._space.is_set():
                self._space = trio.Event()
            await self._space.wait()
        if self._closing:
            raise trio.ClosedResourceError("pool is closing")
        self._queue.append(_Job(msg))
        self._work.set()

    async def submit_many(self, msgs: Iterable[OutboundMessage]) -> None:
        """Queue many messages in order; waits whenever the queue is full."""
        limit, queue = self.config.queue_size, self._queue
        for msg in msgs:
            while len(queue) >= limit:
                self._work.set()
                if self._space.is_set():
                    self._space = trio.Event()
                await self._space.wait()
            if self._closing:
                raise trio.ClosedResourceError("pool is closing")
            queue.append(_Job(msg))
        self._work.set()

    # ------------------------------------------------ called by binds (same module family)
    def _take_nowait(self, n: int) -> list[_Job]:
        jobs: list[_Job] = []
        front, retry, queue = self._front, self._retry, self._queue
        while front and len(jobs) < n:
            jobs.append(front.popleft())
        if retry and len(jobs) < n:
            now = trio.current_time()
            while retry and retry[0][0] <= now and len(jobs) < n:
                jobs.append(heapq.heappop(retry)[2])
        if queue and len(jobs) < n:
            was_full = len(queue) >= self.config.queue_size
            k = min(n - len(jobs), len(queue))
            jobs.extend(queue.popleft() for _ in range(k))
            if was_full or len(queue) < self.config.queue_size:
                self._space.set()
        return jobs

    async def _take(self, n: int) -> list[_Job]:
        """Up to ``n`` jobs, waiting for at least one (or for closing: then none)."""
        while not self._closing:
            jobs = self._take_nowait(n)
            if jobs:
                return jobs
            if self._work.is_set():
                self._work = trio.Event()
            if self._retry:
                with trio.move_on_at(self._retry[0][0]):
                    await self._work.wait()
            else:
                await self._work.wait()
        return []

    def _requeue_front(self, jobs: list[_Job]) -> None:
        self._front.extendleft(reversed(jobs))
        self._work.set()

    def _retry_at(self, job: _Job, when: float) -> None:
        heapq.heappush(self._retry, (when, next(self._retry_seq), job))
        self._work.set()

    def _outcome(self, job: _Job, status: SubmitStatus, command_status: int, name: str,
                 bind: Bind, now: float) -> SubmitOutcome:
        if status is SubmitStatus.ACCEPTED:
            self.stats_accepted += 1
        elif status is SubmitStatus.FAILED:
            self.stats_failed += 1
        else:
            self.stats_unknown += 1
        return SubmitOutcome(job.msg.ref, status, tuple(job.message_ids), command_status, name,
                             job.attempts, bind.bind_id, now - job.sent_at)

    def _resolved(self, bind: Bind, job: _Job, status: int, body: Any, now: float,
                  out: list[PoolEvent]) -> None:
        """A submit_sm_resp (or generic_nack) for ``job``: apply the status policy."""
        latency_s = now - job.sent_at
        self._latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        self._latency_sum_s += latency_s
        self._resps_by_status[status] += 1
        policy = self._policy
        if status == 0:
            job.message_ids.append(self._ids.for_submit_resp(body or b""))
            job.part += 1
            if job.part < len(job.msg.segments):
                self._front.append(job)  # next segment only now: order is kept
                self._work.set()
            else:
                self.receipt_stats.accepted(job.message_ids[-1], now)
                out.append(self._outcome(job, SubmitStatus.ACCEPTED, 0, "ESME_ROK", bind, now))
        elif status in policy.throttle_statuses:
            self.stats_throttled += 1
            self.paused_until = max(self.paused_until, now + policy.throttle_pause_s)
            self._retry_at(job, now + policy.throttle_pause_s)
        elif status in policy.retry_statuses and job.sys_retries < policy.max_retries:
            job.sys_retries += 1
            self.stats_retries += 1
            self._retry_at(job, now + policy.retry_delay_s)
        else:
            out.append(self._outcome(job, SubmitStatus.FAILED, status, status_name(status),
                                     bind, now))

    def _resolved_batch(self, bind: Bind, pdus: list[tuple[int, int, int, Any]], now: float,
                        out: list[PoolEvent]) -> int:
        """``_resolved`` for a run of submit_sm_resp (``SubmitSmRespBatch``), in order; one
        whose job is no longer in ``bind.inflight`` (timed out meanwhile) is counted late and
        dropped. Returns how many settled a job (their window slots are free).

        The accepted ones (nearly all) are handled here inline, with the counters kept in
        locals; any other status goes through ``_resolved``. Jobs sent in one batch share
        ``sent_at``, so their latency bucket is looked up once."""
        inflight_pop, latency_counts = bind.inflight.pop, self._latency_counts
        for_submit_resp = self._ids.submit_resp_normaliser
        receipt_accepted = self.receipt_stats.accepted
        front, bind_id, resps_by_status = self._front, bind.bind_id, self._resps_by_status
        latency_sum_s = self._latency_sum_s
        settled = ok = accepted = late = 0
        next_segments = False
        last_sent_at: float | None = None
        bucket = 0
        for _, status, seq, body in pdus:
            job = inflight_pop(seq, None)
            if job is None:
                late += 1
                continue
            settled += 1
            if status:
                if ok:  # counted in order: the first status seen is the first key
                    resps_by_status[0] += ok
                    ok = 0
                self._latency_sum_s = latency_sum_s
                self._resolved(bind, job, status, body, now, out)
                latency_sum_s = self._latency_sum_s
                continue
            sent_at = job.sent_at
            latency_s = now - sent_at
            if sent_at != last_sent_at:
                last_sent_at = sent_at
                bucket = bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)
            latency_counts[bucket] += 1
            latency_sum_s += latency_s
            ok += 1
            message_ids = job.message_ids
            message_ids.append(for_submit_resp(body or b""))
            job.part += 1
            if job.part < len(job.msg.segments):
                front.append(job)  # next segment only now: order is kept
                next_segments = True
            else:
                receipt_accepted(message_ids[-1], now)
                accepted += 1
                out.append(SubmitOutcome(job.msg.ref, _ACCEPTED, tuple(message_ids), 0,
                                         "ESME_ROK", job.attempts, bind_id, latency_s))
        self._latency_sum_s = latency_sum_s
        if ok:
            resps_by_status[0] += ok
        self.stats_accepted += accepted
        self.stats_late_responses += late
        if next_segments:
            self._work.set()
        return settled

    def _lost(self, bind: Bind, jobs: list[_Job], reason: str, out: list[PoolEvent]) -> None:
        """Submits sent but never answered (drop or timeout): the in-flight policy."""
        if not jobs:
            return
        if self.config.inflight_policy is InflightPolicy.RETRY:
            self.stats_inflight_retried += len(jobs)
            self._requeue_front(jobs)
            return
        self.stats_inflight_unknown += len(jobs)
        now = trio.current_time()
        for job in jobs:
            out.append(self._outcome(job, SubmitStatus.UNKNOWN, CommandStatus.ESME_RUNKNOWNERR,
                                     reason, bind, now))

    def _bind_down(self, bind: Bind) -> None:
        """A bind ended: its held jobs go back first in line, in-flight ones by policy."""
        if bind.held:
            self._requeue_front(list(bind.held))
            bind.held.clear()
        if bind.inflight:
            jobs = list(bind.inflight.values())
            bind.inflight.clear()
            # emitted by the bind's slot task once serve() returned (we are in a finally)
            self._lost(bind, jobs, f"connection lost: {bind.down_reason}", self._lost_outcomes)
        self._work.set()

    def _settle_later(self, events: list[PoolEvent]) -> None:
        """A bind went down before it could hand ``events`` on (``Bind._settle_on_abort``):
        its slot task emits the submit outcomes among them once ``serve()`` returned. Receipts,
        MO and deferred acks are dropped: their deliver_sm were not answered."""
        self._lost_outcomes.extend(ev for ev in events if type(ev) is SubmitOutcome)

    def _delivered(self, bind: Bind, fields: tuple[Any, ...]) -> ReceiptEvent | MoMessage:
        """A deliver_sm: a receipt or an MO message, acknowledged once handed on. Not counted
        yet: see ``_count_answered``."""
        esm_class = fields[7]
        kind = esm_class & ESM_CLASS_TYPE_MASK
        # Only a receipt carries receipted_message_id (SMPP 3.4 section 5.3.2.12); some SMSCs
        # leave esm_class 0 on it. The fast path's parse_receipts applies the same rule.
        if (kind in (ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION)
                or _RECEIPTED_MESSAGE_ID in fields[17]):
            text = fields[16]
            if not text or fields[14] == _DATA_CODING_UCS2:  # the common case skips a call
                text = _receipt_text(fields)
            raw = impl.parse_receipt(text, fields[17])
            message_id, stat_text, err_text, result = receipt_essentials(raw, self._ids)
            return ReceiptEvent(self.name, message_id, stat_text, err_text, result, raw,
                                bind.bind_id)
        return MoMessage(self.name, fields[3], fields[6], esm_class, fields[14], fields[16],
                         fields[17], bind.bind_id)

    def _delivered_batch(self, bind: Bind, pdus: list[tuple[int, int, int, Any]],
                         out: list[PoolEvent], delivers: list[int],
                         delivered: list[ReceiptEvent | MoMessage]) -> None:
        """``_delivered`` for a run of deliver_sm (``DeliverSmBatch``), in order: each event
        goes to ``out`` and ``delivered``, its sequence number to ``delivers``."""
        to_event = self._delivered
        for _, _, seq, fields in pdus:
            event = to_event(bind, fields)
            out.append(event)
            delivers.append(seq)
            delivered.append(event)

    def _count_answered(self, delivered: Iterable[ReceiptEvent | MoMessage],
                        read_at: float) -> None:
        """Count receipts and MO whose deliver_sm was answered, with the time they were read.

        Counted when answered, not when read: a deliver_sm read but never answered with its
        deliver_sm_resp (SMPP 3.4 section 4.6.2) -- the bind aborted before handing it on, a
        deferred ack came too late -- is delivered again by the SMSC, and would otherwise be
        counted twice."""
        receipt_stats = self.receipt_stats
        for ev in delivered:
            if type(ev) is ReceiptEvent:
                self.stats_receipts += 1
                receipt_stats.received(ev.message_id, ev.stat, ev.sms_result is not None,
                                       read_at)
            else:
                self.stats_mo += 1

    async def _emit(self, events: list[PoolEvent]) -> None:
        try:
            await self._out_send.send(events)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    # -------------------------------------------------------------------- metrics
    def set_tps(self, tps: float) -> None:
        """Change the account's TPS at run time (issue 8): a cluster node sends its share of
        the contract (``dispatch.store.cluster.share_of``), re-split as nodes join or die."""
        self._limiter.set_rate(tps, burst=self.config.tps_burst)

    @property
    def tps(self) -> float:
        """The rate it sends at now (0: unlimited): the contract, or in a cluster this node's
        share of it (``set_tps``)."""
        return self._limiter.tps

    def statistics(self) -> PoolStatistics:
        cfg = self.config
        senders = [b for b in self._binds if b.sends]
        return PoolStatistics(
            esme=self.name,
            binds_configured=cfg.binds + (cfg.receivers if cfg.bind_mode
                                          is BindMode.TRANSMITTER else 0),
            binds_up=sum(1 for b in self._binds if b.bound),
            queued=len(self._queue) + len(self._front) + len(self._retry),
            in_flight=sum(len(b.inflight) for b in senders),
            window_capacity=cfg.window * len(senders),
            submits=self.stats_submits,
            responses_by_status={status_name(s): n for s, n in self._resps_by_status.items()},
            accepted=self.stats_accepted,
            failed=self.stats_failed,
            unknown=self.stats_unknown,
            throttled=self.stats_throttled,
            retries=self.stats_retries,
            inflight_retried=self.stats_inflight_retried,
            inflight_unknown=self.stats_inflight_unknown,
            response_timeouts=self.stats_response_timeouts,
            late_responses=self.stats_late_responses,
            generic_nacks=self.stats_generic_nacks,
            protocol_errors=self.stats_protocol_errors,
            connection_drops=self.stats_connection_drops,
            reconnects=self.stats_reconnects,
            bind_failures=self.stats_bind_failures,
            last_bind_error=self.last_bind_error,
            receipts=self.stats_receipts,
            mo_messages=self.stats_mo,
            rate_limiter_waits=self._limiter.waits,
            latency_buckets_s=LATENCY_BUCKETS_S,
            latency_counts=tuple(self._latency_counts),
            latency_sum_s=self._latency_sum_s,
            tps_limit=cfg.tps,
            receipts_by_stat=dict(self.receipt_stats.by_stat),
            receipt_delay=self.receipt_stats.delay.snapshot(),
            receipt_delay_evicted=self.receipt_stats.evicted,
        )
