"""One error shape for every failure: ``{"error", "message", "validationErrors"}`` (product doc 001).

* :class:`ApiError` is the HTTP-side error: a falcon ``HTTPError`` whose body is the documented
  shape (``validationErrors`` only when there are field messages; extra members such as the
  pending-capacity numbers ride along).
* :func:`serialize_error` is the app's error serializer: it renders every ``HTTPError`` (ours,
  falcon's own 404/405, ...) in that shape, as JSON or msgpack following the Accept header.
* :func:`install_error_handlers` registers one handler that translates the engine's domain
  errors (``dispatch.campaigns.errors``, status codes in :data:`DOMAIN_STATUS`) into
  :class:`ApiError`, one that answers a store fault (``dispatch.store.faults.STORE_FAULTS``:
  a full disk, a lost database) with 503 and Retry-After, and a last-resort handler that turns
  anything else into a logged 500 without leaking details.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi

from control.media import render
from dispatch.campaigns.errors import (
    BadRequest,
    CapacityExceeded,
    Conflict,
    DomainError,
    InvalidTransition,
    NotActive,
    NotFound,
    ValidationError,
)
from dispatch.store.faults import STORE_FAULTS, describe

log = logging.getLogger("control.errors")


class ApiError(falcon.HTTPError):
    """An HTTP error with the documented body."""

    def __init__(self, status: int, error: str, message: str, *,
                 validation_errors: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(falcon.code_to_http_status(status), title=error, description=message,
                         headers=dict(headers) if headers else None)
        self.error = error
        self.message = message
        self.validation_errors = dict(validation_errors or {})
        self.extra = dict(extra or {})

    def to_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.validation_errors:
            body["validationErrors"] = self.validation_errors
        body.update(self.extra)
        return body


def bad_request(message: str, validation_errors: Mapping[str, str] | None = None) -> ApiError:
    return ApiError(400, "Bad Request", message, validation_errors=validation_errors)


def not_found(message: str) -> ApiError:
    return ApiError(404, "Not Found", message)


def file_too_large(limit_bytes: int) -> ApiError:
    return ApiError(413, "Payload Too Large", f"File too large. Maximum {human_size(limit_bytes)}")


def too_many_requests(retry_after_s: int) -> ApiError:
    return ApiError(429, "Too Many Requests", f"Too many requests. Try again in {retry_after_s}s",
                    headers={"Retry-After": str(retry_after_s)})


def store_unavailable(retry_after_s: int) -> ApiError:
    """A write refused because the store cannot take writes now (``control.storefault``)."""
    return ApiError(503, "Service Unavailable",
                    "The campaign store cannot take writes right now (store outage). "
                    f"Try again in {retry_after_s}s",
                    headers={"Retry-After": str(retry_after_s)})


#: OS errors that mean "the disk cannot take this now", not a bug: answered 503 like a store
#: fault. Any other OSError (a missing file, a refused permission) stays a logged 500.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def is_store_fault(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in DISK_ERRNOS
    return isinstance(exc, STORE_FAULTS)


def human_size(n_bytes: int) -> str:
    """``1073741824`` -> ``"1 GB"``; exact multiples get no decimals."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n_bytes >= size:
            value = n_bytes / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n_bytes} bytes"


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    if isinstance(exc, ApiError):
        body = exc.to_dict()
    else:
        title = exc.title or "Error"
        body = {"error": title, "message": exc.description or title}
    render(req, resp, body)


#: Domain error class -> HTTP status; the most specific class in the error's MRO wins.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    DomainError: 400,
    BadRequest: 400,
    ValidationError: 400,
    NotActive: 400,
    NotFound: 404,
    InvalidTransition: 409,
    Conflict: 409,
    CapacityExceeded: 429,
}


def from_domain(exc: DomainError) -> ApiError:
    """The HTTP form of a domain error: its own body (``to_body``), our status and headers."""
    status = next(DOMAIN_STATUS[c] for c in type(exc).__mro__ if c in DOMAIN_STATUS)
    body = exc.to_body()
    error = str(body.pop("error", exc.error))
    message = str(body.pop("message", exc.message))
    validation = body.pop("validationErrors", None)
    headers = None
    if isinstance(exc, CapacityExceeded):
        headers = {"Retry-After": str(max(1, int(exc.retry_after_s)))}
    return ApiError(status, error, message, validation_errors=validation, extra=body,
                    headers=headers)


def install_error_handlers(app: falcon.asgi.App, store_retry_after_s: int = 5) -> None:
    """``store_retry_after_s``: the Retry-After of a 503 for a store fault."""
    app.set_error_serializer(serialize_error)

    async def translate(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception,
                        params: dict[str, Any]) -> None:
        assert isinstance(exc, DomainError)
        raise from_domain(exc)

    async def unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception,
                         params: dict[str, Any]) -> None:
        log.error("unhandled error", exc_info=exc,
                  extra={"fields": {"method": req.method, "route": _route_of(req)}})
        raise ApiError(500, "Internal Server Error",
                       "The service is not responding. Please try again later")

    async def store_fault(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                          exc: Exception, params: dict[str, Any]) -> None:
        if not is_store_fault(exc):
            await unexpected(req, resp, exc, params)
        log.warning("request refused: store fault", extra={"fields": {
            "method": req.method, "route": _route_of(req), "error": describe(exc)}})
        raise store_unavailable(store_retry_after_s)

    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(DomainError, translate)
    # Falcon picks the handler of the most specific class in the error's MRO.
    for fault in STORE_FAULTS:
        if issubclass(fault, Exception):
            app.add_error_handler(fault, store_fault)


def _route_of(req: falcon.Request) -> str:
    # The template, not the path: a path may carry a phone number in a query or segment.
    return getattr(req, "uri_template", None) or "?"
