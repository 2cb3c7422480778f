"""PostgreSQL-only behaviour of the store: versioned migrations (at open, concurrent, refused
when newer, ``dispatch migrate``), backend selection by config, and the contract that the
common suite (run on both backends) cannot see: one transaction's work is all-or-nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from store_fixtures import T0, new_campaign, rows, sending_campaign

from dispatch import cli
from dispatch.engine.config import load_config
from dispatch.store import cluster_of, migrate_store, open_store
from dispatch.store.base import StoreConfig, SubmitKind, SubmitOutcome
from dispatch.store.cluster import SingleNode
from dispatch.store.migrations import MIGRATIONS
from dispatch.store.postgres import PostgresStore
from dispatch.store.sqlite import SqliteStore


def versions(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


def test_schema_is_migrated_at_open_and_reopened(pg_dsn: str) -> None:
    s = PostgresStore(StoreConfig(dsn=pg_dsn))
    c = new_campaign(s)
    s.close()
    assert versions(pg_dsn) == [m.version for m in MIGRATIONS]
    s = PostgresStore(StoreConfig(dsn=pg_dsn))  # nothing pending: a no-op
    assert s.schema_version == len(MIGRATIONS)
    assert s.get_campaign(c.id or 0) == c
    s.close()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0)")
    with pytest.raises(RuntimeError, match="newer"):
        PostgresStore(StoreConfig(dsn=pg_dsn))


def test_nodes_starting_together_apply_each_step_once(pg_dsn: str) -> None:
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []
    lock = threading.Lock()

    def start() -> None:
        try:
            s = PostgresStore(StoreConfig(dsn=pg_dsn))
            with lock:
                stores.append(s)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(stores) == 4
    assert versions(pg_dsn) == [m.version for m in MIGRATIONS]
    for s in stores:
        s.close()


def test_open_without_migrating_refuses_an_old_schema(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        from dispatch.store.migrations import migrate

        assert migrate(conn, 0, target=1) == (0, 1)
    with pytest.raises(RuntimeError, match="dispatch migrate"):
        PostgresStore(StoreConfig(dsn=pg_dsn), migrate=False)
    assert migrate_store(StoreConfig(dsn=pg_dsn)) == (1, len(MIGRATIONS))
    PostgresStore(StoreConfig(dsn=pg_dsn), migrate=False).close()


def test_migrate_command_and_backend_selection_by_env(pg_dsn: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DISPATCH__STORE__DSN", pg_dsn)
    assert cli.main(["migrate", "--data-dir", str(tmp_path)]) == 0
    assert f"version 0 -> {len(MIGRATIONS)}" in capsys.readouterr().out
    assert cli.main(["migrate", "--data-dir", str(tmp_path)]) == 0
    assert "already current" in capsys.readouterr().out
    config = load_config(None)
    assert config.store.dsn == pg_dsn
    pg = open_store(config.store, node_id="n1")
    assert isinstance(pg, PostgresStore) and pg.node_id == "n1"
    assert cluster_of(pg) is pg
    pg.close()
    monkeypatch.delenv("DISPATCH__STORE__DSN")
    lite = open_store(StoreConfig(path=str(tmp_path / "x.sqlite3")))
    assert isinstance(lite, SqliteStore) and isinstance(cluster_of(lite), SingleNode)
    lite.close()


def test_a_failed_batch_leaves_nothing_behind(pg_dsn: str) -> None:
    s = PostgresStore(StoreConfig(dsn=pg_dsn))
    cid = sending_campaign(s).id or 0
    s.add_recipients(cid, rows(3), T0)
    a, b, _ = s.claim_for_send(cid, 3, T0)
    too_many = tuple(str(i) for i in range(64))  # over the 63-segment receipt mask
    with pytest.raises(ValueError, match="segments"):
        s.record_submit_results([SubmitOutcome(a.id, SubmitKind.ACCEPTED, "e", ("x",)),
                                 SubmitOutcome(b.id, SubmitKind.ACCEPTED, "e", too_many)], T0)
    k = s.counters(cid)
    assert (k.inflight, k.sent) == (3, 0)
    s.close()
