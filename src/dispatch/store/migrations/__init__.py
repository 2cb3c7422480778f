"""Versioned PostgreSQL schema migrations, applied at store start and by ``dispatch migrate``.

Each migration is a numbered step in ``postgres.MIGRATIONS`` (append, never edit). The tables
both backends share come from ``dispatch.store.schema`` (one SQL text, the dialect's words
filled in), so SQLite and PostgreSQL keep one schema; PostgreSQL-only steps (the cluster
tables, lease owners) follow in between. The version numbers therefore count PostgreSQL's own
steps; SQLite keeps its own ``schema_version`` sequence in ``dispatch.store.sqlite``.

The runner takes a transaction-scoped advisory lock first, so N engine nodes starting at once
against one database apply each step exactly once (the others wait, then find nothing to do),
and applies every pending step in that one transaction: PostgreSQL's DDL is transactional, so a
failed step leaves the database at the old version, never half-migrated.
"""

from __future__ import annotations

from dispatch.store.migrations.postgres import MIGRATIONS, Migration, migrate

__all__ = ["MIGRATIONS", "Migration", "migrate"]
