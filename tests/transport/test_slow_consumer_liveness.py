"""A consumer slower than the enquire_link interval (SMPP 3.4 section 4.11) or the response
timeout does not make a live link look dead, nor its answers late.

While the reader waits on the consumer (``BindPool._emit``: backpressure) it reads nothing,
so what the SMSC sends meanwhile -- answers to our submits, enquire_link_resp -- waits in the
socket. The link keeper used to judge the link on when the reader last read: a consumer
stalled for ``(enquire_link_misses + 1) * enquire_link_interval_s`` had the link declared
dead, and under ``InflightPolicy.RETRY`` the submits answered in the unread bytes were sent a
second time. The link is judged on what the SMSC sent, read or not (a silent SMSC is still
declared dead while the consumer stalls: test_abort_while_handing_on.py, "dead-link"), and so
is a submit waiting for its answer past ``response_timeout_s``.

Scripted SMSCs over real sockets on 127.0.0.1 (port 0); every wait is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from dispatch.smpp.session import BindRequest, EnquireLink, SmscSession, SubmitSm
from dispatch.transport.pool import BindPool, SubmitStatus
from pool_harness import FAST_RECONNECT, Ledger, messages, pool_against, wait_until

LIMIT_S = 15.0
INTERVAL_S = 0.25
MISSES = 2
#: how long the consumer reads nothing: well past the (MISSES + 1) * INTERVAL_S that ended
#: the link before
STALL_S = 4 * (MISSES + 1) * INTERVAL_S


class _AnswersWhileTheConsumerStalls:
    """First connection: waits for ``total`` submits, answers the first alone (it fills the
    one-batch outcome channel), on ``second`` the second alone (the reader then waits to hand
    it on), and on ``rest`` all the others. It answers every enquire_link all along. Later
    connections answer every submit at once with ids ``r<seq>``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.second = trio.Event()
        self.rest = trio.Event()
        self.submits: list[bytes] = []  # destination of every submit_sm, all connections
        self.enquire_links = 0
        self.connections = 0

    async def handler(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        first = self.connections == 1
        session = SmscSession(system_id=b"smsc")
        write_lock = trio.Lock()
        seqs: list[int] = []
        all_in = trio.Event()

        async def flush() -> None:
            async with write_lock:
                if session.has_data_to_send:
                    await stream.send_all(session.data_to_send())

        async def script() -> None:
            await all_in.wait()
            session.send_submit_sm_resp_batch([(0, seqs[0], b"m%d" % seqs[0])])
            await flush()
            await self.second.wait()
            session.send_submit_sm_resp_batch([(0, seqs[1], b"m%d" % seqs[1])])
            await flush()
            await self.rest.wait()
            session.send_submit_sm_resp_batch([(0, seq, b"m%d" % seq) for seq in seqs[2:]])
            await flush()

        async with trio.open_nursery() as nursery:
            if first:
                nursery.start_soon(script)
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                for ev in session.receive_data(data):
                    if isinstance(ev, BindRequest):
                        session.accept_bind(ev)
                    elif isinstance(ev, EnquireLink):
                        self.enquire_links += 1  # the session answered it
                    elif isinstance(ev, SubmitSm):
                        self.submits.append(ev.fields[6])
                        if first:
                            seqs.append(ev.sequence_number)
                            if len(seqs) == self.total:
                                all_in.set()
                        else:
                            seq = ev.sequence_number
                            session.send_submit_sm_resp_batch([(0, seq, b"r%d" % seq)])
                try:
                    await flush()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            nursery.cancel_scope.cancel()


async def _stall_then_read(smsc: _AnswersWhileTheConsumerStalls, *, answer_rest: bool,
                           **config: Any) -> tuple[Ledger, BindPool, int]:
    """Submit ``smsc.total`` messages; once the reader waits on the consumer to hand on the
    second answer (and, with ``answer_rest``, the SMSC answered the rest), read nothing for
    ``STALL_S``; then read every outcome. Returns them, the pool, and the connection drops
    counted at the end of the stall."""
    got = Ledger()
    settings: dict[str, Any] = dict(enquire_link_interval_s=INTERVAL_S,
                                    enquire_link_misses=MISSES)
    settings.update(config)
    async with pool_against(smsc.handler, window=smsc.total, outcome_queue_batches=1,
                            reconnect=FAST_RECONNECT, **settings) as pool:
        await pool.submit_many(messages(smsc.total))
        await wait_until(lambda: pool.outcomes.statistics().current_buffer_used == 1,
                         limit_s=LIMIT_S)
        smsc.second.set()
        # the reader has read the second answer and waits for room on ``outcomes``
        await wait_until(lambda: pool.outcomes.statistics().tasks_waiting_send == 1,
                         limit_s=LIMIT_S)
        if answer_rest:
            smsc.rest.set()
        await trio.sleep(STALL_S)
        drops_during_stall = pool.stats_connection_drops
        with trio.move_on_after(LIMIT_S):
            while len(got.outcomes) < smsc.total:
                got.take(await pool.outcomes.receive())
        with trio.move_on_after(0.2):  # anything more (a duplicate) would come now
            while True:
                got.take(await pool.outcomes.receive())
    return got, pool, drops_during_stall


@pytest.mark.parametrize("answer_rest", [True, False],
                         ids=["answers-wait-unread", "only-enquire-link-answers"])
async def test_a_stalled_consumer_does_not_get_a_live_link_declared_dead(
        answer_rest: bool) -> None:
    # answers-wait-unread: the answers to four submits wait in the socket all through the
    # stall (sent again under RETRY when the link was declared dead).
    # only-enquire-link-answers: every submit was answered; what the SMSC sends during the
    # stall is its enquire_link_resp.
    total = 6 if answer_rest else 2
    smsc = _AnswersWhileTheConsumerStalls(total)
    got, pool, drops_during_stall = await _stall_then_read(smsc, answer_rest=answer_rest)
    stats = pool.statistics()
    assert drops_during_stall == 0, "the link was declared dead while the SMSC answered"
    assert stats.connection_drops == 0 and smsc.connections == 1
    assert sorted(got.outcomes) == list(range(total)), "an outcome never arrived"
    assert got.duplicate_outcomes == 0
    assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
    # the ids of the first (and only) connection: nothing was sent a second time
    assert all(o.message_ids[0].startswith("m") for o in got.outcomes.values())
    assert len(smsc.submits) == total and stats.inflight_retried == 0
    if not answer_rest:
        assert smsc.enquire_links >= 1, "the link was not probed during the stall"


async def test_answers_waiting_unread_do_not_time_out_while_the_consumer_stalls() -> None:
    # The same rule for response_timeout_s: a submit whose answer waits in the socket, unread
    # because our consumer holds the reader, was answered in time. Expired, it was sent again
    # (RETRY) and its answer, read later, counted as late.
    smsc = _AnswersWhileTheConsumerStalls(6)
    got, pool, _ = await _stall_then_read(smsc, answer_rest=True, response_timeout_s=STALL_S / 4,
                                          enquire_link_interval_s=30.0)
    stats = pool.statistics()
    assert sorted(got.outcomes) == list(range(6)), "an outcome never arrived"
    assert got.duplicate_outcomes == 0
    assert all(o.message_ids[0].startswith("m") for o in got.outcomes.values())
    assert stats.response_timeouts == 0 and stats.late_responses == 0
    assert len(smsc.submits) == 6 and stats.inflight_retried == 0
