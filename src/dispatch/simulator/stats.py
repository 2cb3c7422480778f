"""What the simulator saw, kept so tests and benchmarks can check the client from outside.

Destinations are never stored in clear: each submit is logged with ``destination_hash``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple


def destination_hash(destination: bytes | str) -> str:
    """A short stable hash of a destination address (BLAKE2b, 8 bytes, hex)."""
    raw = destination.encode() if isinstance(destination, str) else bytes(destination)
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


class SubmitRecord(NamedTuple):
    """One submit_sm as the simulator answered it."""

    session_id: int
    system_id: str
    sequence_number: int
    destination_hash: str
    message_id: str  # "" when not accepted
    command_status: int
    reference: int | None  # concatenation reference, None for a single-part message
    total: int
    part: int
    time: float


@dataclass(slots=True)
class SimulatorStats:
    """Plain counters, updated inline on the simulator's hot path."""

    connections: int = 0
    binds_ok: int = 0
    binds_rejected: int = 0
    binds_ignored: int = 0  # FaultConfig.silent_binds
    submits: int = 0
    submits_by_status: Counter[int] = field(default_factory=Counter)
    max_outstanding: int = 0  # over all sessions
    max_outstanding_by_session: dict[int, int] = field(default_factory=dict)
    max_tps: int = 0  # most submits seen in one one-second window
    max_tps_by_account: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # accepted submits repeating (destination, reference, part)
    multipart_texts: list[tuple[str, int, bytes]] = field(default_factory=list)
    receipts_sent: int = 0  # first deliveries only (redeliveries are counted apart)
    mo_sent: int = 0
    deliver_resps: int = 0
    deliver_resps_failed: int = 0  # deliver_sm_resp with a non-zero status
    deliver_timeouts: int = 0  # deliver_sm unanswered after deliver_resp_timeout_s
    redeliveries: int = 0  # deliver_sm sent again (timeout, error, connection lost)
    deliver_abandoned: int = 0  # given up: deliver_max_attempts reached or ESME_RX_P_APPN
    max_deliver_outstanding: int = 0  # most unacknowledged deliver_sm on one session
    tls_handshakes: int = 0
    tls_handshake_failures: int = 0
    generic_nacks_received: int = 0
    protocol_errors: int = 0
    faults_injected: int = 0
    submit_log: list[SubmitRecord] = field(default_factory=list)
    bind_log: list[tuple[float, str, int]] = field(default_factory=list)  # time, system_id, status

    def accepted_by_destination(self) -> Counter[tuple[str, int | None, int]]:
        """(destination hash, reference, part) -> accepted count (exactly-once means all 1)."""
        return Counter((r.destination_hash, r.reference, r.part) for r in self.submit_log
                       if r.command_status == 0)
