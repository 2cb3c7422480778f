"""Settings of the SMSC simulator: accounts, latency, receipts, outcome mix, throttling, faults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from dispatch.smpp.constants import CommandStatus

#: receipt stat words the simulator can produce (SMPP 3.4 Appendix B) and their message_state
STAT_STATES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6,
               "UNKNOWN": 7, "REJECTD": 8}


@dataclass(frozen=True, slots=True)
class Account:
    """One ESME account: credentials and an optional throttle (ESME_RTHROTTLED above it)."""

    system_id: str
    password: str
    throttle_tps: float = 0.0  # submits per one-second window above which 0x58 is answered


@dataclass(frozen=True, slots=True)
class OutcomeRule:
    """How a receipt ends: ``stat`` for destinations matching ``pattern`` (a regex searched in
    the destination) or, without a pattern, for ``share`` of the remaining messages."""

    stat: str
    share: float = 0.0
    pattern: str | None = None
    err: str = "000"

    def __post_init__(self) -> None:
        if self.stat not in STAT_STATES:
            raise ValueError(f"unknown receipt stat {self.stat!r}")

    def matches(self, destination: str) -> bool:
        return self.pattern is not None and re.search(self.pattern, destination) is not None


@dataclass(frozen=True, slots=True)
class SubmitStatusRule:
    """Answer submit_sm with ``status`` when the destination matches ``pattern``; with
    ``times`` > 0 only for the first ``times`` matching submits (a queue-full or throttle storm
    that passes, after which the rule no longer applies)."""

    pattern: str
    status: int = CommandStatus.ESME_RINVDSTADR
    times: int = 0  # 0: every time


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Misbehaviour for the first ``faulty_sessions`` bound sessions (later ones are healthy, so
    a client that reconnects can finish). Counts are PDUs received on that session."""

    drop_after_pdus: int = 0  # close the TCP connection abruptly
    stall_after_pdus: int = 0  # keep reading but answer nothing, ever
    garbage_after_pdus: int = 0  # write ``garbage`` once onto the stream
    # a well-framed PDU with an unknown (request) command id: answered by generic_nack
    garbage: bytes = b"\x00\x00\x00\x14\x00\x00\xbe\xef\x00\x00\x00\x00\x00\x00\x00\x07garb"
    faulty_sessions: int = 1
    # the first ``silent_binds`` bind requests are read and never answered (a bind that
    # accepts the connection, then hangs); the connection stays open
    silent_binds: int = 0


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    """Serve SMPP over TLS (many SMSCs listen on 3550 for it) with this certificate chain.

    ``certfile`` is a PEM chain (leaf first) and ``keyfile`` its private key (``None``: the key
    is in ``certfile``). ``cafile`` set: clients must present a certificate signed by it
    (mutual TLS). ``handshake_timeout_s`` bounds a client that connects and never speaks TLS.
    """

    certfile: str
    keyfile: str | None = None
    cafile: str | None = None
    handshake_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 2775  # 0: any free port (tests)
    tls: TlsServerConfig | None = None  # None: plain TCP
    accounts: tuple[Account, ...] = (Account("dispatch", "secret"),)
    system_id: str = "dispatch-sim"
    response_latency_s: float = 0.0
    receipt_delay_s: float = 0.0
    receipts: bool = True  # honour registered_delivery
    receipt_tlvs: bool = True  # add receipted_message_id + message_state TLVs
    outcomes: tuple[OutcomeRule, ...] = (OutcomeRule("DELIVRD", share=1.0),)
    submit_status_rules: tuple[SubmitStatusRule, ...] = ()
    message_id_format: Literal["hex", "decimal"] = "hex"
    message_id_width: int = 0  # zero-pad to this many characters
    message_id_upper: bool = True  # hex digits upper-case
    receipt_id_format: Literal["hex", "decimal"] | None = None  # None: as message_id_format
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int = 0
    log_submits: bool = True  # keep a SubmitRecord per submit (tests reconcile exactly-once)
    # cap of submit_log and multipart_texts (a long bench or demo run should set log_submits
    # False: a record costs ~250 bytes)
    max_log_records: int = 200_000
    receipt_queue_max: int = 1_000_000
    # deliver_sm (receipts and MO) toward the ESME, as a real SMSC sends them (SMPP 3.4
    # section 4.6.1): at most ``deliver_window`` unacknowledged per session (0: no limit); one
    # not answered within ``deliver_resp_timeout_s`` (0: never times out), answered by a
    # temporary error or by generic_nack, or outstanding on a connection that ends is queued
    # again, ``redelivery_delay_s`` later, to any receiver bind of the account, at most
    # ``deliver_max_attempts`` times in all (0: no limit). ESME_RX_P_APPN (section 5.1.3, a
    # permanent application error) ends it at once.
    deliver_window: int = 1000
    deliver_resp_timeout_s: float = 30.0
    redelivery_delay_s: float = 1.0
    deliver_max_attempts: int = 10
    read_size: int = 256 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:  # the socket layer would wrap 70000 to 4464
            raise ValueError("port must be between 0 and 65535")
        for name in ("response_latency_s", "receipt_delay_s", "deliver_resp_timeout_s",
                     "redelivery_delay_s"):
            value = getattr(self, name)
            if not value >= 0:  # NaN too
                raise ValueError(f"{name} must be 0 or more, not {value}")
        for name in ("deliver_window", "deliver_max_attempts", "message_id_width"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
