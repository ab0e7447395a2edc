"""asyncpg's exceptions as rxdb's errors.

The server's errors carry a SQLSTATE and become what :func:`rxdb.errors.from_postgres`
makes of it. asyncpg's own, raised before the server sees a statement (a value its codec
cannot send, a wrong number of arguments), are :class:`rxdb.ProgrammingError`. A lost
connection is :class:`rxdb.OperationalError` (SQLSTATE ``08006``, connection_failure).

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncpg

from rxdb.errors import DatabaseError, OperationalError, ProgrammingError, from_postgres

__all__ = ("DRIVER_ERRORS", "LOST", "from_server", "is_lost", "translate")

DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
"""What asyncpg raises for a statement: catch these, :func:`translate` them."""

LOST = "08006"
"""SQLSTATE connection_failure, given to errors of a connection that is gone."""


def from_server(error: BaseException) -> bool:
    """Whether ``error`` is the server's answer (it has a severity), not asyncpg's own."""
    return isinstance(error, asyncpg.PostgresError) and getattr(error, "severity", None) is not None


def is_lost(error: BaseException) -> bool:
    """Whether ``error`` says the connection is gone (the server ended it, the network
    failed, it was closed under the statement) or unusable (asyncpg lost track of its state:
    seen when the server ends a connection just as a statement starts)."""
    return isinstance(
        error,
        asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.exceptions.InternalClientError
        | OSError,
    ) or (isinstance(error, asyncpg.InterfaceError) and "closed" in str(error))


def translate(error: BaseException, sql: str | None, context: str = "") -> DatabaseError:
    """rxdb's error for what asyncpg raised running ``sql``."""
    if is_lost(error):
        lost = OperationalError(
            f"{context + ': ' if context else ''}the connection to PostgreSQL was lost "
            f"({error or type(error).__name__}); whatever was not committed is rolled back",
            sql=sql,
            sqlstate=LOST,
        )
        lost.__cause__ = error
        return lost
    if isinstance(error, asyncpg.PostgresError) and from_server(error):
        return from_postgres(error, sql, context)
    refused = ProgrammingError(f"{context + ': ' if context else ''}{error}", sql=sql)
    refused.__cause__ = error
    return refused
