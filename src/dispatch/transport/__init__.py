"""SMPP over trio: one ``Bind`` per connection, a ``BindPool`` per ESME account.

The pool's API (submit messages, read outcome events, ``statistics()``) is documented in
``dispatch.transport.pool``; its settings in ``dispatch.transport.config``.

* ``pool`` -- the pool: queue, status and in-flight policies, receipts and MO, counters;
  ``events`` -- what goes in and comes out; ``stats`` -- the statistics record;
  ``reconnect`` -- keeping each bind slot bound, with backoff;
* ``bind`` -- one connection: reader, writer, submitter; ``connect`` -- TCP, TLS, the bind
  request; ``liveness`` -- enquire_link and response timeouts; ``unbind`` -- the graceful
  end; ``errors`` -- how a bind fails;
* ``ratelimit`` -- the TPS limiter; ``config`` -- the settings.
"""

from dispatch.transport.config import (
    BindMode,
    EsmeConfig,
    InflightPolicy,
    ReconnectConfig,
    StatusPolicy,
    TlsConfig,
)
from dispatch.transport.pool import (
    BindFailure,
    BindPool,
    MoMessage,
    OutboundMessage,
    PoolEvent,
    PoolStatistics,
    ReceiptEvent,
    SubmitOutcome,
    SubmitStatus,
    aggregate_segments,
)

__all__ = ["BindFailure", "BindMode", "BindPool", "EsmeConfig", "InflightPolicy", "MoMessage",
           "OutboundMessage", "PoolEvent", "PoolStatistics", "ReceiptEvent", "ReconnectConfig",
           "StatusPolicy", "SubmitOutcome", "SubmitStatus", "TlsConfig", "aggregate_segments"]
