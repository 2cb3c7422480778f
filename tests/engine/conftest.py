"""Fixtures of the engine tests: a throwaway PostgreSQL database for the cluster cases."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def _load_pg_cluster() -> ModuleType:
    """tests/store/pg_cluster.py (a plain module there, not a package member)."""
    path = Path(__file__).resolve().parents[1] / "store" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("pg_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pg_cluster", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A database on a PostgreSQL server of its own, gone after the test. Skipped without the
    binaries, unless DISPATCH_REQUIRE_PG=1 (CI) makes that a failure."""
    pg_cluster = _load_pg_cluster()
    if pg_cluster.find_bin_dir() is None:
        if os.environ.get("DISPATCH_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL binaries not found")
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql-15)")
    with pg_cluster.PgCluster.start_new() as pg:
        yield pg.create_database("engine")
