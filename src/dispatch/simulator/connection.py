"""One ESME connection to the simulator (``SmscSimulator``): its session, a reader task (here),
a writer task that sends everything queued in one ``send_all``, a responder for delayed
submit answers, and the deliver window of the deliver_sm it sends (SMPP 3.4 section 4.6)."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from dispatch.simulator.config import Account
from dispatch.simulator.multipart import concatenation_info
from dispatch.simulator.stats import SubmitRecord, destination_hash
from dispatch.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_UDHI,
    CommandId,
    CommandStatus,
)
from dispatch.smpp.events import DeliverSmRespBatch, SubmitSmBatch
from dispatch.smpp.session import (
    BindMode,
    BindRequest,
    GenericNack,
    ProtocolError,
    Response,
    SmscSession,
    Unbound,
)

if TYPE_CHECKING:
    from dispatch.simulator.server import SmscSimulator

log = logging.getLogger("dispatch.simulator.server")
RECEIVERS = (BindMode.RECEIVER, BindMode.TRANSCEIVER)
#: a deliver_sm waiting in the queue: (not before, order, system_id, deliver fields, sends)
Queued = tuple[float, int, str, tuple[Any, ...], int]
#: an accepted submit_sm that asked for a receipt: (fields, message number, message id)
Accepted = tuple[tuple[Any, ...], int, bytes]
# plain ints: read per submit, and an Enum attribute costs ~100 ns
THROTTLED = int(CommandStatus.ESME_RTHROTTLED)


class Connection:
    """One ESME connection: session, reader (here), writer and delayed responder tasks."""

    def __init__(self, sim: SmscSimulator, stream: trio.abc.Stream, session_id: int) -> None:
        self.sim = sim
        self.stream = stream
        self.session_id = session_id
        self.session = SmscSession(system_id=sim.config.system_id.encode(), batch_events=True)
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

    def deliver(self, items: list[Queued]) -> int:
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
        redeliveries = receipts = mo = 0
        for seq, (_, _, _, deliver, sends) in zip(seqs, take, strict=True):
            unacked[seq] = (now, deliver, sends + 1)
            if sends:
                redeliveries += 1
            elif deliver[7] & ESM_CLASS_DELIVERY_RECEIPT:
                receipts += 1
            else:
                mo += 1
        stats.redeliveries += redeliveries
        stats.receipts_sent += receipts
        stats.mo_sent += mo
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
            self._deliver_failed(entry, command_status)
        self.sim.window_opened()

    def _delivers_answered(self, pdus: list[tuple[int, int, int, Any]]) -> None:
        """``_deliver_answered`` for a run of deliver_sm_resp, waking the queue once."""
        unacked = self.unacked
        answered = False
        for _, command_status, sequence_number, _ in pdus:
            entry = unacked.pop(sequence_number, None)
            if entry is None:
                continue
            answered = True
            if command_status:
                self._deliver_failed(entry, command_status)
        if answered:
            self.sim.window_opened()

    def _deliver_failed(self, entry: tuple[float, tuple[Any, ...], int],
                        command_status: int) -> None:
        self.sim.stats.deliver_resps_failed += 1
        if command_status == CommandStatus.ESME_RX_P_APPN:
            self.sim.stats.deliver_abandoned += 1  # permanent: the ESME will never take it
        else:
            self.sim.redeliver(self.system_id, entry[1], entry[2])

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
                if type(ev) is SubmitSmBatch:
                    self._submits(ev.pdus, now, immediate, latency)
                elif type(ev) is DeliverSmRespBatch:
                    stats.deliver_resps += len(ev.pdus)
                    self._delivers_answered(ev.pdus)
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
        if request.mode in RECEIVERS:
            sim.register_receiver(self)

    def _submits(self, pdus: list[tuple[int, int, int, tuple[Any, ...]]], now: float,
                 immediate: list[tuple[int, int, bytes]], latency: float) -> None:
        """A run of submit_sm from one read: decide each, answer it (at once into
        ``immediate``, or after ``latency``), count it, queue its receipt.

        What cannot change within the run is done once for it: the outstanding count only
        grows, so its maximum is the count after the run; ``now`` is one TPS second, so the
        run's submits are the next places in it."""
        sim, stats, cfg = self.sim, self.sim.stats, self.sim.config
        account = self.account
        assert account is not None  # the session only yields submits once bound
        submits = len(pdus)
        stats.submits += submits
        self.outstanding += submits
        outstanding = self.outstanding
        if outstanding > stats.max_outstanding:
            stats.max_outstanding = outstanding
        by_session = stats.max_outstanding_by_session
        if outstanding > by_session.get(self.session_id, 0):
            by_session[self.session_id] = outstanding
        count = sim.count_tps(account.system_id, now, submits) - submits  # before this run
        throttle, rules = account.throttle_tps, cfg.submit_status_rules
        by_status = stats.submits_by_status
        decide = bool(throttle or rules)  # else every submit is accepted
        if not decide:
            by_status[0] += submits
        receipts, log_submits, log_max = cfg.receipts, cfg.log_submits, cfg.max_log_records
        submit_log, multipart_texts = stats.submit_log, stats.multipart_texts
        numbers, id_template = sim.message_numbers, sim.message_id_template
        delayed, due = self._delayed, now + latency
        wanted: list[Accepted] = []
        for _, _, seq, fields in pdus:
            status = 0
            if decide:
                count += 1
                if throttle and count > throttle:
                    status = THROTTLED
                elif rules:
                    status = sim.submit_status(fields[6].decode("ascii", "replace"))
                by_status[status] += 1
            if fields[7] & ESM_CLASS_UDHI or fields[17]:  # else a single part, no need to look
                ref, total, part, payload = concatenation_info(fields[7], fields[16], fields[17])
            else:
                ref, total, part = None, 1, 1
            logged = log_submits and len(submit_log) < log_max
            # hashed only when something records it (a BLAKE2b per submit is a tenth of the
            # simulator's CPU at full rate)
            dest_hash = destination_hash(fields[6]) if logged or ref is not None else ""
            message_id = b""
            if status == 0:
                number = next(numbers)
                message_id = id_template % number
                if receipts and fields[12] & 0x03:
                    wanted.append((fields, number, message_id))
                if ref is not None and len(multipart_texts) < log_max:
                    sim.reassemble(self.system_id, dest_hash, ref, total, part, fields[14],
                                   payload)
            if logged:
                self._log_submit(seq, dest_hash, message_id.decode(), status, ref, total, part,
                                 now)
            if latency > 0:
                delayed.append((due, status, seq, message_id))
            else:
                immediate.append((status, seq, message_id))
        if wanted:
            sim.schedule_receipts(self.system_id, wanted, now)
        if latency > 0:
            self._delayed_wakeup.set()

    def _log_submit(self, seq: int, dest_hash: str, message_id: str, status: int,
                    ref: int | None, total: int, part: int, now: float) -> None:
        sim, stats = self.sim, self.sim.stats
        record = SubmitRecord(self.session_id, self.system_id, seq, dest_hash, message_id,
                              status, ref, total, part, now)
        if status == 0:
            key = (dest_hash, ref, part)
            seen = sim._parts_seen
            if key in seen:
                stats.duplicates += 1
            seen.add(key)
        stats.submit_log.append(record)
