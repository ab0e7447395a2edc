"""Whether a path names a PostgreSQL database: asked on every open, so apart from
:mod:`~rxdb.engines.postgres.dsn`, which a program that only uses SQLite never loads.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

__all__ = ("SCHEMES", "is_postgres_url")

SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return text[:13].lower().startswith(SCHEMES)
