"""A small HTTP/1.1 server for the control API: h11's sans-IO protocol on trio streams, the
ASGI app called inline in each connection's task.

Why not hypercorn's trio worker (still available: ``[control] server = "hypercorn"``): the
control API runs on the engine's own loop, so every microsecond a request costs there is taken
from dispatching. Measured on the 2-core reference machine (``BENCHMARKS.md``, control API
section), hypercorn spends ~1.3 ms of loop CPU on a trivial request: a task per request, an idle
timer task restarted per request, and the status line + headers and the body written with
separate ``send_all`` calls (two syscalls and two loop passes). This server parses with the
same h11 state machine (request smuggling, header limits, chunked bodies, 100-continue and
keep-alive rules are h11's), runs the app in the connection's own task and writes a response
that fits in one body chunk with one ``send_all``: ~0.5 ms for the same request.

What it serves: HTTP/1.1 and 1.0 with keep-alive and pipelining (one request at a time per
connection, in order), request bodies streamed to the app as they arrive (an upload is never
buffered whole: the app's ``receive()`` pulls the next chunk from the socket, so a slow
consumer slows the client), ``Expect: 100-continue``, streamed responses (chunked when the app
sets no Content-Length). No TLS, no HTTP/2, no websockets, no ASGI lifespan events (the control
app uses none): put a proxy in front for those.

Timeouts (``ServerLimits``): an idle keep-alive connection is closed after
``keep_alive_timeout_s``; a request whose head or body stalls longer than ``read_timeout_s``
between two reads, or a client that does not take a response for ``send_timeout_s``, loses
its connection. Shutdown: stop accepting, close idle connections, let requests in progress
finish within ``graceful_timeout_s``, then cancel.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import h11
import trio

if TYPE_CHECKING:
    from trio import TaskStatus

log = logging.getLogger("control.httpserver")

Message = MutableMapping[str, Any]
AsgiApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

MAX_RECV_BYTES = 65536
#: Most bytes of an unread request body dropped before closing (see ``_linger``).
LINGER_MAX_BYTES = 64 * 1024 * 1024
_SERVER_HEADER = (b"server", b"dispatch")
_ERROR_BODY = b'{"error":"Internal Server Error","message":"The service is not responding."}'


@dataclass(frozen=True, slots=True)
class ServerLimits:
    keep_alive_timeout_s: float = 30.0
    read_timeout_s: float = 60.0
    send_timeout_s: float = 60.0
    #: Largest request line + headers (h11's ``max_incomplete_event_size``); larger is a 431.
    max_head_bytes: int = 64 * 1024
    graceful_timeout_s: float = 5.0
    #: How long a connection closed with an unread request body keeps reading to drop it.
    linger_s: float = 2.0
    #: Connections served at once; one more gets ``_BUSY`` (503) and is closed.
    max_connections: int = 512


_BUSY_BODY = json.dumps({"error": "Service Unavailable",
                         "message": "Too many open connections to the control API",
                         "validationErrors": []}).encode()
#: The whole answer to a connection over ``max_connections`` (RFC 9110 section 15.6.4).
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
         b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
         + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class _DateHeader:
    """The Date header (RFC 9110 section 6.6.1), formatted at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> tuple[bytes, bytes]:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return b"date", self._value


class _Disconnected(Exception):
    """The client went away (EOF, reset, or a stalled read) while a request was in progress."""


