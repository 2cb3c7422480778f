"""A throttle (ESME_RTHROTTLED in a submit_sm_resp) that arrives while the submitter waits for
TPS tokens stops the batch it waits for: nothing goes out before the pool's pause ends.

A scripted SMSC over a real socket on 127.0.0.1 (port 0) throttles the first submit; the
account allows 1 submit per second, so the second message waits for a token while that
answer comes in. Virtual time runs faster than the wall clock (``fast_clock``)."""

from __future__ import annotations

from typing import Any

import trio

from dispatch.smpp.constants import CommandStatus
from dispatch.smpp.session import BindRequest, SmscSession, SubmitSm
from dispatch.transport.config import StatusPolicy
from dispatch.transport.pool import BindPool, SubmitOutcome, SubmitStatus
from pool_harness import fast_clock, messages, pool_against, scripted_smsc

PAUSE_S = 5.0


def test_a_throttle_during_the_token_wait_holds_the_batch_until_the_pause_ends() -> None:
    pools: list[BindPool] = []
    early: list[tuple[float, float]] = []  # (received at, paused until) of any early submit
    received = 0

    def script(session: SmscSession, ev: Any) -> None:
        nonlocal received
        if isinstance(ev, BindRequest):
            session.accept_bind(ev)
        elif isinstance(ev, SubmitSm):
            received += 1
            now, paused_until = trio.current_time(), pools[0].paused_until
            if now < paused_until:
                early.append((now, paused_until))
            status = CommandStatus.ESME_RTHROTTLED if received == 1 else 0
            session.send_submit_sm_resp_batch([(status, ev.sequence_number, b"%d" % received)])

    async def main() -> None:
        async with pool_against(scripted_smsc(script), tps=1, window=8,
                                status_policy=StatusPolicy(throttle_pause_s=PAUSE_S)) as pool:
            pools.append(pool)
            await pool.submit_many(messages(2))
            got: dict[Any, SubmitOutcome] = {}
            with trio.fail_after(10 * PAUSE_S):
                while len(got) < 2:
                    for ev in await pool.outcomes.receive():
                        if isinstance(ev, SubmitOutcome):
                            got[ev.ref] = ev
            assert {o.status for o in got.values()} == {SubmitStatus.ACCEPTED}
            assert pool.statistics().throttled == 1

    trio.run(main, clock=fast_clock(10.0))
    assert early == []  # nothing was sent into the throttled SMSC
    assert received == 3  # the throttled one again, and the one that waited
