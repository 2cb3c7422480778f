"""Drive the ASGI app from inside a trio run with falcon.testing's scope, event emitter and
result types.

falcon's ``TestClient``/``ASGIConductor`` schedule the app on asyncio, but our handlers call
a service whose store calls run through trio (``trio.to_thread``), so the app must run on trio:
this client builds the same ASGI scope (``falcon.testing.create_scope``), feeds the body with
``falcon.testing.ASGIRequestEventEmitter`` (which also injects empty chunks now and then) and
collects the response with ``ASGIResponseEventCollector`` into a ``falcon.testing.Result``.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import falcon
import falcon.testing
import msgpack
import trio

REQUEST_TIMEOUT_S = 20.0


class TrioClient:
    def __init__(self, app: Any, api_key: str | None = None) -> None:
        self.app = app
        self.api_key = api_key

    async def request(self, method: str, path: str, *, key: str | None = None,
                      params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
                      json: Any = None, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None, chunk_size: int = 4096,
                      content_length: bool = True) -> falcon.testing.Result:
        hdrs = dict(headers or {})
        api_key = key if key is not None else self.api_key
        if api_key is not None:
            hdrs.setdefault("X-API-Key", api_key)
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        query = urlencode(params, doseq=True) if params else ""
        scope = falcon.testing.create_scope(
            path=path, query_string=query, method=method, headers=hdrs,
            content_length=len(body) if body is not None and content_length else None)
        emitter = falcon.testing.ASGIRequestEventEmitter(
            body or b"", chunk_size=chunk_size, disconnect_at=time.time() + 3600)
        collector = falcon.testing.ASGIResponseEventCollector()
        with trio.fail_after(REQUEST_TIMEOUT_S):
            await self.app(scope, emitter, collector)
        return falcon.testing.Result(collector.body_chunks,
                                     falcon.code_to_http_status(collector.status),
                                     collector.headers)

    async def get(self, path: str, **kw: Any) -> falcon.testing.Result:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> falcon.testing.Result:
        return await self.request("POST", path, **kw)

    async def delete(self, path: str, **kw: Any) -> falcon.testing.Result:
        return await self.request("DELETE", path, **kw)


def unpack(result: falcon.testing.Result) -> Any:
    """The decoded body of a msgpack response."""
    assert result.headers["content-type"].startswith("application/msgpack")
    return msgpack.unpackb(result.content, raw=False)
