"""API request metrics as a Falcon ASGI middleware: requests by route template and status, and a
latency histogram, registered on the engine's Prometheus registry.

Labels are bounded: the *route template* Falcon matched (``/api/v1/campaigns/{campaign_id}``,
never the concrete path with its ids or query string, which may carry a phone number), the
method (the standard ones, else ``other``) and the status code. Requests that matched no route
are labelled ``unmatched``.

The middleware must come first in the app's list: its ``process_request`` then runs before the
auth middleware, and Falcon calls every ``process_response`` (``independent_middleware``), so a
request refused with 401/403/429 is counted and timed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import falcon.asgi
from prometheus_client import CollectorRegistry, Counter, Histogram

#: Upper bounds, seconds: the control API's bar is p99 < 50 ms while dispatching (DESIGN.md).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class MetricsMiddleware:
    """Counts and times every request (see the module doc)."""

    def __init__(self, registry: CollectorRegistry, *,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.requests = Counter("dispatch_api_requests", "Control API requests by method, "
                                "route template and status code.",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("dispatch_api_request_duration_seconds",
                                 "Control API request handling time by method and route "
                                 "template.", ["method", "route"], registry=registry,
                                 buckets=LATENCY_BUCKETS_S)

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        req.context.metrics_started_s = self._clock()

    async def process_response(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "metrics_started_s", None)
        method = req.method if req.method in _METHODS else "other"
        route = req.uri_template or UNMATCHED
        self.requests.labels(method, route, str(resp.status_code)).inc()
        if started is not None:
            self.latency.labels(method, route).observe(max(0.0, self._clock() - started))
