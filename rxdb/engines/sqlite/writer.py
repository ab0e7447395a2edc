"""The writer connection, its lock, and which transaction a statement belongs to.

Writes are serialised by an asyncio lock held for a whole transaction. Which transaction a
statement belongs to is decided by a context variable, so statements of the task inside a
``transaction()`` block (and of tasks it starts) run in it, and statements of any other task
wait for it to end — never slipping into it, as they would on a bare shared connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from rxdb._types import TransactionMode
from rxdb.engines.ownership import Ownership, Scope
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.engines.sqlite.workers import Worker
from rxdb.errors import (
    ClosedError,
    DatabaseError,
    InterruptError,
    ProgrammingError,
    TransactionAbortedError,
    from_sqlite,
)

__all__ = ("TransactionMode", "Writer")

LOG = logging.getLogger("rxdb.engine")
T = TypeVar("T")
_MODES = ("deferred", "immediate", "exclusive")


class Writer:
    def __init__(self, worker: Worker[TrackedConnection], is_closed: Callable[[], bool]) -> None:
        self.worker = worker
        self._is_closed = is_closed
        self.owner = Ownership("rxdb_write_scope", self.rollback_quietly, is_closed)
        self.lock = self.owner.lock

    def in_scope(self) -> bool:
        """Whether the calling task runs inside a transaction on this writer."""
        return self.owner.current() is not None

    async def run(self, sql: str, operation: Callable[..., T], *args: Any) -> T:
        """Run one user operation, ``operation(connection, *args)``, on the writer: inside
        the caller's transaction if it has one, else under the write lock. An operation that
        leaves a transaction open (a BEGIN the user wrote) keeps the lock for the calling
        task until one closes it."""
        scope = self.owner.current()
        if scope is not None:
            _check_not_aborted(scope)
            try:
                return await self._call(sql, operation, *args)
            except DatabaseError as error:
                if isinstance(error, InterruptError) or not self.worker.in_transaction:
                    # The transaction is over (interrupted, or rolled back by SQLite itself:
                    # ON CONFLICT ROLLBACK, RAISE(ROLLBACK)). As in GRDB, the block's later
                    # statements must fail rather than autocommit one by one.
                    scope.aborted = not scope.explicit
                    await self.rollback_quietly()
                raise
            finally:
                ended = scope.explicit and not self.worker.in_transaction
                if ended and self.owner.end_explicit(scope):
                    self.lock.release()
        await self.lock.acquire()
        try:
            result = await self._call(sql, operation, *args)
        finally:
            if self.worker.in_transaction:
                self.owner.begin_explicit()
            else:
                self.lock.release()
        return result

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode) -> AsyncIterator[None]:
        if mode not in _MODES:
            raise ProgrammingError(f"transaction mode must be one of {_MODES}, not {mode!r}")
        scope = self.owner.current()
        if scope is not None:
            async with self._savepoint(scope):
                yield
            return
        async with self.owner.transaction() as scope:
            await self.raw(f"BEGIN {mode.upper()}")
            try:
                yield
            except BaseException as error:
                if await self.owner.leaving(scope, error):
                    await self.rollback_quietly()
                raise
            await self.owner.leaving(scope)
            _check_not_aborted(scope)
            if self._is_closed():
                raise ClosedError(
                    "the database was closed inside this transaction, which was rolled back"
                )
            if self.worker.in_transaction:
                try:
                    await self.raw("COMMIT")
                except BaseException:
                    await self.rollback_quietly()
                    raise

    @asynccontextmanager
    async def _savepoint(self, scope: Scope) -> AsyncIterator[None]:
        _check_not_aborted(scope)
        scope.savepoints += 1
        name = f"rxdb_savepoint_{scope.savepoints}"
        await self.raw(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if self.worker.in_transaction and not scope.aborted:
                await self.raw(f"ROLLBACK TO {name}")
                await self.raw(f"RELEASE {name}")
            raise
        _check_not_aborted(scope)
        if self.worker.in_transaction:
            await self.raw(f"RELEASE {name}")

    async def raw(self, sql: str) -> None:
        """Run a statement of rxdb's own (transaction control, pragmas) on the writer."""
        await self._call(sql, TrackedConnection.run, sql, ())

    async def rollback_quietly(self) -> None:
        if not self.worker.in_transaction:
            return
        try:
            await self.raw("ROLLBACK")
        except DatabaseError:
            LOG.exception("rollback failed")

    async def _call(self, sql: str, operation: Callable[..., T], *args: Any) -> T:
        # Worker.call, inlined as Worker.start allows: one coroutine less to resume on the
        # road from every write to its result (and to a watch's emission riding with it).
        worker = self.worker
        future = worker.start(operation, worker.raw, *args)
        try:
            return await future
        except sqlite3.Error as error:
            raise from_sqlite(error, sql) from error
        except asyncio.CancelledError:
            await worker.settle()
            raise


def _check_not_aborted(scope: Scope) -> None:
    if scope.aborted:
        raise TransactionAbortedError(
            "the transaction was rolled back under this block (a statement was interrupted "
            "or SQLite rolled it back); leave the transaction block, then start a new one"
        )
