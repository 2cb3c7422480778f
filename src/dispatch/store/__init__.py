"""Durable state: the ``Store`` interface (``base``), its SQLite implementation (``sqlite``) and
the async wrapper with the group-commit writer the trio engine uses (``asyncstore``)."""
