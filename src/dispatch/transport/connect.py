"""Opening a bind's connection: TCP, TLS when configured, then the bind request (SMPP 3.4
section 4.1), each under its configured timeout.

``connect`` returns the TCP stream, wrapped in a ``CountedStream`` that counts what the SMSC
sent (the link keeper and the response timer, ``dispatch.transport.liveness``, judge the
SMSC on that), and the stream SMPP is spoken over: the same one, or TLS over it.
``bind_session`` sends the bind and waits for its response. Every failure raises
``BindError`` in words an operator can act on; a refused bind carries the SMSC's status.
"""

from __future__ import annotations

import fcntl
import ssl
import struct
import termios
from typing import Any

import trio

from dispatch.smpp.constants import status_name
from dispatch.smpp.session import (
    BindMode,
    BindResponse,
    EsmeSession,
    GenericNack,
    ProtocolError,
)
from dispatch.transport.config import EsmeConfig
from dispatch.transport.errors import BindError


def _ssl_context(config: EsmeConfig) -> ssl.SSLContext:
    tls = config.tls
    ctx = ssl.create_default_context(cafile=tls.cafile)
    if tls.certfile:
        ctx.load_cert_chain(tls.certfile, tls.keyfile)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _tls_reason(exc: BaseException) -> str:
    """What went wrong in a TLS handshake, in the words an operator can act on: trio wraps
    the ``ssl`` error (certificate verify failed, hostname mismatch, ...) as the cause."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return cause.reason or str(cause)
    return repr(cause) if cause is not None else "connection closed during the handshake"


class CountedStream(trio.abc.Stream):
    """The TCP connection of a bind (under TLS when configured), counting what was received
    through it. With what waits unread in its socket (``unread``), the link keeper and the
    response timer judge the SMSC on what it sent, not on when the reader got to it."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.received = 0

    def unread(self) -> int:
        """Bytes the SMSC sent that wait in the socket's receive buffer (FIONREAD)."""
        try:
            answer = fcntl.ioctl(self.stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (OSError, ValueError):  # closed meanwhile (fileno -1): the reader finds out
            return 0
        count: int = struct.unpack("i", answer)[0]
        return count

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.stream.receive_some(max_bytes)
        self.received += len(data)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def connect(cfg: EsmeConfig) -> tuple[CountedStream, trio.abc.Stream]:
    """TCP, then the TLS handshake when configured, ``connect_timeout_s`` for both: the
    counted TCP stream and the stream to speak SMPP over (the same one without TLS). A
    failed handshake raises ``BindError``; a failed connect, the socket's or trio's error."""
    with trio.fail_after(cfg.connect_timeout_s):
        tcp = CountedStream(await trio.open_tcp_stream(cfg.host, cfg.port))
        if not cfg.tls.enabled:
            return tcp, tcp
        try:
            tls = trio.SSLStream(tcp, _ssl_context(cfg),
                                 server_hostname=cfg.tls.server_hostname or cfg.host)
            await tls.do_handshake()
        except BaseException as exc:
            await trio.aclose_forcefully(tcp)
            if isinstance(exc, trio.BrokenResourceError | ssl.SSLError):
                raise BindError(f"TLS handshake with {cfg.host}:{cfg.port} failed: "
                                f"{_tls_reason(exc)}") from None
            raise
        return tcp, tls


async def bind_session(stream: trio.abc.Stream, session: EsmeSession, mode: BindMode,
                       cfg: EsmeConfig) -> list[Any]:
    """Send the bind and wait for its response (section 4.1), ``bind_timeout_s`` at most.
    Returns the events read behind the bind_resp, in the same read, for the reader."""
    session.send_bind(mode, cfg.system_id.encode(), cfg.password.encode(),
                      system_type=cfg.system_type.encode(),
                      interface_version=cfg.interface_version, addr_ton=cfg.addr_ton,
                      addr_npi=cfg.addr_npi, address_range=cfg.address_range.encode())
    try:
        with trio.fail_after(cfg.bind_timeout_s):
            await stream.send_all(session.data_to_send())
            while True:
                data = await stream.receive_some(cfg.read_size)
                if not data:
                    raise BindError("connection closed by the SMSC during bind")
                events = session.receive_data(data)
                for i, ev in enumerate(events):
                    if isinstance(ev, BindResponse):
                        if ev.command_status:
                            raise BindError(f"bind refused: {status_name(ev.command_status)}",
                                            ev.command_status)
                        # An SMSC may send queued deliver_sm right behind the bind_resp,
                        # in the same read: the reader handles them first.
                        return list(events[i + 1:])
                    if isinstance(ev, GenericNack):
                        raise BindError(f"bind answered by generic_nack "
                                        f"{status_name(ev.command_status)}",
                                        ev.command_status)
                    if isinstance(ev, ProtocolError) and ev.fatal:
                        raise BindError(f"garbage during bind: {ev.reason}")
                if session.has_data_to_send:
                    await stream.send_all(session.data_to_send())
    except trio.TooSlowError:
        raise BindError(f"no bind_resp within {cfg.bind_timeout_s} s") from None
    except (trio.BrokenResourceError, OSError) as exc:
        if isinstance(exc.__cause__, ssl.SSLError):  # TLS 1.3: a refusal shows up here
            raise BindError(f"connection lost during bind: TLS error: "
                            f"{_tls_reason(exc)}") from None
        raise BindError(f"connection lost during bind: {exc!r}") from None
