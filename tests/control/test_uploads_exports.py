"""Streamed uploads (413 past the cap, 415 for other formats) and the export lifecycle."""

from __future__ import annotations

import csv
import io
import shutil

import trio
from control_env import api_env
from test_recipients_api import NUMBERS, active_transactional

API = "/api/v1"


def test_upload_streams_to_the_data_dir_and_feeds_create(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            author = env.keys["author"]
            body = "".join(f"+7912345{i:04d}\n" for i in range(2000)).encode()
            r = await env.client.post(f"{API}/uploads", key=author, body=body,
                                      params={"filename": "list.txt"},
                                      headers={"Content-Type": "text/plain"}, chunk_size=1000)
            assert r.status_code == 201, r.text
            assert r.json["bytes"] == len(body) and r.json["format"] == "txt"
            stored = list(env.config.uploads_dir.iterdir())
            assert len(stored) == 1 and stored[0].read_bytes() == body

            c = await env.create_campaign(fileId=r.json["fileId"])
            assert c["hasRecipientFile"] is True
            campaign = await env.service.get(__import__("uuid").UUID(c["id"]))
            assert campaign.source_path == str(stored[0])

            r = await env.client.post(f"{API}/campaigns", key=author,
                                      json={"sender": "A", "text": "t", "esme": "e",
                                            "fileId": "doesnotexist"})
            assert r.status_code == 400 and r.json["validationErrors"] == {
                "fileId": "Unknown file"}
    trio.run(main)


def test_upload_over_the_cap_is_413_and_leaves_nothing(tmp_path):
    async def main():
        async with api_env(tmp_path, max_upload_bytes=10_000) as env:
            author = env.keys["author"]
            body = b"+79123450001\n" * 2000  # 26 kB, streamed without Content-Length
            r = await env.client.post(f"{API}/uploads", key=author, body=body,
                                      params={"filename": "big.csv"}, content_length=False,
                                      headers={"Content-Type": "text/csv"}, chunk_size=4096)
            assert r.status_code == 413
            assert r.json["message"] == "File too large. Maximum 9.8 KB"
            r = await env.client.post(f"{API}/uploads", key=author, body=body,
                                      params={"filename": "big.csv"})
            assert r.status_code == 413  # refused from the declared Content-Length
            assert list(env.config.uploads_dir.iterdir()) == []
    trio.run(main)


def test_upload_wrong_formats(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            author = env.keys["author"]
            cases = [({"filename": "list.xlsx"}, "text/plain", b"1\n", 415),
                     ({"filename": "list.txt"}, "image/png", b"1\n", 415),
                     ({"filename": "list.txt"}, "text/plain", b"\x89PNG\x00\x00", 415),
                     ({"filename": "list.txt"}, "text/plain", b"", 400),
                     ({"name": "list.txt"}, "text/plain", b"1\n", 400)]
            for params, ctype, body, status in cases:
                r = await env.client.post(f"{API}/uploads", key=author, body=body,
                                          params=params, headers={"Content-Type": ctype})
                assert r.status_code == status, (params, ctype, r.text)
                assert r.json["message"]
            r = await env.client.post(f"{API}/uploads", key=env.keys["moderator"], body=b"1\n")
            assert r.status_code == 403
    trio.run(main)


async def wait_status(env, export_id, wanted, key):
    with trio.fail_after(10):
        while True:
            r = await env.client.get(f"{API}/exports/{export_id}", key=key)
            assert r.status_code == 200
            if r.json["status"] in wanted:
                return r.json
            await trio.sleep(0.01)


def test_export_lifecycle_download_masking_and_expiry(tmp_path):
    gate = trio.Event()

    def gated(source):
        async def page(*args):
            await gate.wait()
            return await source(*args)
        return page

    async def main():
        async with api_env(tmp_path, export_source=gated, export_ttl_s=60.0) as env:
            cid = await active_transactional(env)
            r = await env.client.post(f"{API}/campaigns/{cid}/messages", key=env.keys["author"],
                                      json={"messages": [{"phoneNumber": n} for n in NUMBERS]})
            assert r.status_code == 202
            viewer, clear = env.keys["viewer"], env.keys["clear"]

            r = await env.client.post(f"{API}/campaigns/{cid}/exports", key=viewer,
                                      json={"format": "csv"})
            assert r.status_code == 202 and r.json["status"] in ("Queued", "Running")
            assert r.headers["location"] == f"/api/v1/exports/{r.json['id']}"
            export_id = r.json["id"]
            await wait_status(env, export_id, {"Running"}, viewer)
            r = await env.client.get(f"{API}/exports/{export_id}/download", key=viewer)
            assert r.status_code == 409 and "Running" in r.json["message"]
            gate.set()
            done = await wait_status(env, export_id, {"Done", "Failed"}, viewer)
            assert done["status"] == "Done" and done["rows"] == 3

            r = await env.client.get(f"{API}/exports/{export_id}/download", key=viewer)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/csv")
            assert "attachment" in r.headers["content-disposition"]
            rows = list(csv.reader(io.StringIO(r.text)))
            assert rows[0][:3] == ["recipient", "ctn_hash", "stage"]
            assert [row[0][-4:] for row in rows[1:]] == ["0001", "0002", "0003"]
            assert "79123450001" not in r.text

            r = await env.client.post(f"{API}/campaigns/{cid}/exports", key=clear,
                                      json={"format": "txt"})
            txt = await wait_status(env, r.json["id"], {"Done", "Failed"}, clear)
            r = await env.client.get(f"{API}/exports/{txt['id']}/download", key=clear)
            assert r.text.splitlines() == [n[1:] for n in NUMBERS]
            r = await env.client.get(f"{API}/exports/{txt['id']}/download", key=viewer)
            assert r.status_code == 403

            env.wall[0] += 61
            r = await env.client.get(f"{API}/exports/{export_id}", key=viewer)
            assert r.json["status"] == "Expired"
            r = await env.client.get(f"{API}/exports/{export_id}/download", key=viewer)
            assert r.status_code == 410 and r.json["error"] == "Gone"
            assert not any(env.config.exports_dir.glob(f"export-{export_id}*"))

            r = await env.client.post(f"{API}/campaigns/{cid}/exports", key=viewer,
                                      json={"format": "xlsx"})
            assert r.status_code == 400 and "format" in r.json["validationErrors"]
    trio.run(main)


def test_a_failed_export_says_so_and_is_not_downloadable(tmp_path):
    async def main():
        async with api_env(tmp_path) as env:
            cid = await active_transactional(env)
            viewer = env.keys["viewer"]
            # The export directory is gone and a file stands in its place: the build fails
            # on the real filesystem.
            directory = env.config.exports_dir
            shutil.rmtree(directory)
            directory.write_text("not a directory")
            r = await env.client.post(f"{API}/campaigns/{cid}/exports", key=viewer,
                                      json={"format": "csv"})
            assert r.status_code == 202
            failed = await wait_status(env, r.json["id"], {"Done", "Failed"}, viewer)
            assert failed["status"] == "Failed" and failed["error"] == "the export file could not be written"
            r = await env.client.get(f"{API}/exports/{failed['id']}/download", key=viewer)
            assert r.status_code == 409
            assert r.json["message"] == ("Export failed: the export file could not be written. "
                                         "Create a new export")
    trio.run(main)
