"""Fixtures of the store tests: every ``store`` test runs once on a real SQLite file in
tmp_path and once on a fresh database of a throwaway PostgreSQL server (``pg_cluster``),
started once per session and deleted at the end.

Without PostgreSQL binaries the postgres cases are skipped, unless ``DISPATCH_REQUIRE_PG=1``
(CI sets it) turns that into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pg_cluster import PgCluster, find_bin_dir

from dispatch.store import open_store
from dispatch.store.base import Store, StoreConfig

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgCluster]:
    if find_bin_dir() is None:
        message = ("PostgreSQL binaries not found (apt-get install postgresql-15 or set "
                   "DISPATCH_PG_BIN)")
        if os.environ.get("DISPATCH_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = PgCluster.start_new()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgCluster) -> str:
    """A fresh, empty schema on the session's server (its DSN sets the search_path); it goes
    away with the server."""
    return pg_server.create_schema()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreConfig:
    """A config for one store on ``backend``; ``open_store(store_config)`` again opens another
    handle (another "process" or a restart after a crash) on the same data."""
    base = StoreConfig(path=str(tmp_path / "data" / "store.sqlite3"), insert_batch_rows=7,
                       node_timeout_s=0.5)
    if backend == "postgres":
        return replace(base, dsn=request.getfixturevalue("pg_dsn"))
    return base


@pytest.fixture
def store(store_config: StoreConfig) -> Iterator[Store]:
    s = open_store(store_config)
    yield s
    s.close()


@pytest.fixture
def open_more(store_config: StoreConfig) -> Iterator[Callable[..., Store]]:
    """Open further stores on the same data (``node_id=`` names a PostgreSQL node); all are
    closed at the end."""
    opened: list[Store] = []

    def make(node_id: str | None = None, **changes: object) -> Store:
        s = open_store(replace(store_config, **changes), node_id=node_id)  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
