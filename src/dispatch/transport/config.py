"""Settings of one ESME account: where to connect, how to bind, how fast, what to do on errors.

One typed object with defaults, passed explicitly (STYLE.md). Times are seconds (``_s``),
rates are messages per second (``tps``). Status and in-flight policies are documented here
because the pool only executes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dispatch.smpp.constants import INTERFACE_VERSION_34, CommandStatus
from dispatch.smpp.receipt import IdFormat, MessageIdPolicy
from dispatch.smpp.session import BindMode

__all__ = ["BindMode", "EsmeConfig", "IdFormat", "InflightPolicy", "MessageIdPolicy",
           "ReconnectConfig", "StatusPolicy", "TlsConfig"]


class InflightPolicy(StrEnum):
    """What happens to a submit sent but not answered when its bind drops or it times out.

    * ``RETRY``: send it again (on whichever bind is healthy). The SMSC may have accepted the
      first copy, so the recipient may get it twice; nothing is ever lost. Counted as
      ``inflight_retried``.
    * ``UNKNOWN``: do not resend; the message's outcome is ``unknown`` (the engine records it
      and a later receipt may still resolve it). Never a duplicate, maybe a loss. Counted as
      ``inflight_unknown``.
    """

    RETRY = "retry"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    """What a non-zero submit_sm_resp status does (defaults follow Kannel / Jasmin practice).

    * ``throttle_statuses`` (ESME_RTHROTTLED 0x58, ESME_RMSGQFUL 0x14): the SMSC is full; the
      whole pool pauses sending for ``throttle_pause_s`` and the message is retried later,
      without limit (it never fails for being throttled). Counted as ``throttled``.
    * ``retry_statuses`` (ESME_RSYSERR 0x08): a transient SMSC fault; retried after
      ``retry_delay_s`` at most ``max_retries`` times, then failed with the status name.
    * anything else: the message fails permanently with the status name.
    """

    throttle_statuses: frozenset[int] = frozenset({CommandStatus.ESME_RTHROTTLED,
                                                   CommandStatus.ESME_RMSGQFUL})
    throttle_pause_s: float = 1.0
    retry_statuses: frozenset[int] = frozenset({CommandStatus.ESME_RSYSERR})
    max_retries: int = 3
    retry_delay_s: float = 1.0


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """Exponential backoff with jitter between connection or bind attempts of one bind slot.

    The n-th consecutive failure waits ``min(max_s, initial_s * multiplier**(n-1))`` scaled by
    a random factor in ``[1 - jitter, 1 + jitter]``. A bind refused for credentials
    (ESME_RINVPASWD, ESME_RINVSYSID) waits at least ``bad_credentials_s``: hammering an SMSC
    with a wrong password gets accounts locked.
    """

    initial_s: float = 0.5
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2
    bad_credentials_s: float = 60.0


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """SMPP over TLS (port 3550 by convention). ``cafile`` None: the system store."""

    enabled: bool = False
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True
    server_hostname: str | None = None


@dataclass(frozen=True, slots=True)
class EsmeConfig:
    """One ESME account toward one SMSC, and the pool of binds that serves it."""

    name: str
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    # TRANSCEIVER: ``binds`` TRX binds. TRANSMITTER: ``binds`` TX binds plus ``receivers``
    # RX binds (TX+RX pairs when equal). RECEIVER is not a sending pool mode.
    bind_mode: BindMode = BindMode.TRANSCEIVER
    binds: int = 1
    receivers: int = 1
    window: int = 64  # submit_sm outstanding per bind (SMPP "window")
    tps: float = 0.0  # per account, shared by every bind; 0 = unlimited
    per_bind_tps: float = 0.0  # optional cap of one bind; 0 = none
    tps_burst: int = 0  # token bucket depth; 0 = tps / 20 (at least 1)
    # The TPS cap holds in every window of ``1 s + tps_guard_s`` on our clock, so network
    # jitter up to the guard cannot push more than ``tps`` into one second at the SMSC.
    tps_guard_s: float = 0.02
    connect_timeout_s: float = 10.0
    bind_timeout_s: float = 10.0
    response_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    enquire_link_interval_s: float = 30.0
    enquire_link_misses: int = 3  # dead link after this many unanswered probes
    unbind_timeout_s: float = 5.0
    # How long a bind that is ending waits for the responses to its outstanding submit_sm:
    # at a graceful shutdown, before our unbind; after the SMSC's unbind, before we hang up
    # (``transport.unbind.unbind_drainer``). Still unanswered then: the in-flight policy applies.
    drain_timeout_s: float = 10.0
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    status_policy: StatusPolicy = field(default_factory=StatusPolicy)
    inflight_policy: InflightPolicy = InflightPolicy.RETRY
    # How this SMSC writes ids in submit_sm_resp and in receipts; both are normalised to one
    # canonical key (dispatch.smpp.receipt) so a receipt matches its submit by equality.
    message_ids: MessageIdPolicy = field(default_factory=MessageIdPolicy)
    tls: TlsConfig = field(default_factory=TlsConfig)
    max_pdu_length: int = 64 * 1024
    read_size: int = 256 * 1024
    queue_size: int = 10_000  # messages waiting for a bind (submit() blocks above)
    outcome_queue_batches: int = 256  # outcome batches waiting for the consumer
    # False: deliver_sm_resp goes out once the event is on ``outcomes``. True: the batch ends
    # with a ``DeliverAck`` the consumer calls after making the events durable (the engine
    # does, after the store commit), so a crash never loses a receipt the SMSC saw answered.
    defer_deliver_acks: bool = False

    def __post_init__(self) -> None:
        if self.bind_mode is BindMode.RECEIVER:
            raise ValueError("bind_mode must be transceiver or transmitter (+ receivers)")
        if self.binds < 1 or self.window < 1:
            raise ValueError("binds and window must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ESME {self.name!r}: port must be between 0 and 65535")
        if self.tps < 0 or self.per_bind_tps < 0:
            raise ValueError("tps must be >= 0")
        # bind_* C-Octet String sizes, NUL included (SMPP 3.4 section 4.1.1): refused here,
        # at config load, rather than as an encoding error inside a running pool.
        for name, limit in (("system_id", 16), ("password", 9), ("system_type", 13),
                            ("address_range", 41)):
            if len(getattr(self, name).encode("latin-1", "replace")) > limit - 1:
                raise ValueError(f"ESME {self.name!r}: {name} is longer than {limit - 1} "
                                 "characters (SMPP 3.4 section 4.1.1)")
