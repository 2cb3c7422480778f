"""Helpers shared by the store tests (imported by name; tests/ has no packages)."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatch.campaigns.lifecycle import AuditEntry, StateChange
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.store.base import RecipientRow
from dispatch.store.sqlite import SqliteStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def new_campaign(store: SqliteStore, **kw: object) -> Campaign:
    base: dict[str, object] = {"sender": "ACME", "text": "Hi {name}", "author": "ann",
                               "esme": "smsc1"}
    base.update(kw)
    c = Campaign(**base)  # type: ignore[arg-type]
    at = c.created_at or T0
    return store.create_campaign(c, StateChange(CampaignStatus.NEW, "create", "created", at),
                                 AuditEntry(c.author, "create", "", at))


def rows(n: int, start: int = 0) -> list[RecipientRow]:
    return [RecipientRow(f"+4917{i:09d}", i.to_bytes(16, "big"), f"*******{i % 10000:04d}",
                         {"name": f"n{i}"} if i % 2 else None, i + 1)
            for i in range(start, start + n)]
