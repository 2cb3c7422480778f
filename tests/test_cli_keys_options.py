"""``dispatch keys``: the global options (``--config``, ``--data-dir``) work after the action
too. ``dispatch keys create --role author --config X`` exited 2 with "unrecognized arguments:
--config X"; only ``dispatch keys --config X create ...`` worked. Real subprocesses, as an
operator runs the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _dispatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH__")}
    return subprocess.run([sys.executable, "-m", "dispatch.cli", *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=60, check=False)


def _config_file(tmp_path: Path) -> tuple[Path, Path]:
    """A config file whose data_dir is ``<tmp>/conf-data``: where its key file is."""
    config = tmp_path / "dispatch.toml"
    config.write_text('data_dir = "conf-data"\n')  # relative to the file
    return config, tmp_path / "conf-data" / "api_keys.json"


@pytest.mark.parametrize("where", ["after-action", "after-options", "before-action"])
def test_keys_create_takes_config_anywhere(tmp_path: Path, where: str) -> None:
    config, keys_file = _config_file(tmp_path)
    action = ["create", "--role", "author", "--label", "ops"]
    argv = {"after-action": ["keys", "create", "--config", str(config), "--role", "author",
                             "--label", "ops"],
            "after-options": ["keys", *action, "--config", str(config)],
            "before-action": ["keys", "--config", str(config), *action]}[where]
    created = _dispatch(*argv, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.split()[0].startswith("dk_")
    assert keys_file.is_file()
    assert "author" in keys_file.read_text() and "ops" in keys_file.read_text()
    assert not (tmp_path / "var").exists()  # not the default data dir
    listed = _dispatch("keys", "list", "--config", str(config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "author" in listed.stdout and "ops" in listed.stdout


def test_keys_data_dir_after_the_action_wins_like_before_it(tmp_path: Path) -> None:
    config, conf_keys = _config_file(tmp_path)
    data = tmp_path / "d"
    created = _dispatch("keys", "create", "--role", "viewer", "--data-dir", str(data),
                        "--config", str(config), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert (data / "api_keys.json").is_file()  # --data-dir wins over the file's data_dir
    assert not conf_keys.exists() and not (tmp_path / "var").exists()
    key_id = next(line.split()[0] for line in
                  _dispatch("keys", "list", "--data-dir", str(data), cwd=tmp_path)
                  .stdout.splitlines())
    revoked = _dispatch("keys", "revoke", key_id, "--data-dir", str(data), cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    listed = _dispatch("keys", "--data-dir", str(data), "list", cwd=tmp_path)
    assert "revoked" in listed.stdout


def test_keys_still_refuses_an_unknown_option(tmp_path: Path) -> None:
    done = _dispatch("keys", "create", "--role", "author", "--data-dir", str(tmp_path / "d"),
                     "--frob", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("unrecognized arguments: --frob")
    assert not (tmp_path / "d").exists()
