"""Store outages as the engine lives through them: which errors mean "the store cannot take a
write now, try again later", and one shared record of the outage in progress.

A full disk (SQLite ``SQLITE_FULL`` "database or disk is full", PostgreSQL class 53
``disk_full``), a locked or vanished file, a lost server connection: none of these may lose a
message or stop the engine (DESIGN.md, Reliability). The parts that write keep what they could
not write and try again with a capped exponential backoff:

* the group-commit writer keeps its failed batch and applies it again (a store transaction is
  all-or-nothing, so the retry is the first application; ``record_submit_results`` and
  ``record_receipts`` also ignore replays of an outcome already applied);
* the routes claim nothing while another part of the engine cannot write ("stop dispatching"),
  and a failed claim is retried as the probe that finds the store back;
* the control loop skips a tick whose reads or transitions fail and runs the next one.

Each part reports to one ``StoreHealth`` under its own *source* name. The store is down while
any source's last attempt failed; the outage ends when every failing source has succeeded
again. The campaigns that were Sending meanwhile are remembered in memory (the store may be
unwritable, so this cannot live in it): ``/diagnostics`` lists them as paused by a fault, and
once the store is back the control loop writes one job error per campaign ("store unavailable
from T1 to T2") and they resume by themselves.

Anything else (a programming error, a constraint violation) is not a store outage: it still
propagates, since retrying it would only hide it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import trio

from dispatch.logs import log_event

log = logging.getLogger(__name__)


def _store_fault_types() -> tuple[type[BaseException], ...]:
    faults: list[type[BaseException]] = [sqlite3.OperationalError, OSError]
    try:  # PostgreSQL: lost connection, disk_full (class 53), pool timeout all derive from it
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency, but optional at runtime
        pass
    else:
        faults.append(psycopg.OperationalError)
    return tuple(faults)


#: Exceptions that mean "the store cannot do this now": retried, never fatal.
STORE_FAULTS: tuple[type[BaseException], ...] = _store_fault_types()

#: First retry delay after a failed store write, doubled per failure up to ``MAX_BACKOFF_S``.
INITIAL_BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0
_MAX_ERROR_CHARS = 200


def describe(exc: BaseException) -> str:
    """A short, number-free description of a store error for logs and diagnostics (store
    error texts name tables and files, never a recipient)."""
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]


@dataclass(frozen=True, slots=True)
class Outage:
    """One finished store outage: when it began and ended, its last error, how many store
    operations failed, and the campaigns that were Sending meanwhile."""

    started_at: datetime
    ended_at: datetime
    last_error: str
    failures: int
    campaigns: frozenset[int]

    def message(self) -> str:
        return (f"store unavailable from {self.started_at.isoformat(timespec='seconds')} to "
                f"{self.ended_at.isoformat(timespec='seconds')} ({self.failures} failed "
                f"writes, last: {self.last_error}); sending paused meanwhile, nothing lost")


@dataclass(frozen=True, slots=True)
class StoreHealthStatistics:
    down: bool
    failing_since: datetime | None
    last_error: str
    failing_sources: tuple[str, ...]
    failures: int  # failed store operations, all time
    outages: int  # outages begun, all time
    affected_campaigns: tuple[int, ...]  # Sending while the current outage lasts


class StoreHealth:
    """The engine's one record of store faults (see the module doc). Plain state, used from
    the trio loop only."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._failing: dict[str, int] = {}  # source -> consecutive failures
        self._since: datetime | None = None
        self._last_error = ""
        self._outage_failures = 0
        self._affected: set[int] = set()
        self._ended: list[Outage] = []
        self._recovered = trio.Event()
        self.failures = 0
        self.outages = 0

    @property
    def down(self) -> bool:
        return bool(self._failing)

    def blocks(self, source: str) -> bool:
        """True while a source other than ``source`` cannot write: ``source`` should wait
        rather than add work the store cannot record."""
        return any(s != source for s in self._failing)

    def fault(self, source: str, exc: BaseException,
              campaigns: Iterable[int] = ()) -> float:
        """``source`` failed to write; returns how long it should wait before trying again."""
        now = self._clock()
        error = describe(exc)
        if not self._failing:
            self._since = now
            self._outage_failures = 0
            self.outages += 1
            log_event(log, logging.ERROR, "store write failed: sending paused until it recovers",
                      source=source, error=error)
        n = self._failing.get(source, 0) + 1
        self._failing[source] = n
        self._last_error = error
        self._outage_failures += 1
        self.failures += 1
        self._affected.update(campaigns)
        return min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2 ** min(n - 1, 16))

    def affect(self, campaigns: Iterable[int]) -> None:
        """Campaigns found Sending while the store is down (they are paused by the fault)."""
        if self._failing:
            self._affected.update(campaigns)

    def ok(self, source: str) -> None:
        """``source`` wrote successfully (or no longer needs to write)."""
        if self._failing.pop(source, None) is None or self._failing:
            return
        assert self._since is not None
        outage = Outage(self._since, self._clock(), self._last_error, self._outage_failures,
                        frozenset(self._affected))
        self._ended.append(outage)
        self._since = None
        self._affected = set()
        self._recovered.set()
        self._recovered = trio.Event()
        log_event(log, logging.WARNING, "store recovered: sending resumes",
                  down_s=round((outage.ended_at - outage.started_at).total_seconds(), 3),
                  failures=outage.failures, campaigns=len(outage.campaigns))

    async def wait_recovered(self) -> None:
        """Return once no source is failing."""
        while self._failing:
            await self._recovered.wait()

    def take_ended(self) -> list[Outage]:
        """Finished outages not yet written as job errors (the caller writes them, and hands
        back with ``requeue`` the ones it could not write)."""
        ended, self._ended = self._ended, []
        return ended

    def requeue(self, outages: Iterable[Outage]) -> None:
        self._ended[:0] = list(outages)

    def statistics(self) -> StoreHealthStatistics:
        return StoreHealthStatistics(self.down, self._since, self._last_error,
                                     tuple(sorted(self._failing)), self.failures, self.outages,
                                     tuple(sorted(self._affected)))
