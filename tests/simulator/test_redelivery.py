"""deliver_sm as a real SMSC sends it: a window of unacknowledged deliver_sm per session, and
redelivery of one that is not acknowledged (timeout, temporary error, generic_nack, connection
lost), bounded by ``deliver_max_attempts``. Driven by a hand-held ESME session over a real
socket, so each acknowledgement is the test's decision."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from dispatch.simulator import SimulatorConfig, SmscSimulator, run
from dispatch.smpp.constants import CommandStatus
from dispatch.smpp.session import (
    BindMode,
    BindResponse,
    DeliverSm,
    EsmeSession,
    Response,
)

LIMIT_S = 20.0


def _with_sim(config: SimulatorConfig, body: Callable[[SmscSimulator], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(run, config)
            with trio.fail_after(LIMIT_S):
                await body(sim)
            nursery.cancel_scope.cancel()

    trio.run(main)


class Esme:
    """A transceiver bound by hand: nothing is acknowledged unless the test says so."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.session = EsmeSession()
        self.delivers: list[DeliverSm] = []
        self.resps: list[Response] = []

    @classmethod
    async def bind(cls, port: int) -> Esme:
        esme = cls(await trio.open_tcp_stream("127.0.0.1", port))
        esme.session.send_bind(BindMode.TRANSCEIVER, b"dispatch", b"secret")
        await esme.flush()
        while True:
            events = await esme.read()
            if any(isinstance(ev, BindResponse) for ev in events):
                return esme

    async def flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def read(self) -> list[Any]:
        data = await self.stream.receive_some(65536)
        assert data, "simulator closed the connection"
        events = self.session.receive_data(data)
        self.delivers += [ev for ev in events if isinstance(ev, DeliverSm)]
        self.resps += [ev for ev in events if isinstance(ev, Response)]
        await self.flush()  # enquire_link answers
        return events

    async def submit(self, count: int) -> None:
        fields = [(b"", 5, 0, b"Shop", 1, 1, b"4915%09d" % i, 0, 0, 0, b"", b"", 1, 0, 0, 0,
                   b"hello", None) for i in range(count)]
        self.session.send_submit_sm_batch(fields)
        await self.flush()

    async def read_until(self, delivers: int) -> None:
        while len(self.delivers) < delivers:
            await self.read()

    async def ack(self, items: list[DeliverSm], status: int = 0) -> None:
        for ev in items:
            self.session.send_deliver_sm_resp(ev.sequence_number, status)
        await self.flush()


def _ids(items: list[DeliverSm]) -> list[bytes]:
    return [ev.fields[16].split(b" ")[0] for ev in items]  # b"id:..." of the receipt text


async def _settle(sim: SmscSimulator, predicate: Callable[[], bool]) -> None:
    while not predicate():
        await trio.sleep(0.005)


def test_window_caps_unacknowledged_deliver_sm_and_acks_open_it() -> None:
    async def body(sim: SmscSimulator) -> None:
        esme = await Esme.bind(sim.port)
        await esme.submit(20)
        await esme.read_until(5)
        await _settle(sim, lambda: sim.stats.submits == 20 and sim.pending_deliveries() == 15)
        with trio.move_on_after(0.2):  # nothing beyond the window while none is acknowledged
            await esme.read_until(6)
        assert len(esme.delivers) == 5
        acked = 0
        while acked < 20:
            if acked == len(esme.delivers):
                await esme.read()
            await esme.ack(esme.delivers[acked:])
            acked = len(esme.delivers)
        assert len(esme.delivers) == 20 and len(set(_ids(esme.delivers))) == 20
        await _settle(sim, lambda: sim.stats.deliver_resps == 20)
        assert sim.stats.max_deliver_outstanding == 5
        assert sim.stats.receipts_sent == 20 and sim.stats.redeliveries == 0

    _with_sim(SimulatorConfig(port=0, deliver_window=5), body)


def test_unacknowledged_deliver_sm_is_redelivered_after_the_timeout() -> None:
    async def body(sim: SmscSimulator) -> None:
        esme = await Esme.bind(sim.port)
        await esme.submit(3)
        await esme.read_until(6)  # three first deliveries, then the same three again
        first, again = esme.delivers[:3], esme.delivers[3:6]
        assert _ids(first) == _ids(again)
        assert [ev.fields[16] for ev in first] == [ev.fields[16] for ev in again]
        assert {ev.sequence_number for ev in first}.isdisjoint(ev.sequence_number for ev in again)
        await esme.ack(again)
        await _settle(sim, lambda: sim.stats.deliver_resps == 3)
        assert sim.stats.deliver_timeouts == 3 and sim.stats.redeliveries == 3
        assert sim.stats.receipts_sent == 3 and sim.pending_deliveries() == 0
        # the late answer to a timed-out deliver_sm is ignored, never delivered again
        await esme.ack(first)
        with trio.move_on_after(0.3):
            await esme.read_until(7)
        assert len(esme.delivers) == 6 and sim.stats.deliver_abandoned == 0

    _with_sim(SimulatorConfig(port=0, deliver_resp_timeout_s=0.2, redelivery_delay_s=0.0), body)


