"""Every error rxdb raises, in one place.

The database's own failures keep their code (SQLite's result code, PostgreSQL's SQLSTATE),
message and the statement that failed, and subclass the builtin a caller would already catch
where one fits.
"""

from __future__ import annotations

import sqlite3

__all__ = (
    "BusyError",
    "ClosedError",
    "ConnectionLostError",
    "DatabaseError",
    "DuplicateKeyError",
    "HubError",
    "IntegrityError",
    "InterruptError",
    "LimitError",
    "NameNotFoundError",
    "NameTakenError",
    "OperationalError",
    "ProgrammingError",
    "ProtocolError",
    "ReadOnlyError",
    "ReentrancyError",
    "RemoteError",
    "RowTypeError",
    "RxdbError",
    "ServerRefusedError",
    "SpawnError",
    "TransactionAbortedError",
    "WrongLoopError",
)


class RxdbError(Exception):
    """The root of every error rxdb raises."""


class DatabaseError(RxdbError):
    """Raised when the database (SQLite or PostgreSQL) refuses or fails a statement.

    :ivar sqlite_errorcode: SQLite's extended result code, or ``None`` when the failure came
        from the sqlite3 module before SQLite saw the statement (e.g. wrong parameter count),
        or from PostgreSQL.
    :ivar sqlite_errorname: the symbolic name of that code, e.g. ``"SQLITE_CONSTRAINT_UNIQUE"``.
    :ivar sqlstate: PostgreSQL's SQLSTATE, e.g. ``"23505"`` (unique_violation); ``None`` for
        SQLite, and for failures found before the server saw the statement.
    :ivar sql: the statement that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        sql: str | None = None,
        sqlite_errorcode: int | None = None,
        sqlite_errorname: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.sql = sql
        self.sqlite_errorcode = sqlite_errorcode
        self.sqlite_errorname = sqlite_errorname
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        base = super().__str__()
        text = f"{base} (in: {_shorten(self.sql)})" if self.sql else base
        if text.isascii():
            return text
        # A lone surrogate (in the SQL that failed for holding one) cannot be printed or
        # logged to a UTF-8 stream: escaped, so that reporting the error cannot fail too.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class IntegrityError(DatabaseError):
    """Raised when a statement would break a constraint (UNIQUE, NOT NULL, FOREIGN KEY, CHECK)."""


class OperationalError(DatabaseError):
    """Raised for errors SQLite reports while preparing or running: bad SQL, a missing table,
    a busy or locked database, an interrupted statement."""


class ProgrammingError(DatabaseError):
    """Raised when a call is wrong on its face: wrong number or type of parameters, several
    statements where one is expected."""


class RowTypeError(ProgrammingError, TypeError):
    """Raised when the columns of a result do not fit the ``row_type`` asked for (a required
    field with no column, a column with no field); the message names both. A watch hands it
    to ``on_error``."""


class DuplicateKeyError(ProgrammingError, ValueError):
    """Raised (as ``on_error`` of ``stream.diffs(key)``) when two rows of a result have the
    same key: a diff matches rows by key, so the key must be unique; the message names it."""


class BusyError(OperationalError):
    """Raised when another connection (often another process) held the database lock for
    longer than the database's ``busy_timeout``. Nothing of the statement was written; retry,
    or open the database with a longer ``busy_timeout``. On PostgreSQL also for a lock wait
    past ``busy_timeout`` (``lock_not_available``), a deadlock and a serialization failure:
    the transaction was rolled back, retry it."""


class ReadOnlyError(OperationalError):
    """Raised when a statement would write where only reads are allowed: inside
    ``db.read()``/``db.unsafe_read()`` (write inside ``db.transaction()`` instead), or on a
    database opened read-only (``read_only=True``, a ``mode=ro`` or ``immutable=1`` URI, a
    file or directory this process may not write)."""


class InterruptError(OperationalError):
    """Raised by a statement that :meth:`rxdb.Database.interrupt` stopped (on PostgreSQL also
    one cancelled by the server: ``statement_timeout``, ``pg_cancel_backend``). Inside a
    transaction block the transaction has been rolled back."""


class TransactionAbortedError(RxdbError, RuntimeError):
    """Raised by statements of a transaction block after the transaction was rolled back
    under it (by an interrupt, or by SQLite for ON CONFLICT ROLLBACK / RAISE(ROLLBACK)), and
    when such a block ends: leave the block, then retry."""


class ReentrancyError(RxdbError, RuntimeError):
    """Raised at once (instead of deadlocking) when a block would wait on itself: ``read``
    inside ``read``, a transaction inside ``read``, ``read`` inside a transaction."""


class ClosedError(RxdbError, RuntimeError):
    """Raised when a closed database (or a watch of one) is used. A closed database stays
    closed: open a new one (``rxdb.open``) to use the file again."""


class WrongLoopError(RxdbError, RuntimeError):
    """Raised when a database is used from an event loop (or thread) other than the one it
    was opened on."""


class ProtocolError(RxdbError, ValueError):
    """Raised when bytes from a peer are not a well-formed rxdb message.

    The connection they came on cannot be trusted to be in step any more: log the reason
    and close that connection (only that one).
    """


class LimitError(RxdbError):
    """Raised by a request that would take its connection over one of the server's limits
    (subscriptions open at once, requests running at once; see ``serve()``). Only that
    request fails: end some subscriptions or wait for some answers, then try again."""


class ConnectionLostError(ClosedError, ConnectionError):
    """Raised for calls pending (or made) after the connection to the server ended: the
    server shut down, its process died, or the network failed. Whatever was not committed
    when it happened is rolled back on the server. Connect again to carry on (or connect
    with ``reconnect=`` to have the client do it)."""


class ServerRefusedError(RxdbError, ConnectionRefusedError):
    """Raised by ``connect`` when the server refuses the handshake (a wrong or missing token,
    another protocol version)."""


class SpawnError(RxdbError):
    """Raised when the server process fails to start (its error is in the message)."""


class RemoteError(RxdbError):
    """Raised when a remote call failed with an exception that is not an rxdb error.

    :ivar error_type: the remote exception's type name, e.g. ``"ValueError"``; it is only a
        label -- no class of that name is looked up or instantiated.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type
        self.remote_message = message


