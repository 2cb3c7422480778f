"""``create_app(service, config)``: the Falcon ASGI app of the control API.

The engine builds it once and serves it on its own trio loop::

    app = create_app(service, config.control, prepare_number=prepare_number,
                     diagnostics=engine.diagnostics, registry=metrics.registry)
    await nursery.start(app.exports.run)                       # the export runner
    port = await nursery.start(serve_api, app, config.control.host, config.control.port)

Everything a handler needs is passed in here; there are no globals. Routes live under
``/api/v1`` (``control.routes``) except the operational ones: ``/health``, ``/diagnostics``,
``/metrics`` and ``/openapi.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import falcon.asgi
from prometheus_client import CollectorRegistry

from control.auth import AuthMiddleware
from control.config import ControlConfig
from control.errors import install_error_handlers
from control.exports import ExportRunner, service_source
from control.keys import KeyStore
from control.metrics_middleware import MetricsMiddleware
from control.openapi import build_document
from control.ratelimit import RateLimiter
from control.readcache import ReadCache, ReadCacheCollector
from control.resources import system
from control.routes import api_routes
from control.storefault import StoreFaults
from dispatch.campaigns.service import CampaignService, NumberPreparer
from dispatch.store.faults import StoreHealth

API_PREFIX = "/api/v1"


class ControlApp(falcon.asgi.App):
    """The falcon app plus the pieces the engine runs next to it."""

    exports: ExportRunner
    keys: KeyStore
    routes: list[tuple[str, Any]]
    config: ControlConfig
    read_cache: ReadCache


def create_app(service: CampaignService, config: ControlConfig, *,
               keys: KeyStore | None = None,
               prepare_number: NumberPreparer | None = None,
               diagnostics: system.DiagnosticsSource | None = None,
               registry: CollectorRegistry | None = None,
               exports: ExportRunner | None = None,
               store_health: StoreHealth | None = None,
               clock: Callable[[], float] | None = None) -> ControlApp:
    """Build the app over the engine's ``CampaignService``.

    ``keys``: the API key store (default: the key file ``config.keys_path``).
    ``prepare_number``: the engine's number preparer (the one given to the service): normalise,
    ctn-hash and mask a phone number; needed by the lookup endpoint.
    ``diagnostics``: a sync or async callable returning component states for /diagnostics.
    ``registry``: the Prometheus registry /metrics exposes; API request metrics are added to it.
    ``exports``: the export runner (default: one over ``service``; start ``app.exports.run``).
    ``store_health``: the engine's record of store faults (``engine.writer.health``): while
    the store cannot take writes, writes answer 503 and campaigns it holds up say so
    (``control.storefault``).
    ``clock``: monotonic clock of the rate limiter and the read cache (tests).
    """
    keys = keys if keys is not None else KeyStore(config.keys_path)
    if exports is None:
        exports = ExportRunner(service_source(service), config.exports_dir,
                               ttl_s=config.export_ttl_s, queue_size=config.export_queue_size)
    clock = clock or time.monotonic
    limiter = RateLimiter(config.rate_limit_per_s, config.rate_limit_burst, clock=clock)
    cache = ReadCache(config.read_cache_s, service.campaigns_generation, clock=clock)
    if registry is not None:
        registry.register(ReadCacheCollector(cache))
    # Metrics first: it times and counts every request, the ones auth refuses too.
    middleware: list[Any] = [MetricsMiddleware(registry)] if registry is not None else []
    faults = StoreFaults(store_health, config.store_retry_after_s)
    app = ControlApp(middleware=[*middleware, AuthMiddleware(keys, limiter, faults)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    install_error_handlers(app, config.store_retry_after_s)

    routes = [(API_PREFIX + template, resource)
              for template, resource in api_routes(service, config, exports, prepare_number,
                                                   faults, cache)]
    document: dict[str, Any] = {}
    routes += [
        ("/health", system.HealthResource()),
        ("/diagnostics", system.DiagnosticsResource(diagnostics)),
        ("/metrics", system.MetricsResource(registry, config.protect_metrics)),
        ("/openapi.json", system.OpenApiResource(lambda: document)),
    ]
    for template, resource in routes:
        app.add_route(template, resource)
    document.update(build_document(routes))
    app.exports, app.keys, app.routes, app.config = exports, keys, routes, config
    app.read_cache = cache
    return app
