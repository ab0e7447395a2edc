"""Which rows of a table a commit changed: TEMP triggers on the writer that report rowids.

For each table a maintained watch reads, three TEMP triggers (AFTER INSERT, UPDATE, DELETE)
call a function registered on the writer connection with the rowid (an UPDATE reports the
old and the new one: an UPDATE may change the rowid). The function hands it to the writer's
:class:`rxdb.engines.sqlite.capture.TransactionBuffer`, which keeps it with the rest of the
transaction's effects: one level per savepoint, dropped on rollback, handed on at the
outermost commit (``rows_committed``). No temp table is read or cleared per commit.

TEMP triggers fire for every write to the table made through this connection, including
writes by other triggers and foreign-key actions. They do not fire for the rows a REPLACE
conflict deletes (unless ``recursive_triggers`` is on, which rxdb leaves to the user), and
SQLite's authorizer does not report that DELETE either. So the rowids of a statement whose
text says REPLACE are unknown (the buffer's ``replacing``), and so are those of a table
whose definition, or any trigger, says REPLACE (:meth:`RowCapture.trusted`, which looks
again whenever the schema changes). Writes by other connections or processes are not seen
at all: their commits carry no rowids, so a watch re-runs in full.

A TEMP trigger is DDL of the connection's own temp schema: it is created and dropped with
the plain ``sqlite3.Connection.execute``, outside the writer's statement tracking, so it
announces no schema change, and only while no transaction is open (it would otherwise
belong to, and roll back with, the user's transaction). Everything here runs on the
writer's thread.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from parser import fold_name
from rxdb.engines.sqlite.capture import ChangedRowids, TransactionBuffer

__all__ = ("RowCapture",)

FUNCTION = "rxdb_changed_row"
_EVENTS = (
    ("insert", "INSERT", "new.rowid"),
    ("update", "UPDATE", "old.rowid, new.rowid"),
    ("delete", "DELETE", "old.rowid"),
)


class RowCapture:
    """Installs and removes the capture triggers of one writer connection, counting the
    watches that want each table."""

    def __init__(self, connection: sqlite3.Connection, buffer: TransactionBuffer) -> None:
        self._connection = connection
        self._buffer = buffer
        self._wanted: dict[str, int] = {}
        self._schema: tuple[int, int] | None = None  # schema versions of the last look
        self._stale = True  # the schema may have changed since the last look
        self._replacing: frozenset[str] | None = None  # tables that may REPLACE; None: all
        # The buffer's own method: no frame of ours between SQLite and it, on every write.
        connection.create_function(FUNCTION, -1, buffer.changed_rows)

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(self._wanted)

    def want(self, table: str) -> bool:
        """Capture the rows changed in ``table`` (a folded name of a table in ``main``) from
        the next transaction on; ``False`` if that cannot start now (a transaction is open,
        or the triggers cannot be created): the caller re-runs in full meanwhile."""
        count = self._wanted.get(table)
        if count is not None:
            self._wanted[table] = count + 1
            return True
        if self._connection.in_transaction or not self._create(table):
            return False
        self._stale = True
        self._wanted[table] = 1
        self._buffer.row_tables = frozenset(self._wanted)
        return True

    def unwant(self, table: str) -> bool:
        """Undo one :meth:`want`; the last one removes the triggers, unless a transaction is
        open (``False``: call again later; meanwhile the rowids are captured for nobody)."""
        count = self._wanted.get(table)
        if count is None:
            return True
        if count > 1:
            self._wanted[table] = count - 1
            return True
        if self._connection.in_transaction:
            return False
        del self._wanted[table]
        self._buffer.row_tables = frozenset(self._wanted)
        self._drop(table)
        self._stale = True
        return True

    def look_again(self) -> None:
        """The schema may have changed: the next :meth:`trusted` looks, whatever it is told."""
        self._stale = True

    def trusted(self, rowids: ChangedRowids, unchanged: bool = False) -> ChangedRowids:
        """``rowids`` (from ``rows_committed``), with the tables where a REPLACE conflict may
        have deleted rows unseen marked unknown: those whose definition says REPLACE, or all
        of them if a trigger does (it may write to any table, or be an outer statement's
        override); and those whose capture triggers a schema change moved or dropped.
        Looks at the schema again only when it changed; ``unchanged``: the caller knows it
        did not since the last look, unless :meth:`look_again` was called (two ``PRAGMA``
        statements saved)."""
        broken: set[str] = set()
        if self._stale or not unchanged:
            self._stale = False
            schema = (_version(self._connection, "main"), _version(self._connection, "temp"))
            if schema != self._schema:
                self._replacing = _replacing(self._connection)
                broken = self._repair()
                self._schema = (
                    _version(self._connection, "main"),
                    _version(self._connection, "temp"),
                )
        replacing = self._replacing
        result: dict[str, frozenset[Any] | None] = {
            table: None if replacing is None or table in replacing else changed
            for table, changed in rowids.items()
        }
        for table in broken:
            result[table] = None
        return result

    def _create(self, table: str) -> bool:
        self._drop(table)  # one of that name may be left on a renamed table
        try:
            for suffix, event, rowids in _EVENTS:
                sqlite3.Connection.execute(
                    self._connection,
                    f"CREATE TEMP TRIGGER {_trigger(table, suffix)} "
                    f"AFTER {event} ON main.{_quoted(table)} "
                    f"BEGIN SELECT {FUNCTION}({_literal(table)}, {rowids}); END",
                )
        except sqlite3.Error:
            self._drop(table)
            return False
        return True

    def _repair(self) -> set[str]:
        """The tables whose triggers are not all there, on that table (a schema change may
        have renamed or dropped the table under them): the rowids of the commit just made
        are not known for them. Their triggers are made again (where the table exists)."""
        present = {
            name: fold_name(table)
            for name, table in sqlite3.Connection.execute(self._connection, _OURS_SQL)
        }
        broken = {
            table
            for table in self._wanted
            if any(present.get(f"rxdb_rows_{suffix}_{table}") != table for suffix, *_ in _EVENTS)
        }
        if broken and not self._connection.in_transaction:
            for table in broken:
                self._create(table)
        return broken

    def _drop(self, table: str) -> None:
        for suffix, _event, _rowids in _EVENTS:
            try:
                sqlite3.Connection.execute(
                    self._connection, f"DROP TRIGGER IF EXISTS temp.{_trigger(table, suffix)}"
                )
            except sqlite3.Error:
                continue  # the connection is closing: its temp schema goes with it


def _trigger(table: str, suffix: str) -> str:
    return _quoted(f"rxdb_rows_{suffix}_{table}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_OURS_SQL = r"""
SELECT name, tbl_name FROM temp.sqlite_schema
WHERE type = 'trigger' AND name LIKE 'rxdb\_rows\_%' ESCAPE '\'
"""


def _version(connection: sqlite3.Connection, schema: str) -> int:
    row = sqlite3.Connection.execute(connection, f"PRAGMA {schema}.schema_version").fetchone()
    return int(row[0])


_REPLACING_SQL = """
SELECT type, tbl_name FROM {schema}.sqlite_schema
WHERE type IN ('table', 'trigger') AND sql LIKE '%replace%'
AND name NOT LIKE 'rxdb\\_rows\\_%' ESCAPE '\\'
"""


def _replacing(connection: sqlite3.Connection) -> frozenset[str] | None:
    """The tables whose definition says REPLACE (``ON CONFLICT REPLACE``), or ``None`` if a
    trigger does."""
    tables: set[str] = set()
    for schema in ("main", "temp"):
        for kind, table in sqlite3.Connection.execute(
            connection, _REPLACING_SQL.format(schema=schema)
        ):
            if kind == "trigger":
                return None
            tables.add(fold_name(table))
    return frozenset(tables)