class HttpConnection:
    """One client connection: requests one after the other, each handed to the app."""

    def __init__(self, server: HttpServer, stream: trio.SocketStream) -> None:
        self._server = server
        self._stream = stream
        self._h11 = h11.Connection(h11.SERVER,
                                   max_incomplete_event_size=server.limits.max_head_bytes)
        self.busy = False
        self.linger = False
        self.scope = trio.CancelScope()
        try:
            addr = stream.socket.getpeername()
            self.peer: tuple[str, int] | None = (str(addr[0]), int(addr[1]))
        except (OSError, IndexError, TypeError):
            self.peer = None

    # ------------------------------------------------------------------ socket side

    async def _next_event(self, timeout_s: float) -> Any:
        """The next h11 event, reading from the socket as needed (EOF included)."""
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            size = MAX_RECV_BYTES
            if self._h11.their_state is h11.IDLE:
                # A request head: read no further than its limit. h11 answers 431 once its
                # buffer is over ``max_head_bytes``, but only after a read, and a whole read
                # past the limit would be held meanwhile (64 KiB a connection).
                room = self._server.limits.max_head_bytes + 1 - len(self._h11.trailing_data[0])
                size = max(1, min(MAX_RECV_BYTES, room))
            with trio.fail_after(timeout_s):
                data = await self._stream.receive_some(size)
            self._h11.receive_data(data)

    async def _send(self, data: bytes) -> None:
        if data:
            with trio.fail_after(self._server.limits.send_timeout_s):
                await self._stream.send_all(data)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        limits = self._server.limits
        try:
            with self.scope:
                while not self._server.closing:
                    try:
                        event = await self._next_event(limits.keep_alive_timeout_s)
                    except h11.RemoteProtocolError as exc:
                        await self._refuse(exc.error_status_hint)
                        return
                    if not isinstance(event, h11.Request):
                        return  # ConnectionClosed (or PAUSED, which cannot happen here)
                    self.busy = True
                    await _Exchange(self, event).run()
                    self.busy = False
                    if (self._h11.our_state is not h11.DONE
                            or self._h11.their_state is not h11.DONE):
                        return  # MUST_CLOSE, an unread body, or an error: close
                    self._h11.start_next_cycle()
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                OSError, _Disconnected, h11.ProtocolError):
            pass  # the client is gone or too slow: nothing left to answer
        finally:
            with trio.move_on_after(limits.linger_s) as cleanup:
                cleanup.shield = True
                if self.linger:
                    await self._linger()
                await self._stream.aclose()

    async def _linger(self) -> None:
        """Answered before the request body was read (a 413 on an upload): closing now, with
        the body's bytes unread, would reset the connection, and the client could lose the
        answer. Shut our side, then read and drop what still comes (bounded in time by the
        caller and in bytes here), as HTTP servers do (RFC 9112 section 9.6)."""
        try:
            await self._stream.send_eof()
            dropped = 0
            while dropped < LINGER_MAX_BYTES:
                data = await self._stream.receive_some(MAX_RECV_BYTES)
                if not data:
                    break
                dropped += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def _refuse(self, status: int) -> None:
        """A malformed request: answer the status h11 suggests, then close."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        self.linger = True  # the rest of what the client sent is unread
        body = b'{"error":"Bad Request","message":"Malformed HTTP request"}'
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                   self._server.date.get(), _SERVER_HEADER]
        try:
            data = self._h11.send(h11.Response(status_code=status, headers=headers))
            data = (data or b"") + (self._h11.send(h11.Data(data=body)) or b"")
            data += self._h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        await self._send(data)


class _Exchange:
    """One request and its response: the ASGI ``receive``/``send`` pair given to the app."""

    def __init__(self, conn: HttpConnection, request: h11.Request) -> None:
        self._conn = conn
        self._h11 = conn._h11
        self._request = request
        self._head: Message | None = None  # the app's http.response.start, until the body
        self._started = False
        self._complete = False
        self._body_done = False
        self._disconnected = False
        self._finished = trio.Event()  # the response is complete or the client is gone
        self._head_only = request.method == b"HEAD"

    def _scope(self) -> Message:
        req = self._request
        raw_path, _, query = req.target.partition(b"?")
        server = self._conn._server
        return {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": req.http_version.decode("ascii"),
            "method": req.method.decode("ascii"), "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")), "raw_path": raw_path,
            "query_string": query, "root_path": "", "headers": list(req.headers),
            "client": self._conn.peer, "server": server.sockname,
        }

    async def run(self) -> None:
        try:
            await self._conn._server.app(self._scope(), self.receive, self.send)
        except (_Disconnected, trio.TooSlowError, trio.BrokenResourceError,
                trio.ClosedResourceError, OSError):
            raise
        except Exception as exc:
            log.error("control API app failed", exc_info=exc)
            if not self._started:
                await self._internal_error()
            return
        if not self._started and not self._disconnected:
            log.error("control API app returned without a response")
            await self._internal_error()

    def _skip_buffered_body(self) -> None:
        """Drop what is already buffered of a request body the app did not read (the empty
        body of a GET, a small POST), so the connection can stay open; no socket read."""
        while self._h11.their_state is h11.SEND_BODY:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                return
            if event is h11.NEED_DATA or not isinstance(event, h11.Data | h11.EndOfMessage):
                return

    async def _internal_error(self) -> None:
        self._head = None  # a start the app sent before failing is replaced
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(_ERROR_BODY)).encode())]
        await self.send({"type": "http.response.start", "status": 500, "headers": headers})
        await self.send({"type": "http.response.body", "body": _ERROR_BODY})

    async def receive(self) -> Message:
        if self._body_done or self._disconnected:
            # The body was read: ASGI's next event is the disconnect. The connection's next
            # bytes belong to the next request, so wait for this response to finish first.
            await self._finished.wait()
            return {"type": "http.disconnect"}
        if self._h11.they_are_waiting_for_100_continue:
            await self._conn._send(self._h11.send(
                h11.InformationalResponse(status_code=100, headers=[])) or b"")
        try:
            event = await self._conn._next_event(self._conn._server.limits.read_timeout_s)
        except (h11.RemoteProtocolError, trio.TooSlowError, trio.BrokenResourceError,
                trio.ClosedResourceError, OSError):
            event = h11.ConnectionClosed()
        if isinstance(event, h11.Data):
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self._body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self._disconnected = True
        self._finished.set()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._started or self._head is not None:
                raise RuntimeError("http.response.start sent twice")
            self._head = message
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if self._complete:
            raise RuntimeError("response already complete")
        if self._disconnected:
            raise _Disconnected
        out = b""
        if not self._started:
            out = self._response_head()
        body = message.get("body", b"")
        if body and not self._head_only:
            out += self._h11.send(h11.Data(data=body)) or b""
        if not message.get("more_body", False):
            out += self._h11.send(h11.EndOfMessage()) or b""
            self._complete = True
            self._finished.set()
        await self._conn._send(out)  # head and body together: one write for most responses

    def _response_head(self) -> bytes:
        head = self._head
        if head is None:
            raise RuntimeError("http.response.body before http.response.start")
        self._started = True
        server = self._conn._server
        headers = [*head.get("headers", ()), server.date.get(), _SERVER_HEADER]
        self._skip_buffered_body()
        if self._h11.their_state is not h11.DONE or server.closing:
            # The app answered without reading the whole body (a 413, a 401 on an upload):
            # the rest cannot be skipped safely, so this response ends the connection.
            headers.append((b"connection", b"close"))
            self._conn.linger = self._h11.their_state is h11.SEND_BODY
        return self._h11.send(h11.Response(status_code=int(head["status"]),
                                           headers=headers)) or b""


class HttpServer:
    """Accepts connections and runs one :class:`HttpConnection` task each."""

    def __init__(self, app: AsgiApp, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits
        self.date = _DateHeader()
        self.closing = False
        self.sockname: tuple[str, int] | None = None
        self._connections: set[HttpConnection] = set()
        self._idle = trio.Event()

    async def _handle(self, stream: trio.SocketStream) -> None:
        if len(self._connections) >= self.limits.max_connections:
            with trio.move_on_after(self.limits.send_timeout_s):
                try:
                    await stream.send_all(_BUSY)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            await stream.aclose()
            return
        conn = HttpConnection(self, stream)
        self._connections.add(conn)
        try:
            await conn.run()
        except Exception as exc:  # a bug here must cost one connection, never the engine
            log.error("control API connection failed", exc_info=exc)
        finally:
            self._connections.discard(conn)
            if not self._connections:
                self._idle.set()

    async def serve(self, host: str, port: int,
                    task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED, *,
                    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        sock = listeners[0].socket.getsockname()
        self.sockname = (str(sock[0]), int(sock[1]))
        async with trio.open_nursery() as nursery:
            accept = trio.CancelScope()

            async def accept_loop() -> None:
                with accept:
                    await trio.serve_listeners(self._handle, listeners,
                                               handler_nursery=nursery)

            nursery.start_soon(accept_loop)
            task_status.started(self.sockname[1])
            if shutdown_trigger is None:
                await trio.sleep_forever()
            await shutdown_trigger()
            accept.cancel()
            for listener in listeners:
                await listener.aclose()
            await self.drain()
            nursery.cancel_scope.cancel()

    async def drain(self) -> None:
        """Close idle connections now, give busy ones ``graceful_timeout_s`` to finish."""
        self.closing = True
        for conn in list(self._connections):
            if not conn.busy:
                conn.scope.cancel()
        with trio.move_on_after(self.limits.graceful_timeout_s):
            while self._connections:
                self._idle = trio.Event()
                await self._idle.wait()
