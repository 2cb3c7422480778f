"""The sans-IO session's batched input and output (``batch_events=True``), for the two ends at
full rate, where an event object and an encode call per PDU cost more than the rest of the
PDU's handling: the engine's binds (``EsmeSession``) and the simulator (``SmscSession``).

* Input (``handle_in_runs``): a run of the responses that answer our requests of one kind
  (the ESME's submit_sm_resp, the SMSC's deliver_sm_resp) comes as one batch event, and so
  does a run of the requests the session takes in its state (the ESME's deliver_sm, the
  SMSC's submit_sm), in their place among the other events, holding the decoder's own PDU
  tuples. Each PDU is settled or registered exactly as ``_Session._handle`` does it one by
  one; any other PDU goes through ``_handle``.
* Output (``send_deliver_sm_resps``): many deliver_sm (or data_sm) answered in one encode call
  per run of one response kind, the bytes ``send_deliver_sm_resp`` would queue one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dispatch.fastpath import impl
from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.events import (
    DeliverSmBatch,
    DeliverSmRespBatch,
    Event,
    SubmitSmBatch,
    SubmitSmRespBatch,
)
from dispatch.smpp.states import MAY_RECEIVE, SessionState

if TYPE_CHECKING:
    from dispatch.smpp.session import EsmeSession, _Session

# compared per PDU: plain ints and globals (an Enum attribute costs ~100 ns)
_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_UNBOUND = SessionState.UNBOUND
_CLOSED = SessionState.CLOSED

Run = list[tuple[int, int, int, Any]]
BatchEvent = SubmitSmRespBatch | DeliverSmBatch | SubmitSmBatch | DeliverSmRespBatch


@dataclass(frozen=True, slots=True)
class RunRules:
    """What one end of a session batches: ``response`` PDUs answering a pending ``request``
    of ours become ``response_batch`` events; ``incoming`` requests, in the states in
    ``takes_incoming``, become ``incoming_batch`` events, each waiting for our ``answer``
    (None: the session keeps no such record)."""

    response: int
    request: int
    response_batch: type[SubmitSmRespBatch | DeliverSmRespBatch]
    incoming: int
    takes_incoming: frozenset[SessionState]
    incoming_batch: type[DeliverSmBatch | SubmitSmBatch]
    answer: int | None


def _takes(role: str, command: CommandId) -> frozenset[SessionState]:
    return frozenset(state for state, commands in MAY_RECEIVE[role].items() if command in commands)


ESME_RUNS = RunRules(_SUBMIT_SM_RESP, _SUBMIT_SM, SubmitSmRespBatch, _DELIVER_SM,
                     _takes("esme", CommandId.DELIVER_SM), DeliverSmBatch, _DELIVER_SM_RESP)
SMSC_RUNS = RunRules(_DELIVER_SM_RESP, _DELIVER_SM, DeliverSmRespBatch, _SUBMIT_SM,
                     _takes("smsc", CommandId.SUBMIT_SM), SubmitSmBatch, None)


def handle_in_runs(session: _Session, pdus: Run, events: list[Event], rules: RunRules) -> bool:
    """``_Session._handle_all`` with batch events by ``rules``; ``True`` once the session
    closed (the rest is dropped)."""
    # What ``_handle`` does for these two, without its checks per PDU: a response answering
    # one of our requests settles it (section 3.2); a request in a state that takes it is
    # handed on (and, on the ESME, waits for its answer: section 4.6.2). Neither changes the
    # state, so the state is looked at again only after another PDU. After the peer's
    # unbind a response may end the session: there, each goes through ``_handle``.
    pending, unanswered = session._pending, session._unanswered
    response, request, answer, incoming = rules.response, rules.request, rules.answer, \
        rules.incoming
    run: Run = []  # the PDUs of the batch being gathered
    run_kind: type[BatchEvent] = rules.response_batch
    settles = session.state is not _UNBOUND
    takes = session.state in rules.takes_incoming
    for pdu in pdus:
        command_id = pdu[0]
        if command_id == response and settles and pending.get(pdu[2]) == request:
            del pending[pdu[2]]
            kind: type[BatchEvent] = rules.response_batch
        elif command_id == incoming and takes:
            if answer is not None:
                unanswered[pdu[2]] = answer
            kind = rules.incoming_batch
        else:  # any other PDU: an event of its own, after the batch before it
            if run:
                events.append(run_kind(run))
                run = []
            session._handle(pdu, events)
            if session.state is _CLOSED:
                return True
            settles = session.state is not _UNBOUND
            takes = session.state in rules.takes_incoming
            continue
        if kind is not run_kind and run:
            events.append(run_kind(run))
            run = []
        run_kind = kind
        run.append(pdu)
    if run:
        events.append(run_kind(run))
    return False


def send_deliver_sm_resps(session: EsmeSession, sequence_numbers: Iterable[int],
                          command_status: int = CommandStatus.ESME_ROK) -> None:
    """``session.send_deliver_sm_resp`` for each of ``sequence_numbers``, in order."""
    if session._unbind_to_answer is not None:
        # After the SMSC's unbind the answer that leaves nothing unanswered lets the
        # unbind_resp out behind it (section 4.2): rare, one by one.
        for seq in sequence_numbers:
            session.send_deliver_sm_resp(seq, command_status)
        return
    pop, out = session._unanswered.pop, session._out
    encode = impl.encode_message_id_resp_batch
    response = _DELIVER_SM_RESP  # of the current run (data_sm gets data_sm_resp)
    run: list[tuple[int, int, bytes]] = []
    for seq in sequence_numbers:
        kind = pop(seq, _DELIVER_SM_RESP)
        if kind != response:
            if run:
                out.append(encode(response, run))
                run = []
            response = kind
        run.append((command_status, seq, b""))
    if run:
        out.append(encode(response, run))
