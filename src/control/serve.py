"""Serve the control app with hypercorn's trio worker inside the engine's own trio loop.

Usage from the engine::

    port = await nursery.start(serve_api, app, host, port)          # port 0 -> the bound one
    ...
    shutdown.set()   # optional graceful stop: pass shutdown_trigger=shutdown.wait

Graceful shutdown: when ``shutdown_trigger`` returns, hypercorn stops accepting, lets open
requests finish for ``graceful_timeout_s`` and then returns; cancelling the surrounding nursery
stops it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

if TYPE_CHECKING:
    # trio-typing's stubs (installed in the venv) shadow trio's own types and lack
    # trio.TaskStatus; its TaskStatus is the same protocol.
    from trio import TaskStatus

log = logging.getLogger("control.serve")


def hypercorn_config(host: str, port: int, graceful_timeout_s: float = 5.0) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout_s
    config.accesslog = None  # access logs carry query strings, which may carry phone numbers
    config.errorlog = logging.getLogger("control.hypercorn")
    config.keep_alive_timeout = 30.0
    return config


def _port_of(bind: str) -> int:
    """``"http://127.0.0.1:54321"`` -> ``54321``."""
    return int(bind.rsplit(":", 1)[1])


async def serve_api(app: Any, host: str, port: int,
                    task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED, *,
                    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
                    graceful_timeout_s: float = 5.0) -> None:
    """Run the API server until cancelled or ``shutdown_trigger`` returns.

    ``task_status.started`` receives the bound TCP port (the real one when ``port`` is 0).
    """
    config = hypercorn_config(host, port, graceful_timeout_s)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=shutdown_trigger, mode="asgi"))
        bound = _port_of(binds[0])
        log.info("control API listening", extra={"fields": {"host": host, "port": bound}})
        task_status.started(bound)
