"""Health, diagnostics, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import falcon
import falcon.asgi
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from control.auth import Action, Actions
from control.errors import ApiError
from control.media import render
from control.openapi import Docs, Op

log = logging.getLogger("control.system")

#: What the engine passes to report diagnostics: a sync or async callable returning a mapping,
#: ``Engine.diagnostics`` -> ``dispatch.observability.diagnostics.engine_diagnostics``:
#: ``{"status": "ok"|"degraded"|"down", "up": bool, "core": "up", "store": {"reachable": ...},
#: "esmes": {name: {"up", "bindsUp", "lastBindError", ...}}, "campaigns": {"pausedByWindow",
#: "pausedByUser", "stalledByFault", ...}, "scheduler": {...}}`` (docs/OBSERVABILITY.md).
DiagnosticsSource = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


class HealthResource:
    """Liveness: the process answers HTTP, so the core is up."""

    public = True
    docs: ClassVar[Docs] = {"GET": Op("Liveness of the core", {200: ("Up", "Health")}, tag="system")}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        render(req, resp, {"status": "ok"})


class DiagnosticsResource:
    """Store reachable, binds per ESME, scheduler: whatever the engine's callable reports."""

    actions: ClassVar[Actions] = {"GET": Action.READ}
    docs: ClassVar[Docs] = {"GET": Op("Core, store, SMPP binds and scheduler state",
                      {200: ("Component states", "Diagnostics")}, errors=(503,), tag="system")}

    def __init__(self, source: DiagnosticsSource | None) -> None:
        self._source = source

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if self._source is None:
            render(req, resp, {"status": "ok", "core": "up"})
            return
        try:
            report = self._source()
            if inspect.isawaitable(report):
                report = await report
        except Exception as exc:
            log.error("diagnostics failed", exc_info=exc)
            raise ApiError(503, "Service Unavailable", "Diagnostics are unavailable") from None
        body = {"status": "ok", "core": "up", **dict(report)}
        resp.cache_control = ["no-store"]  # a banner must never show a cached state
        render(req, resp, body)


class MetricsResource:
    """Prometheus text exposition of the engine's registry. When protected it takes the API
    key as ``X-API-Key`` or as ``Authorization: Bearer <key>`` (what Prometheus's
    ``authorization`` scrape setting sends)."""

    bearer = True

    docs: ClassVar[Docs] = {"GET": Op("Prometheus metrics", {200: ("Metrics in text format", None)},
                      ok_media="text/plain", tag="system")}

    def __init__(self, registry: CollectorRegistry | None, protected: bool) -> None:
        self._registry = registry
        self.public = not protected
        self.actions = {"GET": Action.METRICS}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = generate_latest(self._registry) if self._registry is not None else b""
        resp.content_type = CONTENT_TYPE_LATEST


class OpenApiResource:
    """The OpenAPI 3 document of every route (built once, when the app is created)."""

    public = True
    docs: ClassVar[Docs] = {"GET": Op("This OpenAPI document", {200: ("OpenAPI 3 document", None)},
                      tag="system")}

    def __init__(self, document: Callable[[], dict[str, Any]]) -> None:
        self._document = document

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        render(req, resp, self._document())
