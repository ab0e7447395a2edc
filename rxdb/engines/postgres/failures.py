"""asyncpg's exceptions as rxdb's errors.

The server's errors carry a SQLSTATE and become what :func:`rxdb.errors.from_postgres`
makes of it. asyncpg's own, raised before the server sees a statement (a value its codec
cannot send, a wrong number of arguments), are :class:`rxdb.ProgrammingError`. A lost
connection is :class:`rxdb.OperationalError` with the SQLSTATE the server gave as it ended
the session (``57P01`` admin_shutdown: ``pg_terminate_backend``, a fast shutdown or restart),
or ``08006`` (connection_failure) where it said nothing (a network failure): :func:`ended`
tells either kind.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncpg

from rxdb.errors import DatabaseError, OperationalError, ProgrammingError, from_postgres

__all__ = ("DRIVER_ERRORS", "LOST", "ended", "from_server", "is_lost", "translate")

DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
"""What asyncpg raises for a statement: catch these, :func:`translate` them."""

LOST = "08006"
"""SQLSTATE connection_failure, given to errors of a connection that is gone when the server
said nothing of why."""

# The server ending the session: admin_shutdown, crash_shutdown, idle_session_timeout,
# idle_in_transaction_session_timeout (class 08, connection_exception, is all of that kind).
_ENDED_BY_SERVER = frozenset({"57P01", "57P02", "57P05", "25P03"})


def from_server(error: BaseException | None) -> bool:
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


def ended(error: DatabaseError) -> bool:
    """Whether ``error`` (as :func:`translate` made it) says the connection is gone."""
    state = error.sqlstate
    return state is not None and (state.startswith("08") or state in _ENDED_BY_SERVER)


def translate(error: BaseException, sql: str | None, context: str = "") -> DatabaseError:
    """rxdb's error for what asyncpg raised running ``sql``."""
    if is_lost(error):
        # asyncpg keeps the error the server sent before it closed the connection (a FATAL
        # admin_shutdown, say) as the cause of its own.
        told = next((e for e in (error, error.__cause__) if from_server(e)), None)
        lost = OperationalError(
            f"{context + ': ' if context else ''}the connection to PostgreSQL was lost "
            f"({error or type(error).__name__}); whatever was not committed is rolled back",
            sql=sql,
            sqlstate=getattr(told, "sqlstate", None) or LOST,
        )
        lost.__cause__ = error
        return lost
    if isinstance(error, asyncpg.PostgresError) and from_server(error):
        return from_postgres(error, sql, context)
    refused = ProgrammingError(f"{context + ': ' if context else ''}{error}", sql=sql)
    refused.__cause__ = error
    return refused
