"""The OpenAPI 3 document, built from the resources' own declarations.

Each resource class carries ``docs = {"GET": Op(...), ...}``: a summary, its query and body
schemas (the same ``control.validation`` declarations the handler checks input with) and its
success responses. :func:`build_document` walks the routes the app registered, so a route
without docs fails the build, and the test that walks falcon's router keeps both in step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from control.validation import Schema, object_schema, query_parameters

JSON = "application/json"
MSGPACK = "application/msgpack"


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation. ``ok`` maps a success status to (description, schema ref name or None)."""

    summary: str
    ok: Mapping[int, tuple[str, str | None]]
    query: Schema | None = None
    body: Schema | None = None
    raw_body: tuple[str, ...] = ()   # media types of a streamed (non-JSON) body
    ok_media: str = JSON             # media type of the success body
    errors: tuple[int, ...] = ()     # documented error statuses beyond the common ones
    tag: str = "campaigns"


Docs = Mapping[str, Op]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NSTR = {"type": "string", "nullable": True}
_NINT = {"type": "integer", "nullable": True}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": "string", "format": "date-time", "nullable": True}


def _obj(props: Mapping[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": dict(props)}
    req = list(required)
    if req:
        out["required"] = req
    return out


def _page(item: str) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": _ref(item)}, "total": _INT,
                 "limit": _INT, "offset": _NINT, "nextAfter": _NINT},
                ["items", "total"])


COMPONENTS: dict[str, Any] = {
    "Error": _obj({"error": _STR, "message": _STR,
                   "validationErrors": {"type": "object", "additionalProperties": _STR}},
                  ["error", "message"]),
    "CapacityError": _obj({"error": _STR, "message": _STR, "currentPending": _INT,
                           "requestedCount": _INT, "maxAllowed": _INT,
                           "availableCapacity": _INT, "retryAfterSeconds": _INT},
                          ["error", "message", "currentPending", "requestedCount",
                           "maxAllowed", "availableCapacity", "retryAfterSeconds"]),
    "Window": _obj({"start": _STR, "end": _STR, "timeZone": _STR}, ["start", "end", "timeZone"]),
    "Progress": _obj({k: _INT for k in ("total", "sent", "errors", "delivered", "failed",
                                        "undelivered", "pending", "inflight", "unknown",
                                        "ambiguous", "jobErrors", "held")},
                     ["total", "sent", "errors", "delivered"]),
    "Campaign": _obj({
        "id": {"type": "string", "format": "uuid"}, "name": _STR, "sender": _STR, "text": _STR,
        "author": _STR, "esme": _STR, "mode": _STR, "kind": _STR, "dataCoding": _STR,
        "status": _STR, "archived": {"type": "boolean"}, "pausedBy": _NSTR,
        "startAt": _NTIME, "endAt": _NTIME, "createdAt": _NTIME,
        "window": {"allOf": [_ref("Window")], "nullable": True},
        "autoStart": {"type": "boolean"}, "priority": _INT,
        "tpsCap": {"type": "number", "nullable": True}, "validityPeriod": _NINT,
        "registeredDelivery": {"type": "boolean"}, "hasRecipientFile": {"type": "boolean"},
        "progress": _ref("Progress"),
        "heldUp": {"allOf": [_ref("HeldUp")], "nullable": True},
    }, ["id", "sender", "status", "mode"]),
    "HeldUp": _obj({"cause": {"type": "string", "enum": ["store"]}, "message": _STR,
                    "since": _NTIME}, ["cause", "message"]),
    "CampaignPage": _page("Campaign"),
    "Kpi": _obj({k: _INT for k in ("total", "active", "completed", "errors", "smsSent",
                                   "smsDelivered")},
                ["total", "active", "completed", "errors", "smsSent"]),
    "StateChange": _obj({"phase": _STR, "event": _STR, "reason": _STR, "at": _TIME,
                         "fromStatus": _NSTR}, ["phase", "at"]),
    "AuditEntry": _obj({"actor": _STR, "action": _STR, "note": _STR, "at": _TIME},
                       ["actor", "action", "at"]),
    "DayActivity": _obj({"day": _STR, "sent": _INT, "delivered": _INT, "failed": _INT},
                        ["day", "sent"]),
    "CampaignDetail": {"allOf": [_ref("Campaign"), _obj({
        "dailyActivity": {"type": "array", "items": _ref("DayActivity")},
        "stateHistory": {"type": "array", "items": _ref("StateChange")},
        "audit": {"type": "array", "items": _ref("AuditEntry")},
        "allowedActions": {"type": "array", "items": _STR},
    }, ["dailyActivity", "stateHistory"])]},
    "Recipient": _obj({
        "id": _INT, "lineNo": _INT, "ctnHash": _STR, "masked": _STR, "number": _NSTR,
        "stage": _STR, "esme": _NSTR, "submitStatus": _NSTR,
        "smsId": {"type": "array", "items": _STR}, "createdAt": _TIME, "sentAt": _NTIME,
        "doneAt": _NTIME, "smsResult": _NSTR, "stat": _NSTR, "err": _NSTR, "error": _NSTR,
        "attempts": _INT, "segments": _INT, "ambiguous": {"type": "boolean"},
        "campaignId": {"type": "string", "format": "uuid"},
    }, ["id", "ctnHash", "masked", "stage"]),
    "RecipientPage": _page("Recipient"),
    "JobError": _obj({"id": _INT, "lineNo": _INT, "reason": _STR, "message": _STR,
                      "at": _TIME, "occurrences": _INT}, ["lineNo", "reason", "message"]),
    "JobErrorPage": _page("JobError"),
    "Errors": _obj({"jobErrors": _ref("JobErrorPage"), "messageErrors": _ref("RecipientPage"),
                    "counts": _obj({"job": _INT, "messages": _INT, "badge": _INT})},
                   ["jobErrors", "messageErrors", "counts"]),
    "Upload": _obj({"fileId": _STR, "bytes": _INT, "format": _STR}, ["fileId", "bytes"]),
    "MessagesAccepted": _obj({"campaignId": _STR, "accepted": _INT}, ["accepted"]),
    "TriggerResult": _obj({"campaignId": _STR, "released": _INT, "alreadyReleased": _INT,
                           "notFound": _INT}, ["released", "alreadyReleased", "notFound"]),
    "Export": _obj({"id": _STR, "campaignId": _STR, "format": _STR, "status": _STR,
                    "createdAt": _TIME, "finishedAt": _NTIME, "expiresAt": _NTIME,
                    "rows": _NINT, "bytes": _NINT, "error": _NSTR, "downloadUrl": _NSTR},
                   ["id", "status", "format"]),
    "Health": _obj({"status": _STR}, ["status"]),
    "Diagnostics": _obj({
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]}, "core": _STR,
        "fastpath": _STR,
        "store": {"type": "object", "description": "reachable, backend, latencySeconds, "
                  "queuedWrites, lastCommitSeconds, lastError (path for SQLite)"},
        "esmes": {"type": "object", "description": "Per ESME route: up, bindsUp, "
                  "bindsConfigured, lastBindError, inFlight, windowSize, queued, tpsLimit",
                  "additionalProperties": {"type": "object"}},
        "scheduler": _obj({"activeCampaigns": _INT, "building": _INT}),
        "campaigns": {"type": "object", "description": "active, byStatus, pausedByWindow, "
                      "pausedByUser, stalledByFault ({count, campaigns})"},
    }, ["status"]),
}

