"""sqlite3 connection classes that aiosqlite runs on its worker threads.

They are handed to ``aiosqlite.connect(factory=...)``, so the bookkeeping of every statement
(row conversion, write capture, commit detection) happens on the worker thread, inside the
same hop as the statement itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rxdb.engines.sqlite.capture import CommitCallback, TransactionBuffer, WriteCapture
from rxdb.engines.sqlite.walindex import CommitStamper
from rxdb.rows import ExecuteResult, Row, make_rows
from rxdb.updates import TableUpdate

__all__ = (
    "Authorizer",
    "ReaderConnection",
    "RowCursor",
    "TrackedConnection",
    "split_script",
)

LOG = logging.getLogger("rxdb.engine")

Authorizer = Callable[[int, str | None, str | None, str | None, str | None], int]
"""What ``sqlite3.Connection.set_authorizer`` takes."""


class RowCursor(sqlite3.Cursor):
    """A cursor whose ``fetchall`` returns :class:`rxdb.rows.Row` objects.

    A statement run on the writer is stepped to completion before bookkeeping (its rows are
    kept here), because SQLite counts changes — and an autocommit statement commits — only
    when the statement finishes.
    """

    _prefetched: list[Row] | None = None

    def fetchall(self) -> list[Row]:
        if self._prefetched is not None:
            rows, self._prefetched = self._prefetched, []
            return rows
        return make_rows(self.description, super().fetchall())

    def fetchone(self) -> Row | None:
        if self._prefetched is not None:
            return self._prefetched.pop(0) if self._prefetched else None
        value = super().fetchone()
        return None if value is None else make_rows(self.description, [value])[0]


class ReaderConnection(sqlite3.Connection):
    """A connection whose statements return :class:`rxdb.rows.Row` objects. The ``fetch*``
    methods are whole operations for one worker hop (see
    :class:`rxdb.engines.sqlite.workers.Worker`)."""

    @staticmethod
    def open_read_only(target: str) -> ReaderConnection:
        """A read-only connection to ``target`` (a ``uri=True`` name) for rxdb's own reads on
        a thread that is not a reader's (any thread may use it, one at a time). No busy
        timeout: the caller waits for its read, and one that would wait goes the usual way.

        :raises sqlite3.Error: if it cannot be opened.
        """
        connection = ReaderConnection(
            target, uri=True, isolation_level=None, check_same_thread=False, timeout=0
        )
        try:
            sqlite3.Connection.execute(connection, "PRAGMA query_only = ON")
        except BaseException:
            connection.close()
            raise
        return connection

    def execute(self, sql: str, parameters: Any = (), /) -> RowCursor:
        cursor = self.cursor(RowCursor)
        released(cursor, cursor.execute, sql, parameters)
        return cursor

    def fetch(self, sql: str, parameters: Any) -> list[Row]:
        cursor = sqlite3.Connection.execute(self, sql, parameters)  # a plain cursor: cheaper
        return make_rows(cursor.description, cursor)  # straight into the result: no list copy

    def probe_reads(
        self, sql: str, restore: Authorizer | None = None
    ) -> list[tuple[str | None, str, str]]:
        """The ``(schema, table, column)`` reads SQLite's authorizer reports while it prepares
        ``sql`` (without running it; column ``""`` for a table no column of which is read),
        for a cross-check of the parser's read set and the columns a result depends on.

        ``EXPLAIN`` goes through ``executescript``, which prepares afresh, outside the
        statement cache (a cached statement is not prepared, so reports nothing) and binds no
        parameter. ``restore`` is the authorizer to put back afterwards (the writer's).
        """
        if len(split_script(sql)) != 1:  # EXPLAIN would cover the first statement only
            raise sqlite3.ProgrammingError("You can only execute one statement at a time.")
        reads: list[tuple[str | None, str, str]] = []

        def authorize(
            code: int, arg1: str | None, arg2: str | None, schema: str | None, _: str | None
        ) -> int:
            if code == sqlite3.SQLITE_READ and arg1 is not None:
                reads.append((schema, arg1, arg2 or ""))
            return sqlite3.SQLITE_OK

        self.set_authorizer(authorize)
        try:
            sqlite3.Connection.executescript(self, f"EXPLAIN {sql}")
        finally:
            self.set_authorizer(restore)
        return reads

    def fetch_many(
        self,
        queries: Sequence[tuple[str, Any]],
        snapshot: bool = False,
        record: Callable[[str, float], None] | None = None,
    ) -> list[list[Row] | sqlite3.Error]:
        """Run several queries in turn; a failing one yields its error, the others go on.
        With ``snapshot``, inside one read transaction: all of them see the same commit.
        ``record(sql, started)`` is told of each query that ran, with its start
        (``time.perf_counter()``), right after its rows are made."""
        results: list[list[Row] | sqlite3.Error] = []
        if snapshot:
            sqlite3.Connection.execute(self, "BEGIN")
        try:
            for sql, parameters in queries:
                started = time.perf_counter()
                try:
                    results.append(self.fetch(sql, parameters))
                except sqlite3.Error as error:
                    results.append(error)
                else:
                    if record is not None:
                        record(sql, started)
        finally:
            if snapshot and self.in_transaction:
                sqlite3.Connection.execute(self, "COMMIT")
        return results


class TrackedConnection(ReaderConnection):
    """The writer: records what each statement wrote and reports each outermost commit."""

    stamper: CommitStamper | None = None
    """Set (from the writer's thread, or before it runs anything) to claim commit counter
    values for each commit; see :mod:`rxdb.engines.sqlite.walindex`."""
    after_commit: Callable[[TrackedConnection], None] | None = None
    """Set like ``stamper``: called on the writer's thread after each outermost commit has
    been reported."""
    reads_target: str | None = None
    """Set before the writer reads anything through :meth:`fetch_committed`: what
    ``sqlite3.connect(..., uri=True)`` opens for a second connection that sees this one's
    commits (a WAL file), where the readers read; ``None`` (``:memory:``, no WAL): the
    readers' road is this connection itself."""

    def __init__(self, *args: Any, on_commit: CommitCallback, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "cached_statements": STATEMENT_CACHE})
        self._on_commit = on_commit
        self._capture = WriteCapture()
        self._buffer = TransactionBuffer(self._committed)
        self._reads: ReaderConnection | None = None
        self.set_authorizer(self._capture.authorize)

    @property
    def buffer(self) -> TransactionBuffer:
        """The open transaction's effects (use on the writer's thread only)."""
        return self._buffer

    def execute(self, sql: str, parameters: Any = (), /) -> RowCursor:
        cursor = self.cursor(RowCursor)

        def run() -> None:
            released(cursor, cursor.execute, sql, parameters)
            if cursor.description is not None:
                cursor._prefetched = cursor.fetchall()

        self._tracked(sql, run)
        return cursor

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> RowCursor:
        cursor = self.cursor(RowCursor)
        self._tracked(sql, lambda: released(cursor, cursor.executemany, sql, seq_of_parameters))
        return cursor

    def executescript(self, sql_script: str, /) -> RowCursor:
        """Run each statement of the script in turn, without sqlite3's implicit COMMIT first,
        so a script inside a transaction block stays inside it."""
        cursor = self.cursor(RowCursor)
        for statement in split_script(sql_script):
            cursor = self.execute(statement)
        return cursor

    def fetch(self, sql: str, parameters: Any) -> list[Row]:
        return self.execute(sql, parameters).fetchall()  # tracked: it may write (RETURNING)

    @property
    def diverged(self) -> bool:
        """Whether this connection may see something else than the readers, which are
        others (:attr:`reads_target`): a TEMP table, say (:attr:`WriteCapture.diverged
        <rxdb.engines.sqlite.capture.WriteCapture.diverged>`)."""
        return self._capture.diverged and self.reads_target is not None

    def committed_reads(self) -> sqlite3.Connection:
        """A connection that sees this one's commits, as the readers do (use on the writer's
        thread): with :attr:`reads_target`, a second one, opened on first use, read-only,
        with a statement cache and without this one's authorizer; else, or while it cannot
        be opened (tried again at the next call), this one."""
        reads = self._reads
        if reads is None:
            target = self.reads_target
            if target is None:
                return self
            try:
                reads = self._reads = ReaderConnection.open_read_only(target)
            except sqlite3.Error:
                LOG.debug("no second connection: reads stay on the writer", exc_info=True)
                return self
        return reads

    def fetch_committed(self, sql: str, parameters: Any) -> list[Row]:
        """Run a query of rxdb's own on the committed state, between the writer's calls,
        outside any transaction (:mod:`rxdb.engines.sqlite.eager`); never a user's
        statement, which may write. Nothing is recorded, stamped or published.

        It reads here, with the plain ``sqlite3.Connection.execute`` (its statement cache,
        no authorizer swap, which would expire every prepared write), unless this connection
        may see something else than the readers (:attr:`WriteCapture.diverged
        <rxdb.engines.sqlite.capture.WriteCapture.diverged>`, and the readers are others):
        then on :meth:`committed_reads`, whose first read after a commit costs ~15 µs more
        (a page cache emptied by the commit, a read lock, reads from the WAL).

        :raises sqlite3.OperationalError: if it must read elsewhere and cannot.
        """
        reads: sqlite3.Connection = self
        if self._capture.diverged and self.reads_target is not None:  # diverged, inlined
            reads = self._reads or self.committed_reads()  # the method only while none is open
            if reads is self:
                raise sqlite3.OperationalError("no second connection for a committed read")
        cursor = sqlite3.Connection.execute(reads, sql, parameters)
        try:
            return make_rows(cursor.description, cursor)
        finally:
            cursor.close()  # reset: no read transaction (an old snapshot) outlives the call

    def interrupt(self) -> None:
        """Abort the statement running now, :meth:`fetch_committed`'s included."""
        reads = self._reads
        if reads is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed meanwhile
                reads.interrupt()
        super().interrupt()

    def close(self) -> None:
        reads, self._reads = self._reads, None
        if reads is not None:
            reads.close()
        super().close()

    def run(self, sql: str, parameters: Any) -> ExecuteResult:
        """Execute one statement, fetch its rows: the whole of ``db.execute`` in one hop."""
        cursor = self.execute(sql, parameters)
        # A statement without rows (a plain write) skips RowCursor.fetchall (a frame and an
        # empty fetch): it is on the road from a commit to its emission.
        rows = make_rows(None, ()) if cursor.description is None else cursor.fetchall()
        return ExecuteResult(cursor.rowcount, cursor.lastrowid or None, rows)

    def run_many(self, sql: str, seq_of_parameters: Iterable[Any]) -> int:
        return self.executemany(sql, seq_of_parameters).rowcount

    def run_script(self, script: str) -> None:
        self.executescript(script)

    def _tracked(self, sql: str, run: Any) -> None:
        before = self.total_changes
        was_in_transaction = self.in_transaction
        stamper = self.stamper
        if stamper is not None and not was_in_transaction:
            stamper.begin(self)  # this statement may start a transaction (or be one)
        if not self._capture.start(sql):
            # An authorizer installed expires every prepared statement: this one is prepared
            # afresh, and reports what it may do.
            self.set_authorizer(self._capture.authorize)
        failed = True
        try:
            run()
            failed = False
        finally:
            self._buffer.record(
                self._capture.finish(sql),
                changed=self.total_changes != before,
                failed=failed,
                was_in_transaction=was_in_transaction,
                in_transaction=self.in_transaction,
                replacing=bool(self._buffer.row_tables) and _REPLACE.search(sql) is not None,
            )

    def _committed(self, updates: frozenset[TableUpdate], everything: bool) -> None:
        stamper = self.stamper
        self._on_commit(updates, everything, None if stamper is None else stamper.end(self))
        after = self.after_commit
        if after is not None:
            after(self)


STATEMENT_CACHE = 128
"""The writer's statement cache (the sqlite3 module's default size), whatever its opener
asks for: a write prepared afresh each time cost ~20 µs more in the peer benchmark, and the
write capture keeps what a cached statement may do (see :mod:`rxdb.engines.sqlite.capture`)."""

_REPLACE = re.compile("replace", re.IGNORECASE)
"""``REPLACE INTO``, ``OR REPLACE``: a statement that may delete rows no trigger reports (a
``replace()`` call matches too, which only costs a full re-run)."""


def released(cursor: sqlite3.Cursor, run: Callable[..., object], *args: Any) -> None:
    """``run(*args)``, a statement of ``cursor``; if it fails, close ``cursor`` here, on its
    connection's thread. A failed statement stays with its cursor (CPython 3.11), which the
    error's traceback keeps; freed later on another thread (the loop's garbage collection),
    the cursor resets it, which waits for SQLite's connection mutex -- held by whatever
    statement the connection runs by then, for as long as it runs. The loop, and the
    interrupt that would end that statement, would stand still until it ends by itself."""
    try:
        run(*args)
    except BaseException:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed: nothing left to reset
            cursor.close()
        raise


def split_script(script: str) -> list[str]:
    """Split a script into complete statements, the way SQLite's own tokenizer sees them
    (semicolons inside strings, comments and trigger bodies do not split)."""
    statements: list[str] = []
    start = 0
    position = script.find(";")
    while position != -1:
        candidate = script[start : position + 1]
        if sqlite3.complete_statement(candidate):
            if candidate.strip(" \t\r\n;"):
                statements.append(candidate)
            start = position + 1
        position = script.find(";", position + 1)
    tail = script[start:]
    if tail.strip():
        statements.append(tail)
    return statements
