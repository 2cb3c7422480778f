"""Sans-IO SMPP 3.4 session: bytes in, events out; calls in, bytes out.

A session owns no socket and no clock. The transport feeds it what it read
(``receive_data``) and gets back a list of events (``dispatch.smpp.events``); it calls
``send_*`` methods and collects the bytes to write with ``data_to_send()`` -- one buffer for
everything queued since the last call, so the writer coalesces many PDUs into one
``send_all`` (DESIGN.md "Facts measured").

What the session does by itself, because the spec leaves no choice:

* sequence numbers 1..0x7FFFFFFF, then wrap to 1 (SMPP 3.4 section 3.2), skipping any still
  waiting for a response;
* request/response matching by sequence number; a response to nothing we sent is counted and
  dropped (section 3.2: responses are correlated by sequence_number);
* enquire_link is answered with enquire_link_resp (section 4.11); unbind with unbind_resp
  (section 4.2), and the session is over once the peer's last answers came (below);
* an unknown command id gets generic_nack ESME_RINVCMDID, a malformed but well-framed request
  gets generic_nack with the decoder's status (section 4.3); a malformed but well-framed
  response is not nacked, it still settles its request with the status in its header (body
  dropped); a broken frame (length < 16 or above ``max_pdu_length``) cannot be skipped, so
  the session closes and reports a fatal ``ProtocolError`` -- the transport drops the
  connection;
* a request the bind state forbids (submit_sm on a receiver bind, anything before bind) is
  answered with its response carrying ESME_RINVBNDSTS (section 5.1.3).

deliver_sm is *not* acknowledged automatically: the ESME transport calls
``send_deliver_sm_resp`` once it has handed the event on, so a receipt is never acknowledged
before somebody took it (backpressure reaches the SMSC through the TCP window).

When the SMSC unbinds, the ESME session goes to ``UNBOUND`` (the SMPP 5.0 section 2.3.5
state; 3.4 has no name for the time between unbind and the closed connection):

* the unbind_resp goes out once every deliver_sm read before the unbind is answered, so
  their deliver_sm_resp precede it on the wire (after the unbind_resp the session is over,
  section 4.2, and the SMSC would deliver them again);
* responses to our outstanding submit_sm still settle them, in the same read or later: the
  SMSC took those requests while bound, and one dropped here would be sent again by the
  transport's in-flight policy -- a duplicate SMS (a draining SMSC answers after its unbind).
  A response is no new operation: SMPP 5.0's operation matrix (section 2.4) allows none in
  the Unbound state but enquire_link and generic_nack, and still a response only reports on
  a request made while bound (section 3.2 matches it by sequence number);
* a new request from the SMSC (deliver_sm) is answered ESME_RINVBNDSTS: having sent unbind it
  no longer uses the session for delivery (section 4.2; SMPP 5.0 section 2.4 allows no
  deliver_sm in the Unbound state), so it keeps the message and delivers it on another bind;
* the session closes by itself when the unbind_resp is out and nothing is outstanding; the
  transport bounds the wait and calls ``end_unbound`` when it gives up.

The SMSC side (the simulator) still closes at once on the ESME's unbind: it keeps no request
across it (``KEPT_AFTER_PEER_UNBIND``).

Bind states live in one transition table, ``TRANSITIONS``; what may be sent and received in
each state (per role) lives in ``MAY_SEND`` / ``MAY_RECEIVE`` (all in ``dispatch.smpp.states``).
Using the session against them raises ``LocalProtocolError`` (our bug); the peer doing so is
answered, never raised.

``EsmeSession`` is the client side (used by ``dispatch.transport.bind``); ``SmscSession`` is
the server side (used by ``dispatch.simulator``). They share ``_Session``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dispatch.fastpath import impl
from dispatch.smpp import batches
from dispatch.smpp.constants import (
    DEFAULT_MAX_PDU_LENGTH,
    INTERFACE_VERSION_34,
    MAX_SEQUENCE,
    RESPONSE_BIT,
    CommandId,
    CommandStatus,
)
from dispatch.smpp.errors import LocalProtocolError, PduError
from dispatch.smpp.events import (  # the session's events; imported from here too
    BindRequest,
    BindResponse,
    DeliverSm,
    EnquireLink,
    Event,
    GenericNack,
    ProtocolError,
    Response,
    SubmitSm,
    Unbound,
)
from dispatch.smpp.states import (  # the state table; its names are imported from here too
    BIND_COMMAND,
    KEPT_AFTER_PEER_UNBIND,
    MAY_RECEIVE,
    MAY_SEND,
    TRANSITIONS,
    BindMode,
    Input,
    SessionState,
)

C = CommandId
S = CommandStatus

# checked per response: a global is ~10x cheaper than an Enum lookup
_UNBOUND = SessionState.UNBOUND

_OK_INPUT = {BindMode.TRANSMITTER: Input.BIND_OK_TX, BindMode.RECEIVER: Input.BIND_OK_RX,
             BindMode.TRANSCEIVER: Input.BIND_OK_TRX}
_BIND_MODE = {int(v): k for k, v in BIND_COMMAND.items()}

_KNOWN_REQUESTS = frozenset(int(c) for c in C if not c & RESPONSE_BIT)
#: Requests that have no response PDU (sections 4.1.7, 4.12).
_NO_RESPONSE = frozenset({int(C.OUTBIND), int(C.ALERT_NOTIFICATION)})
# the SMSC's batched input compares these per PDU: plain ints (an Enum attribute costs
# ~100 ns)
_SUBMIT_SM = int(C.SUBMIT_SM)
_DELIVER_SM = int(C.DELIVER_SM)
_DELIVER_SM_RESP = int(C.DELIVER_SM_RESP)
#: states in which the SMSC takes submit_sm (the others answer it ESME_RINVBNDSTS)
_SMSC_TAKES_SUBMITS = frozenset(state for state, commands in MAY_RECEIVE["smsc"].items()
                                if C.SUBMIT_SM in commands)


# ----------------------------------------------------------------------------------- session

class _Session:
    """What both sides share: framing, sequence numbers, matching, link management."""

    role = ""

    def __init__(self, *, max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH) -> None:
        self.state = SessionState.OPEN
        self.max_pdu_length = max_pdu_length
        self._rx = bytearray()
        self._out: list[bytes] = []
        self._next_seq = 1
        # sequence number -> command id of every request waiting for its response
        self._pending: dict[int, int] = {}
        # sequence number -> response command id of every peer request the transport answers
        # itself (the ESME's deliver_sm / data_sm) and has not answered yet
        self._unanswered: dict[int, int] = {}
        self._unbind_to_answer: int | None = None  # the peer's unbind, until answered
        # counters (plain ints, read by statistics())
        self.pdus_received = 0
        self.unexpected_responses = 0
        self.nacks_sent = 0
        self.protocol_errors = 0

    # -- state
    def _move(self, what: Input) -> None:
        try:
            self.state = TRANSITIONS[(self.state, what)]
        except KeyError:
            raise LocalProtocolError(f"{what.value} not allowed in state {self.state.value}") from None

    def _check_send(self, command_id: int) -> None:
        if command_id not in MAY_SEND[self.role].get(self.state, ()):
            raise LocalProtocolError(
                f"cannot send {C(command_id).name.lower()} in state {self.state.value}")

    @property
    def outstanding(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._pending)

    def forget(self, sequence_number: int) -> None:
        """Stop waiting for a response (the transport timed it out); a late one is then
        counted in ``unexpected_responses`` and dropped."""
        self._pending.pop(sequence_number, None)
        if self.state is _UNBOUND:
            self._close_when_drained()

    def outstanding_requests(self) -> dict[int, int]:
        """A copy of sequence number -> command id for every unanswered request."""
        return dict(self._pending)

    # -- sequence numbers (section 3.2)
    def next_sequence(self) -> int:
        seq = self._next_seq
        while seq in self._pending:
            seq = 1 if seq >= MAX_SEQUENCE else seq + 1
        self._next_seq = 1 if seq >= MAX_SEQUENCE else seq + 1
        return seq

    def _request(self, command_id: int) -> int:
        return self._requests(command_id, 1)[0]

    def _requests(self, command_id: int, count: int) -> list[int]:
        """The sequence numbers of ``count`` new requests, each pending from now on (the
        numbers ``next_sequence`` would give, in one loop)."""
        pending, seqs = self._pending, []
        seq = self._next_seq
        for _ in range(count):
            while seq in pending:
                seq = 1 if seq >= MAX_SEQUENCE else seq + 1
            pending[seq] = command_id
            seqs.append(seq)
            seq = 1 if seq >= MAX_SEQUENCE else seq + 1
        self._next_seq = seq
        return seqs

    # -- output
    def data_to_send(self) -> bytes:
        """Every byte queued since the last call, as one buffer (``b""`` when none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out)

    def send_enquire_link(self) -> int:
        """Probe the link (section 4.11); returns the sequence number."""
        self._check_send(C.ENQUIRE_LINK)
        seq = self._request(C.ENQUIRE_LINK)
        self._out.append(impl.encode_header_only(C.ENQUIRE_LINK, 0, seq))
        return seq

    def send_unbind(self) -> int:
        """Start the unbind handshake (section 4.2); ``Unbound`` follows its response."""
        self._check_send(C.UNBIND)
        self._move(Input.UNBIND_SENT)
        seq = self._request(C.UNBIND)
        self._out.append(impl.encode_header_only(C.UNBIND, 0, seq))
        return seq

    def send_generic_nack(self, command_status: int, sequence_number: int) -> None:
        self.nacks_sent += 1
        self._out.append(impl.encode_header_only(C.GENERIC_NACK, command_status, sequence_number))

    def close(self) -> None:
        """The transport is gone: forget everything outstanding."""
        self._move(Input.CLOSE)
        self._pending.clear()
        self._unanswered.clear()
        self._unbind_to_answer = None
        self._rx.clear()

    def end_unbound(self) -> None:
        """Stop waiting after the peer's unbind (the transport's drain timeout): answer the
        unbind now if deliver_sm read before it are still unanswered (the SMSC delivers those
        again), and close; requests still outstanding are the transport's to settle."""
        if self._unbind_to_answer is not None:
            self._answer_unbind()
        if self.state is not SessionState.CLOSED:
            self.close()

    # -- the peer's unbind (section 4.2)
    def _unbind_received(self, seq: int) -> None:
        self._move(Input.UNBIND_RECEIVED)
        kept = KEPT_AFTER_PEER_UNBIND[self.role]
        self._pending = {s: c for s, c in self._pending.items() if c in kept}
        self._unbind_to_answer = seq
        if not self._unanswered:
            self._answer_unbind()
        self._close_when_drained()

    def _answer_unbind(self) -> None:
        assert self._unbind_to_answer is not None
        self._out.append(impl.encode_header_only(C.UNBIND_RESP, 0, self._unbind_to_answer))
        self._unbind_to_answer = None

    def _close_when_drained(self) -> None:
        if self._unbind_to_answer is None and not self._pending:
            self._move(Input.DRAINED)
            self._unanswered.clear()

    # -- input
    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the peer; return the events of every complete PDU in them."""
        events: list[Event] = []
        if self.state is SessionState.CLOSED:
            return events
        rx = self._rx
        rx += data
        decode = impl.decode_pdus
        while rx:
            try:
                pdus, consumed = decode(rx, self.max_pdu_length)
            except PduError as err:
                self.protocol_errors += 1
                if err.frame_length is None:
                    # Framing lost: nothing after this can be trusted (section 3.1).
                    events.append(ProtocolError(str(err), err.command_status
                                                or S.ESME_RINVCMDLEN, True))
                    self.close()
                    return events
                events.append(ProtocolError(str(err), err.command_status, False))
                command_id = err.command_id or 0
                if command_id & RESPONSE_BIT:
                    # A response whose body does not parse (a bind_resp system_id over 15
                    # octets, a broken TLV) still answers its request: the frame and header
                    # are intact and the status is there (section 3.2 matches responses by
                    # sequence number). Left pending, a bind would never complete and a
                    # submit would time out and be sent twice. A response is not nacked.
                    status = int.from_bytes(rx[8:12], "big")
                    del rx[:err.frame_length]
                    self.pdus_received += 1
                    self._handle((command_id, status, err.sequence_number or 0, None), events)
                    if self.state is SessionState.CLOSED:
                        rx.clear()
                        return events
                    continue
                self.send_generic_nack(err.command_status or S.ESME_RUNKNOWNERR,
                                       err.sequence_number or 0)
                del rx[:err.frame_length]
                continue
            if consumed:
                del rx[:consumed]
            if not pdus:
                break
            self.pdus_received += len(pdus)
            if self._handle_all(pdus, events):
                rx.clear()
                return events
        return events

    def _handle_all(self, pdus: list[tuple[int, int, int, Any]], events: list[Event]) -> bool:
        """Handle decoded PDUs in order; ``True`` once the session closed (the rest is
        dropped)."""
        for pdu in pdus:
            self._handle(pdu, events)
            if self.state is SessionState.CLOSED:
                return True
        return False

    def _handle(self, pdu: tuple[int, int, int, Any], events: list[Event]) -> None:
        command_id, status, seq, body = pdu
        if command_id & RESPONSE_BIT:
            request = self._pending.pop(seq, None)
            if command_id == C.GENERIC_NACK:
                events.append(GenericNack(status, seq, request))
                if request is not None and self.state is _UNBOUND:
                    self._close_when_drained()
                return
            if request is None or request | RESPONSE_BIT != command_id:
                # Section 3.2: a response must match an outstanding request. Not ours: drop.
                if request is not None:
                    self._pending[seq] = request
                self.unexpected_responses += 1
                return
            if request == C.UNBIND:
                self._move(Input.UNBIND_DONE)
                self._pending.clear()
                events.append(Unbound(by_peer=False))
                return
            if request in _BIND_MODE:
                self._bind_response(request, status, seq, body, events)
                return
            events.append(Response(command_id, status, seq, body))
            if self.state is _UNBOUND:
                self._close_when_drained()
            return
        if command_id not in _KNOWN_REQUESTS:
            self.send_generic_nack(S.ESME_RINVCMDID, seq)
            events.append(ProtocolError(f"unknown command id 0x{command_id:08X}",
                                        S.ESME_RINVCMDID, False))
            return
        if command_id in _NO_RESPONSE:
            # Sections 4.1.7 and 4.12: outbind and alert_notification have no response PDU
            # (0x8000000B, 0x80000102 do not exist); neither is of use on this session.
            events.append(ProtocolError(f"{C(command_id).name.lower()} ignored", 0, False))
            return
        if command_id not in MAY_RECEIVE[self.role].get(self.state, ()):
            # Section 5.1.3: ESME_RINVBNDSTS, "incorrect BIND status for given command".
            self._out.append(impl.encode_header_only(command_id | RESPONSE_BIT,
                                                     S.ESME_RINVBNDSTS, seq))
            events.append(ProtocolError(
                f"{C(command_id).name.lower()} not allowed in state {self.state.value}",
                S.ESME_RINVBNDSTS, False))
            return
        if command_id == C.ENQUIRE_LINK:
            self._out.append(impl.encode_header_only(C.ENQUIRE_LINK_RESP, 0, seq))
            events.append(EnquireLink(seq))
        elif command_id == C.UNBIND:
            self._unbind_received(seq)
            events.append(Unbound(by_peer=True))
        else:
            self._request_received(command_id, seq, body, events)

    def _bind_response(self, request: int, status: int, seq: int, body: Any,
                       events: list[Event]) -> None:
        raise NotImplementedError  # only the ESME sends binds

    def _request_received(self, command_id: int, seq: int, body: Any,
                          events: list[Event]) -> None:
        raise NotImplementedError


class EsmeSession(_Session):
    """The ESME (client) side: bind, submit_sm, receive deliver_sm.

    ``batch_events``: runs of submit_sm_resp and of deliver_sm in one read come as one
    ``SubmitSmRespBatch`` / ``DeliverSmBatch`` each (``dispatch.smpp.batches``).
    """

    role = "esme"

    def __init__(self, *, max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
                 batch_events: bool = False) -> None:
        super().__init__(max_pdu_length=max_pdu_length)
        self.batch_events = batch_events
        self.mode: BindMode | None = None

    def _handle_all(self, pdus: list[tuple[int, int, int, Any]], events: list[Event]) -> bool:
        if not self.batch_events:
            return super()._handle_all(pdus, events)
        return batches.handle_in_runs(self, pdus, events, batches.ESME_RUNS)

    def send_bind(self, mode: BindMode, system_id: bytes, password: bytes, *,
                  system_type: bytes = b"", interface_version: int = INTERFACE_VERSION_34,
                  addr_ton: int = 0, addr_npi: int = 0, address_range: bytes = b"") -> int:
        """Send bind_transmitter / receiver / transceiver (section 4.1)."""
        command_id = BIND_COMMAND[mode]
        self._check_send(command_id)
        self._move(Input.BIND)
        self.mode = mode
        seq = self._request(command_id)
        self._out.append(impl.encode_bind(command_id, seq, system_id, password, system_type,
                                          interface_version, addr_ton, addr_npi, address_range))
        return seq

    def _bind_response(self, request: int, status: int, seq: int, body: Any,
                       events: list[Event]) -> None:
        mode = _BIND_MODE[request]
        self._move(_OK_INPUT[mode] if status == 0 else Input.BIND_FAILED)
        system_id, tlvs = body if body is not None else (b"", {})
        events.append(BindResponse(seq, status, mode, system_id, tlvs))

    def send_submit_sm_batch(self, messages: Sequence[Sequence[Any]]) -> list[int]:
        """Queue many submit_sm (section 4.4) encoded into one buffer.

        Each message is the 17 mandatory fields of ``SmFields`` followed by its TLVs (a
        sequence of ``(tag, value)`` or ``None``), i.e. an ``SmMessage`` without the sequence
        number. Returns the sequence numbers assigned, in order.
        """
        self._check_send(C.SUBMIT_SM)
        seqs = self._requests(C.SUBMIT_SM, len(messages))
        self._out.append(impl.encode_sm_batch(
            C.SUBMIT_SM, [(seq, *m) for seq, m in zip(seqs, messages, strict=True)]))
        return seqs

    def send_deliver_sm_resp(self, sequence_number: int,
                             command_status: int = S.ESME_ROK) -> None:
        """Acknowledge a deliver_sm (section 4.6.2; message_id is unused and empty), or the
        data_sm of that sequence number with data_sm_resp (section 4.7.2; its message_id
        empty too: it names a message the ESME stored, and we store none). After the peer's
        unbind, the last of these answers lets the unbind_resp out behind it."""
        response = self._unanswered.pop(sequence_number, C.DELIVER_SM_RESP)
        self._out.append(impl.encode_message_id_resp(response, command_status,
                                                     sequence_number, b""))
        if self._unbind_to_answer is not None and not self._unanswered:
            self._answer_unbind()
            self._close_when_drained()

    def send_deliver_sm_resps(self, sequence_numbers: Sequence[int],
                              command_status: int = S.ESME_ROK) -> None:
        """``send_deliver_sm_resp`` for each, in order, in one encode call (per run of one
        response kind): the same bytes."""
        batches.send_deliver_sm_resps(self, sequence_numbers, command_status)

    def _request_received(self, command_id: int, seq: int, body: Any,
                          events: list[Event]) -> None:
        if command_id == C.DELIVER_SM:
            self._unanswered[seq] = C.DELIVER_SM_RESP
            events.append(DeliverSm(seq, body))
            return
        if command_id == C.DATA_SM:
            # The codec gives data_sm the deliver_sm layout: one event for both; the answer
            # (send_deliver_sm_resp) is a data_sm_resp for this sequence number.
            self._unanswered[seq] = C.DATA_SM_RESP
            events.append(DeliverSm(seq, body))
            return
        self._out.append(impl.encode_header_only(command_id | RESPONSE_BIT,
                                                 S.ESME_RINVCMDID, seq))
        events.append(ProtocolError(f"unsupported {C(command_id).name.lower()}",
                                    S.ESME_RINVCMDID, False))


class SmscSession(_Session):
    """The SMSC (server) side, for the simulator: answer binds, submits; send deliver_sm.

    ``batch_events``: a run of submit_sm in one read comes as one ``SubmitSmBatch`` and a run
    of deliver_sm_resp as one ``DeliverSmRespBatch`` (instead of a ``SubmitSm`` or
    ``Response`` each), in their place among the other events: the same PDUs, answered and
    settled the same way, without an event object per PDU (the simulator at full rate).
    """

    role = "smsc"

    def __init__(self, *, max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
                 system_id: bytes = b"dispatch-sim", batch_events: bool = False) -> None:
        super().__init__(max_pdu_length=max_pdu_length)
        self.system_id = system_id
        self.batch_events = batch_events
        self.mode: BindMode | None = None
        self.bound_system_id: bytes | None = None

    def _handle_all(self, pdus: list[tuple[int, int, int, Any]], events: list[Event]) -> bool:
        if not self.batch_events:
            return super()._handle_all(pdus, events)
        return batches.handle_in_runs(self, pdus, events, batches.SMSC_RUNS)

    def _request_received(self, command_id: int, seq: int, body: Any,
                          events: list[Event]) -> None:
        if command_id in _BIND_MODE:
            self._move(Input.BIND)
            system_id, password, system_type, version, ton, npi, address_range = body
            events.append(BindRequest(seq, _BIND_MODE[command_id], system_id, password,
                                      system_type, version, ton, npi, address_range))
        elif command_id == C.SUBMIT_SM:
            events.append(SubmitSm(seq, body))
        else:
            self._out.append(impl.encode_header_only(command_id | RESPONSE_BIT,
                                                     S.ESME_RINVCMDID, seq))
            events.append(ProtocolError(f"unsupported {C(command_id).name.lower()}",
                                        S.ESME_RINVCMDID, False))

    def accept_bind(self, request: BindRequest) -> None:
        """Answer a bind with ESME_ROK (section 4.1.2); the session is bound in its mode."""
        self._move(_OK_INPUT[request.mode])
        self.mode = request.mode
        self.bound_system_id = request.system_id
        self._out.append(impl.encode_bind_resp(BIND_COMMAND[request.mode] | RESPONSE_BIT, 0,
                                               request.sequence_number, self.system_id,
                                               INTERFACE_VERSION_34))

    def reject_bind(self, request: BindRequest, command_status: int) -> None:
        """Answer a bind with an error (ESME_RINVPASWD, ESME_RINVSYSID, ESME_RBINDFAIL)."""
        self._move(Input.BIND_FAILED)
        self._out.append(impl.encode_bind_resp(BIND_COMMAND[request.mode] | RESPONSE_BIT,
                                               command_status, request.sequence_number,
                                               self.system_id, None))
        self._move(Input.CLOSE)

    def send_submit_sm_resp_batch(self, responses: Sequence[tuple[int, int, bytes]]) -> None:
        """Many ``(command_status, sequence_number, message_id)`` into one buffer."""
        if responses:
            self._out.append(impl.encode_message_id_resp_batch(C.SUBMIT_SM_RESP, responses))

    def send_deliver_sm_batch(self, messages: Sequence[Sequence[Any]]) -> list[int]:
        """Queue deliver_sm (section 4.6); same message shape as ``send_submit_sm_batch``."""
        self._check_send(C.DELIVER_SM)
        seqs = self._requests(C.DELIVER_SM, len(messages))
        self._out.append(impl.encode_sm_batch(
            C.DELIVER_SM, [(seq, *m) for seq, m in zip(seqs, messages, strict=True)]))
        return seqs

    def send_raw(self, data: bytes) -> None:
        """Queue bytes as they are (fault injection: garbage on the wire)."""
        self._out.append(data)
