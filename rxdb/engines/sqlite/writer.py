"""The writer connection, its lock, and which transaction a statement belongs to.

Writes are serialised by an asyncio lock held for a whole transaction. Which transaction a
statement belongs to is decided by a context variable, so statements of the task inside a
``transaction()`` block (and of tasks it starts) run in it, and statements of any other task
wait for it to end — never slipping into it, as they would on a bare shared connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from rxdb._types import TransactionMode
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


@dataclass(slots=True)
class _Scope:
    """The writer, owned by one task (and the tasks it starts) for one transaction."""

    explicit: bool  # opened by a BEGIN/SAVEPOINT the user wrote, not by transaction()
    active: bool = True
    savepoints: int = 0
    aborted: bool = False  # rolled back under the block (interrupt, OR ROLLBACK)


class Writer:
    def __init__(self, worker: Worker[TrackedConnection], is_closed: Callable[[], bool]) -> None:
        self.worker = worker
        self.lock = asyncio.Lock()
        self._is_closed = is_closed
        self._scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
            "rxdb_write_scope", default=None
        )

    def in_scope(self) -> bool:
        """Whether the calling task runs inside a transaction on this writer."""
        scope = self._scope.get()
        return scope is not None and scope.active

    async def run(self, sql: str, operation: Callable[[TrackedConnection], T]) -> T:
        """Run one user operation on the writer: inside the caller's transaction if it has
        one, else under the write lock. An operation that leaves a transaction open (a BEGIN
        the user wrote) keeps the lock for the calling task until one closes it."""
        scope = self._scope.get()
        if scope is not None and scope.active:
            _check_not_aborted(scope)
            try:
                return await self._call(sql, operation)
            except DatabaseError as error:
                if isinstance(error, InterruptError) or not self.worker.in_transaction:
                    # The transaction is over (interrupted, or rolled back by SQLite itself:
                    # ON CONFLICT ROLLBACK, RAISE(ROLLBACK)). As in GRDB, the block's later
                    # statements must fail rather than autocommit one by one.
                    scope.aborted = not scope.explicit
                    await self.rollback_quietly()
                raise
            finally:
                if scope.explicit and not self.worker.in_transaction:
                    self._end_explicit(scope)
        await self.lock.acquire()
        try:
            result = await self._call(sql, operation)
        finally:
            if self.worker.in_transaction:
                self._begin_explicit()
            else:
                self.lock.release()
        return result

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode) -> AsyncIterator[None]:
        if mode not in _MODES:
            raise ProgrammingError(f"transaction mode must be one of {_MODES}, not {mode!r}")
        scope = self._scope.get()
        if scope is not None and scope.active:
            async with self._savepoint(scope):
                yield
            return
        await self.lock.acquire()
        scope = _Scope(explicit=False)
        token = self._scope.set(scope)
        try:
            await self.raw(f"BEGIN {mode.upper()}")
            try:
                yield
            except BaseException:
                await self.rollback_quietly()
                raise
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
        finally:
            scope.active = False
            self._scope.reset(token)
            self.lock.release()

    @asynccontextmanager
    async def _savepoint(self, scope: _Scope) -> AsyncIterator[None]:
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
        await self._call(sql, lambda conn: conn.run(sql, ()))

    async def rollback_quietly(self) -> None:
        if not self.worker.in_transaction:
            return
        try:
            await self.raw("ROLLBACK")
        except DatabaseError:
            LOG.exception("rollback failed")

    async def _call(self, sql: str, operation: Callable[[TrackedConnection], T]) -> T:
        try:
            return await self.worker.call(operation, self.worker.raw)
        except sqlite3.Error as error:
            raise from_sqlite(error, sql) from error

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
        self.lock.release()

    def _abandoned(self, scope: _Scope) -> None:
        # The task that wrote BEGIN ended without COMMIT or ROLLBACK: roll back, or every
        # other writer would wait for a lock nobody can release.
        if not scope.active or self._is_closed():
            return
        LOG.warning("a task ended inside a transaction it opened with BEGIN; rolling it back")
        scope.active = False

        async def roll_back() -> None:
            try:
                await self.rollback_quietly()
            finally:
                self.lock.release()

        asyncio.get_running_loop().create_task(roll_back(), context=contextvars.Context())


def _check_not_aborted(scope: _Scope) -> None:
    if scope.aborted:
        raise TransactionAbortedError(
            "the transaction was rolled back under this block (a statement was interrupted "
            "or SQLite rolled it back); leave the transaction block, then start a new one"
        )