class HubError(RxdbError, OSError):
    """Raised when the hub's socket directory is unusable: it cannot be created, it is not a
    directory, it belongs to another user, or others may enter it. Fix the directory (``chmod
    700``), pass another one, or turn cross-process sharing off."""


class NameTakenError(RxdbError, FileExistsError):
    """Raised when a server is registered under a name a live rxdb server of another process
    holds. Choose another name, or stop that server."""


class NameNotFoundError(RxdbError, LookupError):
    """Raised by :func:`lookup` when no live server is registered under the name."""


_BY_SQLITE_CLASS: tuple[tuple[type[sqlite3.Error], type[DatabaseError]], ...] = (
    (sqlite3.IntegrityError, IntegrityError),
    (sqlite3.OperationalError, OperationalError),
    (sqlite3.ProgrammingError, ProgrammingError),
    (sqlite3.InterfaceError, ProgrammingError),
)


_BY_SQLITE_NAME: dict[str, type[DatabaseError]] = {
    "BUSY": BusyError,
    "LOCKED": BusyError,
    "READONLY": ReadOnlyError,
    "INTERRUPT": InterruptError,
}


_READ_ONLY_HINT = (
    "the database is read-only here (opened with read_only=True or a mode=ro URI, or its file "
    "or directory is not writable by this process): write through a database opened writable"
)


def from_sqlite(error: sqlite3.Error, sql: str | None, context: str = "") -> DatabaseError:
    """Translate a sqlite3 error into rxdb's, keeping code, name and statement."""
    cls: type[DatabaseError] = DatabaseError
    for sqlite_cls, ours in _BY_SQLITE_CLASS:
        if isinstance(error, sqlite_cls):
            cls = ours
            break
    # "SQLITE_BUSY_SNAPSHOT" -> "BUSY": the primary code decides the class.
    parts = (getattr(error, "sqlite_errorname", None) or "").split("_")
    if cls is OperationalError and len(parts) > 1:
        cls = _BY_SQLITE_NAME.get(parts[1], cls)
    message = f"{context}: {error}" if context else str(error)
    if cls is ReadOnlyError and not context:
        message = f"{message}; {_READ_ONLY_HINT}"
    translated = cls(
        message,
        sql=sql,
        sqlite_errorcode=getattr(error, "sqlite_errorcode", None),
        sqlite_errorname=getattr(error, "sqlite_errorname", None),
    )
    translated.__cause__ = error
    return translated


_BY_SQLSTATE: dict[str, type[DatabaseError]] = {
    "25006": ReadOnlyError,  # read_only_sql_transaction
    "57014": InterruptError,  # query_canceled
    "55P03": BusyError,  # lock_not_available (lock_timeout, NOWAIT)
    "40001": BusyError,  # serialization_failure
    "40P01": BusyError,  # deadlock_detected
}
"""SQLSTATEs with a class of their own; otherwise the two-character class decides."""

_BY_SQLSTATE_CLASS: dict[str, type[DatabaseError]] = {
    "23": IntegrityError,  # integrity_constraint_violation
}


def from_postgres(error: Exception, sql: str | None, context: str = "") -> DatabaseError:
    """Translate a PostgreSQL error into rxdb's, keeping its SQLSTATE, message and statement.

    ``error`` is what the driver raised; only its ``sqlstate`` attribute is read (rxdb's
    core does not import the driver). Refusals the server reports (bad SQL, a missing
    relation, a value of the wrong type) are :class:`OperationalError`, as SQLite's are;
    constraint violations :class:`IntegrityError`; writes in a read-only transaction
    :class:`ReadOnlyError`; cancelled statements :class:`InterruptError`; lock timeouts,
    deadlocks and serialization failures :class:`BusyError`.
    """
    sqlstate = getattr(error, "sqlstate", None)
    cls: type[DatabaseError] = OperationalError
    if isinstance(sqlstate, str):
        cls = _BY_SQLSTATE.get(sqlstate) or _BY_SQLSTATE_CLASS.get(sqlstate[:2], cls)
    else:
        sqlstate = None
    message = f"{context}: {error}" if context else str(error)
    translated = cls(message, sql=sql, sqlstate=sqlstate)
    translated.__cause__ = error
    return translated


def _shorten(sql: str | None, limit: int = 200) -> str:
    text = " ".join((sql or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
