"""What callers hand to statements, checked before SQLite sees it.

Python's sqlite3 reports some mistakes as builtin exceptions (``TypeError`` for SQL that is
not a str, ``OverflowError`` for an int beyond 64 bits) and runs text without a statement
as if it were a query with no rows. These checks turn such calls into
:class:`rxdb.ProgrammingError` at the call. They are cheap on the common path (a str that
starts with a keyword); a watch, made once and run many times, checks its parameters too,
so that a value SQLite cannot bind fails at ``db.watch()`` and never inside a batch of
other watches' runs.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rxdb.errors import ProgrammingError
from rxdb.updates import UpdateKind

__all__ = (
    "backup_path",
    "check_backup",
    "check_file_name",
    "check_flags",
    "check_parameter_sets",
    "check_sql",
    "check_table_names",
    "check_text",
    "check_update_kinds",
    "check_watch",
    "check_watch_many",
)

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_STEP_MIN, _STEP_MAX = -(2**31), 2**31 - 1

# Only SQLite's whitespace, comments and empty statements (Python's \s knows more spaces).
_NO_STATEMENT = re.compile(r"(?:[ \t\n\f\r;]|--[^\n]*+(?:\n|\Z)|/\*(?:[^*]|\*(?!/))*+(?:\*/|\Z))*+")


def check_text(sql: object) -> str:
    """Return ``sql``, known to be a str of valid UTF-8.

    :raises rxdb.ProgrammingError: if it is not one, or holds a lone surrogate."""
    if not isinstance(sql, str):
        raise ProgrammingError(f"SQL must be a str, not {type(sql).__name__} ({sql!r})")
    _check_encodable(sql, "the SQL text", sql)
    return sql


def check_sql(sql: object) -> str:
    """Return ``sql``, known to be a str holding a statement.

    :raises rxdb.ProgrammingError: if it is not a str, is not valid UTF-8 (a lone
        surrogate), or holds no statement (only blanks, comments and semicolons), which
        SQLite would run as a query without rows.
    """
    if type(sql) is str and sql[:1].isalpha() and sql.isascii():
        return sql  # a keyword first, ASCII: the common case, decided in two tests
    sql = check_text(sql)
    if _NO_STATEMENT.fullmatch(sql):
        raise ProgrammingError(
            "the SQL text holds no statement, only blanks or comments: pass the statement to run",
            sql=sql or "''",
        )
    return sql


def check_watch(sql: object, params: object) -> None:
    """Check a watch's SQL and parameters as SQLite would take them.

    :raises rxdb.ProgrammingError: for SQL :func:`check_sql` refuses, text that is not valid
        UTF-8, parameters that are not a sequence or mapping, or a value out of SQLite's range.
    """
    sql = check_sql(sql)
    if isinstance(params, Mapping):
        values: Iterable[Any] = params.values()
    elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
        values = params
    else:
        raise ProgrammingError(
            f"parameters must be a sequence (for ?) or a mapping (for :name), not "
            f"{type(params).__name__}; for one value write (value,)",
            sql=sql,
        )
    for value in values:
        if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
            raise ProgrammingError(
                f"the parameter {value} does not fit SQLite's 64-bit integers "
                f"(-2**63 to 2**63-1); pass it as text or a float",
                sql=sql,
            )
        if isinstance(value, str):
            _check_encodable(value, f"the parameter {value!r}", sql)


def check_watch_many(queries: object) -> dict[str, tuple[str, Any]]:
    """Return the queries of ``db.watch_many`` as ``{name: (sql, params)}``, each checked as
    :func:`check_watch` checks one watch.

    :raises rxdb.ProgrammingError: if ``queries`` is not a non-empty mapping of str names to
        SQL texts or ``(sql, params)`` pairs.
    """
    if not isinstance(queries, Mapping) or not queries:
        raise ProgrammingError(
            "queries must be a non-empty mapping of names to SQL texts or (sql, params) "
            f"pairs, not {queries!r}"
        )
    checked: dict[str, tuple[str, Any]] = {}
    for name, query in queries.items():
        if not isinstance(name, str):
            raise ProgrammingError(f"a name in queries must be a str, not {name!r}")
        if isinstance(query, tuple) and len(query) == 2:
            sql, params = query
        elif isinstance(query, str):
            sql, params = query, ()
        else:
            raise ProgrammingError(
                f"queries[{name!r}] must be an SQL text or an (sql, params) pair, not {query!r}"
            )
        check_watch(sql, params)
        checked[name] = (sql, params)
    return checked


def check_parameter_sets(seq_of_params: object, sql: str) -> None:
    """:raises rxdb.ProgrammingError: if ``seq_of_params`` is not an iterable of them."""
    if not isinstance(seq_of_params, Iterable) or isinstance(seq_of_params, str | bytes):
        raise ProgrammingError(
            f"execute_many needs an iterable of parameter sets, not {type(seq_of_params).__name__}",
            sql=sql,
        )


def check_table_names(tables: object, also: type = str) -> tuple[Any, ...]:
    """Return ``tables`` as a tuple (an iterator is read once, here).

    :raises rxdb.ProgrammingError: unless it is an iterable of table names (``str``, or
        instances of ``also``)."""
    if not isinstance(tables, Iterable) or isinstance(tables, str | bytes):
        raise ProgrammingError(f"expected an iterable of table names, not {tables!r}")
    names = tuple(tables)
    for name in names:
        if not isinstance(name, str | also):
            raise ProgrammingError(f"a table name must be a str, not {name!r}")
    return names


def check_flags(**flags: object) -> None:
    """:raises rxdb.ProgrammingError: naming the first flag that is not a bool (``'no'`` is
    true to Python, so ``distinct='no'`` would quietly mean the opposite)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ProgrammingError(f"{name} must be True or False, not {value!r}")


