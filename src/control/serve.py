"""Serve the control app inside the engine's own trio loop.

Usage from the engine::

    port = await nursery.start(serve_api, app, host, port)          # port 0 -> the bound one
    ...
    shutdown.set()   # optional graceful stop: pass shutdown_trigger=shutdown.wait

Two servers, picked by ``[control] server``: ``"builtin"`` (the default,
``control.httpserver``: h11 on trio streams, ~2.5x less loop CPU per request) or
``"hypercorn"`` (hypercorn's trio worker). Graceful shutdown: when ``shutdown_trigger``
returns, the server stops accepting, lets open requests finish for ``graceful_timeout_s`` and
then returns; cancelling the surrounding nursery stops it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from control.httpserver import HttpServer, ServerLimits

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


SERVERS = ("builtin", "hypercorn")


async def serve_api(app: Any, host: str, port: int,
                    task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED, *,
                    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
                    graceful_timeout_s: float | None = None, server: str | None = None) -> None:
    """Run the API server until cancelled or ``shutdown_trigger`` returns.

    ``task_status.started`` receives the bound TCP port (the real one when ``port`` is 0).
    ``server`` and ``graceful_timeout_s`` default to the app's ``ControlConfig`` (``server``,
    ``graceful_timeout_s``) when it has one, else ``"builtin"`` and 5 s.
    """
    config_of_app = getattr(app, "config", None)
    server = server or getattr(config_of_app, "server", "builtin")
    if graceful_timeout_s is None:
        graceful_timeout_s = float(getattr(config_of_app, "graceful_timeout_s", 5.0))
    if server not in SERVERS:
        raise ValueError(f"unknown control API server {server!r} (one of {SERVERS})")
    if server == "builtin":
        http = HttpServer(app, ServerLimits(
            graceful_timeout_s=graceful_timeout_s,
            max_connections=int(getattr(config_of_app, "max_connections", 512))))
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(partial(http.serve, host, port,
                                                shutdown_trigger=shutdown_trigger))
            log.info("control API listening",
                     extra={"fields": {"host": host, "port": bound, "server": server}})
            task_status.started(bound)
        return
    config = hypercorn_config(host, port, graceful_timeout_s)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=shutdown_trigger, mode="asgi"))
        bound = _port_of(binds[0])
        log.info("control API listening", extra={"fields": {"host": host, "port": bound}})
        task_status.started(bound)
