"""Options -> config validation, the message budget and the dry run (connects to nothing)."""

from __future__ import annotations

import argparse
import io
import socket
import threading
from pathlib import Path

import pytest

from dispatch.benchsuite.options import SECTIONS, add_arguments, config_from_args
from dispatch.benchsuite.runner import main
from dispatch.benchsuite.target import MessageBudget, describe_plan


def parse(*argv: str):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return config_from_args(p.parse_args(list(argv)))


def test_defaults_full_profile_every_section():
    c = parse()
    assert c.profile == "full" and c.sections == SECTIONS and c.target is None
    assert parse("--quick").quick


def test_only_and_skip_select_sections():
    assert parse("--only", "pool,codec").sections == ("pool", "codec")
    assert parse("--skip", "api,e2e").sections == ("ingest", "codec", "pool")
    with pytest.raises(SystemExit, match="no section"):
        parse("--only", "pool", "--skip", "pool")
    with pytest.raises(SystemExit):
        parse("--only", "nope")


def test_target_needs_credentials_and_explicit_destinations():
    with pytest.raises(SystemExit, match="system-id"):
        parse("--target", "smsc.example:2775")
    with pytest.raises(SystemExit, match="--to"):
        parse("--target", "smsc.example:2775", "--system-id", "a", "--password", "b")
    with pytest.raises(SystemExit, match="max-messages"):
        parse("--max-messages", "0")
    for bad in ("-5", "nan"):  # the api section failed deep inside with either
        with pytest.raises(SystemExit, match="api-rps"):
            parse("--api-rps", bad)
    c = parse("--target", "smsc.example:2775", "--system-id", "a", "--password", "b",
              "--to", "+4915112345678", "--tps-cap", "5", "--window", "3")
    assert c.target is not None and c.target.port == 2775 and c.target.tps_cap == 5.0
    assert c.target.window == 3 and c.max_messages == 100


def test_budget_grants_at_most_the_cap():
    b = MessageBudget(10)
    assert b.grant(4) == 4 and b.grant(100) == 6 and b.grant(1) == 0
    assert b.remaining == 0 and b.granted == 10


def test_dry_run_prints_the_plan_connects_to_nothing_writes_nothing(tmp_path: Path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        out = tmp_path / "out"
        c = parse("--quick", "--dry-run", "--out", str(out), "--target", f"127.0.0.1:{port}",
                  "--system-id", "acct", "--password", "pw", "--to", "+4915112345678",
                  "--max-messages", "25")
        stream = io.StringIO()
        assert main(c, stream=stream) == 0
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    text = stream.getvalue()
    assert accepted == []
    assert not out.exists()
    assert "at most 25 message(s)" in text and "dry run" in text
    assert "4915112345678" not in text and "5678" in text  # destinations masked
    assert "e2e: skipped" in text and "api: skipped" in text


def test_plan_without_target_lists_the_sections():
    lines = describe_plan(parse("--quick", "--only", "codec"))
    assert lines[0].startswith("dispatch bench (quick profile)")
    assert any(line.strip().startswith("codec:") for line in lines)
    assert not any("pool" in line for line in lines)
