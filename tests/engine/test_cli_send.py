"""``dispatch send`` as a user runs it (a subprocess, the real engine and simulator): a
campaign the store could not keep is refused with a clear message, not a traceback
(command-line bytes that are not UTF-8 reach Python as lone surrogates, which no store can
encode: they crashed the command before), and a campaign that fails says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_send_refuses_undecodable_arguments_with_a_clear_message(tmp_path: Path) -> None:
    recipients = tmp_path / "r.txt"
    recipients.write_text("+79001234567\n+79001234568\n")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "dispatch.cli", "send", str(recipients), "--data-dir",
         str(tmp_path / "var"), "--quiet", "--sender", b"A\xffB", "--text", "hi \x01 there"],
        capture_output=True, timeout=60, env=env, check=False)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, err
    assert err.strip().splitlines()[-1] == (
        "invalid campaign: sender: Must be valid Unicode text (a lone surrogate is not)")
    assert "Traceback" not in err
    assert done.stdout == b""  # no campaign ran, so no summary


def test_send_says_why_a_campaign_failed(tmp_path: Path) -> None:
    recipients = tmp_path / "r.txt"
    recipients.write_text("+79001234567\n")
    done = subprocess.run(
        [sys.executable, "-m", "dispatch.cli", "send", str(recipients), "--data-dir",
         str(tmp_path / "var"), "--quiet", "--sender", "A", "--text", "hi", "--route", "nope"],
        capture_output=True, timeout=60, check=False, text=True)
    assert done.returncode == 1, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("campaign ") and first.endswith(": Failed (unknown ESME route 'nope')")
