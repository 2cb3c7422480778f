"""The engine's config as an operator sets it: ``DISPATCH__*`` overrides reach every kind of key
(strings that look like numbers, entries of ``[[esmes]]``), and values the logging setup cannot
use are refused at load with the key's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.configload import ConfigError
from dispatch.engine.config import load_config

ESME = ('[[esmes]]\nname = "a"\nhost = "smsc.example.net"\nport = 2775\nsystem_id = "s"\n'
        'password = "file"\n')


def _config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dispatch.toml"
    path.write_text(text)
    return str(path)


def test_env_overrides_a_key_of_an_esmes_entry(tmp_path: Path) -> None:
    """The ESME password is the secret an operator keeps out of the file."""
    path = _config_file(tmp_path, ESME + ESME.replace('"a"', '"b"'))
    config = load_config(path, env={"DISPATCH__ESMES__1__PASSWORD": "env",
                                    "DISPATCH__ESMES__0__WINDOW": "128",
                                    "DISPATCH__ESMES__0__TPS": "250.5"})
    assert [e.password for e in config.esmes] == ["file", "env"]
    assert config.esmes[0].window == 128 and config.esmes[0].tps == 250.5
    assert config.esmes[1].host == "smsc.example.net"


def test_env_alone_defines_esmes_in_index_order() -> None:
    env = {f"DISPATCH__ESMES__{i}__{key}": value for i in (0, 1, 2, 10)
           for key, value in (("NAME", f"r{i}"), ("HOST", "h"), ("PORT", "2775"),
                              ("SYSTEM_ID", "s"), ("PASSWORD", "p"))}
    with pytest.raises(ConfigError, match=r"DISPATCH__ESMES__10__"):
        load_config(None, env=env)  # 10 is not the next index after 2
    env = {k: v for k, v in env.items() if "__10__" not in k}
    config = load_config(None, env=env)
    assert [e.name for e in config.esmes] == ["r0", "r1", "r2"]


def test_an_esme_key_typo_from_env_names_the_key() -> None:
    env = {"DISPATCH__ESMES__0__NAME": "a", "DISPATCH__ESMES__0__HOST": "h",
           "DISPATCH__ESMES__0__PORT": "1", "DISPATCH__ESMES__0__SYSTEM_ID": "s",
           "DISPATCH__ESMES__0__PASWORD": "p"}
    with pytest.raises(ConfigError, match=r"esmes\[0\]\.pasword"):
        load_config(None, env=env)


def test_env_strings_that_look_like_numbers_stay_strings(tmp_path: Path) -> None:
    path = _config_file(tmp_path, ESME)
    config = load_config(path, env={"DISPATCH__ESMES__0__PASSWORD": "12345",
                                    "DISPATCH__ESMES__0__SYSTEM_ID": "true",
                                    "DISPATCH__HASH_KEY_HEX": "12345678901234567890123456789012",
                                    "DISPATCH__CONTROL__PORT": "9090",
                                    "DISPATCH__CONTROL__PROTECT_METRICS": "true",
                                    "DISPATCH__STORE__RECOVERY_POLICY": "resend"})
    assert config.esmes[0].password == "12345"
    assert config.esmes[0].system_id == "true"
    assert config.hash_key() == bytes.fromhex("12345678901234567890123456789012")
    assert config.control.port == 9090 and config.control.protect_metrics is True
    assert config.store.recovery_policy.value == "resend"


def test_wrong_types_from_env_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"control\.port: expected int, got str"):
        load_config(None, env={"DISPATCH__CONTROL__PORT": "eighty"})
    with pytest.raises(ConfigError, match=r"log_level: expected str"):
        load_config(None, env={"DISPATCH__LOG_LEVEL__X": "1"})


@pytest.mark.parametrize(("env", "key"), [
    ({"DISPATCH__LOG_LEVEL": "verbose"}, "log_level"),
    ({"DISPATCH__LOG_FORMAT": "yaml"}, "log_format"),
])
def test_a_log_setting_the_logger_cannot_use_is_a_config_error(env: dict[str, str],
                                                               key: str) -> None:
    """``serve`` accepted ``log_level = "verbose"`` and then died in ``logging`` with a
    traceback naming no key."""
    with pytest.raises(ConfigError, match=key):
        load_config(None, env=env)
    assert load_config(None, env={"DISPATCH__LOG_LEVEL": "DEBUG"}).log_level == "DEBUG"


def test_data_dir_moves_every_path_under_it(tmp_path: Path) -> None:
    """``--data-dir`` put the store under the new directory but left the API keys, uploads
    and exports under the default one (``./var``)."""
    config = load_config(None, env={}, data_dir=str(tmp_path / "d"))
    assert Path(config.store.path) == tmp_path / "d" / "dispatch.sqlite3"
    assert Path(config.control.data_dir) == tmp_path / "d"
    assert config.control.keys_path == tmp_path / "d" / "api_keys.json"


@pytest.mark.parametrize(("key", "raw"), [("CAMPAIGN_SAMPLE_INTERVAL_S", "0"),
                                          ("CAMPAIGN_SAMPLE_TIMEOUT_S", "-1"),
                                          ("TOP_CAMPAIGNS", "-3")])
def test_observability_knobs_that_cannot_work_are_refused(key: str, raw: str) -> None:
    """An interval of 0 sampled the store in a busy loop; ``top_campaigns = -3`` sliced the
    active campaigns to all but three, one label value per campaign."""
    with pytest.raises(ConfigError, match=rf"observability: .*{key.lower()}"):
        load_config(None, env={f"DISPATCH__OBSERVABILITY__{key}": raw})
    assert load_config(None, env={"DISPATCH__OBSERVABILITY__TOP_CAMPAIGNS": "0"}) \
        .observability.top_campaigns == 0


def test_a_value_outside_a_fixed_choice_names_the_key() -> None:
    """``message_id_format = "octal"`` was accepted and the simulator then wrote hex ids."""
    with pytest.raises(ConfigError, match=r"simulator\.settings\.message_id_format: must be "
                                          r"one of 'hex', 'decimal', not 'octal'"):
        load_config(None, env={"DISPATCH__SIMULATOR__SETTINGS__MESSAGE_ID_FORMAT": "octal"})
    config = load_config(None, env={"DISPATCH__SIMULATOR__SETTINGS__RECEIPT_ID_FORMAT":
                                    "decimal"})
    assert config.simulator.settings.receipt_id_format == "decimal"


def test_a_quoted_env_string_is_unquoted_as_before() -> None:
    config = load_config(None, env={"DISPATCH__CONTROL__HOST": '"0.0.0.0"',
                                    "DISPATCH__HASH_KEY_HEX": '"00112233445566778899aabbccddeeff"'})
    assert config.control.host == "0.0.0.0"
    assert config.hash_key_hex == "00112233445566778899aabbccddeeff"
