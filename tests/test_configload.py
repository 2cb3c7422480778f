"""TOML -> typed config, with env overrides and loud errors on typos."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dispatch.configload import ConfigError, apply_env, build, load_toml


@dataclass(frozen=True)
class Inner:
    host: str = "127.0.0.1"
    port: int = 0
    tps: float = 10.0


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    debug: bool = False
    inner: Inner = field(default_factory=Inner)
    items: tuple[Inner, ...] = ()


def test_defaults_and_nested(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('name = "core"\n[inner]\nport = 2775\ntps = 5\n[[items]]\nhost = "a"\n[[items]]\nport = 9\n')
    cfg = build(Outer, load_toml(str(p)))
    assert cfg.name == "core"
    assert cfg.inner == Inner(port=2775, tps=5.0)
    assert cfg.items == (Inner(host="a"), Inner(port=9))


def test_unknown_key_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"inner\.prot"):
        build(Outer, {"inner": {"prot": 1}})


def test_wrong_type_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"inner\.port: expected int"):
        build(Outer, {"inner": {"port": "x"}})
    with pytest.raises(ConfigError, match="boolean"):
        build(Outer, {"inner": {"port": True}})


def test_env_overrides_parse_scalars() -> None:
    data = apply_env({"inner": {"port": 1}}, {
        "DISPATCH__INNER__PORT": "8080",
        "DISPATCH__DEBUG": "true",
        "DISPATCH__NAME": "plain words",
        "OTHER": "ignored",
    })
    cfg = build(Outer, data)
    assert cfg.inner.port == 8080
    assert cfg.debug is True
    assert cfg.name == "plain words"


def test_missing_and_broken_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_toml(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_toml(str(bad))


@pytest.mark.parametrize(("toml", "message"), [
    ("[control]\nport = 70000\n", r"control: port must be between 0 and 65535"),
    ('[[esmes]]\nname = "a"\nhost = "h"\nport = 65536\nsystem_id = "s"\npassword = "p"\n',
     r"ESME 'a': port must be between 0 and 65535"),
    ("[control]\nport = -1\n", r"control: port must be between 0 and 65535"),
])
def test_a_port_out_of_range_is_a_config_error(tmp_path, toml: str, message: str) -> None:
    """The socket layer takes a port modulo 65536: a typo such as 70000 would listen on
    4464 without a word. The engine's config refuses it instead."""
    from dispatch.engine.config import load_config

    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env={})
