"""The security tests drive the real control app through the control tests' helpers
(``tests/control/control_env.py``: a real service over a SQLite store in tmp_path). The
PostgreSQL outage tests get a throwaway server they may crash (``pg``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_CONTROL_TESTS = str(Path(__file__).resolve().parents[1] / "control")
if _CONTROL_TESTS not in sys.path:
    sys.path.append(_CONTROL_TESTS)
_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.append(_STORE_TESTS)

from pg_cluster import PgCluster, find_bin_dir  # noqa: E402


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL server with ``synchronous_commit = on``: an immediate stop is a
    server crash, and with it off the server acknowledges commits a crash then loses."""
    if find_bin_dir() is None:
        if os.environ.get("DISPATCH_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL binaries not found")
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql-15)")
    with PgCluster.start_new(settings={"synchronous_commit": "on"}) as server:
        yield server