def test_temporary_error_is_redelivered_permanent_error_is_abandoned() -> None:
    async def body(sim: SmscSimulator) -> None:
        esme = await Esme.bind(sim.port)
        await esme.submit(2)
        await esme.read_until(2)
        await esme.ack(esme.delivers[:1], CommandStatus.ESME_RX_T_APPN)
        await esme.ack(esme.delivers[1:2], CommandStatus.ESME_RX_P_APPN)
        await esme.read_until(3)
        assert _ids(esme.delivers[2:3]) == _ids(esme.delivers[:1])
        await esme.ack(esme.delivers[2:3])
        await _settle(sim, lambda: sim.stats.deliver_resps == 3)
        assert sim.stats.deliver_resps_failed == 2 and sim.stats.redeliveries == 1
        assert sim.stats.deliver_abandoned == 1 and sim.pending_deliveries() == 0

    _with_sim(SimulatorConfig(port=0, redelivery_delay_s=0.0), body)


def test_deliver_sm_outstanding_on_a_lost_connection_goes_to_the_next_bind() -> None:
    async def body(sim: SmscSimulator) -> None:
        esme = await Esme.bind(sim.port)
        await esme.submit(4)
        await esme.read_until(4)
        await esme.ack(esme.delivers[:1])
        lost = _ids(esme.delivers[1:4])
        await _settle(sim, lambda: sim.stats.deliver_resps == 1)
        await esme.stream.aclose()  # gone without answering three of them (kill -9)
        await _settle(sim, lambda: sim.pending_deliveries() == 3)
        again = await Esme.bind(sim.port)
        await again.read_until(3)
        assert sorted(_ids(again.delivers)) == sorted(lost)
        await again.ack(again.delivers)
        await _settle(sim, lambda: sim.stats.deliver_resps == 4)
        assert sim.stats.redeliveries == 3 and sim.stats.receipts_sent == 4

    _with_sim(SimulatorConfig(port=0, redelivery_delay_s=0.0), body)


def test_redelivery_stops_after_max_attempts() -> None:
    async def body(sim: SmscSimulator) -> None:
        esme = await Esme.bind(sim.port)
        await esme.submit(1)
        await esme.read_until(3)
        await _settle(sim, lambda: sim.stats.deliver_abandoned == 1)
        assert sim.stats.deliver_timeouts == 3 and sim.stats.redeliveries == 2
        assert len(set(_ids(esme.delivers))) == 1 and sim.pending_deliveries() == 0

    _with_sim(SimulatorConfig(port=0, deliver_resp_timeout_s=0.1, redelivery_delay_s=0.0,
                              deliver_max_attempts=3), body)


def test_command_line_options() -> None:
    from dispatch.simulator.__main__ import parse_args

    config = parse_args(["--tls-cert", "s.pem", "--tls-client-ca", "ca.pem",
                         "--deliver-window", "8", "--deliver-resp-timeout-s", "5",
                         "--redelivery-delay-s", "0.5", "--deliver-max-attempts", "4"])
    assert config.tls is not None and config.tls.certfile == "s.pem"
    assert config.tls.keyfile is None and config.tls.cafile == "ca.pem"
    assert (config.deliver_window, config.deliver_resp_timeout_s, config.redelivery_delay_s,
            config.deliver_max_attempts) == (8, 5.0, 0.5, 4)
    assert parse_args([]).tls is None


def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a traceback, and not port 70000 taken modulo 65536 (4464) without a word."""
    from dispatch.simulator.__main__ import parse_args

    with pytest.raises(SystemExit) as info:
        parse_args(["--port", "70000"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: port must be between 0 and 65535")


@pytest.mark.parametrize(("option", "message"), [
    ("--latency-s=-1", "response_latency_s must be 0 or more, not -1.0"),
    ("--receipt-delay-s=nan", "receipt_delay_s must be 0 or more, not nan"),
    ("--deliver-window=-5", "deliver_window must be 0 or more, not -5"),
])
def test_a_negative_time_or_size_is_a_usage_error(option: str, message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from dispatch.simulator.__main__ import parse_args

    with pytest.raises(SystemExit) as info:
        parse_args([option])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {message}")


def test_dispatch_simulate_names_itself_in_its_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "dispatch.cli", "simulate", "--help"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith("usage: dispatch simulate")
