"""The bind states of an SMPP 3.4 session and the one table that moves them.

``TRANSITIONS`` maps (state, ``Input``) to the next state (section 2.2, "session states");
``MAY_SEND`` / ``MAY_RECEIVE`` say which requests each role may send and receive in each
state (section 2.3, "allowed operations by session state"); ``KEPT_AFTER_PEER_UNBIND`` which
outstanding requests still get their answer after the peer's unbind (section 4.2).
``dispatch.smpp.session`` drives a session through them: using a session against them is a
``LocalProtocolError``, the peer doing so is answered. Pure data: nothing here does I/O.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from dispatch.smpp.constants import CommandId

C = CommandId


class BindMode(StrEnum):
    """How an ESME binds (SMPP 3.4 sections 4.1.1, 4.1.3, 4.1.5)."""

    TRANSMITTER = "tx"
    RECEIVER = "rx"
    TRANSCEIVER = "trx"


class SessionState(Enum):
    OPEN = "open"  # connected, not bound (section 2.2)
    BINDING = "binding"  # ESME: bind sent, waiting for bind_resp
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # unbind sent, waiting for unbind_resp
    UNBOUND = "unbound"  # the peer sent unbind: its last answers may still come (2.3.5 in 5.0)
    CLOSED = "closed"


class Input(Enum):
    """What moves the bind state (the columns of ``TRANSITIONS``)."""

    BIND = "bind"  # ESME sent / SMSC received a bind request
    BIND_OK_TX = "bind_ok_tx"
    BIND_OK_RX = "bind_ok_rx"
    BIND_OK_TRX = "bind_ok_trx"
    BIND_FAILED = "bind_failed"
    UNBIND_SENT = "unbind_sent"
    UNBIND_RECEIVED = "unbind_received"  # the peer is ending the session
    UNBIND_DONE = "unbind_done"
    DRAINED = "drained"  # after the peer's unbind: unbind_resp sent, nothing outstanding
    CLOSE = "close"  # transport gone or stream broken


St = SessionState
_BOUND = (St.BOUND_TX, St.BOUND_RX, St.BOUND_TRX)

#: The one table of bind states (SMPP 3.4 section 2.2 "session states").
TRANSITIONS: dict[tuple[SessionState, Input], SessionState] = {
    (St.OPEN, Input.BIND): St.BINDING,
    (St.BINDING, Input.BIND_OK_TX): St.BOUND_TX,
    (St.BINDING, Input.BIND_OK_RX): St.BOUND_RX,
    (St.BINDING, Input.BIND_OK_TRX): St.BOUND_TRX,
    (St.BINDING, Input.BIND_FAILED): St.OPEN,
    **{(s, Input.UNBIND_SENT): St.UNBINDING for s in _BOUND},
    **{(s, Input.UNBIND_RECEIVED): St.UNBOUND for s in (*_BOUND, St.UNBINDING)},
    (St.UNBINDING, Input.UNBIND_DONE): St.CLOSED,
    (St.UNBOUND, Input.DRAINED): St.CLOSED,
    **{(s, Input.CLOSE): St.CLOSED for s in St},
}

BIND_COMMAND = {BindMode.TRANSMITTER: C.BIND_TRANSMITTER, BindMode.RECEIVER: C.BIND_RECEIVER,
                BindMode.TRANSCEIVER: C.BIND_TRANSCEIVER}

_LINK = frozenset({C.ENQUIRE_LINK, C.UNBIND})
_MT = frozenset({C.SUBMIT_SM})  # mobile-terminated traffic, ESME -> SMSC
# receipts and MO, SMSC -> ESME: deliver_sm, or data_sm (section 4.7; some SMSCs use it)
_MO = frozenset({C.DELIVER_SM, C.DATA_SM})
_BINDS = frozenset(BIND_COMMAND.values())

#: Requests each role may *send* by state (section 2.3, "allowed operations by session state").
MAY_SEND: dict[str, dict[SessionState, frozenset[int]]] = {
    "esme": {St.OPEN: _BINDS, St.BOUND_TX: _LINK | _MT, St.BOUND_RX: _LINK,
             St.BOUND_TRX: _LINK | _MT, St.UNBINDING: frozenset({C.ENQUIRE_LINK})},
    "smsc": {St.BOUND_TX: _LINK, St.BOUND_RX: _LINK | _MO, St.BOUND_TRX: _LINK | _MO,
             St.UNBINDING: frozenset({C.ENQUIRE_LINK})},
}  # UNBOUND: no new request either way (section 4.2)
#: Requests each role may *receive* by state; others are answered ESME_RINVBNDSTS.
MAY_RECEIVE: dict[str, dict[SessionState, frozenset[int]]] = {
    "esme": {St.BOUND_TX: _LINK, St.BOUND_RX: _LINK | _MO, St.BOUND_TRX: _LINK | _MO,
             St.UNBINDING: _LINK | _MO, St.UNBOUND: frozenset({C.ENQUIRE_LINK})},
    "smsc": {St.OPEN: _BINDS, St.BOUND_TX: _LINK | _MT, St.BOUND_RX: _LINK,
             St.BOUND_TRX: _LINK | _MT, St.UNBINDING: _LINK | _MT},
}

#: Outstanding requests whose responses are still matched after the peer's unbind (section
#: 4.2): the ESME's submit_sm decide whether a message is sent again; its enquire_link and a
#: crossing unbind of its own decide nothing and are forgotten (a late answer is counted in
#: ``unexpected_responses``). The simulator's SMSC side keeps none and closes at once.
KEPT_AFTER_PEER_UNBIND: dict[str, frozenset[int]] = {
    "esme": frozenset({C.SUBMIT_SM}),
    "smsc": frozenset(),
}
