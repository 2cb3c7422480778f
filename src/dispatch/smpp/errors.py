"""Errors of the SMPP layer, split by who is at fault (STYLE.md).

* ``PduError``: the peer sent bytes that are not a valid PDU (a remote error). The session
  answers it with generic_nack or resets; it never escapes as a crash.
* ``LocalProtocolError``: we misused the session (sent a PDU the bind state forbids).
"""

from __future__ import annotations


class SmppError(Exception):
    """Base of every SMPP-layer error."""


class PduError(SmppError):
    """A malformed PDU from the peer.

    ``frame_length`` is the declared length of the offending PDU when its frame is intact and
    can be skipped (e.g. a truncated C-string inside a well-framed PDU); ``None`` when framing
    is lost (command_length < 16 or above the configured maximum) and the session must reset.
    """

    def __init__(self, message: str, *, sequence_number: int | None = None,
                 command_id: int | None = None, frame_length: int | None = None,
                 command_status: int = 0) -> None:
        super().__init__(message)
        self.sequence_number = sequence_number
        self.command_id = command_id
        self.frame_length = frame_length
        # The SMPP status to answer with in a generic_nack (e.g. ESME_RINVCMDLEN).
        self.command_status = command_status


class LocalProtocolError(SmppError):
    """We used the session in a way the SMPP state machine forbids."""


class TextEncodingError(SmppError):
    """A text cannot be represented in the requested data coding."""
