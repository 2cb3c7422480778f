"""Relative paths in a config file are relative to the file's directory, wherever the engine
is started from; environment overrides and command-line flags keep resolving against the
working directory (they are typed there)."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import pytest

from dispatch.configload import load_toml
from dispatch.engine.config import EngineConfig, load_config

CONFIG = """
data_dir = "var"
[store]
path = "db/dispatch.sqlite3"
[control]
data_dir = "../api-data"
keys_file = "secrets/api_keys.json"
[[esmes]]
name = "a"
host = "smsc.example.net"
port = 3550
system_id = "s"
password = "p"
[esmes.tls]
enabled = true
cafile = "tls/ca.pem"
certfile = "tls/client.pem"
keyfile = "./tls/client.key"
[simulator.settings.tls]
certfile = "tls/sim.pem"
"""


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The config in ``<tmp>/etc/dispatch``, the process started in ``<tmp>/elsewhere``."""
    etc = tmp_path / "etc" / "dispatch"
    etc.mkdir(parents=True)
    (etc / "dispatch.toml").write_text(CONFIG)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return etc, cwd


def test_relative_paths_in_the_file_follow_the_file(layout: tuple[Path, Path]) -> None:
    etc, cwd = layout
    # The file named relative to the working directory, as `--config ../etc/...` gives it.
    config = load_config(os.path.relpath(etc / "dispatch.toml", cwd), env={})
    assert config.data_dir == str(etc / "var")
    assert config.store.path == str(etc / "db" / "dispatch.sqlite3")
    assert config.control.data_dir == str(etc.parent / "api-data")
    assert config.control.keys_path == etc / "secrets" / "api_keys.json"
    tls = config.esmes[0].tls
    assert (tls.cafile, tls.certfile, tls.keyfile) == (
        str(etc / "tls" / "ca.pem"), str(etc / "tls" / "client.pem"),
        str(etc / "tls" / "client.key"))
    sim_tls = config.simulator.settings.tls
    assert sim_tls is not None and sim_tls.certfile == str(etc / "tls" / "sim.pem")
    # What the engine makes from the data directory lands there too, not in the cwd.
    config.hash_key()
    assert (etc / "var" / "ctn_hash.key").is_file()
    assert list(cwd.iterdir()) == []


def test_paths_derived_from_a_relative_data_dir_follow_the_file(
        layout: tuple[Path, Path]) -> None:
    etc, _ = layout
    (etc / "small.toml").write_text('data_dir = "state"\n')
    config = load_config(str(etc / "small.toml"), env={})
    assert config.store.path == str(etc / "state" / "dispatch.sqlite3")
    assert config.control.data_dir == str(etc / "state")
    assert config.control.keys_path == etc / "state" / "api_keys.json"


def test_env_and_command_line_paths_stay_relative_to_the_working_directory(
        layout: tuple[Path, Path]) -> None:
    etc, _ = layout
    path = str(etc / "dispatch.toml")
    config = load_config(path, env={"DISPATCH__STORE__PATH": "env.sqlite3",
                                    "DISPATCH__CONTROL__KEYS_FILE": "env-keys.json"})
    assert config.store.path == "env.sqlite3"
    assert config.control.keys_file == "env-keys.json"
    assert config.data_dir == str(etc / "var")  # still the file's

    config = load_config(path, env={"DISPATCH__DATA_DIR": "envdata"})
    assert config.data_dir == "envdata"
    config = load_config(str(etc / "dispatch.toml"), env={}, data_dir="cli-data")
    assert config.data_dir == "cli-data"
    # Nothing set anywhere: the defaults are relative to the working directory, as before.
    (etc / "empty.toml").write_text("")
    config = load_config(str(etc / "empty.toml"), env={})
    assert config.data_dir == "var" and config.store.path == os.path.join("var",
                                                                           "dispatch.sqlite3")


def test_values_that_are_not_relative_paths_are_kept(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[store]\npath = ":memory:"\n[control]\nkeys_file = ""\ndata_dir = "/srv/api"\n'
        'host = "relative-looking"\n[a]\nkeyfile = "~/k.pem"\nb_path = "file:x.db"\n'
        'c_dir = "postgresql://h/db"\n')
    data = load_toml(str(tmp_path / "c.toml"))
    assert data == {"store": {"path": ":memory:"},
                    "control": {"keys_file": "", "data_dir": "/srv/api",
                                "host": "relative-looking"},
                    "a": {"keyfile": "~/k.pem", "b_path": "file:x.db",
                          "c_dir": "postgresql://h/db"}}


def _string_fields(cls: type, seen: set[str]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        members = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        for member in members:
            if dataclasses.is_dataclass(member) and isinstance(member, type):
                _string_fields(member, seen)
            elif typing.get_origin(member) is tuple:
                inner = typing.get_args(member)[0]
                if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                    _string_fields(inner, seen)
            elif member is str:
                seen.add(f.name)


def test_exactly_the_path_keys_of_the_engine_config_are_path_keys() -> None:
    """A new key that holds a path must be named like one (and a non-path key must not)."""
    from dispatch.configload import is_path_key

    names: set[str] = set()
    _string_fields(EngineConfig, names)
    assert {n for n in names if is_path_key(n)} == {
        "data_dir", "path", "keys_file", "cafile", "certfile", "keyfile"}
