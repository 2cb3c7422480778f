"""A trio SMPP 3.4 server that behaves like an operator SMSC, for tests, demos and benchmarks.

Each TCP (or TLS, ``SimulatorConfig.tls``) connection (``dispatch.simulator.connection``) runs
an ``SmscSession`` with one reader task and one writer task that sends everything queued in
one ``send_all``. Submits are answered after ``response_latency_s`` (in batches), receipts
are delivered after ``receipt_delay_s`` to a receiver (RX/TRX) bind of the same account,
and everything seen is counted in ``SimulatorStats``. The submit_sm (and deliver_sm_resp) of one read come from the
session as one batch event (``SmscSession(batch_events=True)``) and are handled as one: the
counters, the TPS window and the receipt queue are updated once per batch, not per PDU.

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
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from dispatch.simulator.config import STAT_STATES, SimulatorConfig
from dispatch.simulator.connection import Accepted, Connection, Queued
from dispatch.simulator.multipart import decoded_text
from dispatch.simulator.receipts import ReceiptTexts
from dispatch.simulator.stats import SimulatorStats
from dispatch.simulator.tls import server_ssl_context
from dispatch.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    CommandStatus,
    Tlv,
)
from dispatch.smpp.session import (
    BindRequest,
)

if TYPE_CHECKING:
    from trio import TaskStatus

__all__ = ["SmscSimulator", "decoded_text", "run"]

log = logging.getLogger(__name__)
#: retry later when nobody of the account is bound to receive
_NO_RECEIVER_RETRY_S = 0.05
# plain ints: read per submit, and an Enum attribute costs ~100 ns
_RECEIPTED_MESSAGE_ID = int(Tlv.RECEIPTED_MESSAGE_ID)
_MESSAGE_STATE_TLVS = {stat: (int(Tlv.MESSAGE_STATE), bytes([state]))
                       for stat, state in STAT_STATES.items()}


class SmscSimulator:
    """The server: accounts, id allocation, receipts queue, statistics."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.port = config.port
        self._accounts = {a.system_id: a for a in config.accounts}
        # message ids: ``message_id_template % next(message_numbers)``
        self.message_numbers = itertools.count(1)
        self.message_id_template = self.id_template(config.message_id_format)
        # None: the receipt id is the message id (same format)
        self._receipt_id_template = (
            None if config.receipt_id_format in (None, config.message_id_format)
            else self.id_template(config.receipt_id_format))
        self._session_ids = itertools.count(1)
        self._rng = random.Random(config.seed)
        self._receivers: dict[str, list[Connection]] = {}
        self._rr = itertools.count()
        self._receipts: list[Queued] = []  # heap of deliver_sm not yet due
        # due deliver_sm per account, in order, waiting for room in a receiver's window
        self._ready: dict[str, deque[Queued]] = {}
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
        self._receipt_texts = ReceiptTexts()
        rules = config.outcomes  # the config is frozen: split the rules once
        self._outcome_patterns = [r for r in rules if r.pattern is not None]
        self._outcome_shares = [r for r in rules if r.pattern is None and r.share > 0]
        self._outcome_share_total = sum(r.share for r in self._outcome_shares)
        # One outcome for every message (no pattern, at most one share rule): receipts need
        # no ``outcome`` call, whose draw then has no effect (the generator serves nothing else).
        self._fixed_outcome: tuple[str, str] | None = None
        shares = self._outcome_shares
        if not self._outcome_patterns and len(shares) <= 1:
            self._fixed_outcome = (shares[0].stat, shares[0].err) if shares else ("DELIVRD", "000")

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
        conn = Connection(self, stream, next(self._session_ids))
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

    def count_tps(self, account: str, now: float, submits: int = 1) -> int:
        """Count ``submits`` submits in the account's current one-second window; return the
        count after them (the last one's place in its second)."""
        second = int(now - self._t0)
        window, count = self._tps_window.get(account, (second, 0))
        count = count + submits if window == second else submits
        self._tps_window[account] = (second, count)
        stats = self.stats
        if count > stats.max_tps_by_account.get(account, 0):
            stats.max_tps_by_account[account] = count
            stats.max_tps = max(stats.max_tps, count)
        return count

    def id_template(self, fmt: str) -> bytes:
        """``template % n``: message number ``n`` written as an id in ``fmt`` ("hex" or
        "decimal", upper-case hex and zero-padded as configured)."""
        cfg = self.config
        kind = ("X" if cfg.message_id_upper else "x") if fmt == "hex" else "d"
        width = cfg.message_id_width
        return (f"%0{width}{kind}" if width > 0 else f"%{kind}").encode()

    def format_id(self, n: int, fmt: str) -> str:
        return (self.id_template(fmt) % n).decode()

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

    def schedule_receipts(self, system_id: str, accepted: list[Accepted], now: float) -> None:
        """Queue a receipt deliver_sm for each accepted submit, in order, as far as
        ``receipt_queue_max`` allows (beyond it they are dropped)."""
        cfg = self.config
        room = cfg.receipt_queue_max - self.pending_deliveries()
        if room <= 0:
            return
        if len(accepted) > room:
            accepted = accepted[:room]
        texts = self._receipt_texts
        texts.refresh()
        fixed = self._fixed_outcome
        if fixed is not None:
            fixed_template = texts.template(fixed)
        receipt_id = self._receipt_id_template
        with_tlvs = cfg.receipt_tlvs
        tlvs = None
        due = now + cfg.receipt_delay_s
        order = self._receipt_seq
        items = []
        for fields, number, message_id in accepted:
            if fixed is None:
                outcome = self.outcome(fields[6])
                template = texts.template(outcome)
            else:
                outcome, template = fixed, fixed_template
            rid = message_id if receipt_id is None else receipt_id % number
            if with_tlvs:
                tlvs = ((_RECEIPTED_MESSAGE_ID, rid + b"\x00"), _MESSAGE_STATE_TLVS[outcome[0]])
            # the source of the receipt is the submit's destination and vice versa
            deliver = (b"", fields[4], fields[5], fields[6], fields[1], fields[2], fields[3],
                       ESM_CLASS_DELIVERY_RECEIPT, 0, 0, b"", b"", 0, 0, 0, 0,
                       template % (rid, fields[16][:20]), tlvs)
            items.append((due, next(order), system_id, deliver, 0))
        if cfg.receipt_delay_s <= 0:  # due at once: straight to its account's ready queue
            queue = self._ready.get(system_id)
            if queue is None:
                queue = self._ready[system_id] = deque()
            queue.extend(items)
            self._ready_count += len(items)
        else:
            for item in items:
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
                    room = conn.room
                    if room >= len(queue):
                        take = list(queue)
                        queue.clear()
                    else:
                        take = [queue.popleft() for _ in range(room)]
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

    def register_receiver(self, conn: Connection) -> None:
        self._receivers.setdefault(conn.system_id, []).append(conn)
        self._receipt_wakeup.set()

    def unregister_receiver(self, conn: Connection) -> None:
        conns = self._receivers.get(conn.system_id)
        if conns and conn in conns:
            conns.remove(conn)


async def run(config: SimulatorConfig, *,
              task_status: TaskStatus[SmscSimulator] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a simulator until cancelled; ``nursery.start(run, config)`` returns it listening."""
    await SmscSimulator(config).run(task_status=task_status)
