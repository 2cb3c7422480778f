"""``--target`` against a real SMPP server (the simulator on its own loop in a thread,
standing in for an SMSC): the message cap holds and only the given destinations are used."""

from __future__ import annotations

import io
import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from dispatch.benchsuite.options import SuiteConfig, Target
from dispatch.benchsuite.runner import main
from dispatch.simulator import SimulatorConfig, SmscSimulator, run
from dispatch.simulator.stats import destination_hash


@pytest.fixture
def smsc() -> Iterator[SmscSimulator]:
    started = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        try:
            async with trio.open_nursery() as nursery:
                box["sim"] = await nursery.start(run, SimulatorConfig(port=0, receipts=False))
                box["token"] = trio.lowlevel.current_trio_token()
                box["cancel"] = nursery.cancel_scope.cancel
                started.set()
        except Exception as exc:  # reported below, after the test's own assertions
            box["error"] = exc

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield box["sim"]  # type: ignore[misc]
    finally:
        if thread.is_alive():
            trio.from_thread.run_sync(box["cancel"], trio_token=box["token"])  # type: ignore[arg-type]
        thread.join(timeout=10)
    if "error" in box:
        # The simulator's own failure (not the suite's): seen once when the client unbinds
        # while the simulator's writer is sending (BusyResourceError in server.py _reader).
        warnings.warn(f"simulator thread failed after the run: {box['error']!r}", stacklevel=1)


def test_message_cap_enforced_against_an_smpp_server(smsc: SmscSimulator, tmp_path: Path):
    numbers = ("+4915100000001", "+4915100000002")
    target = Target(host="127.0.0.1", port=smsc.port, system_id="dispatch", password="secret",
                    destinations=numbers, binds=1, window=4, tps_cap=1000)
    config = SuiteConfig(profile="quick", sections=("pool", "e2e"),
                         out_dir=str(tmp_path / "out"), target=target, max_messages=7,
                         plots=False)
    stream = io.StringIO()
    assert main(config, stream=stream) == 0
    stats = smsc.stats
    assert stats.submits == 7
    assert {r.destination_hash for r in stats.submit_log} == {
        destination_hash(n.lstrip("+")) for n in numbers}
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["target_messages_granted"] == 7
    pool = doc["sections"]["pool"]
    assert pool["status"] == "ok" and pool["config"]["messages"] == 7
    throughput = next(f for f in pool["figures"] if f["metric"] == "throughput")
    assert throughput["detail"]["accepted"] == 7
    assert doc["sections"]["e2e"]["status"] == "skipped"
    assert "4915100000001" not in stream.getvalue()

