"""Fixtures of the store tests: a real SQLite file in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatch.store.base import StoreConfig
from dispatch.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(StoreConfig(path=str(tmp_path / "data" / "store.sqlite3"),
                                insert_batch_rows=7))
    yield s
    s.close()
