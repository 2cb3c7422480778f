"""API keys: created once, stored hashed, checked in constant time.

Decision (issue 5): keys live in a small JSON file (``<data_dir>/api_keys.json`` by default),
not in the campaign store. The file is written atomically (temp file + fsync + ``os.replace``)
under an advisory lock, so ``dispatch keys create`` can add or revoke a key while the engine
runs; the engine re-reads the file when its mtime or size changes (checked at most once a
second). Keeping keys out of the store keeps the store interface free of auth concerns and lets
an operator manage keys with the engine stopped.

A token looks like ``dk_<key id>_<secret>``: the key id (16 hex digits) is public and indexes the
record; the secret (32 random bytes, base64url) is never stored, only its SHA-256. Checking a
token looks the record up by id and compares digests with ``hmac.compare_digest``, so timing
reveals nothing about the secret. Revoked keys stay in the file (marked) so they can be audited.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOKEN_PREFIX = "dk"
_RELOAD_EVERY_S = 1.0


class Role(enum.StrEnum):
    AUTHOR = "author"
    MODERATOR = "moderator"
    ADMIN = "admin"
    VIEWER = "viewer"


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """One stored key: never holds the token, only the SHA-256 of its secret."""

    key_id: str
    secret_sha256: str
    role: Role
    clear_numbers: bool = False
    label: str = ""
    created_at: float = 0.0
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "role": self.role.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiKey:
        return cls(
            key_id=str(data["key_id"]),
            secret_sha256=str(data["secret_sha256"]),
            role=Role(data["role"]),
            clear_numbers=bool(data.get("clear_numbers", False)),
            label=str(data.get("label", "")),
            created_at=float(data.get("created_at", 0.0)),
            revoked_at=None if data.get("revoked_at") is None else float(data["revoked_at"]),
        )


class KeyFileError(RuntimeError):
    """The key file exists but cannot be read as a key file."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, else ``None``."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 16 or not parts[2]:
        return None
    if not parts[2].isascii():
        return None
    return parts[1], parts[2]


class KeyStore:
    """The API key file. Thread- and process-safe for writers; readers see whole files."""

    def __init__(self, path: str | os.PathLike[str], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self._reload(force=True)

    # ---------------------------------------------------------------- reading

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read_file(self) -> dict[str, ApiKey]:
        try:
            raw = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            return {k.key_id: k for k in map(ApiKey.from_json, doc["keys"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{self.path}: not a valid key file ({exc})") from exc

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < _RELOAD_EVERY_S:
            return
        self._checked_at = now
        stamp = self._file_stamp()
        if force or stamp != self._stamp:
            self._keys = self._read_file()
            self._stamp = stamp

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key for ``token``, or ``None`` when it is malformed, unknown or revoked."""
        parsed = split_token(token)
        self._reload()
        if parsed is None:
            return None
        key_id, secret = parsed
        key = self._keys.get(key_id)
        # Compare even when the id is unknown so both paths cost the same.
        stored = key.secret_sha256 if key is not None else "0" * 64
        if not hmac.compare_digest(_digest(secret), stored) or key is None:
            return None
        return None if key.revoked else key

    def list_keys(self) -> list[ApiKey]:
        self._reload(force=True)
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    # ---------------------------------------------------------------- writing

    @contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                keys = self._read_file()
                yield keys
                self._write_file(keys)
                self._reload(force=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_file(self, keys: dict[str, ApiKey]) -> None:
        doc = {"version": 1, "keys": [k.to_json() for k in keys.values()]}
        fd, tmp = tempfile.mkstemp(prefix=".api_keys.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def create_key(self, role: Role | str, clear_numbers: bool = False,
                   label: str = "") -> tuple[str, ApiKey]:
        """Make a key; return the token (shown once, never stored) and its record."""
        role = Role(role)
        key_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        record = ApiKey(key_id=key_id, secret_sha256=_digest(secret), role=role,
                        clear_numbers=clear_numbers, label=label, created_at=self._clock())
        with self._locked() as keys:
            keys[key_id] = record
        return f"{TOKEN_PREFIX}_{key_id}_{secret}", record

    def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked; ``False`` when no such key exists."""
        with self._locked() as keys:
            key = keys.get(key_id)
            if key is None:
                return False
            if not key.revoked:
                keys[key_id] = dataclasses.replace(key, revoked_at=self._clock())
        return True


def create_key(keys_path: str | os.PathLike[str], role: Role | str, clear_numbers: bool = False,
               label: str = "") -> str:
    """CLI hook for ``dispatch keys create --role ...``: returns the token to print once."""
    token, _ = KeyStore(keys_path).create_key(role, clear_numbers=clear_numbers, label=label)
    return token


def revoke_key(keys_path: str | os.PathLike[str], key_id: str) -> bool:
    """CLI hook for ``dispatch keys revoke KEY_ID``."""
    return KeyStore(keys_path).revoke_key(key_id)
