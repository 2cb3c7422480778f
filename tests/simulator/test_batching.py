"""The simulator handles the submit_sm and deliver_sm_resp of one read as one batch
(``SmscSession(batch_events=True)``): the wire and the statistics must be what handling them
one by one gives. Driven over memory streams with a mock clock, so one write is one read and
time moves only when the test says so."""

from __future__ import annotations

import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from dispatch.fastpath import impl
from dispatch.simulator import Account, OutcomeRule, SimulatorConfig, SmscSimulator
from dispatch.smpp.constants import CommandId, CommandStatus, Tlv
from dispatch.smpp.events import DeliverSmRespBatch, SubmitSmBatch
from dispatch.smpp.session import (
    BindMode,
    BindRequest,
    DeliverSm,
    EnquireLink,
    EsmeSession,
    ProtocolError,
    Response,
    SmscSession,
    SubmitSm,
)

C = CommandId
S = CommandStatus
PDU_LIMIT = 1 << 20


def sm(dest: bytes, text: bytes = b"hello", registered_delivery: int = 1) -> tuple[Any, ...]:
    """An SmMessage without the sequence number (17 fields + TLVs)."""
    return (b"", 5, 0, b"Shop", 1, 1, dest, 0, 0, 0, b"", b"", registered_delivery, 0, 0, 0,
            text, None)


