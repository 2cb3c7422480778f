"""Helpers for the transport and hardening tests: a real pool against a real simulator over
loopback (127.0.0.1, port 0), and an exact ledger of what became of every message."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
import trio.testing

from dispatch.simulator import SimulatorConfig, SmscSimulator, run
from dispatch.smpp.session import SmscSession
from dispatch.smpp.text import split_text
from dispatch.transport.config import EsmeConfig, ReconnectConfig
from dispatch.transport.pool import (
    BindFailure,
    BindPool,
    MoMessage,
    OutboundMessage,
    ReceiptEvent,
    SubmitOutcome,
    SubmitStatus,
)

FAST_RECONNECT = ReconnectConfig(initial_s=0.05, max_s=0.5)

SmscHandler = Callable[[trio.SocketStream], Awaitable[None]]


def scripted_smsc(script: Callable[[SmscSession, Any], None]) -> SmscHandler:
    """A scripted SMSC for one connection: the real SMSC-side session decodes what the pool
    sends, ``script(session, event)`` reacts to each event (queueing exact answers), and what
    it queued while handling one read leaves in one write."""
    async def handler(stream: trio.SocketStream) -> None:
        session = SmscSession(system_id=b"smsc")
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            for ev in session.receive_data(data):
                script(session, ev)
            if session.has_data_to_send:
                await stream.send_all(session.data_to_send())

    return handler


@contextlib.asynccontextmanager
async def pool_against(smsc: SmscHandler, **config: Any) -> AsyncIterator[BindPool]:
    """A running pool (``config`` over a one-bind default) bound to ``smsc`` served on
    127.0.0.1, port 0; both stop when the block ends."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, smsc, 0, host="127.0.0.1"))
        settings: dict[str, Any] = dict(name="op", host="127.0.0.1",
                                        port=listeners[0].socket.getsockname()[1],
                                        system_id="me", password="pw")
        settings.update(config)
        pool = BindPool(EsmeConfig(**settings))
        await nursery.start(pool.run)
        yield pool
        nursery.cancel_scope.cancel()


def with_simulator(body: Callable[[SmscSimulator, trio.Nursery], Awaitable[None]],
                   sim_config: SimulatorConfig, *, clock: Any = None,
                   limit_s: float = 30.0) -> None:
    """Run ``body(sim, nursery)`` next to a listening simulator, bounded by ``limit_s``."""
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(run, sim_config)
            with trio.fail_after(limit_s):
                await body(sim, nursery)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


def fast_clock(rate: float = 10.0) -> trio.testing.MockClock:
    """Virtual time running ``rate`` times faster than the wall clock (real sockets stay real)."""
    return trio.testing.MockClock(rate=rate)


def esme_config(sim: SmscSimulator, **overrides: Any) -> EsmeConfig:
    settings: dict[str, Any] = dict(name="op", host="127.0.0.1", port=sim.port,
                                    system_id="dispatch", password="secret")
    settings.update(overrides)
    return EsmeConfig(**settings)


def destination(i: int) -> bytes:
    return b"4915%09d" % i


def messages(count: int, text: str = "hello", *, registered_delivery: int = 1,
             start: int = 0) -> list[OutboundMessage]:
    return [OutboundMessage(ref=i, source_addr=b"Shop", destination_addr=destination(i),
                            segments=split_text(text, reference=i % 256),
                            source_addr_ton=5, registered_delivery=registered_delivery)
            for i in range(start, start + count)]


@dataclass
class Ledger:
    """Every event a pool emitted, with duplicates counted (a final outcome must come once)."""

    outcomes: dict[Any, SubmitOutcome] = field(default_factory=dict)
    receipts: list[ReceiptEvent] = field(default_factory=list)
    mo: list[MoMessage] = field(default_factory=list)
    bind_failures: list[BindFailure] = field(default_factory=list)
    duplicate_outcomes: int = 0

    def by_status(self) -> Counter[SubmitStatus]:
        return Counter(o.status for o in self.outcomes.values())

    def take(self, batch: list[Any]) -> None:
        for ev in batch:
            if isinstance(ev, SubmitOutcome):
                if ev.ref in self.outcomes:
                    self.duplicate_outcomes += 1
                self.outcomes[ev.ref] = ev
            elif isinstance(ev, ReceiptEvent):
                self.receipts.append(ev)
            elif isinstance(ev, MoMessage):
                self.mo.append(ev)
            elif isinstance(ev, BindFailure):
                self.bind_failures.append(ev)


async def collect(pool: BindPool, *, outcomes: int = 0, receipts: int = 0,
                  bind_failures: int = 0, into: Ledger | None = None) -> Ledger:
    """Read pool events until that many outcomes, receipts and bind failures came."""
    got = into or Ledger()
    while (len(got.outcomes) < outcomes or len(got.receipts) < receipts
           or len(got.bind_failures) < bind_failures):
        got.take(await pool.outcomes.receive())
    return got


async def start_pool(nursery: trio.Nursery, config: EsmeConfig, *, bound: int = 1) -> BindPool:
    pool = BindPool(config)
    await nursery.start(pool.run)
    if bound:
        await pool.wait_bound(bound)
    return pool


async def wait_until(predicate: Callable[[], bool], *, limit_s: float = 5.0,
                     step_s: float = 0.005) -> None:
    """Poll ``predicate`` (bounded in time) -- for counters the other side updates."""
    with trio.fail_after(limit_s):
        while not predicate():
            await trio.sleep(step_s)
