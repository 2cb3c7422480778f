"""The SMSC simulator: third-party client (smpplib), outcome mix, CLI."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import Any

import smpplib.client
import smpplib.consts
import trio

from dispatch.simulator import (
    Account,
    OutcomeRule,
    SimulatorConfig,
    SmscSimulator,
    destination_hash,
    run,
)
from dispatch.simulator.__main__ import parse_args
from dispatch.smpp.receipt import parse_receipt


def _with_simulator(config: SimulatorConfig, body: Any, limit_s: float = 30.0) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(run, config)
            with trio.fail_after(limit_s):
                await body(sim)
            nursery.cancel_scope.cancel()

    trio.run(main)


def _smpplib_session(port: int, count: int, password: str = "secret") -> dict[str, Any]:
    """A blocking smpplib transceiver: bind, submit ``count`` messages, read resps + receipts."""
    resps: list[Any] = []
    delivers: list[Any] = []
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: resps.append(pdu))
    client.set_message_received_handler(lambda pdu: delivers.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="dispatch", password=password)
        for i in range(count):
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="Shop",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=1,
                destination_addr=f"49151{i:08d}", short_message=b"hello from smpplib",
                registered_delivery=True)
        for _ in range(100):  # bounded: each read_once handles one PDU
            if len(resps) >= count and len(delivers) >= count:
                break
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return {"resps": resps, "delivers": delivers}


def test_smpplib_client_binds_submits_and_gets_receipts() -> None:
    async def body(sim: SmscSimulator) -> None:
        result = await trio.to_thread.run_sync(_smpplib_session, sim.port, 3)
        resps, delivers = result["resps"], result["delivers"]
        assert len(resps) == 3 and all(r.status == 0 for r in resps)
        ids = {r.message_id.decode() if isinstance(r.message_id, bytes) else r.message_id
               for r in resps}
        assert len(delivers) == 3
        receipt_ids = set()
        for d in delivers:
            receipt = parse_receipt(d.short_message)
            assert receipt.stat == "DELIVRD"
            receipt_ids.add(receipt.raw_message_id)
        assert receipt_ids == ids
        assert sim.stats.binds_ok == 1 and sim.stats.receipts_sent == 3
        assert sim.stats.submits == 3

    _with_simulator(SimulatorConfig(port=0, receipt_tlvs=False), body)


def test_smpplib_wrong_password_is_refused() -> None:
    async def body(sim: SmscSimulator) -> None:
        def attempt() -> str:
            try:
                _smpplib_session(sim.port, 0, password="nope")
            except smpplib.exceptions.PDUError as exc:
                return str(exc)
            return "bound"

        outcome = await trio.to_thread.run_sync(attempt)
        assert outcome != "bound"
        assert sim.stats.binds_rejected == 1

    _with_simulator(SimulatorConfig(port=0), body)


def test_outcome_mix_by_share_and_pattern() -> None:
    sim = SmscSimulator(SimulatorConfig(
        port=0, seed=1, outcomes=(OutcomeRule("EXPIRED", pattern="0000$"),
                                  OutcomeRule("DELIVRD", share=0.7),
                                  OutcomeRule("UNDELIV", share=0.3))))
    stats = Counter(sim.outcome(f"4915{i:09d}")[0] for i in range(1, 2001))
    assert stats["EXPIRED"] == 0
    assert 1300 < stats["DELIVRD"] < 1500 and 500 < stats["UNDELIV"] < 700
    assert sim.outcome("491510000")[0] == "EXPIRED"


def test_message_id_formats() -> None:
    hex_sim = SmscSimulator(SimulatorConfig(message_id_format="hex", message_id_width=8))
    assert hex_sim.format_id(255, "hex") == "000000FF"
    assert hex_sim.format_id(255, "decimal") == "00000255"
    assert destination_hash(b"4915100000001") == destination_hash("4915100000001")


def test_command_line() -> None:
    config = parse_args(["--port", "0", "--account", "a:b:50", "--latency-s", "0.01",
                         "--outcome", "DELIVRD=0.9", "--outcome", "UNDELIV=/999$",
                         "--reject", "^000=0x0B", "--id-format", "decimal",
                         "--drop-after-pdus", "100"])
    assert config.accounts == (Account("a", "b", 50.0),)
    assert config.outcomes[1].pattern == "999$"
    assert config.submit_status_rules[0].status == 0x0B
    assert config.faults.drop_after_pdus == 100
    out = subprocess.run([sys.executable, "-m", "dispatch.simulator", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--receipt-delay-s" in out.stdout
