"""Who may do what: the API key check, the role table and the per-key rate limit.

Every resource says which :class:`Action` each of its methods performs (``Resource.actions``,
``{"GET": Action.READ, ...}``) or that it is public (``Resource.public = True``). The middleware
runs after routing, so an unknown path is a plain 404 whatever the key:

1. no ``X-API-Key`` header, a malformed, unknown or revoked key -> 401;
2. a key whose role is not in :data:`PERMISSIONS` for the action -> 403, and so is any
   responder (``on_<method>``) the resource forgot to declare in ``actions`` (fail closed);
3. the key's token bucket is empty -> 429 with Retry-After;
4. a write (not GET/HEAD/OPTIONS) while the engine's store cannot take writes -> 503 with
   Retry-After (``control.storefault``), after authentication so it tells a stranger nothing.

A resource with ``bearer = True`` (``/metrics`` when protected: Prometheus sends
``Authorization: Bearer <token>``, not custom headers) also takes the same API key as a
Bearer token; everywhere else the key goes in ``X-API-Key`` only.

The clear-number right is not a role: it is a flag on a key (``clear_numbers``), checked where
numbers are rendered (``control.resources.recipients``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi

from control.errors import ApiError, too_many_requests
from control.keys import ApiKey, KeyStore, Role
from control.ratelimit import RateLimiter
from control.storefault import StoreFaults


class Action(enum.StrEnum):
    READ = "read"                      # lists, KPI, detail, recipients, errors, diagnostics
    EXPORT = "export"                  # create and download recipient exports
    CREATE = "create"                  # create campaigns, upload recipient files
    OPERATE = "operate"                # start, pause, resume, cancel, trigger
    ARCHIVE = "archive"                # archive, restore
    MODERATE = "moderate"              # approve, reject
    SEND = "send"                      # add messages to a transactional campaign
    METRICS = "metrics"                # /metrics when protected


#: What a resource declares: HTTP method -> the action it performs.
Actions = Mapping[str, Action]

_A, _M, _D, _V = Role.AUTHOR, Role.MODERATOR, Role.ADMIN, Role.VIEWER

#: The one role table. Moderators approve and reject but do not create (product doc 000: "The
#: New Campaign button is visible only to Author, Admin"); viewers only read.
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.READ:     frozenset({_A, _M, _D, _V}),
    Action.EXPORT:   frozenset({_A, _M, _D, _V}),
    Action.CREATE:   frozenset({_A, _D}),
    Action.OPERATE:  frozenset({_A, _D}),
    Action.ARCHIVE:  frozenset({_A, _D}),
    Action.MODERATE: frozenset({_M, _D}),
    Action.SEND:     frozenset({_A, _D}),
    Action.METRICS:  frozenset({_A, _M, _D, _V}),
}

#: Actions that change nothing in the store, whatever their HTTP method.
_READ_ACTIONS = frozenset({Action.READ, Action.METRICS})

API_KEY_HEADER = "X-API-Key"
_BEARER = "bearer "
_MISSING = ApiError(401, "Unauthorized",
                    "Missing or invalid X-API-Key header. Please provide a valid API key.")
_MISSING_BEARER = ApiError(401, "Unauthorized",
                           "Missing or invalid API key: send it as X-API-Key or as "
                           "Authorization: Bearer <key>.",
                           headers={"WWW-Authenticate": 'Bearer realm="dispatch"'})
_INVALID = ApiError(401, "Unauthorized", "Invalid or revoked API key. Please check your credentials.")


def allowed(key: ApiKey, action: Action) -> bool:
    return key.role in PERMISSIONS[action]


class AuthMiddleware:
    """Authenticates, authorizes and rate-limits every request to a non-public resource."""

    def __init__(self, keys: KeyStore, limiter: RateLimiter,
                 store_faults: StoreFaults | None = None) -> None:
        self._keys = keys
        self._limiter = limiter
        self._store_faults = store_faults

    async def process_resource(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, params: dict[str, Any]) -> None:
        req.context.api_key = None
        if resource is None or getattr(resource, "public", False):
            return
        action = getattr(resource, "actions", {}).get(req.method)
        if action is None and not callable(getattr(resource, f"on_{req.method.lower()}", None)):
            return  # falcon answers 405 for a method the resource lacks
        token = (req.get_header(API_KEY_HEADER) or "").strip()
        bearer = getattr(resource, "bearer", False)
        if not token and bearer:
            token = bearer_token(req.get_header("Authorization"))
        if not token:
            raise _MISSING_BEARER if bearer else _MISSING
        key = self._keys.authenticate(token)
        if key is None:
            raise _INVALID
        if action is None:
            # A responder that declares no action is closed to every role (fail closed:
            # forgetting the declaration must not open the route).
            raise ApiError(403, "Forbidden", f"No role may {req.method} this resource")
        if not allowed(key, action):
            raise ApiError(403, "Forbidden", f"The {key.role.value} role may not {action.value}")
        retry_after_s = self._limiter.check(key.key_id)
        if retry_after_s:
            raise too_many_requests(retry_after_s)
        if self._store_faults is not None:
            self._store_faults.check_write(req.method, action in _READ_ACTIONS)
        req.context.api_key = key


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 section 2.1; the
    scheme is case-insensitive), else ``""``."""
    value = (authorization or "").strip()
    if value[:len(_BEARER)].lower() != _BEARER:
        return ""
    return value[len(_BEARER):].strip()


def current_key(req: falcon.Request) -> ApiKey:
    """The authenticated key of a request to a protected resource."""
    key = req.context.api_key
    assert key is not None
    return key


def actor_of(req: falcon.Request) -> str:
    """How the audit trail names the caller: the key's label, else its id."""
    key = current_key(req)
    return key.label or f"key:{key.key_id}"
