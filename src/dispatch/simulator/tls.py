"""The simulator's TLS server context (SMPP over TLS is not in SMPP 3.4 itself; operators run
it as plain TLS around the same byte stream, often on port 3550)."""

from __future__ import annotations

import ssl

from dispatch.simulator.config import TlsServerConfig


def server_ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context for ``tls``: TLS 1.2 or later, client certificates required when a CA
    to check them is given (mutual TLS, as some operators demand)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.certfile, tls.keyfile)
    if tls.cafile:
        ctx.load_verify_locations(cafile=tls.cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
