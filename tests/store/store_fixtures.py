"""Helpers shared by the store tests (imported by name; tests/ has no packages)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from dispatch.campaigns.lifecycle import AuditEntry, Event, StateChange, apply
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.store.base import RecipientRow, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def new_campaign(store: Store, **kw: object) -> Campaign:
    base: dict[str, object] = {"sender": "ACME", "text": "Hi {name}", "author": "ann",
                               "esme": "smsc1"}
    base.update(kw)
    c = Campaign(**base)  # type: ignore[arg-type]
    at = c.created_at or T0
    return store.create_campaign(c, StateChange(CampaignStatus.NEW, "create", "created", at),
                                 AuditEntry(c.author, "create", "", at))


def move(store: Store, cid: int, event: Event, actor: str | None = "mod",
         at: datetime = T0) -> Campaign:
    """Apply a lifecycle ``event`` at ``at`` through the store's transition (as the service
    does)."""
    c = store.get_campaign(cid)
    assert c is not None
    t = apply(event, c.status, c.archived, c.paused_by)
    return store.apply_transition(
        cid, t, StateChange(t.to_status, event.value, "why", at, c.status),
        None if actor is None else AuditEntry(actor, event.value, "n", at))


#: New -> Pending -> Building -> Sending: approved by a moderator, built by the engine.
TO_SENDING = (Event.APPROVE, Event.BUILD, Event.BUILT)


def sending_campaign(store: Store, **kw: object) -> Campaign:
    """A campaign moved to Sending through the lifecycle: only a Sending campaign's
    recipients can be claimed (``claim_for_send``)."""
    c = new_campaign(store, **kw)
    assert c.id is not None
    for event in TO_SENDING:
        c = move(store, c.id, event, "mod" if event is Event.APPROVE else None)
    return c


def rows(n: int, start: int = 0) -> list[RecipientRow]:
    return [RecipientRow(f"+4917{i:09d}", i.to_bytes(16, "big"), f"*******{i % 10000:04d}",
                         {"name": f"n{i}"} if i % 2 else None, i + 1)
            for i in range(start, start + n)]


def query(store: Store, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``?`` placeholders) on a second, independent connection to the store's
    database: what another process (or the engine after a crash) would see committed."""
    config = store.config  # type: ignore[attr-defined]
    if config.dsn:
        import psycopg

        with psycopg.connect(config.dsn) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]
    db = sqlite3.connect(config.path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def end_unmarked(store: Store, cid: int, status: CampaignStatus) -> None:
    """Give the campaign ``status`` and nothing else, on a second connection: what older code
    left when it crashed between an ending transition and the marking of the unsent
    recipients (it marked them in a second transaction; ``apply_transition`` now marks them
    in its own)."""
    config = store.config  # type: ignore[attr-defined]
    sql = "UPDATE campaigns SET status = ? WHERE id = ?"
    if config.dsn:
        import psycopg

        with psycopg.connect(config.dsn) as conn:
            conn.execute(sql.replace("?", "%s"), (status.value, cid))
        return
    db = sqlite3.connect(config.path)
    try:
        db.execute(sql, (status.value, cid))
        db.commit()
    finally:
        db.close()
