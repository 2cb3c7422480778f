"""The PostgreSQL store's fast array parameters (``dispatch.store.pg_arrays``): what the server
reads back is what was sent, for every shape a batch takes (repeated values, NULLs, non-ASCII
text, empty strings, empty arrays, the extremes of each integer type), and an integer that does
not fit its column is refused before anything is sent."""

from __future__ import annotations

import struct
from typing import Any

import psycopg
import pytest

from dispatch.store.pg_arrays import Int4s, Int8s, Texts

TEXTS: list[list[str | None]] = [
    [],
    ["sim"] * 5,
    [None] * 3,
    ["accepted", "failed", "retry", "unknown"],
    ["", "a", ""],
    ["Grüße", "日本語", "emoji 😀", "quote \" and \\ and ,{}"],
    ["x", None, "y", None],
    [None, "only one"],
    [f"{i:X}" for i in range(2000)],
]
INT8S: list[list[int | None]] = [
    [], [0], [2**63 - 1, -(2**63), 1, -1], list(range(10**6, 10**6 + 2000)), [7] * 4,
    [None, 5, None], [None],
]
INT4S: list[list[int | None]] = [[], [2**31 - 1, -(2**31), 0], [1, None, 3], list(range(64))]


def _round_trip(dsn: str, sql: str, value: Any) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql, (value,)).fetchone()
        assert row is not None
        return row[0]


@pytest.mark.parametrize("values", TEXTS, ids=range(len(TEXTS)))
def test_text_arrays_reach_the_server_as_they_were(pg_dsn: str, values: list[str | None]) -> None:
    assert _round_trip(pg_dsn, "SELECT %b::text[]", Texts(values)) == values
    # what unnest makes of it, element by element, in order
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT v FROM unnest(%b::text[]) WITH ORDINALITY AS u(v, i) "
                            "ORDER BY i", (Texts(values),)).fetchall()
    assert [r[0] for r in rows] == values


@pytest.mark.parametrize("values", INT8S, ids=range(len(INT8S)))
def test_bigint_arrays_reach_the_server_as_they_were(pg_dsn: str,
                                                     values: list[int | None]) -> None:
    assert _round_trip(pg_dsn, "SELECT %b::bigint[]", Int8s(values)) == values


@pytest.mark.parametrize("values", INT4S, ids=range(len(INT4S)))
def test_int_arrays_reach_the_server_as_they_were(pg_dsn: str,
                                                  values: list[int | None]) -> None:
    assert _round_trip(pg_dsn, "SELECT %b::int[]", Int4s(values)) == values


def test_an_integer_beyond_its_type_is_refused_before_sending(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        with pytest.raises(struct.error):
            conn.execute("SELECT %b::int[]", (Int4s([1, 2**31]),))
        with pytest.raises(struct.error):
            conn.execute("SELECT %b::bigint[]", (Int8s([2**63]),))
        # the connection is still usable
        assert conn.execute("SELECT 1").fetchone() == (1,)