class Client:
    """A transceiver over a memory stream: writes what the test says, keeps every PDU read."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.rx = bytearray()
        self.pdus: list[tuple[int, int, int, Any]] = []
        self._seq = 0

    def seq(self) -> int:
        self._seq += 1
        return self._seq

    async def reader(self) -> None:
        while data := await self.stream.receive_some():
            self.rx += data
            pdus, consumed = impl.decode_pdus(self.rx, PDU_LIMIT)
            del self.rx[:consumed]
            self.pdus += pdus

    def submits(self, messages: list[tuple[Any, ...]]) -> bytes:
        return impl.encode_sm_batch(C.SUBMIT_SM, [(self.seq(), *m) for m in messages])

    def acks(self, status: int = 0) -> bytes:
        """deliver_sm_resp for every deliver_sm read and not answered yet."""
        out = b"".join(impl.encode_message_id_resp(C.DELIVER_SM_RESP, status, seq, b"")
                       for cid, _, seq, _ in self.pdus if cid == C.DELIVER_SM)
        self.pdus = [p for p in self.pdus if p[0] != C.DELIVER_SM]
        return out

    def of(self, command_id: int) -> list[tuple[int, int, int, Any]]:
        return [p for p in self.pdus if p[0] == command_id]


Script = Callable[[SmscSimulator, Client, trio.testing.MockClock, Callable[[bytes], Awaitable[None]]],
                  Awaitable[None]]


def _drive(config: SimulatorConfig, script: Script) -> None:
    """Run ``script`` against a simulator; ``write(data)`` sends one read and waits until the
    simulator has done everything it can with it."""
    clock = trio.testing.MockClock()

    async def main() -> None:
        sim = SmscSimulator(config)
        sim._t0 = trio.current_time()
        client_side, server_side = trio.testing.memory_stream_pair()
        client = Client(client_side)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sim._receipt_loop)
            nursery.start_soon(sim._session, server_side)
            nursery.start_soon(client.reader)

            async def write(data: bytes) -> None:
                await client_side.send_all(data)
                await trio.testing.wait_all_tasks_blocked()

            await write(impl.encode_bind(C.BIND_TRANSCEIVER, client.seq(), b"dispatch",
                                         b"secret", b"", 0x34, 0, 0, b""))
            await script(sim, client, clock, write)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


def _stats(sim: SmscSimulator) -> dict[str, Any]:
    st = sim.stats
    return {"submits": st.submits, "by_status": dict(st.submits_by_status),
            "max_outstanding": st.max_outstanding,
            "by_session": dict(st.max_outstanding_by_session), "max_tps": st.max_tps,
            "tps_by_account": dict(st.max_tps_by_account), "receipts": st.receipts_sent}


@pytest.mark.parametrize("reads", [[16], [5, 7, 4], [1] * 16])
def test_outstanding_and_tps_maxima_do_not_depend_on_how_submits_are_read(
        reads: list[int]) -> None:
    """16 submits in one second, answered 10 s later: whether they come in one read, three
    or sixteen, 16 were outstanding at most and 16 fell into one TPS second."""
    seen: dict[str, Any] = {}

    async def script(sim: SmscSimulator, client: Client, clock: trio.testing.MockClock,
                     write: Callable[[bytes], Awaitable[None]]) -> None:
        sent = 0
        for n in reads:
            await write(client.submits([sm(b"4915%09d" % (sent + i)) for i in range(n)]))
            sent += n
        assert client.of(C.SUBMIT_SM_RESP) == []
        clock.jump(10.0)
        await trio.testing.wait_all_tasks_blocked()
        assert len(client.of(C.SUBMIT_SM_RESP)) == 16
        await write(client.submits([sm(b"491700000001"), sm(b"491700000002")]))
        seen.update(_stats(sim))

    _drive(SimulatorConfig(port=0, response_latency_s=10.0, receipts=False), script)
    assert seen == {"submits": 18, "by_status": {0: 18}, "max_outstanding": 16,
                    "by_session": {1: 16}, "max_tps": 16, "tps_by_account": {"dispatch": 16},
                    "receipts": 0}


def test_throttle_answers_exactly_the_submits_of_a_batch_over_it() -> None:
    async def script(sim: SmscSimulator, client: Client, clock: trio.testing.MockClock,
                     write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(client.submits([sm(b"4915%09d" % i) for i in range(8)]))
        statuses = [status for _, status, _, _ in client.of(C.SUBMIT_SM_RESP)]
        assert statuses == [0] * 5 + [S.ESME_RTHROTTLED] * 3
        clock.jump(1.0)  # the next second: room again
        await write(client.submits([sm(b"491600000001"), sm(b"491600000002")]))
        statuses = [status for _, status, _, _ in client.of(C.SUBMIT_SM_RESP)]
        assert statuses[8:] == [0, 0]
        ids = [body for _, status, _, body in client.of(C.SUBMIT_SM_RESP) if status == 0]
        assert ids == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]  # throttled ones take none
        assert _stats(sim)["by_status"] == {0: 7, S.ESME_RTHROTTLED: 3}
        assert sim.stats.max_tps == 8 and sim.stats.receipts_sent == 7

    _drive(SimulatorConfig(port=0, accounts=(Account("dispatch", "secret", 5),)), script)


def test_receipt_text_and_tlvs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Appendix B text (a ``%`` in err is text, not a format), receipt id in its own format
    and zero-padded, receipted_message_id with its NUL, message_state."""
    monkeypatch.setattr(time, "time", lambda: 1700000000.5)  # 2023-11-14 22:13 UTC

    async def script(sim: SmscSimulator, client: Client, clock: trio.testing.MockClock,
                     write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(client.submits([sm(b"4917%08d" % i, registered_delivery=0)
                                    for i in range(11)]))
        await write(impl.encode_sm_batch(C.SUBMIT_SM, [(client.seq(), *sm(b"491500000001"))])
                    + client.submits([sm(b"491500000002", b"a text longer than twenty octets"),
                                      sm(b"491500000003", registered_delivery=0)]))
        ids = [body for _, _, _, body in client.of(C.SUBMIT_SM_RESP)]
        assert ids[10:] == [b"0000B", b"0000C", b"0000D", b"0000E"]  # hex, 5 wide
        delivers = client.of(C.DELIVER_SM)
        assert len(delivers) == 2  # the others asked for no receipt
        texts = [fields[16] for _, _, _, fields in delivers]
        assert texts == [
            b"id:00012 sub:001 dlvrd:000 submit date:2311142213 done date:2311142213 "
            b"stat:UNDELIV err:0%d text:hello",
            b"id:00013 sub:001 dlvrd:000 submit date:2311142213 done date:2311142213 "
            b"stat:UNDELIV err:0%d text:a text longer than t",
        ]
        fields = delivers[0][3]
        assert fields[3] == b"491500000001" and fields[6] == b"Shop"  # the other way round
        assert fields[7] == 0x04  # esm_class: delivery receipt
        assert fields[17] == {Tlv.RECEIPTED_MESSAGE_ID: b"00012\x00", Tlv.MESSAGE_STATE: b"\x05"}

    _drive(SimulatorConfig(port=0, message_id_format="hex", message_id_width=5,
                           receipt_id_format="decimal",
                           outcomes=(OutcomeRule("UNDELIV", share=1.0, err="0%d"),)), script)


def test_receipt_queue_max_cuts_inside_a_batch() -> None:
    """Room for 3 receipts, 6 accepted submits in one read: the first 3 get one."""
    async def script(sim: SmscSimulator, client: Client, clock: trio.testing.MockClock,
                     write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(client.submits([sm(b"4915%09d" % i) for i in range(6)]))
        for _ in range(6):
            await write(client.acks())
        assert sim.stats.receipts_sent == 3 and sim.pending_deliveries() == 0
        assert sim.stats.deliver_resps == 3

    _drive(SimulatorConfig(port=0, receipt_queue_max=3, deliver_window=1), script)


def test_deliver_sm_resp_batches_settle_and_redeliver() -> None:
    """A read of deliver_sm_resp, some with a temporary error: those come again."""
    async def script(sim: SmscSimulator, client: Client, clock: trio.testing.MockClock,
                     write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(client.submits([sm(b"4915%09d" % i) for i in range(4)]))
        delivers = client.of(C.DELIVER_SM)
        client.pdus = []
        failing = {delivers[1][2], delivers[3][2]}
        await write(b"".join(impl.encode_message_id_resp(
            C.DELIVER_SM_RESP, S.ESME_RMSGQFUL if seq in failing else 0, seq, b"")
            for _, _, seq, _ in delivers))
        assert sim.stats.deliver_resps == 4 and sim.stats.deliver_resps_failed == 2
        clock.jump(1.0)  # redelivery_delay_s
        await trio.testing.wait_all_tasks_blocked()
        again = client.of(C.DELIVER_SM)
        assert [fields[16] for *_, fields in again] == [delivers[1][3][16], delivers[3][3][16]]
        await write(client.acks())
        assert sim.stats.redeliveries == 2 and sim.stats.deliver_resps == 6
        assert sim.stats.receipts_sent == 4 and sim.pending_deliveries() == 0

    _drive(SimulatorConfig(port=0), script)


@pytest.mark.parametrize("fmt", ["hex", "decimal"])
@pytest.mark.parametrize("width", [0, 3, 12])
@pytest.mark.parametrize("upper", [True, False])
def test_id_template_writes_ids_like_format(fmt: str, width: int, upper: bool) -> None:
    sim = SmscSimulator(SimulatorConfig(message_id_width=width, message_id_upper=upper))
    kind = ("X" if upper else "x") if fmt == "hex" else "d"
    spec = f"0{width}{kind}" if width else kind
    for n in (1, 255, 4096, 2**40 + 7):
        assert (sim.id_template(fmt) % n).decode() == format(n, spec) == sim.format_id(n, fmt)


# ------------------------------------------------------------------------ the session alone

def header(command_id: int, status: int, seq: int) -> bytes:
    return struct.pack(">IIII", 16, command_id, status, seq)


def _bound_pair(batch_events: bool) -> tuple[EsmeSession, SmscSession]:
    esme, smsc = EsmeSession(), SmscSession(batch_events=batch_events)
    esme.send_bind(BindMode.TRANSCEIVER, b"user", b"pw")
    (request,) = smsc.receive_data(esme.data_to_send())
    assert isinstance(request, BindRequest)
    smsc.accept_bind(request)
    esme.receive_data(smsc.data_to_send())
    return esme, smsc


def _flat(events: list[Any]) -> list[Any]:
    """Batch events as the one-per-PDU events they stand for."""
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, SubmitSmBatch):
            out += [SubmitSm(seq, fields) for _, _, seq, fields in ev.pdus]
        elif isinstance(ev, DeliverSmRespBatch):
            out += [Response(cid, status, seq, body) for cid, status, seq, body in ev.pdus]
        else:
            out.append(ev)
    return out


def test_batch_events_are_the_same_events_in_runs() -> None:
    """One read mixing submits, deliver_sm_resp (one answering nothing), enquire_link and an
    unknown command: the same answers, the same settled requests, the same events -- runs
    of submits and of deliver_sm_resp gathered in their place."""
    results = []
    for batch_events in (False, True):
        esme, smsc = _bound_pair(batch_events)
        smsc_seqs = smsc.send_deliver_sm_batch([sm(b"Shop", b"receipt %d" % i)
                                                for i in range(3)])
        for ev in esme.receive_data(smsc.data_to_send()):
            assert isinstance(ev, DeliverSm)
            esme.send_deliver_sm_resp(ev.sequence_number, 0 if ev.sequence_number != 3 else 8)
        acks = esme.data_to_send()
        esme.send_submit_sm_batch([sm(b"4915%09d" % i) for i in range(2)])
        data = esme.data_to_send() + header(C.ENQUIRE_LINK, 0, 77)
        esme.send_submit_sm_batch([sm(b"491600000001")])
        data += esme.data_to_send() + acks + header(C.DELIVER_SM_RESP, 0, 999)
        esme.send_submit_sm_batch([sm(b"491600000002")])
        data += esme.data_to_send() + header(0x00000033, 0, 78)
        esme.send_submit_sm_batch([sm(b"491600000003"), sm(b"491600000004")])
        data += esme.data_to_send()
        events = smsc.receive_data(data)
        results.append((_flat(events), smsc.data_to_send(), smsc.outstanding_requests(),
                        smsc.unexpected_responses, smsc.pdus_received, smsc_seqs))
        if batch_events:
            assert [type(ev) for ev in events] == [
                SubmitSmBatch, EnquireLink, SubmitSmBatch, DeliverSmRespBatch, SubmitSmBatch,
                ProtocolError, SubmitSmBatch]
            assert [len(ev.pdus) for ev in events
                    if isinstance(ev, (SubmitSmBatch, DeliverSmRespBatch))] == [2, 1, 3, 1, 2]
    assert results[0] == results[1]
    assert results[1][2] == {} and results[1][3] == 1  # all settled; seq 999 matched nothing


def test_batch_events_before_the_bind_is_answered() -> None:
    """submit_sm read with the bind, before it is accepted: answered ESME_RINVBNDSTS, as
    one by one."""
    answers = []
    for batch_events in (False, True):
        esme, smsc = EsmeSession(), SmscSession(batch_events=batch_events)
        esme.send_bind(BindMode.TRANSCEIVER, b"user", b"pw")
        data = esme.data_to_send() + impl.encode_sm_batch(
            C.SUBMIT_SM, [(9, *sm(b"491500000001")), (10, *sm(b"491500000002"))])
        events = smsc.receive_data(data)
        assert isinstance(events[0], BindRequest)
        assert not any(isinstance(ev, (SubmitSm, SubmitSmBatch)) for ev in events)
        answers.append(smsc.data_to_send())
    assert answers[0] == answers[1] and answers[0].count(b"\x80\x00\x00\x04\x00\x00\x00\x04") == 2
