"""The ``dispatch`` command as an operator runs it (real subprocesses): the README's commands
work, ``--data-dir`` moves everything the command writes, and a failure is one clear line with a
non-zero exit, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _dispatch(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH__")}
    return subprocess.run([sys.executable, "-m", "dispatch.cli", *args], cwd=cwd,
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def test_simulate_takes_the_simulators_options(tmp_path: Path) -> None:
    """``dispatch simulate --port 2775 --outcome ...`` (README) was refused by the dispatch
    parser ("unrecognized arguments: --port"); its --help showed no simulator option."""
    helped = _dispatch("simulate", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "--outcome" in helped.stdout and "--port" in helped.stdout
    bad = _dispatch("simulate", "--port", "2775", "--outcome", "DELIVRD=x", cwd=tmp_path)
    assert bad.returncode == 2
    assert "argument --outcome" in bad.stderr.strip().splitlines()[-1]
    assert "Traceback" not in bad.stderr


def test_unknown_option_of_a_command_is_refused(tmp_path: Path) -> None:
    done = _dispatch("migrate", "--data-dir", str(tmp_path / "d"), "--frob", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("unrecognized arguments: --frob")
    assert not (tmp_path / "d").exists()


def test_keys_go_under_the_data_dir_given(tmp_path: Path) -> None:
    """``--data-dir D`` moved the store to D but left the API keys, uploads and exports in
    ./var: ``dispatch keys --data-dir D create`` wrote its key file there."""
    data = tmp_path / "d"
    created = _dispatch("keys", "--data-dir", str(data), "create", "--role", "viewer",
                        cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.split()[0]
    assert token.startswith("dk_")
    assert (data / "api_keys.json").is_file()
    assert not (tmp_path / "var").exists()
    assert token not in (data / "api_keys.json").read_text()  # stored hashed
    listed = _dispatch("keys", "--data-dir", str(data), "list", cwd=tmp_path)
    assert listed.returncode == 0 and "viewer" in listed.stdout
    assert token not in listed.stdout  # printed once, at creation only


def test_migrate_is_idempotent_and_a_store_it_cannot_open_is_one_line(tmp_path: Path) -> None:
    first = _dispatch("migrate", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    again = _dispatch("migrate", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert again.stdout.strip().endswith("(already current)")
    blocker = tmp_path / "file"
    blocker.write_text("")
    broken = _dispatch("migrate", cwd=tmp_path,
                       env={"DISPATCH__STORE__PATH": str(blocker / "x.sqlite3")})
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr
    assert broken.stderr.strip().splitlines() == [
        line for line in broken.stderr.strip().splitlines() if line.startswith("migrate: store ")]


@pytest.mark.parametrize("env", [{"DISPATCH__LOG_LEVEL": "verbose"},
                                 {"DISPATCH__CONTROL__PORT": "eighty"}])
def test_serve_refuses_a_bad_setting_in_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    done = _dispatch("serve", "--data-dir", str(tmp_path / "d"), cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("config error: ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("count", ["0", "-5", "many"])
def test_demo_refuses_a_recipient_count_that_is_not_positive(tmp_path: Path, count: str) -> None:
    """``demo --recipients -5`` ran an empty campaign and then reported "counters disagree
    with the simulator"."""
    done = _dispatch("demo", "--recipients", count, "--data-dir", str(tmp_path / "d"),
                     "--quiet", cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --recipients" in done.stderr.strip().splitlines()[-1]
    assert done.stdout == ""


def _json_lines_then_one(stderr: str) -> tuple[list[dict[str, object]], str]:
    """Every stderr line but the last is a JSON log line; the last is returned as text."""
    lines = stderr.strip().splitlines()
    return [json.loads(line) for line in lines[:-1]], lines[-1]


def test_serve_with_a_store_it_cannot_open_logs_json_and_says_so_in_one_line(
        tmp_path: Path) -> None:
    """A store that cannot be opened ended ``serve`` with a 50-line exception-group
    traceback on stderr, between the JSON log lines."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = _dispatch("serve", "--data-dir", str(tmp_path / "d"), cwd=tmp_path,
                     env={"DISPATCH__STORE__PATH": str(blocker / "x.sqlite3"),
                          "DISPATCH__CONTROL__PORT": "0"})
    assert done.returncode == 1
    events, last = _json_lines_then_one(done.stderr)
    assert last.startswith(f"serve: store {blocker / 'x.sqlite3'} failed: ")
    assert any(e["level"] == "critical" and "exc" in e for e in events)


def test_library_warnings_are_json_lines_too(tmp_path: Path) -> None:
    """The PostgreSQL pool's connection warnings reached stderr as Python's bare
    last-resort text, not as the JSON lines the log pipeline reads."""
    pytest.importorskip("psycopg_pool")
    done = _dispatch("serve", "--data-dir", str(tmp_path / "d"), cwd=tmp_path,
                     env={"DISPATCH__STORE__DSN": "postgresql://u:s3cretpass@127.0.0.1:1/db",
                          "DISPATCH__CONTROL__PORT": "0"}, timeout_s=120)
    assert done.returncode == 1
    events, last = _json_lines_then_one(done.stderr)
    assert last.startswith("serve: store PostgreSQL failed: ")
    pool = [e for e in events if str(e["logger"]).startswith("psycopg")]
    assert pool and all(e["level"] == "warning" for e in pool)
    assert "s3cretpass" not in done.stderr
