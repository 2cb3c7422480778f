"""Is the SMSC still there, and did it answer? Two tasks of a bound connection judge it on
what it sent, read or not: bytes waiting unread in our socket count (``CountedStream``), since
the reader may be held by a slow consumer, and our own backpressure must never kill a live
link nor expire an answer that came in time.

* ``link_keeper`` -- enquire_link after ``enquire_link_interval_s`` without traffic; the link
  is declared dead after ``enquire_link_misses`` unanswered probes (SMPP 3.4 section 4.11);
* ``response_timer`` -- requests unanswered after ``response_timeout_s`` free their window
  slot and go back to the pool, which applies the in-flight policy; unanswered once the
  reader has handled everything the SMSC had sent by then, so an answer held up by our own
  backpressure is not taken for a missing one.

Both run in the bind's nursery (``Bind.serve``) and work on that bind's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from dispatch.smpp.session import SessionState
from dispatch.transport.errors import LinkDown

if TYPE_CHECKING:
    from dispatch.transport.bind import Bind


async def response_timer(bind: Bind) -> None:
    """Expire requests unanswered after ``response_timeout_s`` (oldest first)."""
    inflight, pool, timeout_s = bind.inflight, bind.pool, bind.config.response_timeout_s
    tcp = bind._tcp
    assert tcp is not None
    while True:
        if not inflight:
            if bind._inflight_added.is_set():
                bind._inflight_added = trio.Event()
            await bind._inflight_added.wait()
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
        while bind._handled_bytes < sent_by_now:
            if bind._read_handled.is_set():
                bind._read_handled = trio.Event()
            await bind._read_handled.wait()
        expired = []
        while inflight:
            seq, job = next(iter(inflight.items()))
            if job.sent_at + timeout_s > now:
                break
            del inflight[seq]
            bind.session.forget(seq)
            expired.append(job)
        pool.stats_response_timeouts += len(expired)
        out: list[Any] = []
        pool._lost(bind, expired, "response timeout", out)
        bind._window_free.set()
        if out:
            try:
                await pool._emit(out)
            except trio.Cancelled:  # the link ended meanwhile: out of inflight already
                pool._settle_later(out)
                raise


async def link_keeper(bind: Bind) -> None:
    """enquire_link when idle; dead after N unanswered probes (section 4.11)."""
    cfg, session, tcp = bind.config, bind.session, bind._tcp
    assert tcp is not None
    interval_s = cfg.enquire_link_interval_s
    while True:
        heard_at = max(bind._last_rx, bind._heard_at)
        due = heard_at + interval_s * (1 + bind._unanswered_probes)
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
            bind._heard_at = now
            bind._unanswered_probes = 0
            continue
        if bind._unanswered_probes >= cfg.enquire_link_misses:
            raise LinkDown(f"dead link: {bind._unanswered_probes} enquire_link unanswered")
        if session.state in (SessionState.BOUND_TX, SessionState.BOUND_RX,
                             SessionState.BOUND_TRX):
            session.send_enquire_link()
            bind.kick()
        bind._unanswered_probes += 1
