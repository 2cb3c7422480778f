"""The control API over a real CampaignService and a real store (SQLite in tmp_path, or
PostgreSQL) (helpers).

Tests are plain functions that ``trio.run`` an ``async with api_env(tmp_path) as env:`` body;
the export runner runs in the env's nursery like it does in the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from control_asgi import TrioClient

from control.app import ControlApp, create_app
from control.config import ControlConfig
from control.exports import ExportRunner, service_source
from control.keys import KeyStore, Role
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.ingest import ctn_hash, mask_number, normalize_phone
from dispatch.store import open_store
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig

HASH_KEY = bytes(range(16))


def prepare_number(text: str) -> tuple[str, bytes, str]:
    digits, reason = normalize_phone(text)
    if digits is None:
        raise ValueError(reason)
    return digits, ctn_hash(HASH_KEY, digits), mask_number(digits)


@dataclasses.dataclass
class ApiEnv:
    app: ControlApp
    client: TrioClient
    service: CampaignService
    store: AsyncStore
    config: ControlConfig
    keys: dict[str, str]  # role name (or "clear") -> token
    clock: list[float]  # the rate limiter's monotonic clock
    wall: list[float]  # the export runner's wall clock

    async def create_campaign(self, **fields: Any) -> dict[str, Any]:
        body = {"sender": "ACME", "text": "Hello {name}", "esme": "smsc1", **fields}
        r = await self.client.post("/api/v1/campaigns", key=self.keys["author"], json=body)
        assert r.status_code == 201, r.text
        return r.json

    async def upload_recipients(self, text: str = "+79123450001\n") -> str:
        """Upload a recipient file; its ``fileId`` (a bulk campaign needs one to be approved)."""
        r = await self.client.post("/api/v1/uploads", key=self.keys["author"],
                                   body=text.encode(), params={"filename": "numbers.txt"},
                                   headers={"Content-Type": "text/plain"})
        assert r.status_code == 201, r.text
        return str(r.json["fileId"])

    async def create_bulk_campaign(self, **fields: Any) -> dict[str, Any]:
        """A bulk campaign with an uploaded recipient file (one that can be approved)."""
        return await self.create_campaign(fileId=await self.upload_recipients(), **fields)


@contextlib.asynccontextmanager
async def api_env(tmp_path: Path, *, export_source: Any = None, app_kw: Any = None,
                  store_dsn: str = "", service_config: ServiceConfig | None = None,
                  **config: Any) -> AsyncIterator[ApiEnv]:
    """``export_source`` wraps the real service source (to gate it); ``app_kw`` goes to
    ``create_app``; ``store_dsn`` selects a PostgreSQL store instead of SQLite in tmp_path;
    ``service_config``: the service's limits (default: a pending capacity of 1000);
    the rest goes to ``ControlConfig``."""
    app_kw = app_kw or {}
    cfg = ControlConfig(data_dir=str(tmp_path / "data"), **config)
    store = AsyncStore(open_store(StoreConfig(path=str(tmp_path / "store.sqlite3"),
                                              dsn=store_dsn)))
    service = CampaignService(store, service_config or ServiceConfig(max_pending_messages=1000),
                              clock=lambda: datetime.now(UTC), prepare_number=prepare_number)
    key_store = KeyStore(cfg.keys_path)
    tokens = {role.value: key_store.create_key(role, label=f"{role.value}-user")[0]
              for role in Role}
    tokens["clear"] = key_store.create_key(Role.ADMIN, clear_numbers=True, label="dpo")[0]
    clock = [1000.0]
    wall = [time.time()]
    source = export_source(service_source(service)) if export_source else service_source(service)
    runner = ExportRunner(source, cfg.exports_dir, ttl_s=cfg.export_ttl_s,
                          clock=lambda: wall[0])
    app = create_app(service, cfg, keys=key_store, prepare_number=prepare_number,
                     clock=lambda: clock[0], exports=runner, **app_kw)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.exports.run)
            yield ApiEnv(app, TrioClient(app), service, store, cfg, tokens, clock, wall)
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()
