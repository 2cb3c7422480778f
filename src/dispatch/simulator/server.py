"""A trio SMPP 3.4 server that behaves like an operator SMSC, for tests, demos and benchmarks.

Each TCP (or TLS, ``SimulatorConfig.tls``) connection runs an ``SmscSession`` with one
reader task and one writer task that sends everything queued in one ``send_all``. Submits
are answered after ``response_latency_s`` (in batches), receipts are delivered after
``receipt_delay_s`` to a receiver (RX/TRX) bind of the same account, and everything seen is
counted in ``SimulatorStats``.

deliver_sm is sent the way an operator SMSC sends it (SMPP 3.4 section 4.6): at most
``deliver_window`` unacknowledged per session, and one that is not acknowledged -- no
deliver_sm_resp within ``deliver_resp_timeout_s``, a temporary error status, a generic_nack,
or the connection ended first -- is delivered again later, possibly on another receiver bind
of the same account. So a client that acknowledges a receipt before it made it durable and
then dies loses it; one that acknowledges after does not.

    async with trio.open_nursery() as nursery:
        sim = await nursery.start(run, SimulatorConfig(port=0))
        ...  # connect to ("127.0.0.1", sim.port); read sim.stats
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import re
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from dispatch.simulator.config import STAT_STATES, Account, SimulatorConfig
from dispatch.simulator.multipart import concatenation_info, decoded_text
from dispatch.simulator.stats import SimulatorStats, SubmitRecord, destination_hash
from dispatch.simulator.tls import server_ssl_context
from dispatch.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    CommandId,
    CommandStatus,
    Tlv,
)
from dispatch.smpp.session import (
    BindMode,
    BindRequest,
    GenericNack,
    ProtocolError,
    Response,
    SmscSession,
    SubmitSm,
    Unbound,
)

if TYPE_CHECKING:
    from trio import TaskStatus

__all__ = ["SmscSimulator", "decoded_text", "run"]

log = logging.getLogger(__name__)
_RECEIVERS = (BindMode.RECEIVER, BindMode.TRANSCEIVER)
#: a deliver_sm waiting in the queue: (not before, order, system_id, deliver fields, sends)
_Queued = tuple[float, int, str, tuple[Any, ...], int]
#: retry later when nobody of the account is bound to receive
_NO_RECEIVER_RETRY_S = 0.05


class SmscSimulator:
    """The server: accounts, id allocation, receipts queue, statistics."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.port = config.port
        self._accounts = {a.system_id: a for a in config.accounts}
        self._ids = itertools.count(1)
        self._session_ids = itertools.count(1)
        self._rng = random.Random(config.seed)
        self._receivers: dict[str, list[_Connection]] = {}
        self._rr = itertools.count()
        self._receipts: list[_Queued] = []  # heap of deliver_sm not yet due
        # due deliver_sm per account, in order, waiting for room in a receiver's window
        self._ready: dict[str, deque[_Queued]] = {}
        self._ready_count = 0  # items in all of ``_ready`` (checked once per submit)
        self._receipt_seq = itertools.count()
        self._receipt_wakeup = trio.Event()
        self._parts: dict[tuple[str, str, int], dict[int, tuple[int, bytes]]] = {}
        self._tps_window: dict[str, tuple[int, int]] = {}  # account -> (second, count)
        self._t0 = 0.0
        self._faulty_left = config.faults.faulty_sessions
        self._silent_binds_left = config.faults.silent_binds
        self._rule_uses = [0] * len(config.submit_status_rules)
        self._parts_seen: set[tuple[str, int | None, int]] = set()
        self._stamp_second, self._stamp = -1, ""
        rules = config.outcomes  # the config is frozen: split the rules once
        self._outcome_patterns = [r for r in rules if r.pattern is not None]
        self._outcome_shares = [r for r in rules if r.pattern is None and r.share > 0]
        self._outcome_share_total = sum(r.share for r in self._outcome_shares)
        # format() specs of the id formats (config is frozen); one format() call per id
        self._id_specs: dict[str, str] = {}

    # ----------------------------------------------------------------------- service
    async def run(self, *, task_status: TaskStatus[SmscSimulator] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Listen, serve until cancelled. ``task_status.started(self)`` once listening."""
        self._t0 = trio.current_time()
        cfg = self.config
        async with trio.open_nursery() as nursery:
            if cfg.tls is None:
                serve: Any = partial(trio.serve_tcp, self._serve, cfg.port, host=cfg.host)
            else:
                serve = partial(trio.serve_ssl_over_tcp, self._serve_tls, cfg.port,
                                server_ssl_context(cfg.tls), host=cfg.host)
            listeners = await nursery.start(serve)
            sock = listeners[0].socket if cfg.tls is None else listeners[0].transport_listener.socket
            self.port = sock.getsockname()[1]
            nursery.start_soon(self._receipt_loop)
            log.info("smsc simulator listening on %s:%d%s", cfg.host, self.port,
                     " (TLS)" if cfg.tls else "")
            task_status.started(self)

    async def _serve_tls(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        """Handshake first (bounded), so a client that fails it is counted and never bound."""
        tls = self.config.tls
        assert tls is not None
        self.stats.connections += 1
        try:
            with trio.fail_after(tls.handshake_timeout_s):
                await stream.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            self.stats.tls_handshake_failures += 1
            cause = exc.__cause__ or exc
            log.info("simulator: TLS handshake failed: %s", cause)
            await trio.aclose_forcefully(stream)
            return
        self.stats.tls_handshakes += 1
        await self._session(stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.stats.connections += 1
        await self._session(stream)

    async def _session(self, stream: trio.abc.Stream) -> None:
        conn = _Connection(self, stream, next(self._session_ids))
        try:
            await conn.run()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the ESME went away (reset, kill -9): its session simply ends
        finally:
            conn.detach()
            await trio.aclose_forcefully(stream)

    # -------------------------------------------------------------------- decisions
    def authenticate(self, request: BindRequest) -> int:
        account = self._accounts.get(request.system_id.decode("ascii", "replace"))
        if account is None:
            return CommandStatus.ESME_RINVSYSID
        if account.password.encode() != request.password:
            return CommandStatus.ESME_RINVPASWD
        return CommandStatus.ESME_ROK

    def take_fault(self) -> bool:
        faults = self.config.faults
        if self._faulty_left <= 0 or not (faults.drop_after_pdus or faults.stall_after_pdus
                                          or faults.garbage_after_pdus):
            return False
        self._faulty_left -= 1
        return True

    def count_tps(self, account: str, now: float) -> int:
        """Count one submit in the account's current one-second window; return the count."""
        second = int(now - self._t0)
        window, count = self._tps_window.get(account, (second, 0))
        count = count + 1 if window == second else 1
        self._tps_window[account] = (second, count)
        stats = self.stats
        if count > stats.max_tps_by_account.get(account, 0):
            stats.max_tps_by_account[account] = count
            stats.max_tps = max(stats.max_tps, count)
        return count

    def new_message_id(self) -> tuple[str, int]:
        n = next(self._ids)
        return self.format_id(n, self.config.message_id_format), n

    def format_id(self, n: int, fmt: str) -> str:
        spec = self._id_specs.get(fmt)
        if spec is None:
            cfg = self.config
            kind = ("X" if cfg.message_id_upper else "x") if fmt == "hex" else "d"
            width = cfg.message_id_width
            spec = self._id_specs[fmt] = f"0{width}{kind}" if width > 0 else kind
        return format(n, spec)

    def submit_status(self, destination: str) -> int:
        used = self._rule_uses
        for i, rule in enumerate(self.config.submit_status_rules):
            if rule.times and used[i] >= rule.times:
                continue
            if re.search(rule.pattern, destination):
                used[i] += 1
                return rule.status
        return CommandStatus.ESME_ROK

    def take_silent_bind(self) -> bool:
        """Whether this bind request is one of the ``silent_binds`` never answered."""
        if self._silent_binds_left <= 0:
            return False
        self._silent_binds_left -= 1
        return True

    def outcome(self, destination: str | bytes) -> tuple[str, str]:
        if self._outcome_patterns:
            if isinstance(destination, bytes):
                destination = destination.decode("ascii", "replace")
            for rule in self._outcome_patterns:
                if rule.matches(destination):
                    return rule.stat, rule.err
        shares = self._outcome_shares
        if not shares:
            return "DELIVRD", "000"
        pick = self._rng.random() * self._outcome_share_total
        for rule in shares:
            pick -= rule.share
            if pick < 0:
                return rule.stat, rule.err
        return shares[-1].stat, shares[-1].err

    def reassemble(self, system_id: str, dest_hash: str, ref: int, total: int, part: int,
                   data_coding: int, payload: bytes) -> None:
        key = (system_id, dest_hash, ref)
        parts = self._parts.setdefault(key, {})
        parts[part] = (data_coding, payload)
        if len(parts) >= total:
            del self._parts[key]
            joined = b"".join(parts[i][1] for i in sorted(parts))
            coding = parts[min(parts)][0]
            self.stats.multipart_texts.append((dest_hash, coding, joined))

    def schedule_receipt(self, system_id: str, fields: tuple[Any, ...], message_num: int,
                         now: float) -> None:
        if self.pending_deliveries() >= self.config.receipt_queue_max:
            return
        cfg = self.config
        stat, err = self.outcome(fields[6])
        rid = self.format_id(message_num, cfg.receipt_id_format or cfg.message_id_format)
        stamp = self._receipt_stamp()
        dlvrd = "001" if stat == "DELIVRD" else "000"
        body = (f"id:{rid} sub:001 dlvrd:{dlvrd} submit date:{stamp} done date:{stamp} "
                f"stat:{stat} err:{err} text:").encode() + bytes(fields[16][:20])
        tlvs = None
        if cfg.receipt_tlvs:
            tlvs = ((Tlv.RECEIPTED_MESSAGE_ID.value, rid.encode() + b"\x00"),
                    (Tlv.MESSAGE_STATE.value, bytes([STAT_STATES[stat]])))
        deliver = (b"", fields[4], fields[5], fields[6], fields[1], fields[2], fields[3],
                   ESM_CLASS_DELIVERY_RECEIPT, 0, 0, b"", b"", 0, 0, 0, 0, body, tlvs)
        item = (now + cfg.receipt_delay_s, next(self._receipt_seq), system_id, deliver, 0)
        if cfg.receipt_delay_s <= 0:  # due at once: straight to its account's ready queue
            queue = self._ready.get(system_id)
            if queue is None:
                queue = self._ready[system_id] = deque()
            queue.append(item)
            self._ready_count += 1
        else:
            heapq.heappush(self._receipts, item)
        self._receipt_wakeup.set()

    def inject_mo(self, system_id: str, source: bytes, destination: bytes, short_message: bytes,
                  data_coding: int = 0) -> None:
        """Queue a mobile-originated deliver_sm toward ``system_id``'s receiver binds."""
        deliver = (b"", 1, 1, source, 0, 0, destination, 0, 0, 0, b"", b"", 0, 0,
                   data_coding, 0, short_message, None)
        heapq.heappush(self._receipts, (trio.current_time(), next(self._receipt_seq),
                                        system_id, deliver, 0))
        self._receipt_wakeup.set()

    def redeliver(self, system_id: str, deliver: tuple[Any, ...], sends: int) -> None:
        """A deliver_sm was not acknowledged: queue it again unless it used its attempts."""
        cfg, stats = self.config, self.stats
        if cfg.deliver_max_attempts and sends >= cfg.deliver_max_attempts:
            stats.deliver_abandoned += 1
            return
        heapq.heappush(self._receipts, (trio.current_time() + cfg.redelivery_delay_s,
                                        next(self._receipt_seq), system_id, deliver, sends))
        self._receipt_wakeup.set()

    def _receipt_stamp(self) -> str:
        """Appendix B's "YYMMDDhhmm" for now, formatted once a second."""
        second = int(time.time())
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%y%m%d%H%M", time.gmtime(second))
        return self._stamp

    def pending_deliveries(self) -> int:
        """deliver_sm queued (first time or again) and not yet written to a session."""
        return len(self._receipts) + self._ready_count

    def window_opened(self) -> None:
        """A session got deliver_sm_resp: queued deliveries may fit in its window now."""
        self._receipt_wakeup.set()

    async def _receipt_loop(self) -> None:
        """Hand due deliver_sm to receiver sessions of their account, round robin, as far as
        their windows allow; what does not fit waits (in order) for a deliver_sm_resp.

        Each item moves once from the time heap to its account's ready queue, and a wake-up
        only looks at the front of the ready queues: with windows full and a long backlog, a
        deliver_sm_resp costs O(1) here, not a pass over the backlog."""
        heap, ready = self._receipts, self._ready
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                item = heapq.heappop(heap)
                queue = ready.get(item[2])
                if queue is None:
                    queue = ready[item[2]] = deque()
                queue.append(item)
                self._ready_count += 1
            handed = 0
            for system_id, queue in ready.items():
                if not queue:
                    continue
                conns = [c for c in self._receivers.get(system_id, ()) if c.can_deliver]
                start = next(self._rr)
                for k in range(len(conns)):
                    if not queue:
                        break
                    conn = conns[(start + k) % len(conns)]
                    take = [queue.popleft() for _ in range(min(conn.room, len(queue)))]
                    n = conn.deliver(take)
                    queue.extendleft(reversed(take[n:]))  # not taken: first in line again
                    handed += n
                    self._ready_count -= n
            if handed:
                await trio.sleep(0)
                continue
            # Nothing could be handed: wait for a deliver_sm_resp, a new item or a receiver,
            # the next due time, or (items waiting for an account without a free session) a
            # short bounded retry.
            deadline = heap[0][0] if heap else math.inf
            if any(ready.values()):
                deadline = min(deadline, now + _NO_RECEIVER_RETRY_S)
            self._receipt_wakeup = trio.Event()
            with trio.move_on_at(deadline):
                await self._receipt_wakeup.wait()

    def register_receiver(self, conn: _Connection) -> None:
        self._receivers.setdefault(conn.system_id, []).append(conn)
        self._receipt_wakeup.set()

    def unregister_receiver(self, conn: _Connection) -> None:
        conns = self._receivers.get(conn.system_id)
        if conns and conn in conns:
            conns.remove(conn)


class _Connection:
    """One ESME connection: session, reader (here), writer and delayed responder tasks."""

    def __init__(self, sim: SmscSimulator, stream: trio.abc.Stream, session_id: int) -> None:
        self.sim = sim
        self.stream = stream
        self.session_id = session_id
        self.session = SmscSession(system_id=sim.config.system_id.encode())
        self.system_id = ""
        self.account: Account | None = None
        self.alive = True
        self.faulty = False
        self.stalled = False
        self.garbage_sent = False
        self.outstanding = 0
        self._kick = trio.Event()
        self._delayed: deque[tuple[float, int, int, bytes]] = deque()
        self._delayed_wakeup = trio.Event()
        # deliver_sm sent and not acknowledged: seq -> (sent at, fields, sends so far);
        # insertion order is send order, so the first one is the oldest
        self.unacked: dict[int, tuple[float, tuple[Any, ...], int]] = {}
        self._unacked_added = trio.Event()
        self._writing = False

    @property
    def can_deliver(self) -> bool:
        return self.alive and not self.stalled and self.room > 0

    @property
    def room(self) -> int:
        """deliver_sm this session may still have unacknowledged (no window: unbounded)."""
        window = self.sim.config.deliver_window
        return window - len(self.unacked) if window else 1 << 30

    def deliver(self, items: list[_Queued]) -> int:
        """Send as many of ``items`` as the deliver window has room for; return how many."""
        window = self.sim.config.deliver_window
        room = window - len(self.unacked) if window else len(items)
        if not self.alive or self.stalled or room <= 0:
            return 0
        take = items[:room]
        try:
            seqs = self.session.send_deliver_sm_batch([item[3] for item in take])
        except Exception:  # session no longer bound (unbinding): the caller keeps them
            return 0
        stats, unacked = self.sim.stats, self.unacked
        now = trio.current_time()
        for seq, (_, _, _, deliver, sends) in zip(seqs, take, strict=True):
            unacked[seq] = (now, deliver, sends + 1)
            if sends:
                stats.redeliveries += 1
            elif deliver[7] & ESM_CLASS_DELIVERY_RECEIPT:
                stats.receipts_sent += 1
            else:
                stats.mo_sent += 1
        if len(unacked) > stats.max_deliver_outstanding:
            stats.max_deliver_outstanding = len(unacked)
        self._unacked_added.set()
        self._kick.set()
        return len(take)

    def _deliver_answered(self, sequence_number: int, command_status: int) -> None:
        """deliver_sm_resp or generic_nack for one of our deliver_sm (section 4.6.2)."""
        entry = self.unacked.pop(sequence_number, None)
        if entry is None:
            return
        if command_status:
            self.sim.stats.deliver_resps_failed += 1
            if command_status == CommandStatus.ESME_RX_P_APPN:
                self.sim.stats.deliver_abandoned += 1  # permanent: the ESME will never take it
            else:
                self.sim.redeliver(self.system_id, entry[1], entry[2])
        self.sim.window_opened()

    def detach(self) -> None:
        """The connection ended: unacknowledged deliver_sm go back to the queue."""
        self.alive = False
        self.sim.unregister_receiver(self)
        unacked, self.unacked = self.unacked, {}
        for _, deliver, sends in unacked.values():
            self.sim.redeliver(self.system_id, deliver, sends)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer)
            nursery.start_soon(self._responder)
            if self.sim.config.deliver_resp_timeout_s > 0:
                nursery.start_soon(self._deliver_timer)
            try:
                await self._reader()
            finally:
                nursery.cancel_scope.cancel()

    async def _writer(self) -> None:
        session, stream = self.session, self.stream
        while True:
            await self._kick.wait()
            self._kick = trio.Event()
            data = session.data_to_send()
            if data and not self.stalled:
                self._writing = True
                try:
                    await stream.send_all(data)
                finally:
                    self._writing = False

    async def _deliver_timer(self) -> None:
        """deliver_sm unanswered after ``deliver_resp_timeout_s`` are given up on this session
        and queued again (a late response is then ignored by the session, section 3.2)."""
        timeout_s = self.sim.config.deliver_resp_timeout_s
        while True:
            unacked = self.unacked
            if not unacked:
                self._unacked_added = trio.Event()
                await self._unacked_added.wait()
                continue
            seq, (sent_at, _, _) = next(iter(unacked.items()))
            now = trio.current_time()
            if sent_at + timeout_s > now:
                await trio.sleep_until(sent_at + timeout_s)
                continue
            while unacked:
                seq, (sent_at, deliver, sends) = next(iter(unacked.items()))
                if sent_at + timeout_s > now:
                    break
                del unacked[seq]
                self.session.forget(seq)
                self.sim.stats.deliver_timeouts += 1
                self.sim.redeliver(self.system_id, deliver, sends)

    async def _responder(self) -> None:
        """Answer submits whose latency has passed, many at once."""
        delayed = self._delayed
        while True:
            if not delayed:
                self._delayed_wakeup = trio.Event()
                await self._delayed_wakeup.wait()
                continue
            await trio.sleep_until(delayed[0][0])
            now = trio.current_time()
            batch = []
            while delayed and delayed[0][0] <= now:
                _, status, seq, mid = delayed.popleft()
                batch.append((status, seq, mid))
            self._respond(batch)

    def _respond(self, batch: list[tuple[int, int, bytes]]) -> None:
        if not batch or self.stalled or not self.alive:
            return
        self.session.send_submit_sm_resp_batch(batch)
        self.outstanding -= len(batch)
        self._kick.set()

    async def _reader(self) -> None:
        session, stats, cfg = self.session, self.sim.stats, self.sim.config
        faults = cfg.faults
        latency = cfg.response_latency_s
        while True:
            data = await self.stream.receive_some(cfg.read_size)
            if not data:
                return
            if self.stalled:
                continue  # a stalled SMSC reads and ignores
            events = session.receive_data(data)
            now = trio.current_time()
            immediate: list[tuple[int, int, bytes]] = []
            for ev in events:
                if type(ev) is SubmitSm:
                    self._submit(ev, now, immediate, latency)
                elif type(ev) is Response:
                    if ev.command_id == CommandId.DELIVER_SM_RESP:
                        stats.deliver_resps += 1
                        self._deliver_answered(ev.sequence_number, ev.command_status)
                elif type(ev) is BindRequest:
                    self._bind(ev)
                elif type(ev) is GenericNack:
                    stats.generic_nacks_received += 1
                    if ev.request_command_id == CommandId.DELIVER_SM:
                        self._deliver_answered(ev.sequence_number,
                                               ev.command_status or CommandStatus.ESME_RUNKNOWNERR)
                elif type(ev) is ProtocolError:
                    stats.protocol_errors += 1
                    if ev.fatal:
                        self._kick.set()
                        return
                elif type(ev) is Unbound:
                    self.detach()
                    # The unbind_resp goes out through the writer: two tasks sending on one
                    # stream at once is an error that would end the whole simulator.
                    self._kick.set()
                    with trio.move_on_after(5):
                        while session.has_data_to_send or self._writing:
                            await trio.sleep(0.001)
                    return
            self._respond(immediate)
            self._kick.set()
            if self.faulty:
                pdus = session.pdus_received
                if faults.drop_after_pdus and pdus >= faults.drop_after_pdus:
                    stats.faults_injected += 1
                    log.info("simulator: dropping session %d (fault injection)", self.session_id)
                    return
                if faults.stall_after_pdus and pdus >= faults.stall_after_pdus:
                    stats.faults_injected += 1
                    self.stalled = True
                if (faults.garbage_after_pdus and pdus >= faults.garbage_after_pdus
                        and not self.garbage_sent):
                    stats.faults_injected += 1
                    self.garbage_sent = True
                    session.send_raw(faults.garbage)
                    self._kick.set()

    def _bind(self, request: BindRequest) -> None:
        sim = self.sim
        if sim.take_silent_bind():
            sim.stats.binds_ignored += 1
            sim.stats.faults_injected += 1
            return  # read, never answered: the ESME's bind timeout must handle it
        status = sim.authenticate(request)
        sim.stats.bind_log.append((trio.current_time(),
                                   request.system_id.decode("ascii", "replace"), status))
        if status:
            sim.stats.binds_rejected += 1
            self.session.reject_bind(request, status)
            return
        sim.stats.binds_ok += 1
        self.session.accept_bind(request)
        self.system_id = request.system_id.decode("ascii", "replace")
        self.account = sim._accounts[self.system_id]
        self.faulty = sim.take_fault()
        if request.mode in _RECEIVERS:
            sim.register_receiver(self)

    def _submit(self, ev: SubmitSm, now: float, immediate: list[tuple[int, int, bytes]],
                latency: float) -> None:
        sim, stats, cfg = self.sim, self.sim.stats, self.sim.config
        fields = ev.fields
        stats.submits += 1
        self.outstanding += 1
        if self.outstanding > stats.max_outstanding:
            stats.max_outstanding = self.outstanding
        by_session = stats.max_outstanding_by_session
        if self.outstanding > by_session.get(self.session_id, 0):
            by_session[self.session_id] = self.outstanding
        account = self.account
        assert account is not None  # the session only yields SubmitSm once bound
        count = sim.count_tps(account.system_id, now)
        destination_raw = fields[6]
        status: int = 0
        if account.throttle_tps and count > account.throttle_tps:
            status = CommandStatus.ESME_RTHROTTLED
        elif cfg.submit_status_rules:
            status = sim.submit_status(destination_raw.decode("ascii", "replace"))
        stats.submits_by_status[status] += 1
        ref, total, part, payload = concatenation_info(fields[7], fields[16], fields[17])
        message_id = ""
        logged = cfg.log_submits and len(stats.submit_log) < cfg.max_log_records
        # hashed only when something records it (a BLAKE2b per submit is a tenth of the
        # simulator's CPU at full rate)
        dest_hash = destination_hash(destination_raw) if logged or ref is not None else ""
        if status == 0:
            message_id, number = sim.new_message_id()
            if cfg.receipts and fields[12] & 0x03:
                sim.schedule_receipt(self.system_id, fields, number, now)
            if ref is not None and len(stats.multipart_texts) < cfg.max_log_records:
                sim.reassemble(self.system_id, dest_hash, ref, total, part, fields[14], payload)
        if logged:
            record = SubmitRecord(self.session_id, self.system_id, ev.sequence_number,
                                  dest_hash, message_id, status, ref, total, part, now)
            if status == 0:
                key = (dest_hash, ref, part)
                seen = sim._parts_seen
                if key in seen:
                    stats.duplicates += 1
                seen.add(key)
            stats.submit_log.append(record)
        mid = message_id.encode()
        if latency > 0:
            self._delayed.append((now + latency, status, ev.sequence_number, mid))
            self._delayed_wakeup.set()
        else:
            immediate.append((status, ev.sequence_number, mid))


async def run(config: SimulatorConfig, *,
              task_status: TaskStatus[SmscSimulator] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a simulator until cancelled; ``nursery.start(run, config)`` returns it listening."""
    await SmscSimulator(config).run(task_status=task_status)
