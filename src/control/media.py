"""Content negotiation: JSON by default, msgpack when the client asks for it.

Responses: ``Accept: application/msgpack`` (or ``application/x-msgpack``) preferred over JSON
gets msgpack; anything else gets JSON. Request bodies in either type are decoded by
``control.validation.read_body``.
"""

from __future__ import annotations

import json
from typing import Any

import falcon
import msgpack

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = (MSGPACK, "application/x-msgpack")


def wants_msgpack(req: falcon.Request) -> bool:
    accept = req.get_header("Accept") or ""
    if "msgpack" not in accept:
        return False
    return req.client_prefers([*MSGPACK_TYPES, JSON]) in MSGPACK_TYPES


def encode(body: Any, msgpack_wanted: bool) -> tuple[bytes, str]:
    if msgpack_wanted:
        return msgpack.packb(body, use_bin_type=True), MSGPACK
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), JSON


def render(req: falcon.Request, resp: falcon.Response, body: Any) -> None:
    """Write ``body`` (plain JSON-able data) as the response in the negotiated type."""
    resp.data, resp.content_type = encode(body, wants_msgpack(req))
