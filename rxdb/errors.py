"""Every error rxdb raises, in one place.

SQLite's own failures keep their result code, message and the statement that failed, and
subclass the builtin a caller would already catch where one fits.
"""

from __future__ import annotations

import sqlite3

__all__ = (
    "ClosedError",
    "DatabaseError",
    "IntegrityError",
    "OperationalError",
    "ProgrammingError",
    "RxdbError",
    "WrongLoopError",
)


class RxdbError(Exception):
    """The root of every error rxdb raises."""


class DatabaseError(RxdbError):
    """Raised when SQLite refuses or fails a statement.

    :ivar sqlite_errorcode: SQLite's extended result code, or ``None`` when the failure came
        from the sqlite3 module before SQLite saw the statement (e.g. wrong parameter count).
    :ivar sqlite_errorname: the symbolic name of that code, e.g. ``"SQLITE_CONSTRAINT_UNIQUE"``.
    :ivar sql: the statement that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        sql: str | None = None,
        sqlite_errorcode: int | None = None,
        sqlite_errorname: str | None = None,
    ) -> None:
        super().__init__(message)
        self.sql = sql
        self.sqlite_errorcode = sqlite_errorcode
        self.sqlite_errorname = sqlite_errorname

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (in: {_shorten(self.sql)})" if self.sql else base


class IntegrityError(DatabaseError):
    """Raised when a statement would break a constraint (UNIQUE, NOT NULL, FOREIGN KEY, CHECK)."""


class OperationalError(DatabaseError):
    """Raised for errors SQLite reports while preparing or running: bad SQL, a missing table,
    a busy or locked database, an interrupted statement."""


class ProgrammingError(DatabaseError):
    """Raised when a call is wrong on its face: wrong number or type of parameters, several
    statements where one is expected."""


class ClosedError(RxdbError, RuntimeError):
    """Raised when a closed database (or a watch of one) is used. Open a new database."""


class WrongLoopError(RxdbError, RuntimeError):
    """Raised when a database is used from an event loop (or thread) other than the one it
    was opened on."""


_BY_SQLITE_CLASS: tuple[tuple[type[sqlite3.Error], type[DatabaseError]], ...] = (
    (sqlite3.IntegrityError, IntegrityError),
    (sqlite3.OperationalError, OperationalError),
    (sqlite3.ProgrammingError, ProgrammingError),
    (sqlite3.InterfaceError, ProgrammingError),
)


def from_sqlite(error: sqlite3.Error, sql: str | None, context: str = "") -> DatabaseError:
    """Translate a sqlite3 error into rxdb's, keeping code, name and statement."""
    cls: type[DatabaseError] = DatabaseError
    for sqlite_cls, ours in _BY_SQLITE_CLASS:
        if isinstance(error, sqlite_cls):
            cls = ours
            break
    translated = cls(
        f"{context}: {error}" if context else str(error),
        sql=sql,
        sqlite_errorcode=getattr(error, "sqlite_errorcode", None),
        sqlite_errorname=getattr(error, "sqlite_errorname", None),
    )
    translated.__cause__ = error
    return translated


def _shorten(sql: str | None, limit: int = 200) -> str:
    text = " ".join((sql or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
