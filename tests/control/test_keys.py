"""API keys: hashed at rest, shown once, checked in constant time, revocable across processes."""

from __future__ import annotations

import json

import pytest

from control.keys import KeyStore, Role, create_key, revoke_key, split_token
from control.ratelimit import RateLimiter


def test_created_key_authenticates_and_only_its_hash_is_stored(tmp_path):
    path = tmp_path / "keys.json"
    token = create_key(path, "moderator", clear_numbers=True, label="ops")
    parsed = split_token(token)
    assert parsed is not None
    key_id, secret = parsed
    stored = path.read_text()
    assert secret not in stored and token not in stored
    doc = json.loads(stored)
    assert doc["keys"][0]["key_id"] == key_id
    assert len(doc["keys"][0]["secret_sha256"]) == 64
    assert path.stat().st_mode & 0o077 == 0

    key = KeyStore(path).authenticate(token)
    assert key is not None
    assert (key.role, key.clear_numbers, key.label) == (Role.MODERATOR, True, "ops")


@pytest.mark.parametrize("bad", ["", "nope", "dk_0123456789abcdef_", "dk_short_secret",
                                 "xx_0123456789abcdef_secret"])
def test_malformed_tokens_are_refused(tmp_path, bad):
    store = KeyStore(tmp_path / "keys.json")
    store.create_key(Role.ADMIN)
    assert store.authenticate(bad) is None


def test_wrong_secret_and_unknown_id_are_refused(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    token, record = store.create_key(Role.VIEWER)
    assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.authenticate(f"dk_{'f' * 16}_{token.split('_', 2)[2]}") is None
    assert store.authenticate(token) == record


def test_revocation_by_another_process_is_seen(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    engine_view = KeyStore(path)
    token = create_key(path, "author")
    monkeypatch.setattr("control.keys._RELOAD_EVERY_S", 0.0)
    key = engine_view.authenticate(token)
    assert key is not None
    assert revoke_key(path, key.key_id)
    assert engine_view.authenticate(token) is None
    assert not revoke_key(path, "0" * 16)
    assert [k.revoked for k in engine_view.list_keys()] == [True]


def test_invalid_role_is_refused(tmp_path):
    with pytest.raises(ValueError):
        create_key(tmp_path / "keys.json", "superuser")


def test_token_bucket_allows_burst_then_reports_wait():
    now = [100.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.check("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.check("k") == 1
    assert limiter.check("other") == 0  # buckets are per key
    now[0] += 0.5
    assert limiter.check("k") == 0
    limiter = RateLimiter(rate_per_s=0.1, burst=1, clock=lambda: now[0])
    assert limiter.check("k") == 0
    assert limiter.check("k") == 10


def test_keys_cli_create_list_revoke(tmp_path):
    import io

    from control.keys_cli import keys_main

    path = tmp_path / "keys.json"
    out = io.StringIO()
    assert keys_main(["create", "--role", "viewer", "--label", "grafana"], path, out) == 0
    token = out.getvalue().strip()
    key = KeyStore(path).authenticate(token)
    assert key is not None and key.role is Role.VIEWER
    out = io.StringIO()
    assert keys_main(["list"], path, out) == 0
    assert key.key_id in out.getvalue() and "active" in out.getvalue()
    assert token.split("_", 2)[2] not in out.getvalue()
    assert keys_main(["revoke", key.key_id], path) == 0
    assert keys_main(["revoke", "0" * 16], path) == 1
    assert KeyStore(path).authenticate(token) is None
    with pytest.raises(SystemExit):
        keys_main(["create", "--role", "root"], path)
