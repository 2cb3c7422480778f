"""Keeping one bind slot of a pool bound: connect, bind, serve until the connection ends;
on failure back off (``ReconnectConfig``: exponential, with jitter, at least
``bad_credentials_s`` after a refused password) and try again, until the pool closes.

Each slot counts bind failures, reconnects and connection drops in the pool's statistics,
emits a ``BindFailure`` once per distinct reason (not at every attempt), and emits the
outcomes a bind left behind when it went down (``BindPool._lost_outcomes``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from dispatch.logs import log_event
from dispatch.smpp.constants import CommandStatus
from dispatch.smpp.session import BindMode
from dispatch.transport.bind import Bind
from dispatch.transport.errors import BindError
from dispatch.transport.events import BindFailure
from dispatch.transport.ratelimit import RateLimiter

if TYPE_CHECKING:
    from dispatch.transport.pool import BindPool

# The pool's events ("bind up", "bind failed", ...) keep the pool's logger name.
log = logging.getLogger("dispatch.transport.pool")

_CREDENTIAL_STATUSES = frozenset({CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_RINVSYSID})


async def keep_bound(pool: BindPool, bind_id: str, mode: BindMode) -> None:
    """One bind slot: connect, bind, serve; on failure back off (with jitter), again."""
    cfg = pool.config
    rc = cfg.reconnect
    bind_limiter = (RateLimiter(cfg.per_bind_tps, window_s=1.0 + cfg.tps_guard_s)
                    if cfg.per_bind_tps else None)
    failures = 0
    last_reason = ""
    ever_bound = False
    while not pool._closing:
        bind = Bind(pool, bind_id, mode, pool._limiter, bind_limiter)
        status: int | None = None
        bind_failed = False
        try:
            await bind.open()
        except BindError as exc:
            bind_failed = True
            reason, status = exc.reason, exc.command_status
            pool.stats_bind_failures += 1
            pool.last_bind_error = reason
        else:
            pool._binds.append(bind)
            pool._bound_changed.set()
            if ever_bound:
                pool.stats_reconnects += 1
            ever_bound = True
            failures = 0
            last_reason = ""
            log_event(log, logging.INFO, "bind up", esme=pool.name, bind=bind_id,
                      mode=mode.value)
            if pool._closing:
                bind.stop()
            try:
                await bind.serve()
            finally:
                pool._binds.remove(bind)
                pool._bound_changed.set()
            reason = bind.down_reason
            if reason != "stopped":
                pool.stats_connection_drops += 1
                log_event(log, logging.WARNING, "bind connection ended", esme=pool.name,
                          bind=bind_id, reason=reason)
            if pool._lost_outcomes:
                out, pool._lost_outcomes = pool._lost_outcomes, []
                await pool._emit(out)
        if pool._closing:
            return
        failures += 1
        delay = min(rc.max_s, rc.initial_s * rc.multiplier ** (failures - 1))
        if status in _CREDENTIAL_STATUSES:
            delay = max(delay, rc.bad_credentials_s)
        delay *= 1.0 + rc.jitter * (2 * pool._rng.random() - 1)
        if bind_failed:
            if reason != last_reason:  # reported once per distinct reason
                log_event(log, logging.ERROR, "bind failed", esme=pool.name, bind=bind_id,
                          reason=reason, retry_in_s=round(delay, 2))
                await pool._emit([BindFailure(pool.name, bind_id, reason, status, delay)])
            last_reason = reason
        with trio.move_on_after(delay):
            while not pool._closing:
                if pool._bound_changed.is_set():
                    pool._bound_changed = trio.Event()
                await pool._bound_changed.wait()