_COMMON_ERRORS = {
    400: "Bad input: malformed body, wrong types, unknown fields, out-of-range values",
    401: "Missing, invalid or revoked X-API-Key",
    403: "The key's role may not do this",
    404: "Unknown id",
    409: "Illegal transition; the message names the current status",
    410: "Gone: the export expired",
    413: "File or request body too large (the message names the maximum)",
    415: "Unsupported media type",
    429: "Too many requests (Retry-After) or pending capacity exceeded",
    500: "Internal error",
    503: "A component is down; a write while the store cannot take writes (a full disk, a "
         "lost database) changes nothing and says when to retry (Retry-After)",
}
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _content(schema_name: str | None, media: str) -> dict[str, Any]:
    if media != JSON:
        return {media: {"schema": {"type": "string", "format": "binary"}}}
    schema = _ref(schema_name) if schema_name else {}
    return {JSON: {"schema": schema}, MSGPACK: {"schema": schema}}


def _path_params(template: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", template)]


def operation(template: str, method: str, op: Op, public: bool,
              bearer: bool = False) -> dict[str, Any]:
    """``bearer``: the key may also come as ``Authorization: Bearer`` (``/metrics``)."""
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', template).strip('_')}",
        "summary": op.summary,
        "tags": [op.tag],
    }
    params = _path_params(template) + (query_parameters(op.query) if op.query else [])
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = object_schema(op.body)
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": schema},
                                                            MSGPACK: {"schema": schema}}}
    elif op.raw_body:
        out["requestBody"] = {"required": True, "content": {
            media: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
            for media in op.raw_body}}
    responses: dict[str, Any] = {
        str(status): ({"description": desc, "content": _content(schema, op.ok_media)}
                      if schema or op.ok_media != JSON else {"description": desc})
        for status, (desc, schema) in op.ok.items()
    }
    codes = set(op.errors) | {500}
    if not public:
        codes |= {401, 403, 429}
        if method in _WRITES:
            codes.add(503)
    if op.query or op.body or op.raw_body or params:
        codes.add(400)
    if op.body is not None:  # control.validation.read_object: over the body cap, not JSON/msgpack
        codes |= {413, 415}
    if _path_params(template):
        codes.add(404)
    for code in sorted(codes):
        schema_name = "CapacityError" if code == 429 and "messages" in template else "Error"
        responses[str(code)] = {"description": _COMMON_ERRORS[code],
                                "content": {JSON: {"schema": _ref(schema_name)},
                                            MSGPACK: {"schema": _ref(schema_name)}}}
    out["responses"] = responses
    if not public:
        out["security"] = [{"ApiKey": []}, {"Bearer": []}] if bearer else [{"ApiKey": []}]
    return out


def build_document(routes: Iterable[tuple[str, Any]], *, title: str = "dispatch control API",
                   version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``(uri template, resource)`` pairs."""
    paths: dict[str, Any] = {}
    for template, resource in routes:
        docs: Mapping[str, Op] = resource.docs
        public = bool(getattr(resource, "public", False))
        bearer = bool(getattr(resource, "bearer", False))
        methods = {m[3:].upper() for m in dir(resource) if m.startswith("on_")
                   and m[3:].upper() in ("GET", "POST", "PUT", "PATCH", "DELETE")}
        missing = methods - set(docs)
        if missing:
            raise ValueError(f"{template}: no OpenAPI docs for {sorted(missing)}")
        paths[template] = {m.lower(): operation(template, m, docs[m], public, bearer)
                           for m in sorted(docs)}
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version,
                 "description": "Control API of the dispatch SMS campaign engine. Errors use "
                                "{error, message, validationErrors}. Send X-API-Key; "
                                "Accept: application/msgpack for msgpack."},
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer",
                           "description": "The same API key as a Bearer token (/metrics "
                                          "only, for Prometheus's authorization setting)"},
            },
        },
    }
