"""Maintained queries on the writer: after each commit, the changed rows each one returns.

A watch whose query :func:`parser.maintainable.maintainable` accepts registers here
(:meth:`RowFeed.start`, on the writer's thread). From then on the capture triggers of its
table (:mod:`rxdb.engines.sqlite.changed_rows`) record the rowids every transaction of this
connection changes, and right after each outermost commit, still on the writer's thread and
before the commit is announced, the feed re-reads those rows through each maintained query
of the table. The result goes out with the commit's message as a
:class:`rxdb.updates.RowPatch` per query.

Exactly at that commit: no patch may cover a commit it has no rowids for. Whether another
connection (another process, a plain ``sqlite3`` program) committed since the last check is
told by ``PRAGMA data_version`` of the writer, which moves only when another connection's
commit becomes visible to it; if one did, the patches of this commit are not sent and the
*epoch* moves, so no watch patches a result across it; a commit that changed the schema
moves it too. Each table counts its patched commits (the *sequence*): a watch applies a
patch only to a result of an earlier commit (one it was not told of changed no column it
reads).

In WAL mode the check and the re-read are cheaper. The WAL-index change counter
(:mod:`rxdb.engines.sqlite.walindex`), which every commit to the file moves (by one, or more
when it also restarts the log), is read right after each commit of the writer: if it moved
by exactly one since the reading after the previous one, the commit just made (which wrote
rows, so moved it) is the only one in between, and no ``PRAGMA`` is needed (nor a new look
at the schema: see :meth:`RowCapture.trusted
<rxdb.engines.sqlite.changed_rows.RowCapture.trusted>`). After such a commit the re-read
runs outside any transaction, on the writer itself (its statement cache keeps the query
prepared, its page cache what it just wrote), or, where the writer may see something else
than the readers (:attr:`TrackedConnection.diverged
<rxdb.engines.sqlite.connections.TrackedConnection.diverged>`), on its second connection
(:meth:`TrackedConnection.committed_reads
<rxdb.engines.sqlite.connections.TrackedConnection.committed_reads>`: read-only, on the
writer's thread); and the counter is read again after it: unchanged, no commit landed in
between, so the re-read saw the commit just made; moved, one did, not the writer's (it is
busy here): a new epoch.

Otherwise (no WAL, no second connection, a counter that moved by more, or not at all, or
was not read before), the re-read, ``data_version`` and a schema read share one read
transaction of the writer itself (BEGIN ... COMMIT); unless the writer may see other rows
than the readers, where no patch is sent (a new epoch: the watches run).
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
from rxdb.engines.sqlite.walindex import WalIndex, counter_span, data_version
from rxdb.updates import RowPatch

__all__ = ("Mark", "RowFeed", "table_facts")

Mark = tuple[int, int]
"""(epoch, sequence) of a table: which patch comes next (see the module's docstring)."""


@dataclass(frozen=True, slots=True)
class _Query:
    shape: Maintainable
    sql: str  # shape.changed_sql for these parameters
    single: str  # the same for one rowid
    params: Params


class RowFeed:
    """The maintained queries of one writer connection. :meth:`start`, :meth:`stop` and
    the commit hooks run on the writer's thread; :meth:`mark` may be called from any."""

    def __init__(self, connection: TrackedConnection, index: WalIndex | None = None) -> None:
        """``index``: the file's WAL index, which proves re-reads on the writer's second
        connection (see the module's docstring); without it, the writer re-reads."""
        self._connection = connection
        self._index = index
        self._counter: int | None = None  # the WAL-index counter at its last reading
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
        named = isinstance(params, Mapping)
        if isinstance(params, Mapping):
            with_rowids = {**params, "rxdb_rowids": None}
        else:
            with_rowids = (*params, None)
        self._queries[key] = _Query(
            shape, shape.changed_sql(named), shape.changed_sql(named, single=True), with_rowids
        )
        self._marks.setdefault(shape.table, (self._epoch, 0))
        return shape

    def stop(self, key: Hashable) -> None:
        query = self._queries.pop(key, None)
        if query is not None:
            self._leaving.append(query.shape.table)
        self._retry_leaving()

    def _retry_leaving(self) -> None:
        if not self._leaving:
            return  # nothing left to unwant, so no mark to drop (after every commit)
        leaving, self._leaving = self._leaving, []
        for table in leaving:
            if not self._capture.unwant(table):
                self._leaving.append(table)
        captured = self._capture.tables
        for table in list(self._marks):
            if table not in captured:
                del self._marks[table]

    def _reader(self) -> sqlite3.Connection | None:
        """Where to re-read after a commit with the WAL index's proof: the writer itself,
        whose page cache holds what it just wrote (a read there cost ~4 µs less than on a
        second connection, which takes a read lock and reads the changed pages from the
        WAL), unless it may see something else than the readers (a TEMP table, say: see
        :attr:`TrackedConnection.diverged`); then its second connection (read-only, with a
        statement cache). ``None`` where there is no WAL index to prove a re-read, or no
        second connection (``:memory:``)."""
        if self._index is None:
            return None
        connection = self._connection
        if not connection.diverged:
            return connection
        reader = connection.committed_reads()
        return None if reader is connection else reader

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
        self._capture.look_again()  # whatever moved it may have changed the schema

    def _rows_committed(self, rowids: ChangedRowids, schema: bool) -> None:
        self._patches = None
        if not self._marks:
            self._counter = None  # not followed meanwhile
            return
        reader, index = self._reader(), self._index
        before = None if reader is None or index is None else index.read()
        last, self._counter = self._counter, None
        # The only commit since the last reading (see the module's docstring)?
        alone = before is not None and last is not None and counter_span(last, before) == 1
        if schema:
            self._capture.look_again()
            return  # the epoch moves (take); the next commit proves itself
        trusted = self._capture.trusted(rowids, unchanged=alone) if rowids else {}
        tables = {table: changed for table, changed in trusted.items() if table in self._marks}
        try:
            if reader is None or index is None or before is None or not alone:
                if tables:
                    self._patches = self._reread(tables)
                    self._counter = before  # every commit up to it is checked
            elif tables:
                self._patches = self._reread_aside(tables, reader, index, before)
            else:
                self._counter = before
        except sqlite3.Error:
            self._new_epoch()  # whatever failed, no watch patches across it
            self._counter = before
        self._retry_leaving()

    def _reread_aside(
        self,
        tables: dict[str, frozenset[Any] | None],
        reader: sqlite3.Connection,
        index: WalIndex,
        before: int,
    ) -> dict[Hashable, RowPatch]:
        """Re-read on ``reader`` (see :meth:`_reader`) after a commit proven the only one
        since the last, up to the counter's reading ``before``."""
        patches = self._read(reader, tables)
        after = self._counter = index.read()
        if after != before:
            self._new_epoch()  # a commit landed meanwhile: whose, which rows?
            return {}
        return patches

    def _reread(self, tables: dict[str, frozenset[Any] | None]) -> dict[Hashable, RowPatch]:
        """Re-read on the writer, in a read transaction that also checks the version;
        nothing where the writer may see other rows than the readers (a TEMP table of the
        same name, say): a new epoch, so the watches run."""
        connection = self._connection
        if connection.diverged:
            self._new_epoch()
            return {}
        sqlite3.Connection.execute(connection, "BEGIN")
        try:
            # The snapshot starts at the first read; data_version then tells whether another
            # connection committed since the last check.
            sqlite3.Connection.execute(connection, "SELECT 1 FROM sqlite_schema LIMIT 1")
            if not self._same_version():
                return {}
            return self._read(connection, tables)
        finally:
            with contextlib.suppress(sqlite3.Error):
                sqlite3.Connection.execute(connection, "COMMIT")

    def _same_version(self) -> bool:
        """Whether no other connection committed since the last check (if one did, a new
        epoch starts)."""
        version = data_version(self._connection)
        if version == self._version:
            return True
        self._version = version
        self._new_epoch()
        return False

    def _read(
        self, connection: sqlite3.Connection, tables: dict[str, frozenset[Any] | None]
    ) -> dict[Hashable, RowPatch]:
        patches: dict[Hashable, RowPatch] = {}
        for table, changed in tables.items():
            epoch, sequence = self._marks[table]
            self._marks[table] = mark = (epoch, sequence + 1)
            if changed is None:
                continue  # not known: every watch of the table re-runs
            single = len(changed) == 1
            rowids: object = next(iter(changed)) if single else json.dumps(sorted(changed))
            for key, query in self._queries.items():
                if query.shape.table == table:
                    sql = query.single if single else query.sql
                    rows = _fetch(connection, sql, query.params, rowids)
                    patches[key] = RowPatch(changed, rows, mark[0], mark[1])
        return patches


def _fetch(
    connection: sqlite3.Connection, sql: str, params: Params, rowids: object
) -> list[tuple[Any, ...]]:
    bound: Params
    if isinstance(params, Mapping):
        bound = {**params, "rxdb_rowids": rowids}
    else:
        bound = (*params[:-1], rowids)
    return sqlite3.Connection.execute(connection, sql, bound).fetchall()


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
