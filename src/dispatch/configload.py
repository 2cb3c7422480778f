"""Typed configuration from TOML with environment overrides.

Every config section is a frozen dataclass with defaults; ``build(cls, mapping)`` turns parsed
TOML into it, rejecting unknown keys and wrong types with the dotted path of the offending key
(an operator's typo must fail loudly at start, not be ignored). Environment overrides use
``DISPATCH__SECTION__KEY=value`` (double underscores separate levels; a number selects an
entry of an array of tables: ``DISPATCH__ESMES__0__PASSWORD``, and the next free index appends
one). The value is read as a TOML scalar when it parses as one (``8080``, ``true``, ``"x"``,
``[1, 2]``), else as a string; a string key keeps the text itself when it parses as something
else (a password ``1234`` or a system_id ``true`` stay strings).

Relative paths in a config file are relative to the file's directory, not to the working
directory the process happens to start in: ``load_toml`` rewrites every relative path-like
value it reads (``is_path_key``: ``path``, ``*_dir``, ``*_path``, ``*_file``, ``cafile``,
``certfile``, ``keyfile``) to the file's directory joined with it, so ``data_dir = "var"``
in ``/etc/dispatch/dispatch.toml`` means ``/etc/dispatch/var`` wherever the engine starts.
Environment overrides and command-line flags are not files: their relative paths stay
relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
ENV_PREFIX = "DISPATCH__"


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; names the key."""


def build(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses and tuples of them included."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown config key(s): {', '.join(where + k for k in unknown)}")
    kwargs = {name: _coerce(hints[name], value, f"{path}.{name}" if path else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class EnvValue:
    """An override's text as the environment gave it: its type comes from the key it sets."""

    text: str


def _wants_text(hint: Any) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return len(members) == 1 and _wants_text(members[0])
    if typing.get_origin(hint) is typing.Literal:
        return all(isinstance(a, str) for a in typing.get_args(hint))
    return isinstance(hint, type) and issubclass(hint, str)


def _plain(value: Any) -> Any:
    """``value`` with every override read as a TOML scalar (for keys of no declared type)."""
    if isinstance(value, EnvValue):
        return _parse_scalar(value.text)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if isinstance(value, EnvValue):
        parsed = _parse_scalar(value.text)
        # A string key keeps the text unless it is a quoted TOML string ("x" gives x).
        value = value.text if _wants_text(hint) and not isinstance(parsed, str) else parsed
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(members[0], value, path)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        # The type too: True == 1 and 1.0 == 1, yet neither is the choice 1.
        if value not in allowed or type(value) not in {type(a) for a in allowed}:
            raise ConfigError(f"{path}: must be one of {', '.join(map(repr, allowed))}, "
                              f"not {value!r}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, path)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list")
        item_hint = args[0] if args else Any
        return tuple(_coerce(item_hint, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is frozenset or origin is set:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ConfigError(f"{path}: expected a list")
        (item_hint,) = typing.get_args(hint) or (Any,)
        return frozenset(_coerce(item_hint, v, f"{path}[]") for v in value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a table")
        return _plain(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if hint is int and isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got a boolean")
        if not isinstance(value, hint):
            raise ConfigError(f"{path}: expected {hint.__name__}, got {type(value).__name__}")
        return value
    if isinstance(hint, type) and issubclass(hint, str) and isinstance(value, str):
        try:
            return hint(value)  # str-valued enums
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return _plain(value)


def _parse_scalar(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``DISPATCH__A__B=value`` variables onto the parsed TOML tree (a copy).

    The values are left as ``EnvValue`` for ``build`` to read by the type of their key."""
    merged: dict[str, Any] = _deep_copy(data)
    for key, raw in sorted(env.items(), key=lambda item: _env_order(item[0])):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        if parts:
            _set_path(merged, parts, EnvValue(raw), key)
    return merged


def _env_order(key: str) -> list[tuple[int, int, str]]:
    # Indexes in numeric order (ESMES__2 before ESMES__10), so appended entries line up.
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in key.split("__")]


def _set_path(root: dict[str, Any], parts: list[str], value: EnvValue, key: str) -> None:
    node: Any = root
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "config"
        if isinstance(node, list):
            if not part.isdigit() or int(part) > len(node):
                raise ConfigError(f"{key}: {where} has {len(node)} entries; {part!r} is not "
                                  f"one of their indexes nor the next one")
            index = int(part)
            if index == len(node):
                node.append(value if last else {})
            elif last:
                node[index] = value
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                break
            child = node.get(part)
            if child is None:
                child = node[part] = [] if parts[depth + 1].isdigit() else {}
            node = child
        else:
            raise ConfigError(f"{key}: {where} is not a table")


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def load_toml(path: str | None) -> dict[str, Any]:
    """The parsed file, its relative paths made relative to its directory (``resolve_paths``)."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return resolve_paths(data, os.path.dirname(os.path.abspath(path)))


#: Suffixes of the keys whose values are file-system paths (``is_path_key``).
PATH_KEY_SUFFIXES = ("_dir", "_path", "_file", "cafile", "certfile", "keyfile")


def is_path_key(name: str) -> bool:
    """Whether a config key names a file or directory (``store.path``, ``data_dir``,
    ``control.keys_file``, ``esmes.tls.cafile``, ...): keys are named so, and a new path-like
    key must be too for a config file's relative value to follow the file."""
    return name == "path" or name.endswith(PATH_KEY_SUFFIXES)


def _relative_path(value: str) -> bool:
    # Empty means "unset" (the default applies); ":memory:" is SQLite's in-memory database;
    # URIs (file:..., postgresql://...) and ~ (a home directory) are not plain relative paths.
    return bool(value) and not (os.path.isabs(value) or value.startswith(("~", ":", "file:"))
                                or "://" in value)


def resolve_paths(data: Any, base_dir: str) -> Any:
    """``data`` (parsed TOML) with the relative values of path-like keys (``is_path_key``)
    joined to ``base_dir``; tables and arrays of tables are walked, other values kept."""
    if isinstance(data, Mapping):
        out = {}
        for key, value in data.items():
            if isinstance(value, str) and is_path_key(key) and _relative_path(value):
                value = os.path.normpath(os.path.join(base_dir, value))
            out[key] = resolve_paths(value, base_dir)
        return out
    if isinstance(data, list):
        return [resolve_paths(v, base_dir) for v in data]
    return data
