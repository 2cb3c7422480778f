"""The ESME session's batched input and output (``EsmeSession(batch_events=True)``): what the
engine's binds use at full rate, where an event object and an encode call per PDU cost more
than the rest of the PDU's handling.

* Input: a run of submit_sm_resp answering our submit_sm comes as one ``SubmitSmRespBatch``
  and a run of deliver_sm as one ``DeliverSmBatch``, in their place among the other events,
  holding the decoder's own PDU tuples. Each PDU is settled or registered exactly as
  ``_Session._handle`` does it one by one; any other PDU goes through ``_handle``.
* Output: ``send_deliver_sm_resps`` answers many deliver_sm (or data_sm) in one encode call
  per run of one response kind, the bytes ``send_deliver_sm_resp`` would queue one by one.

The SMSC side's counterpart is ``SmscSession._handle_all`` (the simulator).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dispatch.fastpath import impl
from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.events import DeliverSmBatch, Event, SubmitSmRespBatch
from dispatch.smpp.states import MAY_RECEIVE, SessionState

if TYPE_CHECKING:
    from dispatch.smpp.session import EsmeSession

# compared per PDU: plain ints and globals (an Enum attribute costs ~100 ns)
_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_UNBOUND = SessionState.UNBOUND
_CLOSED = SessionState.CLOSED
#: states in which the ESME takes deliver_sm (the others answer it ESME_RINVBNDSTS)
_ESME_TAKES_DELIVERS = frozenset(state for state, commands in MAY_RECEIVE["esme"].items()
                                 if CommandId.DELIVER_SM in commands)

Run = list[tuple[int, int, int, Any]]


def handle_all(session: EsmeSession, pdus: Run, events: list[Event]) -> bool:
    """``_Session._handle_all`` with batch events; ``True`` once the session closed."""
    # What ``_handle`` does for these two, without its checks per PDU: a submit_sm_resp
    # answering one of our submit_sm settles it (section 3.2); a deliver_sm in a state that
    # takes it waits for its deliver_sm_resp (section 4.6.2). Neither changes the state, so
    # the state is looked at again only after another PDU. After the SMSC's unbind a
    # response may end the session: there, each goes through ``_handle``.
    pending, unanswered = session._pending, session._unanswered
    run: Run = []  # the PDUs of the batch being gathered
    run_kind: type[SubmitSmRespBatch | DeliverSmBatch] = SubmitSmRespBatch
    settles = session.state is not _UNBOUND
    takes_delivers = session.state in _ESME_TAKES_DELIVERS
    for pdu in pdus:
        command_id = pdu[0]
        if command_id == _SUBMIT_SM_RESP and settles and pending.get(pdu[2]) == _SUBMIT_SM:
            del pending[pdu[2]]
            kind: type[SubmitSmRespBatch | DeliverSmBatch] = SubmitSmRespBatch
        elif command_id == _DELIVER_SM and takes_delivers:
            unanswered[pdu[2]] = _DELIVER_SM_RESP
            kind = DeliverSmBatch
        else:  # any other PDU: an event of its own, after the batch before it
            if run:
                events.append(run_kind(run))
                run = []
            session._handle(pdu, events)
            if session.state is _CLOSED:
                return True
            settles = session.state is not _UNBOUND
            takes_delivers = session.state in _ESME_TAKES_DELIVERS
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
