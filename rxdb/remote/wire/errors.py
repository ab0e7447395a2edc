"""How an exception crosses the wire: as an :class:`ErrorInfo`, and back as the rxdb error
of the same class (or a :class:`RemoteError` for anything else), with what a caller matches
on kept: SQLite's error code and name, PostgreSQL's SQLSTATE, the statement.

No class is ever looked up by a name a peer sent beyond the fixed table of rxdb's own
errors, and texts are clipped so that a long SQL script in a failure cannot push a frame
over the limit and turn a clean error into a dropped connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rxdb.errors import (
    BusyError,
    ClosedError,
    ConnectionLostError,
    DatabaseError,
    HubError,
    IntegrityError,
    InterruptError,
    LimitError,
    NameNotFoundError,
    OperationalError,
    ProgrammingError,
    ProtocolError,
    ReadOnlyError,
    ReentrancyError,
    RemoteError,
    RxdbError,
    ServerRefusedError,
    SpawnError,
    TransactionAbortedError,
    WrongLoopError,
)
from rxdb.remote.wire.checks import check_int, check_str, optional

__all__ = (
    "MAX_ERROR_TEXT",
    "ErrorInfo",
    "error_from_wire",
    "error_to_wire",
    "info_from_wire",
    "info_to_wire",
)


# Error texts are diagnostics: a long SQL script in a failure must not push the frame over
# the limit and turn a clean error into a dropped connection.
MAX_ERROR_TEXT: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception as it crosses the wire; see :func:`error_to_wire`."""

    error_type: str
    message: str
    sqlite_errorcode: int | None = None
    sqlite_errorname: str | None = None
    sql: str | None = None
    sqlstate: str | None = None


_ERROR_CLASSES: Final[dict[str, type[RxdbError]]] = {
    cls.__name__: cls
    for cls in (
        RxdbError,
        DatabaseError,
        IntegrityError,
        OperationalError,
        ProgrammingError,
        BusyError,
        ReadOnlyError,
        InterruptError,
        TransactionAbortedError,
        ReentrancyError,
        ClosedError,
        WrongLoopError,
        ProtocolError,
        ConnectionLostError,
        ServerRefusedError,
        SpawnError,
        HubError,
        NameNotFoundError,
        LimitError,
    )
}


def error_to_wire(error: BaseException) -> ErrorInfo:
    """Describe ``error`` for the wire: rxdb errors by class, anything else by type name."""
    if isinstance(error, RemoteError):
        return ErrorInfo(error.error_type, _clip(error.remote_message))
    for cls in type(error).__mro__:
        if _ERROR_CLASSES.get(cls.__name__) is cls:
            break
    else:
        kind = type(error)
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        return ErrorInfo(_clip(name), _clip(str(error)))
    if isinstance(error, DatabaseError):
        # Exception.__str__, not DatabaseError.__str__: the SQL travels in its own field
        # and the receiving side appends it again.
        return ErrorInfo(
            cls.__name__,
            _clip(Exception.__str__(error)),
            error.sqlite_errorcode,
            error.sqlite_errorname,
            None if error.sql is None else _clip(error.sql),
            error.sqlstate,
        )
    return ErrorInfo(cls.__name__, _clip(str(error)))


def error_from_wire(info: ErrorInfo) -> RxdbError:
    """Rebuild the error ``info`` describes, as the rxdb class of the same name if any."""
    cls = _ERROR_CLASSES.get(info.error_type)
    if cls is None:
        return RemoteError(info.error_type, info.message)
    if issubclass(cls, DatabaseError):
        return cls(
            info.message,
            sql=info.sql,
            sqlite_errorcode=info.sqlite_errorcode,
            sqlite_errorname=info.sqlite_errorname,
            sqlstate=info.sqlstate,
        )
    return cls(info.message)


def info_to_wire(error: ErrorInfo) -> list[Any]:
    """The six fields ``error`` travels as."""
    return [
        error.error_type,
        error.message,
        error.sqlite_errorcode,
        error.sqlite_errorname,
        error.sql,
        error.sqlstate,
    ]


def info_from_wire(fields: list[Any]) -> ErrorInfo:
    """The :class:`ErrorInfo` six fields from a peer describe.

    :raises ProtocolError: for a field of the wrong type or length.
    """
    error_type, message, code, name, sql, sqlstate = fields
    return ErrorInfo(
        check_str(error_type, _MAX_TYPE_LEN),
        check_str(message),
        optional(check_int, code),
        optional(check_str, name),
        optional(check_str, sql),
        None if sqlstate is None else check_str(sqlstate, 5),  # SQLSTATEs have 5
    )


_MAX_TYPE_LEN: Final = 256


def _clip(text: str) -> str:
    """``text`` as it can travel: at most MAX_ERROR_TEXT characters, and UTF-8 (a lone
    surrogate -- a file name decoded with surrogateescape, say -- is sent escaped: a text
    that cannot be encoded would leave the request it answers unanswered)."""
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
    return text
