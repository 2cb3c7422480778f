"""The SMSC ends the session with unbind (SMPP 3.4 section 4.2) while it still owes answers.

* submit_sm_resp that arrive behind the unbind -- in the same read, or later while the SMSC
  drains -- still settle their submits: resending them (``InflightPolicy.RETRY``) would send
  a real person the SMS twice.
* deliver_sm read before the unbind are handed on and answered, and their deliver_sm_resp
  leave before the unbind_resp (after it the session is over and the SMSC would deliver them
  again); a deliver_sm sent *after* the SMSC's own unbind is refused with ESME_RINVBNDSTS
  (it is not handed on: the SMSC keeps it and delivers it on the next bind).
* an SMSC that unbinds and never answers the rest is waited for ``drain_timeout_s`` at most.

Scripted SMSCs over real sockets on 127.0.0.1 (port 0); every wait is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from dispatch.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, CommandStatus
from dispatch.smpp.session import BindRequest, Response, SmscSession, SubmitSm, Unbound
from dispatch.transport.pool import DeliverAck, ReceiptEvent, SubmitOutcome, SubmitStatus
from pool_harness import FAST_RECONNECT, messages, pool_against

LIMIT_S = 10.0


class _Smsc:
    """One scripted SMSC for every connection of a test: the first connection runs
    ``first(session, stream)`` once the pool's submits (or nothing) arrived; later ones
    accept binds and answer submits at once with ids ``r<seq>``."""

    def __init__(self, *, submits_before_script: int = 0) -> None:
        self.submits: list[bytes] = []  # destination of every submit_sm, all connections
        self.connections = 0
        self.wire: list[tuple[str, int, int]] = []  # first connection: what it got, in order
        self.unbind_answered = trio.Event()
        self.first_closed_by_esme = trio.Event()
        self.submits_before_script = submits_before_script

    async def first(self, session: SmscSession, stream: trio.SocketStream,
                    submit_seqs: list[int]) -> None:
        raise NotImplementedError

    async def handler(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        first = self.connections == 1
        session = SmscSession(system_id=b"smsc")
        submit_seqs: list[int] = []
        scripted = False
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    if first:
                        self.first_closed_by_esme.set()
                    return
                for ev in session.receive_data(data):
                    if isinstance(ev, BindRequest):
                        session.accept_bind(ev)
                    elif isinstance(ev, SubmitSm):
                        self.submits.append(ev.fields[6])
                        if first:
                            submit_seqs.append(ev.sequence_number)
                        else:
                            seq = ev.sequence_number
                            session.send_submit_sm_resp_batch([(0, seq, b"r%d" % seq)])
                    elif first and isinstance(ev, Response):
                        self.wire.append(("resp", ev.sequence_number, ev.command_status))
                    elif first and isinstance(ev, Unbound) and not ev.by_peer:
                        self.wire.append(("unbind_resp", 0, 0))
                        self.unbind_answered.set()
                if session.has_data_to_send:
                    await stream.send_all(session.data_to_send())
                if (first and not scripted
                        and len(submit_seqs) >= self.submits_before_script):
                    scripted = True
                    await self.first(session, stream, submit_seqs)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if first:
                self.first_closed_by_esme.set()


async def _outcomes(pool: Any, count: int) -> dict[Any, SubmitOutcome]:
    got: dict[Any, SubmitOutcome] = {}
    while len(got) < count:
        for ev in await pool.outcomes.receive():
            if isinstance(ev, SubmitOutcome):
                got[ev.ref] = ev
    return got


# ---------------------------------------------------------------- responses behind the unbind

class _UnbindThenAnswer(_Smsc):
    """Three submits come in; the SMSC answers the first, sends unbind, then answers the other
    two -- in the same write, or ``late_s`` later (a draining SMSC)."""

    def __init__(self, late_s: float) -> None:
        super().__init__(submits_before_script=3)
        self.late_s = late_s

    async def first(self, session: SmscSession, stream: trio.SocketStream,
                    submit_seqs: list[int]) -> None:
        first, *rest = submit_seqs
        session.send_submit_sm_resp_batch([(0, first, b"m%d" % first)])
        session.send_unbind()
        if self.late_s:
            await stream.send_all(session.data_to_send())
            await trio.sleep(self.late_s)
        session.send_submit_sm_resp_batch([(0, seq, b"m%d" % seq) for seq in rest])
        await stream.send_all(session.data_to_send())


@pytest.mark.parametrize("late_s", [0.0, 0.2], ids=["same-read", "while-draining"])
async def test_responses_behind_the_smscs_unbind_settle_their_submits(late_s: float) -> None:
    smsc = _UnbindThenAnswer(late_s)
    async with pool_against(smsc.handler, window=8, reconnect=FAST_RECONNECT) as pool:
        await pool.submit_many(messages(3))
        with trio.fail_after(LIMIT_S):
            got = await _outcomes(pool, 3)
            await smsc.unbind_answered.wait()
        stats = pool.statistics()
    assert {o.status for o in got.values()} == {SubmitStatus.ACCEPTED}
    # every id is the one the first connection gave: nothing was sent a second time
    assert sorted(o.message_ids[0] for o in got.values()) == ["m2", "m3", "m4"]
    assert len(smsc.submits) == 3
    assert stats.inflight_retried == 0 and stats.late_responses == 0


class _UnbindAndGoQuiet(_Smsc):
    """Two submits come in; the SMSC sends unbind and never answers them, nor closes."""

    def __init__(self) -> None:
        super().__init__(submits_before_script=2)

    async def first(self, session: SmscSession, stream: trio.SocketStream,
                    submit_seqs: list[int]) -> None:
        session.send_unbind()
        await stream.send_all(session.data_to_send())


async def test_an_smsc_that_unbinds_and_never_answers_is_waited_for_drain_timeout_s() -> None:
    smsc = _UnbindAndGoQuiet()
    async with pool_against(smsc.handler, window=8, reconnect=FAST_RECONNECT,
                            drain_timeout_s=0.3) as pool:
        await pool.submit_many(messages(2))
        with trio.fail_after(LIMIT_S):
            await smsc.first_closed_by_esme.wait()  # we hung up, the SMSC did not
            got = await _outcomes(pool, 2)
        stats = pool.statistics()
    assert smsc.unbind_answered.is_set()
    # really unanswered: the in-flight policy (RETRY) sent them again on the next bind
    assert stats.inflight_retried == 2
    assert {o.status for o in got.values()} == {SubmitStatus.ACCEPTED}
    assert all(o.message_ids[0].startswith("r") for o in got.values())


# ------------------------------------------------------------------ deliver_sm with the unbind

def _receipt(message_id: str) -> tuple[Any, ...]:
    body = (f"id:{message_id} sub:001 dlvrd:001 submit date:2611231200 "
            f"done date:2611231201 stat:DELIVRD err:000 text:").encode()
    return (b"", 1, 1, b"4915100000001", 5, 0, b"Shop", ESM_CLASS_DELIVERY_RECEIPT, 0, 0, b"",
            b"", 0, 0, 0, 0, body, None)


class _DeliverUnbindDeliver(_Smsc):
    """Right after the bind, in one write: two receipts, the unbind, one more receipt."""

    async def first(self, session: SmscSession, stream: trio.SocketStream,
                    submit_seqs: list[int]) -> None:
        self.before = session.send_deliver_sm_batch([_receipt("A1"), _receipt("A2")])
        wire = session.data_to_send()
        # sent after the unbind on the wire, queued before it so its answer is matched
        (self.after,) = session.send_deliver_sm_batch([_receipt("A3")])
        after = session.data_to_send()
        session.send_unbind()
        await stream.send_all(wire + session.data_to_send() + after)


@pytest.mark.parametrize("defer", [False, True], ids=["ack-on-emit", "deferred-ack"])
async def test_deliver_sm_read_with_the_unbind_is_answered_before_the_unbind_resp(
        defer: bool) -> None:
    smsc = _DeliverUnbindDeliver()
    receipts: list[ReceiptEvent] = []
    async with pool_against(smsc.handler, reconnect=FAST_RECONNECT,
                            defer_deliver_acks=defer) as pool:
        with trio.fail_after(LIMIT_S):
            while not smsc.unbind_answered.is_set():
                batch: list[Any] = []
                with trio.move_on_after(0.05):
                    batch = await pool.outcomes.receive()
                receipts += [e for e in batch if isinstance(e, ReceiptEvent)]
                for ack in [e for e in batch if isinstance(e, DeliverAck)]:
                    await trio.sleep(0.05)  # the consumer makes them durable first
                    ack.ack()
    assert sorted(r.message_id for r in receipts) == ["a1", "a2"]  # not the one after unbind
    assert smsc.wire[-1] == ("unbind_resp", 0, 0)
    answered = sorted(smsc.wire[:-1])
    assert answered == sorted([("resp", seq, 0) for seq in smsc.before]
                              + [("resp", smsc.after, CommandStatus.ESME_RINVBNDSTS)])
    assert pool.stats_deliver_acks_dropped == 0
