"""One SQLite database as rxdb drives it: a tracked writer, readers, and the write lock.

Writes are serialised by an asyncio lock held for a whole transaction. Which transaction a
statement belongs to is decided by a context variable, so statements of the task inside a
``transaction()`` block (and of tasks it starts) run in it, and statements of any other task
wait for it to end — never slipping into it, as they would on a bare shared connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

import aiosqlite

from parser import StatementKind, Unanalyzable, analyze
from rxdb._types import Params
from rxdb.engine.backup import ProgressCallback, copy_database
from rxdb.engine.capture import CommitCallback
from rxdb.engine.connections import ConnectionRegistry, ReaderConnection, TrackedConnection
from rxdb.engine.readers import ReaderPool
from rxdb.engine.sessions import ReadSession, read_only_violation
from rxdb.engine.workers import close_connection, open_connection, uninterrupted
from rxdb.errors import (
    ClosedError,
    DatabaseError,
    InterruptError,
    ProgrammingError,
    ReentrancyError,
    TransactionAbortedError,
    WrongLoopError,
    from_sqlite,
)
from rxdb.rows import ExecuteResult, Row

__all__ = ("Engine", "TransactionMode")

LOG = logging.getLogger("rxdb.engine")
T = TypeVar("T")
TransactionMode = Literal["deferred", "immediate", "exclusive"]
_MODES = ("deferred", "immediate", "exclusive")


@dataclass(slots=True)
class _Scope:
    """The writer, owned by one task (and the tasks it starts) for one transaction."""

    explicit: bool  # opened by a BEGIN/SAVEPOINT the user wrote, not by transaction()
    active: bool = True
    savepoints: int = 0
    aborted: bool = False  # rolled back under the block by an interrupt


class Engine:
    """Open with :meth:`open`; every method must be awaited on the loop that opened it."""

    def __init__(
        self,
        path: str,
        *,
        on_commit: CommitCallback,
        readers: int,
        busy_timeout: float,
        foreign_keys: bool,
    ) -> None:
        self.path = path
        self.memory = path in (":memory:", "")
        self._on_commit = on_commit
        self._reader_count = readers
        self._busy_timeout = busy_timeout
        self._foreign_keys = foreign_keys
        self._writer: aiosqlite.Connection | None = None
        self._readers: ReaderPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
            "rxdb_write_scope", default=None
        )
        self._read_scope: contextvars.ContextVar[ReadSession | None] = contextvars.ContextVar(
            "rxdb_read_scope", default=None
        )
        self._connections: ConnectionRegistry = ConnectionRegistry()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        factory = functools.partial(
            TrackedConnection, on_commit=self._on_commit, registry=self._connections
        )
        try:
            writer = await open_connection(
                self.path,
                factory=factory,
                isolation_level=None,
                cached_statements=0,
                timeout=self._busy_timeout,
            )
        except sqlite3.Error as error:
            raise from_sqlite(error, None, f"cannot open {self.path!r}") from error
        self._writer = writer
        try:
            await writer.execute(f"PRAGMA foreign_keys = {'ON' if self._foreign_keys else 'OFF'}")
            if not self.memory:
                rows = await writer.execute_fetchall("PRAGMA journal_mode = WAL")
                if next(iter(rows))[0].lower() == "wal":
                    self._readers = ReaderPool(self._open_reader, self._reader_count)
        except BaseException:
            await close_connection(writer)
            raise

    async def _open_reader(self) -> aiosqlite.Connection:
        conn = await open_connection(
            self.path,
            factory=functools.partial(ReaderConnection, registry=self._connections),
            isolation_level=None,
            timeout=self._busy_timeout,
        )
        try:
            await conn.execute("PRAGMA query_only = ON")
        except BaseException:
            await close_connection(conn)
            raise
        return conn

    @property
    def closed(self) -> bool:
        return self._closed

    # -- statements -------------------------------------------------------------------------

    async def execute(self, sql: str, params: Params) -> ExecuteResult:
        writer = self._check()

        async def run() -> ExecuteResult:
            cursor = await writer.execute(sql, params)
            rows: list[Row] = await cursor.fetchall() if cursor.description else []  # type: ignore[assignment]
            last = cursor.lastrowid
            return ExecuteResult(cursor.rowcount, last if last else None, rows)

        return await self._on_writer(sql, run)

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        writer = self._check()

        async def run() -> int:
            cursor = await writer.executemany(sql, seq_of_params)
            return cursor.rowcount

        return await self._on_writer(sql, run)

    async def execute_script(self, script: str) -> None:
        writer = self._check()

        async def run() -> None:
            await writer.executescript(script)

        await self._on_writer(script, run)

    async def fetch_all(self, sql: str, params: Params) -> list[Row]:
        """Run a query: on a reader outside a transaction, on the writer inside one (so it sees
        the transaction's own writes). A statement that is not a plain query goes to the writer."""
        writer = self._check()
        session = self._read_scope.get()
        if session is not None:
            return await session.fetch_all(sql, params)
        if self._in_scope() or not _is_query(sql):
            return await self._on_writer(sql, lambda: _fetch(writer, sql, params))
        return await self.fetch_committed(sql, params)

    async def fetch_committed(self, sql: str, params: Params) -> list[Row]:
        """Run a query against committed data only, whatever the caller's transaction."""
        writer = self._check()
        try:
            if self._readers is not None:
                async with self._readers.acquire() as reader:
                    return await _fetch(reader, sql, params)
            async with self._lock:
                return await _fetch(writer, sql, params)
        except sqlite3.Error as error:
            raise from_sqlite(error, sql) from error

    # -- read blocks ------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self, *, isolated: bool) -> AsyncIterator[ReadSession]:
        """Reserve one connection for a block of reads; with ``isolated``, all of them see
        the snapshot taken when the block began."""
        writer = self._check()
        if self._read_scope.get() is not None:
            raise ReentrancyError("db.read() inside db.read(): use the outer block's session")
        if self._in_scope():
            raise ReentrancyError(
                "db.read() inside a transaction would not see the transaction's own writes; "
                "read with db.fetch_all() inside the transaction instead"
            )
        if self._readers is not None:
            async with self._readers.acquire() as reader:
                if isolated:
                    # A read inside BEGIN pins the WAL snapshot until COMMIT.
                    await _translated("BEGIN", lambda: reader.executescript(_SNAPSHOT_SQL))
                try:
                    async with self._session(reader, isolated) as session:
                        yield session
                finally:
                    if isolated:
                        await _translated("COMMIT", lambda: reader.execute("COMMIT"))
            return
        # One connection: holding the write lock is what isolates the block.
        async with self._lock:
            await self._raw("PRAGMA query_only = ON")
            try:
                async with self._session(writer, isolated) as session:
                    yield session
            finally:
                await self._raw("PRAGMA query_only = OFF")

    @asynccontextmanager
    async def _session(
        self, conn: aiosqlite.Connection, isolated: bool
    ) -> AsyncIterator[ReadSession]:
        session = ReadSession(conn, isolated=isolated)
        token = self._read_scope.set(session)
        try:
            yield session
        finally:
            session.end()
            self._read_scope.reset(token)

    # -- transactions -----------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode = "immediate") -> AsyncIterator[None]:
        self._check()
        if mode not in _MODES:
            raise ProgrammingError(f"transaction mode must be one of {_MODES}, not {mode!r}")
        if self._read_scope.get() is not None:
            raise ReentrancyError(
                "db.transaction() inside db.read(): end the read block before writing"
            )
        scope = self._scope.get()
        if scope is not None and scope.active:
            self._check_not_aborted(scope)
            scope.savepoints += 1
            name = f"rxdb_savepoint_{scope.savepoints}"
            await self._raw(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if self._in_transaction() and not scope.aborted:
                    await self._raw(f"ROLLBACK TO {name}")
                    await self._raw(f"RELEASE {name}")
                raise
            self._check_not_aborted(scope)
            if self._in_transaction():
                await self._raw(f"RELEASE {name}")
            return
        await self._lock.acquire()
        scope = _Scope(explicit=False)
        token = self._scope.set(scope)
        try:
            await self._raw(f"BEGIN {mode.upper()}")
            try:
                yield
            except BaseException:
                await self._rollback_quietly()
                raise
            self._check_not_aborted(scope)
            if self._closed:
                raise ClosedError(
                    f"the database {self.path!r} was closed inside this transaction, which was "
                    "rolled back"
                )
            if self._in_transaction():
                try:
                    await self._raw("COMMIT")
                except BaseException:
                    await self._rollback_quietly()
                    raise
        finally:
            scope.active = False
            self._scope.reset(token)
            self._lock.release()

    def _in_transaction(self) -> bool:
        """Whether the writer has a transaction open (never, once it is closed)."""
        writer = self._writer
        try:
            return writer is not None and writer.in_transaction
        except ValueError:  # aiosqlite: "no active connection"
            return False

    def _in_scope(self) -> bool:
        scope = self._scope.get()
        return scope is not None and scope.active

    async def _on_writer(self, sql: str, run: Callable[[], Awaitable[T]]) -> T:
        """Run one user statement on the writer, inside the caller's transaction if it has one,
        else under the write lock. A statement that leaves a transaction open (a BEGIN the user
        wrote) keeps the lock for the calling task until a statement closes it."""
        writer = self._writer
        assert writer is not None
        if self._read_scope.get() is not None:
            raise read_only_violation(sql)
        scope = self._scope.get()
        if scope is not None and scope.active:
            self._check_not_aborted(scope)
            try:
                return await _translated(sql, run)
            except DatabaseError as error:
                if isinstance(error, InterruptError) or not self._in_transaction():
                    # The transaction is over (interrupted, or rolled back by SQLite itself:
                    # ON CONFLICT ROLLBACK, RAISE(ROLLBACK)). As in GRDB, the block's later
                    # statements must fail rather than autocommit one by one.
                    scope.aborted = not scope.explicit
                    await self._rollback_quietly()
                raise
            finally:
                if scope.explicit and not self._in_transaction():
                    self._end_explicit(scope)
        await self._lock.acquire()
        try:
            result = await _translated(sql, run)
        finally:
            if self._in_transaction():
                self._begin_explicit()
            else:
                self._lock.release()
        return result

    @staticmethod
    def _check_not_aborted(scope: _Scope) -> None:
        if scope.aborted:
            raise TransactionAbortedError(
                "the transaction was rolled back under this block (a statement was interrupted "
                "or SQLite rolled it back); leave the transaction block, then start a new one"
            )

    def _begin_explicit(self) -> None:
        scope = _Scope(explicit=True)
        self._scope.set(scope)
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: self._abandoned(scope))

    def _end_explicit(self, scope: _Scope) -> None:
        if not scope.active:
            return  # another task of the same transaction already ended it
        scope.active = False
        self._scope.set(None)
        self._lock.release()

    def _abandoned(self, scope: _Scope) -> None:
        # The task that wrote BEGIN ended without COMMIT or ROLLBACK: roll back, or every
        # other writer would wait for a lock nobody can release.
        if not scope.active or self._closed:
            return
        LOG.warning("a task ended inside a transaction it opened with BEGIN; rolling it back")
        scope.active = False

        async def roll_back() -> None:
            try:
                await self._rollback_quietly()
            finally:
                self._lock.release()

        asyncio.get_running_loop().create_task(roll_back(), context=contextvars.Context())

    async def _raw(self, sql: str) -> None:
        writer = self._writer
        assert writer is not None
        await _translated(sql, lambda: writer.execute(sql))

    async def _rollback_quietly(self) -> None:
        writer = self._writer
        if writer is None or not self._in_transaction():
            return
        try:
            await _translated("ROLLBACK", lambda: writer.execute("ROLLBACK"))
        except (DatabaseError, ValueError):
            LOG.exception("rollback failed")

    # -- interrupt and backup ---------------------------------------------------------------

    def interrupt(self) -> None:
        """Abort the statements running now on every connection. Safe from any thread."""
        for conn in list(self._connections):
            conn.interrupt()

    async def backup(
        self,
        target: str | Engine,
        *,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> None:
        """Copy this database into a file path or another engine, from one snapshot."""
        self._check()
        if self._read_scope.get() is not None or self._in_scope():
            raise ReentrancyError("back up outside read blocks and transactions")
        if isinstance(target, Engine):
            target._check()
            async with target._lock:
                await self._backup_into(target._raw_writer(), pages_per_step, progress)
            return
        destination = sqlite3.connect(target)
        try:
            await self._backup_into(destination, pages_per_step, progress)
        finally:
            destination.close()

    async def _backup_into(
        self,
        destination: sqlite3.Connection,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> None:
        try:
            if self._readers is None:
                async with self._lock:
                    writer = self._writer
                    assert writer is not None
                    await copy_database(
                        writer, destination, pages_per_step=pages_per_step, progress=progress
                    )
                return
            async with self.read(isolated=True):
                session = self._read_scope.get()
                assert session is not None
                await copy_database(
                    session.connection,
                    destination,
                    pages_per_step=pages_per_step,
                    progress=progress,
                )
        except sqlite3.Error as error:
            raise from_sqlite(error, None, "backup failed") from error

    def _raw_writer(self) -> sqlite3.Connection:
        for conn in self._connections:
            if isinstance(conn, TrackedConnection):
                return conn
        raise ClosedError(f"the database {self.path!r} has no open writer")

    # -- lifecycle --------------------------------------------------------------------------

    def _check(self) -> aiosqlite.Connection:
        if self._closed or self._writer is None:
            raise ClosedError(f"the database {self.path!r} is closed; open it again to use it")
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                f"the database {self.path!r} belongs to another event loop; open one "
                "rxdb.Database per event loop (they share notifications), or use "
                "rxdb.open_sync() from threads without a loop"
            )
        return self._writer

    async def close(self) -> None:
        """Wait for the running transaction (if another task holds one) and reads in flight,
        then close every connection. Idempotent."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            owned = self._in_scope()
            if owned:
                await self._rollback_quietly()
            else:
                await self._lock.acquire()
            if self._readers is not None:
                await self._readers.close()
            if self._writer is not None:
                await close_connection(self._writer)
        finally:
            self._closing.set_result(None)


_SNAPSHOT_SQL = "BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1;"


def _is_query(sql: str) -> bool:
    try:
        return analyze(sql).kind is StatementKind.QUERY
    except Unanalyzable:
        return False


async def _fetch(conn: aiosqlite.Connection, sql: str, params: Params) -> list[Row]:
    return await conn.execute_fetchall(sql, params)  # type: ignore[return-value]


async def _translated(sql: str, run: Callable[[], Awaitable[T]]) -> T:
    try:
        return await uninterrupted(run())
    except sqlite3.Error as error:
        raise from_sqlite(error, sql) from error


def database_key(path: str) -> str:
    """The identity under which a file's commits travel: its real path."""
    return os.path.realpath(path)
