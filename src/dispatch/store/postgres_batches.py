"""The PostgreSQL store's batch plumbing, shared by its dispatch and receipt paths: a batch's
rows as column arrays for ``unnest``, independent writes combined into one statement (one
round trip), and the counter and daily-activity changes of a transaction, written to the
node's own rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg

from dispatch.store.base import COUNTER_FIELDS
from dispatch.store.pg_arrays import Int4s, Int8s, Texts

#: The array type of each column ``as_columns`` makes (``dispatch.store.pg_arrays``).
Column = type[Int8s] | type[Int4s] | type[Texts]
I8, I4, TX = Int8s, Int4s, Texts

Cursor = psycopg.Cursor[tuple[Any, ...]]
Write = tuple[str, list[Any]]

_COUNTER_UPSERT = (
    f"INSERT INTO campaign_counter_rows (campaign_id, node_id, {', '.join(COUNTER_FIELDS)}) "
    "SELECT * FROM unnest(%b::bigint[], %b::text[], "
    + ", ".join("%b::bigint[]" for _ in COUNTER_FIELDS)
    + ") ON CONFLICT (campaign_id, node_id) DO UPDATE SET "
    + ", ".join(f"{f} = campaign_counter_rows.{f} + excluded.{f}" for f in COUNTER_FIELDS))
_DAILY_UPSERT = (
    "INSERT INTO campaign_daily_rows (campaign_id, day, node_id, sent, delivered, failed) "
    "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], "
    "%b::bigint[]) ON CONFLICT (campaign_id, day, node_id) DO UPDATE SET "
    "sent = campaign_daily_rows.sent + excluded.sent, "
    "delivered = campaign_daily_rows.delivered + excluded.delivered, "
    "failed = campaign_daily_rows.failed + excluded.failed")


def as_columns(rows: Sequence[Sequence[Any]], types: Sequence[Column]) -> list[Any]:
    """Row tuples -> one array parameter per column, of the column's type in ``types`` (the
    arrays ``unnest`` turns back into rows; packed by ``pg_arrays``'s fast dumpers)."""
    if not rows:
        return [kind() for kind in types]
    return [kind(col) for kind, col in zip(types, zip(*rows, strict=True), strict=True)]


def combined(cur: Cursor, writes: Sequence[Write]) -> None:
    """Run independent data-modifying statements as one (``WITH w0 AS (..), .. SELECT``):
    one round trip. They must not modify the same row twice."""
    if not writes:
        return
    if len(writes) == 1:
        cur.execute(writes[0][0], writes[0][1])
        return
    sql = ("WITH " + ", ".join(f"w{i} AS ({w[0]})" for i, w in enumerate(writes))
           + " SELECT 1")
    cur.execute(sql, [p for w in writes for p in w[1]])


class Deltas:
    """Counter and daily-activity changes of one transaction, written once at its end to the
    node's own rows (``node_id``; the base row is ``''``)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.counters: dict[int, Counter[str]] = defaultdict(Counter)
        self.daily: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)

    def writes(self) -> list[Write]:
        out: list[Write] = []
        rows = [(cid, self.node_id, *(c[f] for f in COUNTER_FIELDS))
                for cid, c in sorted(self.counters.items()) if any(c.values())]
        if rows:
            out.append((_COUNTER_UPSERT,
                        as_columns(rows, (I8, TX, *(I8 for _ in COUNTER_FIELDS)))))
        daily = [(cid, day, self.node_id, c["sent"], c["delivered"], c["failed"])
                 for (cid, day), c in sorted(self.daily.items()) if any(c.values())]
        if daily:
            out.append((_DAILY_UPSERT, as_columns(daily, (I8, TX, TX, I8, I8, I8))))
        return out

    def flush(self, cur: Cursor) -> None:
        combined(cur, self.writes())