def check_update_kinds(kinds: object) -> frozenset[UpdateKind]:
    """Return ``kinds`` as a set.

    :raises rxdb.ProgrammingError: unless it is an iterable of :class:`rxdb.UpdateKind`."""
    if not isinstance(kinds, Iterable) or isinstance(kinds, str | bytes):
        raise ProgrammingError(f"kinds must be an iterable of rxdb.UpdateKind, not {kinds!r}")
    checked = frozenset(kinds)
    for kind in checked:
        if not isinstance(kind, UpdateKind):
            raise ProgrammingError(f"a kind must be an rxdb.UpdateKind, not {kind!r}")
    return checked


def check_backup(pages_per_step: object, progress: object) -> None:
    """:raises rxdb.ProgrammingError: for a step that is not an int of 32 bits (SQLite's
    C int), or a progress callback that is not callable."""
    if type(pages_per_step) is not int or not _STEP_MIN <= pages_per_step <= _STEP_MAX:
        raise ProgrammingError(
            f"pages_per_step must be a 32-bit int (-2**31 to 2**31-1; 0 or less copies all "
            f"at once), not {pages_per_step!r}"
        )
    if progress is not None and not callable(progress):
        raise ProgrammingError(f"progress must be a callable or None, not {progress!r}")


def backup_path(target: object) -> str:
    """The file a backup goes to.

    :raises rxdb.ProgrammingError: if the target is neither a path nor a database."""
    path = os.fspath(target) if isinstance(target, str | os.PathLike) else None
    if not isinstance(path, str):
        raise ProgrammingError(
            f"a backup target must be a file path (str) or an rxdb.Database, not {target!r}"
        )
    return check_file_name(path, "the backup target")


def check_file_name(path: str, what: str) -> str:
    """Return ``path``, known to be a name the file system can take.

    :raises rxdb.ProgrammingError: naming ``what``, for a NUL or a lone surrogate, which no
        file name can hold (surrogates that stand for undecodable bytes, as os.listdir gives
        them, are fine)."""
    if "\0" in path:
        raise ProgrammingError(f"{what} {path!r} cannot be a file name: it holds a NUL")
    try:
        os.fsencode(path)
    except UnicodeEncodeError as error:
        raise ProgrammingError(
            f"{what} {path!r} cannot be a file name ({error.reason} at {error.start}): pass "
            "a path of valid text"
        ) from error
    return path


def _check_encodable(text: str, what: str, sql: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ProgrammingError(
            f"{what} is not valid UTF-8 ({error.reason} at {error.start}), which SQLite "
            "text must be: pass valid text, or bytes for a BLOB",
            sql=sql,
        ) from error
