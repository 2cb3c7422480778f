"""One SMPP bind: a TCP (optionally TLS) connection running an ``EsmeSession``.

Tasks of a bound connection (one nursery, any failure ends them all):

* reader -- the only task that reads: feeds the session, resolves responses through the
  owner (the pool), forwards receipts / MO and acknowledges them after handing them on; if
  the link ends while it waits on a slow consumer, the submits it read answers to are still
  settled once (``_settle_on_abort``), not lost and not sent again;
* writer -- the only task that writes: everything the session queued since the last write
  goes out in one ``send_all`` (DESIGN.md: coalescing is what makes 300k PDUs/s possible);
* submitter -- takes work from the owner while the window has room, asks the rate limiters,
  encodes the batch into one buffer (TX and TRX binds only);
* link keeper and response timer (``dispatch.transport.liveness``) -- enquire_link when
  idle, the link dead after ``enquire_link_misses`` unanswered probes; requests unanswered
  after ``response_timeout_s`` go back to the owner, who applies the in-flight policy. Both
  judge the SMSC on what it sent, read or not, so our own backpressure never kills a live
  link nor expires an answer that came in time;
* closer and unbind drainer (``dispatch.transport.unbind``) -- the graceful end after
  ``stop()``, and after the SMSC's unbind (SMPP 3.4 section 4.2).

``run`` connects and binds (``dispatch.transport.connect``), calls
``task_status.started(self)`` when bound, and returns when the connection ends; failures
before ``started`` raise ``BindError`` (with the SMSC's status for a refused bind), failures
after it are recorded in ``down_reason``. ``stop()`` asks for a graceful end: stop taking
work, wait for outstanding responses, unbind (section 4.2).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from dispatch.logs import log_event
from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.errors import LocalProtocolError
from dispatch.smpp.events import DeliverSmBatch, SubmitSmRespBatch
from dispatch.smpp.session import (
    BindMode,
    DeliverSm,
    EsmeSession,
    GenericNack,
    ProtocolError,
    Response,
    SessionState,
    Unbound,
)
from dispatch.transport.connect import CountedStream, bind_session, connect
from dispatch.transport.errors import BindError, LinkDown
from dispatch.transport.events import DeliverAck
from dispatch.transport.liveness import link_keeper, response_timer
from dispatch.transport.ratelimit import RateLimiter
from dispatch.transport.unbind import closer, unbind_drainer

if TYPE_CHECKING:
    from trio import TaskStatus

    from dispatch.transport.pool import BindPool, _Job

log = logging.getLogger(__name__)

#: Events handled per loop step: the rest of a large read waits for a checkpoint (``_reader``).
READ_SLICE_EVENTS = 512

# Where a deliver_sm_resp (SMPP 3.4 section 4.6.2) may still go out: section 2.3 allows it in
# the bound states (BOUND_RX, BOUND_TRX; a transmitter gets no deliver_sm), and 3.4 has no
# state between bound and CLOSED (section 2.2), so also while we wait for our unbind_resp
# (UNBINDING); and after the SMSC's unbind for the deliver_sm read before it (UNBOUND, the
# SMPP 5.0 section 2.3.5 state: the unbind_resp waits for them).
_ACKING_STATES = frozenset({SessionState.BOUND_TX, SessionState.BOUND_RX,
                            SessionState.BOUND_TRX, SessionState.UNBINDING,
                            SessionState.UNBOUND})


def _first_slice(events: list[Any]) -> tuple[list[Any], list[Any]]:
    """The first ``READ_SLICE_EVENTS`` events of a read, and the rest, counting a batch event
    (``SubmitSmRespBatch``, ``DeliverSmBatch``) as the events of its PDUs: a batch is split
    where the slice ends."""
    room = READ_SLICE_EVENTS
    for i, ev in enumerate(events):
        kind = type(ev)
        size = len(ev.pdus) if kind is SubmitSmRespBatch or kind is DeliverSmBatch else 1
        if size <= room:
            room -= size
            continue
        if room and size > 1:  # its first ``room`` PDUs in this slice, the rest in the next
            return [*events[:i], kind(ev.pdus[:room])], [kind(ev.pdus[room:]), *events[i + 1:]]
        return events[:i], events[i:]
    return events, []


class Bind:
    """One connection of a pool. Created by ``BindPool``; not reused after ``run`` returns.
    The tasks in ``liveness`` and ``unbind`` are this bind's too: they work on its state."""

    def __init__(self, pool: BindPool, bind_id: str, mode: BindMode,
                 limiter: RateLimiter, bind_limiter: RateLimiter | None) -> None:
        self.pool = pool
        self.config = pool.config
        self.bind_id = bind_id
        self.mode = mode
        self.session = EsmeSession(max_pdu_length=self.config.max_pdu_length,
                                   batch_events=True)
        self.window = self.config.window
        self.inflight: dict[int, _Job] = {}  # seq -> job, in send order
        self.held: deque[_Job] = deque()  # taken from the pool, waiting for rate tokens
        self.bound = False
        self.stopping = False
        self.down_reason = ""
        self._limiter = limiter
        self._bind_limiter = bind_limiter
        self._stream: trio.abc.Stream | None = None
        self._kick = trio.Event()
        self._window_free = trio.Event()
        self._inflight_added = trio.Event()
        self._stop = trio.Event()
        self._peer_unbound = trio.Event()  # the SMSC sent unbind
        self._handling = False  # the reader is handing on a read (not in receive_some)
        self._tcp: CountedStream | None = None  # under ``_stream`` (the same one without TLS)
        self._handled_bytes = 0  # of ``_tcp.received``, what the reader has handled
        self._read_handled = trio.Event()  # the reader is back for more (set at every read)
        self._last_rx = 0.0  # when the reader last read (or handled a slice of a read)
        self._heard_at = 0.0  # when the link keeper last found the SMSC's bytes unread
        self._writing = False
        self._unanswered_probes = 0
        self._cancel: trio.CancelScope | None = None
        self._after_bind_resp: list[Any] = []  # events read in the same chunk as bind_resp

    @property
    def sends(self) -> bool:
        return self.mode is not BindMode.RECEIVER

    # ------------------------------------------------------------------ lifecycle
    async def run(self, *, task_status: TaskStatus[Bind] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect and bind (``BindError`` on failure), report started, serve until down."""
        await self.open()
        task_status.started(self)
        await self.serve()

    async def open(self) -> None:
        """Connect (``connect_timeout_s``) and bind (``bind_timeout_s``); ``BindError`` if not."""
        cfg = self.config
        try:
            self._tcp, stream = await connect(cfg)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            raise BindError(f"connect to {cfg.host}:{cfg.port} failed: {exc!r}") from None
        self._stream = stream
        try:
            self._after_bind_resp = await bind_session(stream, self.session, self.mode, cfg)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        self.bound = True
        self._last_rx = trio.current_time()

    async def serve(self) -> None:
        """Run the bound connection's tasks until it ends; the reason is in ``down_reason``
        and the pool gets the unfinished work back (``BindPool._bind_down``)."""
        stream = self._stream
        assert stream is not None and self.bound
        try:
            async with trio.open_nursery() as nursery:
                self._cancel = nursery.cancel_scope
                nursery.start_soon(self._guard, self._reader)
                nursery.start_soon(self._guard, self._writer)
                nursery.start_soon(self._guard, link_keeper, self)
                nursery.start_soon(self._guard, closer, self)
                nursery.start_soon(self._guard, unbind_drainer, self)
                if self.sends:
                    nursery.start_soon(self._guard, self._submitter)
                    nursery.start_soon(self._guard, response_timer, self)
        finally:
            self.bound = False
            if not self.down_reason:
                self.down_reason = "cancelled"
            if self.session.state is not SessionState.CLOSED:
                self.session.close()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            self.pool._bind_down(self)

    def stop(self) -> None:
        """Ask for a graceful end (drain, unbind); ``run`` returns once done."""
        self.stopping = True
        self._stop.set()
        self._window_free.set()

    def abort(self, reason: str) -> None:
        if not self.down_reason:
            self.down_reason = reason
        if self._cancel is not None:
            self._cancel.cancel()

    async def _guard(self, task: Any, *args: Any) -> None:
        """Run one task of the bind; why it ended the link goes to ``down_reason``."""
        try:
            await task(*args)
        except LinkDown as exc:
            self.abort(str(exc))
        except trio.TooSlowError:
            self.abort(f"{task.__name__.strip('_')} timed out")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.abort(f"connection lost: {exc!r}")

    def kick(self) -> None:
        self._kick.set()

    async def _flush(self) -> None:
        """Write what the session has queued, now, from the calling task (the submitter) when
        no write is in progress; otherwise leave it to the writer task. Saves a task switch
        per submit batch, which is most of the round trip at small windows."""
        if self._writing:
            self.kick()
            return
        data = self.session.data_to_send()
        if data:
            assert self._stream is not None
            self._writing = True
            try:
                with trio.fail_after(self.config.write_timeout_s):
                    await self._stream.send_all(data)
            finally:
                self._writing = False
            if self.session.has_data_to_send:  # queued by others while we wrote
                self.kick()

    # ---------------------------------------------------------------------- tasks
    async def _writer(self) -> None:
        """Writes whatever the session has queued when kicked. The submitter writes its own
        batches (``_flush``) when the stream is free; ``_writing`` keeps the two from writing
        at once (trio streams allow one ``send_all`` at a time)."""
        session, stream, timeout_s = self.session, self._stream, self.config.write_timeout_s
        assert stream is not None
        while True:
            await self._kick.wait()
            if self._kick.is_set():
                self._kick = trio.Event()
            if self._writing:
                continue  # the submitter is writing; it kicks again if more is queued
            data = session.data_to_send()
            if data:
                self._writing = True
                try:
                    with trio.fail_after(timeout_s):
                        await stream.send_all(data)
                finally:
                    self._writing = False

    async def _reader(self) -> None:
        session, stream, tcp, pool = self.session, self._stream, self._tcp, self.pool
        assert stream is not None and tcp is not None
        read_size = self.config.read_size
        inflight = self.inflight
        submit_resp = CommandId.SUBMIT_SM_RESP
        early, self._after_bind_resp = self._after_bind_resp, []
        self._handling = True  # false only while waiting in receive_some (unbind_drainer)
        backlog: list[Any] = []
        ended = ""  # why the link ends, raised once the events read before it are handled
        while True:
            if early:
                events, early = early, []
            elif backlog:
                # The rest of a large read, after a checkpoint: one read of 256 KiB holds
                # thousands of PDUs, and handling them in one step kept the loop from
                # everything else (the control API, the writer's callbacks) for 10-25 ms.
                try:
                    await trio.lowlevel.checkpoint()
                except trio.Cancelled:
                    self._settle_on_abort(backlog, [])
                    raise
                events = backlog
            else:
                self._handled_bytes = tcp.received
                self._read_handled.set()
                self._handling = False
                data = await stream.receive_some(read_size)
                self._handling = True
                if not data:
                    raise LinkDown("unbound by the SMSC" if self._peer_unbound.is_set()
                                else "connection closed by the SMSC")
                unmatched = session.unexpected_responses
                events = session.receive_data(data)
                # Responses to requests already given up on (timed out: the session forgot
                # them) are dropped by the session, never seen below: count them here.
                pool.stats_late_responses += session.unexpected_responses - unmatched
            events, backlog = _first_slice(events)
            now = trio.current_time()
            self._last_rx = now
            self._unanswered_probes = 0
            out: list[Any] = []
            delivers: list[int] = []  # deliver_sm to answer once handed on
            delivered: list[Any] = []  # their receipts and MO, counted once answered
            freed = 0
            for ev in events:
                kind = type(ev)
                if kind is SubmitSmRespBatch:
                    freed += pool._resolved_batch(self, ev.pdus, now, out)
                elif kind is DeliverSmBatch:
                    pool._delivered_batch(self, ev.pdus, out, delivers, delivered)
                elif kind is Response:
                    if ev.command_id == submit_resp:
                        job = inflight.pop(ev.sequence_number, None)
                        if job is None:
                            pool.stats_late_responses += 1
                            continue
                        freed += 1
                        pool._resolved(self, job, ev.command_status, ev.body, now, out)
                elif kind is DeliverSm:
                    delivery = pool._delivered(self, ev.fields)
                    out.append(delivery)
                    delivers.append(ev.sequence_number)
                    delivered.append(delivery)
                elif kind is GenericNack:
                    pool.stats_generic_nacks += 1
                    job = inflight.pop(ev.sequence_number, None)
                    if job is not None:
                        freed += 1
                        pool._resolved(self, job, ev.command_status or
                                       CommandStatus.ESME_RSYSERR, b"", now, out)
                elif kind is ProtocolError:
                    pool.stats_protocol_errors += 1
                    log_event(log, logging.WARNING, "SMSC protocol error", esme=pool.name,
                              bind=self.bind_id, reason=ev.reason)
                    if ev.fatal:
                        ended = f"protocol error: {ev.reason}"
                elif kind is Unbound:
                    if ev.by_peer:
                        # Not the end yet: what follows (late submit_sm_resp) still counts,
                        # and the delivers above are answered below, ahead of the unbind_resp.
                        self._peer_unbound.set()
                    else:
                        ended = "stopped"
            if freed:
                self._window_free.set()
            if delivers and pool.config.defer_deliver_acks:
                out.append(DeliverAck(self, tuple(delivers), tuple(delivered), now))
                delivers, delivered = [], []
            if out:
                # even when the link just ended: what was answered before is settled
                try:
                    await pool._emit(out)  # backpressure: a slow consumer slows our reads
                except trio.Cancelled:  # another task ended the link meanwhile
                    self._settle_on_abort(backlog, out)
                    raise
            if ended:
                if backlog:
                    continue  # settle what was read before the end first (no more acks)
                # let the writer flush the unbind_resp (it is the only one who writes)
                self.kick()
                with trio.move_on_after(self.config.unbind_timeout_s):
                    while session.has_data_to_send or self._writing:
                        await trio.sleep(0.001)
                raise LinkDown(ended)
            if delivers:  # acknowledged only once handed on
                if session.state in _ACKING_STATES:
                    session.send_deliver_sm_resps(delivers)
                    pool._count_answered(delivered, now)
                else:  # the drain timed out meanwhile: the SMSC delivers them again
                    pool.stats_deliver_acks_dropped += len(delivers)
            if session.has_data_to_send:
                self.kick()

    def _settle_on_abort(self, unhandled: list[Any], out: list[Any]) -> None:
        """The link is being cancelled -- another task failed (dead link, write timeout, a
        broken stream) -- while the reader hands ``out`` on to a slow consumer, or before it
        got to ``unhandled``, the rest of a large read. The submits answered in ``out`` are
        out of ``inflight`` already: their outcomes exist nowhere else. Those answered in
        ``unhandled`` are still in it: ``BindPool._bind_down`` would apply the in-flight
        policy and RETRY send them a second time. Both are settled here, with no await, and
        their outcomes go to the pool, which emits them once this bind is down. Receipts and
        MO are not kept (nor counted): their deliver_sm were not answered, and the SMSC
        delivers them again."""
        pool, inflight = self.pool, self.inflight
        now = self._last_rx  # when the read was made
        for ev in unhandled:
            if type(ev) is SubmitSmRespBatch:
                for _, status, seq, body in ev.pdus:
                    job = inflight.pop(seq, None)
                    if job is not None:
                        pool._resolved(self, job, status, body, now, out)
            elif type(ev) is Response and ev.command_id == CommandId.SUBMIT_SM_RESP:
                job = inflight.pop(ev.sequence_number, None)
                if job is not None:
                    pool._resolved(self, job, ev.command_status, ev.body, now, out)
            elif type(ev) is GenericNack:
                job = inflight.pop(ev.sequence_number, None)
                if job is not None:
                    pool._resolved(self, job, ev.command_status or CommandStatus.ESME_RSYSERR,
                                   b"", now, out)
        pool._settle_later(out)

    def ack_delivers(self, sequence_numbers: Sequence[int], events: Sequence[Any] = (),
                     read_at: float = 0.0) -> None:
        """Answer deferred deliver_sm PDUs (``DeliverAck.ack``) and count their ``events``;
        dropped when this connection is no longer bound, since sequence numbers belong to one
        session: uncounted then, the SMSC delivers them again."""
        if not self.bound or self.session.state not in _ACKING_STATES:
            self.pool.stats_deliver_acks_dropped += len(sequence_numbers)
            return
        try:
            self.session.send_deliver_sm_resps(sequence_numbers)
        except LocalProtocolError:  # the session ended between the check and now
            self.pool.stats_deliver_acks_dropped += len(sequence_numbers)
        else:
            self.pool._count_answered(events[:len(sequence_numbers)], read_at)
        self.kick()

    async def _submitter(self) -> None:
        pool, session, held, inflight = self.pool, self.session, self.held, self.inflight
        window, limiter, bind_limiter = self.window, self._limiter, self._bind_limiter
        while not self.stopping:
            free = window - len(inflight) - len(held)
            if free > 0:
                if held:
                    held.extend(pool._take_nowait(free))
                else:
                    held.extend(await pool._take(free))
            if not held:
                if free <= 0:
                    if self._window_free.is_set():
                        self._window_free = trio.Event()
                    await self._window_free.wait()
                continue
            if pool.paused_until > trio.current_time():
                await trio.sleep_until(pool.paused_until)
            want = len(held)
            if bind_limiter is not None:
                want = await bind_limiter.acquire(want)
            n = await limiter.acquire(want)
            if self.stopping or (session.state is not SessionState.BOUND_TX \
                    and session.state is not SessionState.BOUND_TRX):
                break
            if pool.paused_until > trio.current_time():
                # A throttle (ESME_RTHROTTLED, ESME_RMSGQFUL) came in while we waited for
                # tokens: the batch waits out the pause at the top of the loop and asks for
                # tokens again. The ones granted now go unused; sent after the pause under
                # their earlier grant time, they could put more than ``tps`` into one window.
                continue
            batch = [held.popleft() for _ in range(n)]
            now = trio.current_time()
            seqs = session.send_submit_sm_batch([job.fields() for job in batch])
            for seq, job in zip(seqs, batch, strict=True):
                job.sent_at = now
                job.attempts += 1
                inflight[seq] = job
            pool.stats_submits += n
            self._inflight_added.set()
            await self._flush()
            if len(inflight) + len(held) >= window:
                if self._window_free.is_set():
                    self._window_free = trio.Event()
                if len(inflight) + len(held) >= window:
                    await self._window_free.wait()
        if held:
            pool._requeue_front(list(held))
            held.clear()
