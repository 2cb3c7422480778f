"""Durable state: the ``Store`` interface (``base``), its SQLite implementation (``sqlite``),
the PostgreSQL one for several nodes (``postgres``), the cluster primitives (``cluster``) and
the async wrapper with the group-commit writer the trio engine uses (``asyncstore``).

``open_store(config)`` is the one place that picks the backend: ``[store] dsn`` (or
``DISPATCH__STORE__DSN``) set selects PostgreSQL, else the SQLite file at ``[store] path``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from dispatch.store.base import Store, StoreConfig
    from dispatch.store.cluster import Cluster


def is_postgres(config: StoreConfig) -> bool:
    return bool(config.dsn)


def open_store(config: StoreConfig, node_id: str | None = None) -> Store:
    """The configured store, schema migrated. ``node_id`` names this node in a PostgreSQL
    cluster (default: ``config.node_id``, else a new host-pid-random id); SQLite ignores it.
    Imports are local so an SQLite deployment never needs psycopg."""
    if is_postgres(config):
        from dispatch.store.postgres import PostgresStore

        return PostgresStore(config, node_id=node_id)
    from dispatch.store.sqlite import SqliteStore

    return SqliteStore(config)


def open_engine_stores(config: StoreConfig) -> tuple[Store, Store]:
    """The engine's two stores: the one it writes through, and the one its API and control
    loop read through (a second SQLite connection: WAL readers never wait for the writer;
    for PostgreSQL a second connection pool, or the same store, which is safe from two
    threads). With ``[store] process`` (by default for SQLite) the writing store runs in a
    process of its own (``dispatch.store.process``) and the reader stays in this one."""
    if not store_in_process(config):
        store = open_store(config)
        return store, store if is_postgres(config) else open_store(config)
    from dispatch.store.process import ClusterStoreProcess, StoreProcess

    if is_postgres(config):
        from dispatch.store.postgres import PostgresStore
        from dispatch.store.postgres_cluster import default_node_id

        # one node id for the node's two stores, fixed here (the child would make its own)
        config = replace(config, node_id=config.node_id or default_node_id())
        # (the proxies get the Store methods at import, which mypy cannot see: cast)
        primary = cast("Store", ClusterStoreProcess(config))
        opener: Callable[[], Store] = partial(PostgresStore, config, migrate=False)
    else:
        primary = cast("Store", StoreProcess(config))
        opener = partial(open_store, config)
    try:
        return primary, opener()
    except BaseException:
        primary.close()
        raise


def store_in_process(config: StoreConfig) -> bool:
    """Whether the engine's writing store runs in a process of its own: ``[store] process``,
    or unset, for SQLite only (see ``StoreConfig.process``)."""
    return config.process if config.process is not None else not is_postgres(config)


def cluster_of(store: Store) -> Cluster:
    """The store's cluster primitives: the PostgreSQL store itself, a single always-live node
    for the embedded SQLite store."""
    from dispatch.store.cluster import SingleNode

    if hasattr(store, "take_over_dead_nodes"):
        return store  # type: ignore[return-value]
    return SingleNode()


def migrate_store(config: StoreConfig) -> tuple[int, int]:
    """``dispatch migrate``: bring the configured database to this code's schema without
    starting anything; returns (version before, version after)."""
    if is_postgres(config):
        from datetime import UTC, datetime

        import psycopg

        from dispatch.store import migrations
        from dispatch.store.rows import to_us

        with psycopg.connect(config.dsn or "", autocommit=True) as conn:
            return migrations.migrate(conn, to_us(datetime.now(UTC)))
    import sqlite3
    from contextlib import closing

    from dispatch.store.sqlite import SqliteStore

    before = 0
    try:
        with closing(sqlite3.connect(f"file:{config.path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            before = int(row[0] or 0)
    except sqlite3.Error:
        before = 0
    store = SqliteStore(config)  # migrates at open
    try:
        return before, int(store.schema_version)
    finally:
        store.close()
