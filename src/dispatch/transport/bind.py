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
* link keeper -- enquire_link after ``enquire_link_interval_s`` without traffic; the link is
  declared dead after ``enquire_link_misses`` unanswered probes (SMPP 3.4 section 4.11).
  Traffic is what the SMSC sent, read or not: bytes waiting unread in our socket count (the
  reader may be held by a slow consumer), so our own backpressure never kills a live link;
* response timer -- requests unanswered after ``response_timeout_s`` free their window slot
  and go back to the owner, who applies the in-flight policy; unanswered once the reader has
  handled everything the SMSC had sent by then, so an answer held up by our own backpressure
  is not taken for a missing one;
* unbind drainer -- after the SMSC's unbind (SMPP 3.4 section 4.2) the reader goes on: the
  deliver_sm read before the unbind are handed on and answered (the session lets the
  unbind_resp out behind their deliver_sm_resp) and late submit_sm_resp still settle their
  submits; the link ends once the session is closed, ``drain_timeout_s`` at most.

``run`` connects and binds, calls ``task_status.started(self)`` when bound, and returns when
the connection ends; failures before ``started`` raise ``BindError`` (with the SMSC's status
for a refused bind), failures after it are recorded in ``down_reason``. ``stop()`` asks for a
graceful end: stop taking work, wait for outstanding responses, unbind (section 4.2).
"""

from __future__ import annotations

import fcntl
import logging
import ssl
import struct
import termios
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from dispatch.logs import log_event
from dispatch.smpp.constants import CommandId, CommandStatus, status_name
from dispatch.smpp.errors import LocalProtocolError
from dispatch.smpp.session import (
    BindMode,
    BindResponse,
    DeliverSm,
    EsmeSession,
    GenericNack,
    ProtocolError,
    Response,
    SessionState,
    Unbound,
)
from dispatch.transport.config import EsmeConfig
from dispatch.transport.ratelimit import RateLimiter

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


class DeliverAck:
    """Ends a batch when ``EsmeConfig.defer_deliver_acks`` is set: the deliver_sm PDUs behind
    the batch's ``ReceiptEvent``/``MoMessage`` events are answered only when the consumer
    calls ``ack()``, once it has made them durable. If the connection is gone by then the ack
    is dropped (counted) and the SMSC delivers them again: the store applies a receipt once.
    ``events`` are those receipts and MO, one per sequence number, read at ``read_at``: the
    pool counts them when they are answered (``BindPool._count_answered``).
    """

    __slots__ = ("_bind", "bind_id", "events", "read_at", "sequence_numbers")

    def __init__(self, bind: Any, sequence_numbers: tuple[int, ...],
                 events: tuple[Any, ...] = (), read_at: float = 0.0) -> None:
        self._bind = bind
        self.bind_id: str = bind.bind_id
        self.sequence_numbers = sequence_numbers
        self.events = events
        self.read_at = read_at

    def ack(self) -> None:
        self._bind.ack_delivers(self.sequence_numbers, self.events, self.read_at)


class BindError(Exception):
    """The bind could not be established. ``command_status``: the SMSC's refusal, if any."""

    def __init__(self, reason: str, command_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_status = command_status


class _Down(Exception):
    """Internal: the bound connection ended (reason in args[0])."""


def _ssl_context(config: EsmeConfig) -> ssl.SSLContext:
    tls = config.tls
    ctx = ssl.create_default_context(cafile=tls.cafile)
    if tls.certfile:
        ctx.load_cert_chain(tls.certfile, tls.keyfile)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _tls_reason(exc: BaseException) -> str:
    """What went wrong in a TLS handshake, in the words an operator can act on: trio wraps
    the ``ssl`` error (certificate verify failed, hostname mismatch, ...) as the cause."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return cause.reason or str(cause)
    return repr(cause) if cause is not None else "connection closed during the handshake"


class _CountedStream(trio.abc.Stream):
    """The TCP connection of a bind (under TLS when configured), counting what was received
    through it. With what waits unread in its socket (``unread``), the link keeper and the
    response timer judge the SMSC on what it sent, not on when the reader got to it."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.received = 0

    def unread(self) -> int:
        """Bytes the SMSC sent that wait in the socket's receive buffer (FIONREAD)."""
        try:
            answer = fcntl.ioctl(self.stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (OSError, ValueError):  # closed meanwhile (fileno -1): the reader finds out
            return 0
        count: int = struct.unpack("i", answer)[0]
        return count

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.stream.receive_some(max_bytes)
        self.received += len(data)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


class Bind:
    """One connection of a pool. Created by ``BindPool``; not reused after ``run`` returns."""

    def __init__(self, pool: BindPool, bind_id: str, mode: BindMode,
                 limiter: RateLimiter, bind_limiter: RateLimiter | None) -> None:
        self.pool = pool
        self.config = pool.config
        self.bind_id = bind_id
        self.mode = mode
        self.session = EsmeSession(max_pdu_length=self.config.max_pdu_length)
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
        self._tcp: _CountedStream | None = None  # under ``_stream`` (the same one without TLS)
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
            stream = await self._connect()
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            raise BindError(f"connect to {cfg.host}:{cfg.port} failed: {exc!r}") from None
        self._stream = stream
        try:
            await self._bind(stream)
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
                nursery.start_soon(self._guard, self._link_keeper)
                nursery.start_soon(self._guard, self._closer)
                nursery.start_soon(self._guard, self._unbind_drainer)
                if self.sends:
                    nursery.start_soon(self._guard, self._submitter)
                    nursery.start_soon(self._guard, self._response_timer)
        finally:
            self.bound = False
            if not self.down_reason:
                self.down_reason = "cancelled"
            if self.session.state is not SessionState.CLOSED:
                self.session.close()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            self.pool._bind_down(self)

    async def _connect(self) -> trio.abc.Stream:
        cfg = self.config
        with trio.fail_after(cfg.connect_timeout_s):
            tcp = self._tcp = _CountedStream(await trio.open_tcp_stream(cfg.host, cfg.port))
            if not cfg.tls.enabled:
                return tcp
            try:
                tls = trio.SSLStream(tcp, _ssl_context(cfg),
                                     server_hostname=cfg.tls.server_hostname or cfg.host)
                await tls.do_handshake()
            except BaseException as exc:
                await trio.aclose_forcefully(tcp)
                if isinstance(exc, trio.BrokenResourceError | ssl.SSLError):
                    raise BindError(f"TLS handshake with {cfg.host}:{cfg.port} failed: "
                                    f"{_tls_reason(exc)}") from None
                raise
            return tls

    async def _bind(self, stream: trio.abc.Stream) -> None:
        """Send the bind and wait for its response (section 4.1), ``bind_timeout_s`` at most."""
        cfg, session = self.config, self.session
        session.send_bind(self.mode, cfg.system_id.encode(), cfg.password.encode(),
                          system_type=cfg.system_type.encode(),
                          interface_version=cfg.interface_version, addr_ton=cfg.addr_ton,
                          addr_npi=cfg.addr_npi, address_range=cfg.address_range.encode())
        try:
            with trio.fail_after(cfg.bind_timeout_s):
                await stream.send_all(session.data_to_send())
                while True:
                    data = await stream.receive_some(cfg.read_size)
                    if not data:
                        raise BindError("connection closed by the SMSC during bind")
                    events = session.receive_data(data)
                    for i, ev in enumerate(events):
                        if isinstance(ev, BindResponse):
                            if ev.command_status:
                                raise BindError(f"bind refused: {status_name(ev.command_status)}",
                                                ev.command_status)
                            # An SMSC may send queued deliver_sm right behind the bind_resp,
                            # in the same read: the reader handles them first.
                            self._after_bind_resp = list(events[i + 1:])
                            return
                        if isinstance(ev, GenericNack):
                            raise BindError(f"bind answered by generic_nack "
                                            f"{status_name(ev.command_status)}",
                                            ev.command_status)
                        if isinstance(ev, ProtocolError) and ev.fatal:
                            raise BindError(f"garbage during bind: {ev.reason}")
                    if session.has_data_to_send:
                        await stream.send_all(session.data_to_send())
        except trio.TooSlowError:
            raise BindError(f"no bind_resp within {cfg.bind_timeout_s} s") from None
        except (trio.BrokenResourceError, OSError) as exc:
            if isinstance(exc.__cause__, ssl.SSLError):  # TLS 1.3: a refusal shows up here
                raise BindError(f"connection lost during bind: TLS error: "
                                f"{_tls_reason(exc)}") from None
            raise BindError(f"connection lost during bind: {exc!r}") from None

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

    async def _guard(self, task: Any) -> None:
        try:
            await task()
        except _Down as exc:
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
                with trio.fail_after(timeout_s):
                    await stream.send_all(data)
                self._writing = False

    async def _reader(self) -> None:
        session, stream, tcp, pool = self.session, self._stream, self._tcp, self.pool
        assert stream is not None and tcp is not None
        read_size = self.config.read_size
        inflight = self.inflight
        submit_resp = CommandId.SUBMIT_SM_RESP
        early, self._after_bind_resp = self._after_bind_resp, []
        self._handling = True  # false only while waiting in receive_some (_unbind_drainer)
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
                    raise _Down("unbound by the SMSC" if self._peer_unbound.is_set()
                                else "connection closed by the SMSC")
                unmatched = session.unexpected_responses
                events = session.receive_data(data)
                # Responses to requests already given up on (timed out: the session forgot
                # them) are dropped by the session, never seen below: count them here.
                pool.stats_late_responses += session.unexpected_responses - unmatched
            events, backlog = events[:READ_SLICE_EVENTS], events[READ_SLICE_EVENTS:]
            now = trio.current_time()
            self._last_rx = now
            self._unanswered_probes = 0
            out: list[Any] = []
            delivers: list[int] = []  # deliver_sm to answer once handed on
            delivered: list[Any] = []  # their receipts and MO, counted once answered
            freed = 0
            for ev in events:
                if type(ev) is Response:
                    if ev.command_id == submit_resp:
                        job = inflight.pop(ev.sequence_number, None)
                        if job is None:
                            pool.stats_late_responses += 1
                            continue
                        freed += 1
                        pool._resolved(self, job, ev.command_status, ev.body, now, out)
                elif type(ev) is DeliverSm:
                    delivery = pool._delivered(self, ev.fields)
                    out.append(delivery)
                    delivers.append(ev.sequence_number)
                    delivered.append(delivery)
                elif type(ev) is GenericNack:
                    pool.stats_generic_nacks += 1
                    job = inflight.pop(ev.sequence_number, None)
                    if job is not None:
                        freed += 1
                        pool._resolved(self, job, ev.command_status or
                                       CommandStatus.ESME_RSYSERR, b"", now, out)
                elif type(ev) is ProtocolError:
                    pool.stats_protocol_errors += 1
                    log_event(log, logging.WARNING, "SMSC protocol error", esme=pool.name,
                              bind=self.bind_id, reason=ev.reason)
                    if ev.fatal:
                        ended = f"protocol error: {ev.reason}"
                elif type(ev) is Unbound:
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
                raise _Down(ended)
            if delivers:  # acknowledged only once handed on
                if session.state in _ACKING_STATES:
                    for seq in delivers:
                        session.send_deliver_sm_resp(seq)
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
            if type(ev) is Response and ev.command_id == CommandId.SUBMIT_SM_RESP:
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
        answered: list[Any] = []
        for i, seq in enumerate(sequence_numbers):
            try:
                self.session.send_deliver_sm_resp(seq)
            except LocalProtocolError:  # the session ended between the check and now
                self.pool.stats_deliver_acks_dropped += 1
            else:
                answered.extend(events[i:i + 1])
        self.pool._count_answered(answered, read_at)
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

    async def _response_timer(self) -> None:
        """Expire requests unanswered after ``response_timeout_s`` (oldest first)."""
        inflight, pool, timeout_s = self.inflight, self.pool, self.config.response_timeout_s
        tcp = self._tcp
        assert tcp is not None
        while True:
            if not inflight:
                if self._inflight_added.is_set():
                    self._inflight_added = trio.Event()
                await self._inflight_added.wait()
                continue
            seq, job = next(iter(inflight.items()))
            deadline = job.sent_at + timeout_s
            now = trio.current_time()
            if now < deadline:
                await trio.sleep_until(deadline)
                continue
            # What the SMSC sent by now may wait unread, or in the reader's hands, while our
            # consumer holds the reader: an answer in it came in time. Expired, its submit
            # would be sent again (RETRY) and the answer, read later, dropped as late. So
            # the reader handles all of it first. (One read is in neither count: what trio
            # took off the socket and has not returned to the reader yet, for one scheduling
            # step. An answer in it, at the deadline, expires as one just after it would.)
            sent_by_now = tcp.received + tcp.unread()
            while self._handled_bytes < sent_by_now:
                if self._read_handled.is_set():
                    self._read_handled = trio.Event()
                await self._read_handled.wait()
            expired = []
            while inflight:
                seq, job = next(iter(inflight.items()))
                if job.sent_at + timeout_s > now:
                    break
                del inflight[seq]
                self.session.forget(seq)
                expired.append(job)
            pool.stats_response_timeouts += len(expired)
            out: list[Any] = []
            pool._lost(self, expired, "response timeout", out)
            self._window_free.set()
            if out:
                try:
                    await pool._emit(out)
                except trio.Cancelled:  # the link ended meanwhile: out of inflight already
                    pool._settle_later(out)
                    raise

    async def _link_keeper(self) -> None:
        """enquire_link when idle; dead after N unanswered probes (section 4.11)."""
        cfg, session, tcp = self.config, self.session, self._tcp
        assert tcp is not None
        interval_s = cfg.enquire_link_interval_s
        while True:
            heard_at = max(self._last_rx, self._heard_at)
            due = heard_at + interval_s * (1 + self._unanswered_probes)
            now = trio.current_time()
            if now < due:
                await trio.sleep_until(due)
                continue
            if tcp.unread():
                # The SMSC sent something we did not read yet: the reader is held by our own
                # consumer (backpressure, a large read being handed on). The link is alive;
                # ended now, the answers among those bytes would be lost and, under
                # InflightPolicy.RETRY, their submits sent a second time. Should the SMSC die
                # meanwhile, the probes find out once the reader has caught up.
                self._heard_at = now
                self._unanswered_probes = 0
                continue
            if self._unanswered_probes >= cfg.enquire_link_misses:
                raise _Down(f"dead link: {self._unanswered_probes} enquire_link unanswered")
            if session.state in (SessionState.BOUND_TX, SessionState.BOUND_RX,
                                 SessionState.BOUND_TRX):
                session.send_enquire_link()
                self.kick()
            self._unanswered_probes += 1

    async def _closer(self) -> None:
        """Graceful end: drain outstanding responses, unbind, wait for unbind_resp."""
        cfg = self.config
        await self._stop.wait()
        with trio.move_on_after(cfg.drain_timeout_s):
            while self.inflight:
                if self._window_free.is_set():
                    self._window_free = trio.Event()
                await self._window_free.wait()
        if self.session.state in (SessionState.BOUND_TX, SessionState.BOUND_RX,
                                  SessionState.BOUND_TRX):
            self.session.send_unbind()
            self.kick()
            with trio.move_on_after(cfg.unbind_timeout_s):
                while self.session.state is not SessionState.CLOSED:
                    await trio.sleep(0.01)
        if self._peer_unbound.is_set():
            return  # the SMSC unbound first: the unbind drainer ends the link
        raise _Down("stopped")

    async def _unbind_drainer(self) -> None:
        """After the SMSC's unbind (SMPP 3.4 section 4.2): wait until the session closed --
        the deliver_sm read before the unbind answered, then the unbind_resp, and every
        outstanding submit_sm answered -- or ``drain_timeout_s`` passed; then let the reader
        settle what it read and the writer flush, and end the link. Submits still unanswered
        then go back to the pool under the in-flight policy."""
        cfg, session = self.config, self.session
        await self._peer_unbound.wait()
        with trio.move_on_after(cfg.drain_timeout_s):
            while session.state is not SessionState.CLOSED:
                await trio.sleep(0.01)
        if session.state is not SessionState.CLOSED:
            session.end_unbound()  # answers the unbind now if it was still waiting
        self.kick()
        # The reader is not cancelled while it hands on what it read: it popped those
        # submits from ``inflight`` already, so their outcomes exist nowhere else.
        with trio.move_on_after(cfg.unbind_timeout_s):
            while self._handling or session.has_data_to_send or self._writing:
                await trio.sleep(0.001)
        raise _Down("unbound by the SMSC")
