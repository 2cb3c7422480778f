"""schemathesis against the OpenAPI document, over a real server socket: no 500s, and the
responses match the document, on each store backend (SQLite, and a throwaway PostgreSQL
server: it refuses values SQLite keeps, such as a NUL in text). The server runs in its own
thread (its own trio loop, like the engine's); schemathesis calls it with ``requests``.
Marked slow; skipped without schemathesis."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from control_env import api_env

from control.serve import serve_api

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from schemathesis.checks import positive_data_acceptance  # noqa: E402

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.append(_STORE_TESTS)

from pg_cluster import PgCluster, find_bin_dir  # noqa: E402

pytestmark = pytest.mark.slow


def _serve_in_thread(tmp_path, dsn: str, ready: queue.Queue) -> None:
    async def main() -> None:
        async with api_env(tmp_path, rate_limit_per_s=10_000.0, rate_limit_burst=10_000,
                           max_upload_bytes=64 * 1024, store_dsn=dsn) as env, \
                trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, env.app, "127.0.0.1", 0)
            campaign = await env.create_campaign()
            ready.put((port, env.keys["admin"], campaign["id"], trio.lowlevel.current_trio_token(),
                       nursery.cancel_scope))
            await trio.sleep_forever()

    trio.run(main)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_schema(request, tmp_path_factory) -> Iterator[object]:
    with contextlib.ExitStack() as stack:
        dsn = ""
        if request.param == "postgres":
            if find_bin_dir() is None:
                if os.environ.get("DISPATCH_REQUIRE_PG") == "1":
                    pytest.fail("PostgreSQL binaries not found")
                pytest.skip("PostgreSQL binaries not found (apt-get install postgresql-15)")
            dsn = stack.enter_context(PgCluster.start_new()).create_schema()
        ready: queue.Queue = queue.Queue()
        thread = threading.Thread(target=_serve_in_thread,
                                  args=(tmp_path_factory.mktemp("fuzz"), dsn, ready),
                                  daemon=True)
        thread.start()
        port, key, _campaign_id, token, scope = ready.get(timeout=30)
        schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
        schema.config.update(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key})
        yield schema
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=10)


def test_api_matches_its_document(api_schema):
    # One hypothesis run per operation (schemathesis' pytest plugin does not load under
    # this pytest version, so the operations are walked here).
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=8, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def check(case):
            # Cross-field rules (endAt after startAt, an empty file) cannot be said in JSON
            # Schema, so "schema-valid data must be accepted" is not checked; everything else
            # (no 5xx, documented status codes, content types, response schemas) is.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # collect all, report together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
