"""Security review of the control API, route by route (DESIGN.md "Security" bars).

* every route of the app is enumerated from the app itself; every responder is either public
  or declares an action, and every action is in ``control.auth.PERMISSIONS``;
* every protected responder refuses a missing, malformed, unknown or revoked key with 401;
* every role gets 403 exactly where ``PERMISSIONS`` says so, and never where it does not;
* clear numbers only with the clear-number right (recipients, lookup, errors, exports);
* uploads: the client's filename never becomes a path; file ids are not paths either;
* export ids are unguessable (96 random bits) and expired exports are gone from disk;
* API keys are stored hashed; no token, secret or clear number reaches a log record.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
from control_env import ApiEnv, api_env

from control.auth import PERMISSIONS, Action
from control.keys import Role

API = "/api/v1"
NUMBERS = ["+79123450001", "+79123450002", "+79123450003"]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def responders(resource: Any) -> list[str]:
    """HTTP methods a resource answers (falcon routes a method to ``on_<method>``)."""
    return [m for m in METHODS if callable(getattr(resource, f"on_{m.lower()}", None))]


def protected_endpoints(env: ApiEnv) -> list[tuple[str, str, Action]]:
    """(method, template, action) of every protected responder of the app."""
    out = []
    for template, resource in env.app.routes:
        if getattr(resource, "public", False):
            continue
        for method in responders(resource):
            out.append((method, template, resource.actions[method]))
    return out


async def _fixture_ids(env: ApiEnv) -> dict[str, str]:
    """A real campaign and a real (finished) export, so allowed roles reach the handler."""
    c = await env.create_campaign(kind="transactional")
    r = await env.client.post(f"{API}/campaigns/{c['id']}/exports", key=env.keys["admin"],
                              json={"format": "csv"})
    assert r.status_code == 202, r.text
    return {"campaign_id": c["id"], "export_id": r.json["id"]}


def _path(template: str, ids: dict[str, str]) -> str:
    return template.format(**ids)


def _run(tmp_path: Path, body: Any, **config: Any) -> None:
    async def main() -> None:
        async with api_env(tmp_path, **config) as env:
            with trio.fail_after(60):
                await body(env)

    trio.run(main)


# -------------------------------------------------------------------- the route table

def test_every_responder_is_public_or_declares_a_known_action(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        assert set(PERMISSIONS) == set(Action), "an Action without a PERMISSIONS row"
        assert set().union(*PERMISSIONS.values()) == set(Role), "a role that can do nothing"
        assert PERMISSIONS[Action.READ] == frozenset(Role)
        seen = 0
        for template, resource in env.app.routes:
            methods = responders(resource)
            assert methods, f"{template}: no responder"
            if getattr(resource, "public", False):
                assert template in ("/health", "/openapi.json", "/metrics"), template
                continue
            actions = resource.actions
            assert set(actions) == set(methods), (
                f"{template}: responders {methods} but actions declared for {sorted(actions)}")
            for method in methods:
                assert actions[method] in PERMISSIONS, (template, method)
                seen += 1
        assert seen >= 12  # campaigns, kpi, detail, uploads, recipients, errors, messages, ...
        paths = {template for template, _ in env.app.routes}
        assert {f"{API}/campaigns", f"{API}/uploads", f"{API}/exports/{{export_id}}/download",
                f"{API}/recipients/lookup", "/diagnostics"} <= paths

    _run(tmp_path, body)


def test_an_undeclared_responder_fails_closed(tmp_path: Path) -> None:
    """A responder added without its action must not be served without a key."""
    async def body(env: ApiEnv) -> None:
        class Sneaky:
            actions: ClassVar[dict[str, Action]] = {"GET": Action.READ}

            async def on_get(self, req: Any, resp: Any) -> None:
                resp.media = {"ok": True}

            async def on_delete(self, req: Any, resp: Any) -> None:
                resp.media = {"deleted": True}

        env.app.add_route(f"{API}/sneaky", Sneaky())
        assert (await env.client.get(f"{API}/sneaky")).status_code == 401
        r = await env.client.delete(f"{API}/sneaky")
        assert r.status_code in (401, 403) and "deleted" not in r.text
        r = await env.client.delete(f"{API}/sneaky", key=env.keys["admin"])
        assert r.status_code == 403 and "deleted" not in r.text

    _run(tmp_path, body)


# --------------------------------------------------------------------- 401 everywhere

def test_every_protected_route_refuses_missing_and_bad_keys(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        ids = await _fixture_ids(env)
        token, record = env.app.keys.create_key(Role.ADMIN, label="to revoke")
        env.app.keys.revoke_key(record.key_id)
        admin = env.keys["admin"]
        key_id = admin.split("_")[1]
        bad_keys = {
            "missing": None, "blank": "   ", "malformed": "not-a-key",
            "unknown id": "dk_0123456789abcdef_" + "A" * 43,
            "wrong secret": f"dk_{key_id}_" + "A" * 43,
            "revoked": token, "non-ascii": f"dk_{key_id}_\xe9t\xe9",
        }
        endpoints = protected_endpoints(env)
        for method, template, _ in endpoints:
            path = _path(template, ids)
            for label, key in bad_keys.items():
                headers = {} if key is None else {"X-API-Key": key}
                r = await env.client.request(method, path, json={}, headers=headers)
                assert r.status_code == 401, (method, path, label, r.status_code, r.text)
                assert r.json["error"] == "Unauthorized"
        # the same requests with the admin key get past authentication everywhere
        for method, template, _ in endpoints:
            env.clock[0] += 10  # keep the rate limiter out of this
            r = await env.client.request(method, _path(template, ids), key=admin, json={})
            assert r.status_code not in (401, 403), (method, template, r.text)

    _run(tmp_path, body)


def test_metrics_need_a_key_when_protected(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        assert (await env.client.get("/metrics")).status_code == 401
        for role in Role:
            r = await env.client.get("/metrics", key=env.keys[role.value])
            assert r.status_code == (200 if role in PERMISSIONS[Action.METRICS] else 403)
        for public in ("/health", "/openapi.json"):
            assert (await env.client.get(public)).status_code == 200

    _run(tmp_path, body, protect_metrics=True)


# ------------------------------------------------------------------- roles and 403

def test_each_role_gets_403_exactly_where_permissions_say(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        ids = await _fixture_ids(env)
        checked: Counter[str] = Counter()
        for method, template, action in protected_endpoints(env):
            path = _path(template, ids)
            for role in Role:
                env.clock[0] += 10
                r = await env.client.request(method, path, key=env.keys[role.value], json={})
                if role in PERMISSIONS[action]:
                    assert r.status_code not in (401, 403), (role, method, path, r.text)
                    checked["allowed"] += 1
                else:
                    assert r.status_code == 403, (role, method, path, r.status_code, r.text)
                    assert r.json == {"error": "Forbidden", "message":
                                      f"The {role.value} role may not {action.value}"}
                    checked["forbidden"] += 1
        assert checked["forbidden"] >= 10 and checked["allowed"] >= 30

    _run(tmp_path, body)


# ------------------------------------------------------------------ clear numbers

async def _campaign_with_numbers(env: ApiEnv) -> str:
    c = await env.create_campaign(kind="transactional")
    r = await env.client.post(f"{API}/campaigns/{c['id']}/approve", key=env.keys["moderator"])
    assert r.status_code == 200, r.text
    r = await env.client.post(f"{API}/campaigns/{c['id']}/messages", key=env.keys["author"],
                              json={"messages": [{"phoneNumber": n} for n in NUMBERS]})
    assert r.status_code == 202, r.text
    return str(c["id"])


async def _export(env: ApiEnv, cid: str, key: str, fmt: str) -> str:
    r = await env.client.post(f"{API}/campaigns/{cid}/exports", key=key, json={"format": fmt})
    assert r.status_code == 202, r.text
    export_id = str(r.json["id"])
    with trio.fail_after(10):
        while True:
            r = await env.client.get(f"{API}/exports/{export_id}", key=key)
            if r.json["status"] in ("Done", "Failed"):
                assert r.json["status"] == "Done", r.json
                return export_id
            await trio.sleep(0.01)


def _has_clear(text: str) -> bool:
    return any(n[1:] in text for n in NUMBERS)


def test_clear_numbers_only_with_the_right(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        cid = await _campaign_with_numbers(env)
        without = [env.keys[r.value] for r in Role]  # every role, none with the right
        for key in without:
            env.clock[0] += 10
            for method, path, payload in [
                    ("GET", f"{API}/campaigns/{cid}/recipients", None),
                    ("GET", f"{API}/campaigns/{cid}/errors", None),
                    ("POST", f"{API}/recipients/lookup", {"phoneNumber": NUMBERS[0]})]:
                r = await env.client.request(method, path, key=key, json=payload)
                assert r.status_code == 200, (path, r.text)
                assert not _has_clear(r.text), (path, r.text)
            export_id = await _export(env, cid, key, "txt")
            r = await env.client.get(f"{API}/exports/{export_id}/download", key=key)
            assert r.status_code == 200 and not _has_clear(r.text)
            assert [line[-4:] for line in r.text.splitlines()] == ["0001", "0002", "0003"]

        clear = env.keys["clear"]
        r = await env.client.get(f"{API}/campaigns/{cid}/recipients", key=clear)
        assert sorted(x["number"] for x in r.json["items"]) == [n[1:] for n in NUMBERS]
        r = await env.client.post(f"{API}/recipients/lookup", key=clear,
                                  json={"phoneNumber": NUMBERS[1]})
        assert [x["number"] for x in r.json["items"]] == [NUMBERS[1][1:]]
        export_id = await _export(env, cid, clear, "csv")
        r = await env.client.get(f"{API}/exports/{export_id}/download", key=clear)
        rows = list(csv.reader(io.StringIO(r.text)))[1:]
        assert sorted(row[0] for row in rows) == [n[1:] for n in NUMBERS]
        for key in without:  # the clear export is not readable without the right
            r = await env.client.get(f"{API}/exports/{export_id}/download", key=key)
            assert r.status_code == 403 and not _has_clear(r.text)

    _run(tmp_path, body)


# ----------------------------------------------------------------------- uploads

@pytest.mark.parametrize("filename", [
    "../../escape.txt", "/etc/passwd.txt", "..\\..\\win.csv", "a/../../b.csv",
    "%2e%2e%2fx.txt", "ok\x00.txt", "....//....//x.txt", "CON.txt", "x" * 250 + ".txt"])
def test_upload_filename_never_becomes_a_path(tmp_path: Path, filename: str) -> None:
    async def body(env: ApiEnv) -> None:
        before = {p for p in tmp_path.rglob("*")}
        r = await env.client.post(f"{API}/uploads", key=env.keys["author"],
                                  body=b"+79123450001\n", params={"filename": filename},
                                  headers={"Content-Type": "text/plain"})
        assert r.status_code in (201, 400, 415), r.text
        created = {p for p in tmp_path.rglob("*")} - before
        uploads = env.config.uploads_dir.resolve()
        for path in created:
            if path.is_file() and path.suffix in (".txt", ".csv", ".part", ".dat"):
                assert path.resolve().parent == uploads, path
                assert path.name.startswith("upload-"), path
        if r.status_code == 201:
            file_id = r.json["fileId"]
            assert len(file_id) == 24 and int(file_id, 16) >= 0
            assert filename not in r.text
            stored = list(env.config.uploads_dir.glob(f"upload-{file_id}.*"))
            assert len(stored) == 1 and stored[0].read_bytes() == b"+79123450001\n"
        assert not (tmp_path / "escape.txt").exists()
        assert not (tmp_path.parent / "escape.txt").exists()

    _run(tmp_path, body)


def test_file_ids_are_not_paths(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        env.config.keys_path.parent.mkdir(parents=True, exist_ok=True)
        secret = env.config.uploads_dir.parent / "secret.txt"
        env.config.uploads_dir.mkdir(parents=True, exist_ok=True)
        secret.write_text("+79123450009\n")
        for file_id in ["../secret", "../api_keys", "*", "?" * 24, "..", "", "a b",
                        "../../etc/passwd", "upload-*", "%2e%2e", "\x00"]:
            r = await env.client.post(f"{API}/campaigns", key=env.keys["author"],
                                      json={"sender": "S", "text": "t", "esme": "e",
                                            "fileId": file_id})
            assert r.status_code == 400, (file_id, r.text)
            assert r.json["validationErrors"].get("fileId"), (file_id, r.json)

    _run(tmp_path, body)


# ------------------------------------------------------------------------ exports

def _entropy_bits_per_char(ids: list[str]) -> float:
    counts = Counter("".join(ids))
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def test_export_ids_are_unguessable_and_expired_exports_are_gone(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        cid = await _campaign_with_numbers(env)
        ids = []
        for _ in range(40):
            env.clock[0] += 10
            r = await env.client.post(f"{API}/campaigns/{cid}/exports",
                                      key=env.keys["viewer"], json={"format": "txt"})
            assert r.status_code == 202, r.text
            ids.append(r.json["id"])
        assert len(set(ids)) == len(ids)
        assert all(len(i) == 24 and all(c in "0123456789abcdef" for c in i) for i in ids)
        # 24 hex digits of secrets.token_hex: 96 bits; observed symbols spread evenly
        assert _entropy_bits_per_char(ids) > 3.8
        assert len({i[:4] for i in ids}) > 30  # no shared or sequential prefix
        assert all(cid not in i for i in ids)
        # neighbours of a real id are unknown
        real = ids[0]
        for guess in (real[:-1] + format((int(real[-1], 16) + 1) % 16, "x"), real.upper(),
                      real[:12], real + "0"):
            r = await env.client.get(f"{API}/exports/{guess}/download", key=env.keys["viewer"])
            assert r.status_code == 404, guess

        with trio.fail_after(20):
            while any(e.status.value in ("Queued", "Running")
                      for e in env.app.exports._exports.values()):
                await trio.sleep(0.01)
        files = list(env.config.exports_dir.glob("export-*"))
        assert len(files) == 40
        env.wall[0] += env.config.export_ttl_s + 1
        for export_id in ids:
            r = await env.client.get(f"{API}/exports/{export_id}/download",
                                     key=env.keys["viewer"])
            assert r.status_code == 410, r.text
        env.app.exports.sweep()
        assert list(env.config.exports_dir.glob("export-*")) == []
        env.wall[0] += env.config.export_ttl_s + 1
        env.app.exports.sweep()  # forgotten one more TTL later
        r = await env.client.get(f"{API}/exports/{ids[0]}", key=env.keys["viewer"])
        assert r.status_code == 404

    _run(tmp_path, body, export_queue_size=64)


# ------------------------------------------------------------------- keys and logs

def test_keys_file_holds_hashes_only(tmp_path: Path) -> None:
    async def body(env: ApiEnv) -> None:
        raw = env.config.keys_path.read_text()
        doc = json.loads(raw)
        assert len(doc["keys"]) == len(env.keys)
        for token in env.keys.values():
            key_id, secret = token.split("_", 2)[1:]
            assert secret not in raw and token not in raw
            assert key_id in raw  # the public part indexes the record
        for record in doc["keys"]:
            assert set(record) == {"key_id", "secret_sha256", "role", "clear_numbers", "label",
                                   "created_at", "revoked_at"}
            assert len(record["secret_sha256"]) == 64
        mode = stat.S_IMODE(os.stat(env.config.keys_path).st_mode)
        assert mode == 0o600, oct(mode)

    _run(tmp_path, body)


def _transport_flow_with_faults() -> None:
    """A pool that first binds with a wrong password, then sends to real-looking numbers over
    a connection the simulator drops: bind errors, drops and retries all get logged."""
    from dispatch.simulator import FaultConfig, SimulatorConfig, SmscSimulator
    from dispatch.smpp.text import split_text
    from dispatch.transport.pool import OutboundMessage
    from pool_harness import FAST_RECONNECT, collect, esme_config, start_pool, with_simulator

    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, password="Wr0ngPas",
                                                     reconnect=FAST_RECONNECT), bound=0)
        await collect(pool, bind_failures=1)
        pool.close()
        pool = await start_pool(nursery, esme_config(sim, window=4, reconnect=FAST_RECONNECT))
        msgs = [OutboundMessage(ref=i, source_addr=b"Shop",
                                destination_addr=NUMBERS[i % 3][1:].encode(),
                                segments=split_text("hi")) for i in range(12)]
        nursery.start_soon(pool.submit_many, msgs)
        await collect(pool, outcomes=len(msgs))
        pool.close()

    with_simulator(body, SimulatorConfig(port=0, faults=FaultConfig(
        drop_after_pdus=5, garbage_after_pdus=3, faulty_sessions=2)))


def test_no_secrets_or_clear_numbers_in_logs(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Raw log records carry no key, secret or password; what the log formatter writes
    carries no clear number (callers log masked numbers or hashes; ``redact_digits`` is the
    last line of defence)."""
    from dispatch.logs import JsonLineFormatter

    caplog.set_level(logging.DEBUG)
    tokens: list[str] = []

    async def body(env: ApiEnv) -> None:
        tokens.extend(env.keys.values())
        cid = await _campaign_with_numbers(env)
        clear = env.keys["clear"]
        await env.client.get(f"{API}/campaigns/{cid}/recipients", key=clear)
        await env.client.post(f"{API}/recipients/lookup", key=clear,
                              json={"phoneNumber": NUMBERS[0]})
        await env.client.post(f"{API}/recipients/lookup", key=clear,
                              json={"phoneNumber": "+7912345000x"})
        await env.client.post(f"{API}/campaigns/{cid}/messages", key=env.keys["author"],
                              json={"messages": [{"phoneNumber": "+79123450004"},
                                                 {"phoneNumber": "79123"}]})
        await env.client.post(f"{API}/uploads", key=env.keys["author"],
                              body=b"+79123450005\n", params={"filename": "a.txt"})
        export_id = await _export(env, cid, clear, "csv")
        await env.client.get(f"{API}/exports/{export_id}/download", key=clear)
        for key in (None, "dk_0123456789abcdef_wrong", clear + "x"):
            await env.client.get(f"{API}/campaigns", headers={} if key is None
                                 else {"X-API-Key": key})

    _run(tmp_path, body)
    _transport_flow_with_faults()
    records = caplog.records
    assert len(records) >= 3, "too little logged: the check would be empty"
    formatter = JsonLineFormatter()
    secrets_ = [t.split("_", 2)[2] for t in tokens] + ["Wr0ngPas", "secret"]
    for record in records:
        raw = record.getMessage() + " " + repr(getattr(record, "fields", ""))
        for secret in secrets_:
            assert secret not in raw, (record.name, raw[:300])
        written = formatter.format(record)
        for n in [*NUMBERS, "+79123450004", "+79123450005"]:
            assert n[1:] not in written, (record.name, written[:300])
