"""A bind ends for a reason other than the SMSC's unbind (dead link, the SMSC hanging up)
while its reader waits on a slow consumer to hand results on (``BindPool._emit``:
backpressure).

The reader has taken the answered submits out of the bind's in-flight table by then, so
their outcomes exist only in what it is handing on (and in the rest of a large read it has
not handled yet, ``READ_SLICE_EVENTS``). They must still reach ``outcomes``, once each and
with the id the SMSC gave them -- not vanish (neither an outcome nor in ``unsent()``) and not
be sent again. Submits the SMSC never answered follow the in-flight policy.

Scripted SMSCs over real sockets on 127.0.0.1 (port 0); every wait is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from dispatch.smpp.session import BindRequest, SmscSession, SubmitSm
from dispatch.transport.bind import READ_SLICE_EVENTS
from dispatch.transport.config import InflightPolicy
from dispatch.transport.pool import BindPool, SubmitStatus
from pool_harness import FAST_RECONNECT, Ledger, messages, pool_against, wait_until

LIMIT_S = 15.0


class _AnswerWhileConsumerIsSlow:
    """First connection: waits for ``total`` submits, answers the first alone (it fills the
    one-batch outcome channel), and once ``go`` is set answers the next ``answered - 1`` in
    one write; the rest stay unanswered. Then it hangs up (``hang_up``) or goes silent.
    Later connections answer every submit at once with ids ``r<seq>``."""

    def __init__(self, total: int, answered: int, *, hang_up: bool) -> None:
        self.total = total
        self.answered = answered
        self.hang_up = hang_up
        self.go = trio.Event()
        self.submits: list[bytes] = []  # destination of every submit_sm, all connections
        self.connections = 0

    async def handler(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        first = self.connections == 1
        session = SmscSession(system_id=b"smsc")
        seqs: list[int] = []
        while True:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            for ev in session.receive_data(data):
                if isinstance(ev, BindRequest):
                    session.accept_bind(ev)
                elif isinstance(ev, SubmitSm):
                    self.submits.append(ev.fields[6])
                    if first:
                        seqs.append(ev.sequence_number)
                    else:
                        seq = ev.sequence_number
                        session.send_submit_sm_resp_batch([(0, seq, b"r%d" % seq)])
            if session.has_data_to_send:
                await stream.send_all(session.data_to_send())
            if first and len(seqs) >= self.total:
                await self._script(session, stream, seqs)
                return

    async def _script(self, session: SmscSession, stream: trio.SocketStream,
                      seqs: list[int]) -> None:
        session.send_submit_sm_resp_batch([(0, seqs[0], b"m%d" % seqs[0])])
        await stream.send_all(session.data_to_send())
        await self.go.wait()
        session.send_submit_sm_resp_batch([(0, seq, b"m%d" % seq)
                                           for seq in seqs[1:self.answered]])
        await stream.send_all(session.data_to_send())
        if not self.hang_up:
            await trio.sleep_forever()  # silent: enquire_link goes unanswered


async def _run(smsc: _AnswerWhileConsumerIsSlow, policy: InflightPolicy, **config: Any
               ) -> tuple[Ledger, BindPool, set[Any]]:
    """Submit ``smsc.total`` messages, read nothing until the bind went down, then read
    every outcome that comes. Returns them, the pool, and which refs the pool still knew of
    (``unsent()`` or ``holds()``) while the bind was down and nothing had been read."""
    got = Ledger()
    refs = set(range(smsc.total))
    async with pool_against(smsc.handler, window=smsc.total, outcome_queue_batches=1,
                            enquire_link_interval_s=0.3, enquire_link_misses=1,
                            inflight_policy=policy, reconnect=FAST_RECONNECT,
                            **config) as pool:
        await pool.submit_many(messages(smsc.total))
        # the first answer fills the outcome channel: the next hand-on has to wait
        await wait_until(lambda: pool.outcomes.statistics().current_buffer_used == 1,
                         limit_s=LIMIT_S)
        smsc.go.set()
        await wait_until(lambda: pool.stats_connection_drops >= 1, limit_s=LIMIT_S)
        known = {m.ref for m in pool.unsent()} | pool.holds(refs)
        with trio.move_on_after(LIMIT_S):
            while len(got.outcomes) < smsc.total:
                got.take(await pool.outcomes.receive())
        with trio.move_on_after(0.2):  # anything more (a duplicate) would come now
            while True:
                got.take(await pool.outcomes.receive())
    return got, pool, known


@pytest.mark.parametrize("hang_up", [True, False], ids=["smsc-hangs-up", "dead-link"])
@pytest.mark.parametrize("policy", [InflightPolicy.RETRY, InflightPolicy.UNKNOWN],
                         ids=["retry", "unknown"])
async def test_answers_handed_on_when_the_bind_aborts_are_reported_once(
        hang_up: bool, policy: InflightPolicy) -> None:
    smsc = _AnswerWhileConsumerIsSlow(total=8, answered=5, hang_up=hang_up)
    got, pool, _ = await _run(smsc, policy)
    stats = pool.statistics()
    assert sorted(got.outcomes) == list(range(8)), "an outcome never arrived"
    assert got.duplicate_outcomes == 0
    answered = {ref: got.outcomes[ref] for ref in range(5)}
    assert {o.status for o in answered.values()} == {SubmitStatus.ACCEPTED}
    # the ids of the first connection: the answered ones were not sent again
    assert all(o.message_ids[0].startswith("m") for o in answered.values())
    unanswered = [got.outcomes[ref] for ref in range(5, 8)]
    if policy is InflightPolicy.RETRY:
        assert {o.status for o in unanswered} == {SubmitStatus.ACCEPTED}
        assert all(o.message_ids[0].startswith("r") for o in unanswered)
        assert len(smsc.submits) == 8 + 3 and stats.inflight_retried == 3
    else:
        assert {o.status for o in unanswered} == {SubmitStatus.UNKNOWN}
        assert len(smsc.submits) == 8 and stats.inflight_unknown == 3
    assert stats.accepted + stats.unknown == 8


async def test_the_unhandled_rest_of_a_large_read_is_settled_when_the_bind_aborts() -> None:
    # One write of answers to more submits than the reader handles per step: the first
    # READ_SLICE_EVENTS are being handed on when the link is declared dead, the rest of the
    # read was not looked at yet. Left there, those submits were still "in flight" and went
    # out a second time (RETRY).
    total = READ_SLICE_EVENTS + 88
    smsc = _AnswerWhileConsumerIsSlow(total=total, answered=total, hang_up=False)
    got, pool, known = await _run(smsc, InflightPolicy.RETRY)
    assert sorted(got.outcomes) == list(range(total)), (
        f"{total - len(got.outcomes)} outcomes never arrived; "
        f"{len(known)} of the refs were in unsent()/holds() meanwhile")
    assert got.duplicate_outcomes == 0
    assert len(smsc.submits) == total, f"{len(smsc.submits) - total} submits sent twice"
    assert {o.status for o in got.outcomes.values()} == {SubmitStatus.ACCEPTED}
    assert all(o.message_ids[0].startswith("m") for o in got.outcomes.values())
    assert pool.statistics().inflight_retried == 0


async def test_timed_out_submits_reported_unknown_when_the_bind_aborts_meanwhile() -> None:
    # InflightPolicy.UNKNOWN: the response timer takes the unanswered submits out of the
    # window and hands their UNKNOWN outcomes on; the consumer is slow, and the link is
    # declared dead while it waits.
    smsc = _AnswerWhileConsumerIsSlow(total=4, answered=1, hang_up=False)
    got, pool, _ = await _run(smsc, InflightPolicy.UNKNOWN, response_timeout_s=0.2)
    stats = pool.statistics()
    assert sorted(got.outcomes) == [0, 1, 2, 3], "an outcome never arrived"
    assert got.duplicate_outcomes == 0
    assert got.outcomes[0].status is SubmitStatus.ACCEPTED
    assert [got.outcomes[ref].status for ref in (1, 2, 3)] == [SubmitStatus.UNKNOWN] * 3
    assert [got.outcomes[ref].status_name for ref in (1, 2, 3)] == ["response timeout"] * 3
    assert len(smsc.submits) == 4 and stats.response_timeouts == 3
