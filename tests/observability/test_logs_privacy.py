"""A full campaign's log output, captured at DEBUG (everything INFO shows and more), carries
no phone number from the recipient file and no message text, and every line is one JSON event
with the campaign and ESME fields where they apply."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import run_one_shot
from dispatch.logs import configure_logging
from dispatch.observability.scrape import http_request

from .helpers import api_engine_config, viewer_key

TEXT = "Quokka sale for {name}: code ZEBRA"
COUNT = 400


@contextmanager
def captured_logs(level: str) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """(json lines of dispatch/control, raw records of every other logger), restored after."""
    names = ("dispatch", "control", "")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}
    ours, others = io.StringIO(), io.StringIO()
    raw = logging.StreamHandler(others)  # no redaction here: third-party loggers must not leak
    raw.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    try:
        configure_logging(level, "json", stream=ours)
        root = logging.getLogger()
        root.handlers[:] = [raw]
        root.setLevel(logging.DEBUG)
        yield ours, others
    finally:
        for n, (handlers, lvl, propagate) in saved.items():
            logger = logging.getLogger(n)
            logger.handlers[:] = handlers
            logger.setLevel(lvl)
            logger.propagate = propagate


def _recipients(path: Path) -> list[str]:
    """A CSV with names; numbers in three spellings; returns the E.164 digits."""
    digits = [f"4930{7_000_000 + i * 7919:08d}" for i in range(COUNT)]
    spellings = ("+{}", "00{}", "{}")
    rows = ["phone,name"] + [f"{spellings[i % 3].format(d)},Zorblatt{i}"
                             for i, d in enumerate(digits)]
    path.write_text("\n".join(rows) + "\n")
    return digits


async def _run(tmp_path: Path, digits: list[str]) -> Engine:
    config = api_engine_config(tmp_path / "var")
    key = viewer_key(config)
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        port = engine.api_port
        assert port is not None
        campaign = Campaign(sender="Shop", text=TEXT, author="t", esme="sim",
                            source_path=str(tmp_path / "r.csv"))
        with trio.fail_after(120):
            result = await run_one_shot(engine, campaign, progress=None, wait_receipts_s=30)
            assert result.campaign.status is CampaignStatus.DONE
            assert result.counters.delivered == COUNT
            # API paths that carry numbers: a lookup, and a lookup with a bad number.
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            for number in ("+" + digits[5], "+" + digits[6] + "999999"):
                body = json.dumps({"phoneNumber": number}).encode()
                status, _ = await http_request(port, "POST", "/api/v1/recipients/lookup",
                                               headers, body)
                assert status in (200, 400)
            await http_request(port, "GET", "/diagnostics", {"X-API-Key": key})
            await http_request(port, "GET", f"/api/v1/campaigns?search={digits[7]}",
                               {"X-API-Key": key})
        engine.stop()
        await engine.wait_stopped()
    return engine


def _assert_private(text: str, digits: list[str]) -> None:
    for d in digits:
        # The whole number, and any 8-digit piece beyond the last four (masked forms keep 4).
        for piece in (d, d[-10:], d[-8:], d[:8]):
            assert piece not in text, f"a recipient number leaked: ...{d[-4:]}"
    for word in ("Quokka", "ZEBRA", "Zorblatt"):
        assert word not in text, f"message text leaked: {word}"


def test_a_full_run_logs_no_number_and_no_text(tmp_path: Path) -> None:
    digits = _recipients(tmp_path / "r.csv")
    with captured_logs("debug") as (ours, others):
        engine = trio.run(_run, tmp_path, digits)
    assert engine.simulator is not None and engine.simulator.stats.receipts_sent == COUNT
    text, other = ours.getvalue(), others.getvalue()
    assert text.count("\n") > 5  # the run did log
    _assert_private(text, digits)
    _assert_private(other, digits)

    events = [json.loads(line) for line in text.splitlines()]
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in events)
    by_msg: dict[str, list[dict[str, object]]] = {}
    for e in events:
        by_msg.setdefault(str(e["msg"]), []).append(e)
    # Pool events name the ESME and the bind; campaign events name the campaign by its UUID.
    assert all(e["esme"] == "sim" and str(e["bind"]).startswith("sim/")
               for e in by_msg["bind up"])
    built = by_msg["recipient list built"]
    done = by_msg["campaign done"]
    assert built[0]["campaign"] == done[0]["campaign"]
    assert len(str(done[0]["campaign"])) == 36  # a UUID, not the internal row id


def test_numbers_nested_in_a_fields_value_are_masked_too() -> None:
    """The last line of defence covers strings anywhere in an event's fields, not only the
    top-level ones (a list of destinations, a dict of variables)."""
    out = io.StringIO()
    with captured_logs("info"):
        configure_logging("info", "json", stream=out)
        logging.getLogger("dispatch.test").info(
            "batch", extra={"fields": {"to": ["+4915112345678", "ok"],
                                       "vars": {"a": {"b": "call 004915112345679"}},
                                       "count": 2}})
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["to"] == ["**********5678", "ok"]
    assert line["vars"] == {"a": {"b": "call ***********5679"}}
    assert line["count"] == 2
