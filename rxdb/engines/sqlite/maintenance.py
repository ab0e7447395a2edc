"""Maintained queries on the writer: after each commit, the changed rows each one returns.

A watch whose query :func:`parser.maintainable.maintainable` accepts registers here
(:meth:`RowFeed.start`, on the writer's thread). From then on the capture triggers of its
table (:mod:`rxdb.engines.sqlite.changed_rows`) record the rowids every transaction of this
connection changes, and right after each outermost commit, still on the writer's thread and
before the commit is announced, the feed re-reads those rows through each maintained query
of the table. The result goes out with the commit's message as a
:class:`rxdb.updates.RowPatch` per query.

Exactly at that commit: the re-read runs in a read transaction of the writer itself, and
``PRAGMA data_version`` (which moves only when another connection's commit becomes visible)
is compared with its value at the last check. If another connection (another process, a
plain ``sqlite3`` program) committed since, the patches of this commit are not sent and the
*epoch* moves, so no watch patches a result across a commit it has no rowids for; a commit
that changed the schema moves it too. Each table counts its patched commits (the
*sequence*): a watch applies a patch only to a result of an earlier commit (one it was not
told of changed no column it reads).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from parser.maintainable import Maintainable, TableFacts, maintainable
from rxdb._types import Params
from rxdb.engines.sqlite.capture import ChangedRowids
from rxdb.engines.sqlite.changed_rows import RowCapture
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.engines.sqlite.walindex import data_version
from rxdb.updates import RowPatch

__all__ = ("Mark", "RowFeed", "table_facts")

Mark = tuple[int, int]
"""(epoch, sequence) of a table: which patch comes next (see the module's docstring)."""


@dataclass(frozen=True, slots=True)
class _Query:
    shape: Maintainable
    sql: str  # shape.changed_sql for these parameters
    params: Params


class RowFeed:
    """The maintained queries of one writer connection. :meth:`start`, :meth:`stop` and
    the commit hooks run on the writer's thread; :meth:`mark` may be called from any."""

    def __init__(self, connection: TrackedConnection) -> None:
        self._connection = connection
        self._capture = RowCapture(connection, connection.buffer)
        connection.buffer.rows_committed = self._rows_committed
        self._queries: dict[Hashable, _Query] = {}
        self._leaving: list[str] = []  # tables whose triggers wait for no transaction
        self._marks: dict[str, Mark] = {}
        self._epoch = 0
        self._version: int | None = None  # data_version at the last check
        self._patches: dict[Hashable, RowPatch] | None = None  # the commit being reported

    def mark(self, table: str) -> Mark | None:
        """The (epoch, sequence) of ``table``'s last patched commit, ``None`` if none is
        maintained. Safe from any thread (one dictionary read)."""
        return self._marks.get(table)

    def start(self, key: Hashable, sql: str, params: Params) -> Maintainable | None:
        """Maintain ``sql`` with ``params`` under ``key``; ``None`` if it is not of the shape
        or its table's capture cannot start now (a transaction is open)."""
        self.stop(key)  # a new analysis of the same watch
        shape = maintainable(sql, lambda table: table_facts(self._connection, table))
        if shape is None or not self._capture.want(shape.table):
            return None
        if self._version is None:
            self._version = data_version(self._connection)
        with_rowids: Params
        if isinstance(params, Mapping):
            with_rowids = {**params, "rxdb_rowids": None}
        else:
            with_rowids = (*params, None)
        self._queries[key] = _Query(
            shape, shape.changed_sql(isinstance(params, Mapping)), with_rowids
        )
        self._marks.setdefault(shape.table, (self._epoch, 0))
        return shape

    def stop(self, key: Hashable) -> None:
        query = self._queries.pop(key, None)
        if query is not None:
            self._leaving.append(query.shape.table)
        self._retry_leaving()

    def _retry_leaving(self) -> None:
        leaving, self._leaving = self._leaving, []
        for table in leaving:
            if not self._capture.unwant(table):
                self._leaving.append(table)
        for table in list(self._marks):
            if table not in self._capture.tables:
                del self._marks[table]

    def take(self, everything: bool) -> Mapping[Hashable, RowPatch] | None:
        """The patches of the commit being reported now (then forgotten); ``everything``
        (the schema changed): none, and a new epoch."""
        patches, self._patches = self._patches, None
        if everything:
            self._new_epoch()
            return None
        return patches

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._marks = {table: (self._epoch, 0) for table in self._marks}

    def _rows_committed(self, rowids: ChangedRowids) -> None:
        self._patches = None
        tables = {
            table: changed
            for table, changed in self._capture.trusted(rowids).items()
            if table in self._marks
        }
        if not tables:
            return
        try:
            self._patches = self._reread(tables)
        except sqlite3.Error:
            self._new_epoch()  # whatever failed, no watch patches across it
        self._retry_leaving()

    def _reread(self, tables: dict[str, frozenset[Any] | None]) -> dict[Hashable, RowPatch]:
        connection = self._connection
        patches: dict[Hashable, RowPatch] = {}
        sqlite3.Connection.execute(connection, "BEGIN")
        try:
            # The snapshot starts at the first read; data_version then tells whether another
            # connection committed since the last check.
            sqlite3.Connection.execute(connection, "SELECT 1 FROM sqlite_schema LIMIT 1")
            version = data_version(connection)
            if version != self._version:
                self._version = version
                self._new_epoch()
                return patches
            for table, changed in tables.items():
                epoch, sequence = self._marks[table]
                self._marks[table] = mark = (epoch, sequence + 1)
                if changed is None:
                    continue  # not known: every watch of the table re-runs
                rowids = json.dumps(sorted(changed))
                for key, query in self._queries.items():
                    if query.shape.table == table:
                        patches[key] = RowPatch(
                            changed, _read(connection, query, rowids), mark[0], mark[1]
                        )
        finally:
            with contextlib.suppress(sqlite3.Error):
                sqlite3.Connection.execute(connection, "COMMIT")
        return patches


def _read(connection: sqlite3.Connection, query: _Query, rowids: str) -> list[tuple[Any, ...]]:
    params = query.params
    if isinstance(params, Mapping):
        bound: Params = {**params, "rxdb_rowids": rowids}
    else:
        bound = (*params[:-1], rowids)
    return sqlite3.Connection.execute(connection, query.sql, bound).fetchall()


def table_facts(connection: sqlite3.Connection, table: str) -> TableFacts | None:
    """What :func:`parser.maintainable.maintainable` needs to know of ``main.table``, from
    SQLite; ``None`` if it is not an ordinary table with a rowid."""
    row = sqlite3.Connection.execute(
        connection,
        "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
        (table,),
    ).fetchone()
    if row is None or row[0] is None or "VIRTUAL" in row[0][:30].upper():
        return None
    quoted = '"' + table.replace('"', '""') + '"'
    columns = sqlite3.Connection.execute(connection, f"PRAGMA main.table_info({quoted})").fetchall()
    keys = [column for column in columns if column[5]]
    rowid: str | None = None
    if len(keys) == 1 and str(keys[0][2]).upper() == "INTEGER":
        # INTEGER PRIMARY KEY is the rowid's alias, unless the table has no rowid or the key
        # was declared DESC: then SQLite made an index for it.
        indexes = sqlite3.Connection.execute(
            connection, f"PRAGMA main.index_list({quoted})"
        ).fetchall()
        if not any(index[3] == "pk" for index in indexes):
            rowid = str(keys[0][1])
    return TableFacts(
        tuple(str(column[1]) for column in columns),
        rowid,
        plain="COLLATE" not in row[0].upper(),
    )
