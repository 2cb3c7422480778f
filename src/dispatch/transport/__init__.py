"""SMPP over trio: one ``Bind`` per connection, a ``BindPool`` per ESME account.

The pool's API (submit messages, read outcome events, ``statistics()``) is documented in
``dispatch.transport.pool``; its settings in ``dispatch.transport.config``.
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
