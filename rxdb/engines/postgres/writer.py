"""The writer connection, its lock, and which transaction a statement belongs to.

As on SQLite (:mod:`rxdb.engines.sqlite.writer`), writes are serialized by an asyncio lock
held for a whole transaction, and a context variable decides which transaction a statement
belongs to: the task inside a ``transaction()`` block and the tasks it starts run in it;
any other task waits for it to end.

Where PostgreSQL differs, and what the writer makes of it:

- **A failed statement fails the whole transaction**: PostgreSQL ignores every later
  statement until the transaction (or a savepoint) rolls back. The block's later statements
  raise :class:`rxdb.TransactionAbortedError` at once, without a round trip; a nested
  ``transaction()`` block (a savepoint) contains the failure: leaving it with the exception
  rolls back to the savepoint and the outer transaction carries on.
- **An interrupted statement or a lost connection** rolls the whole transaction back, as
  an interrupt does on SQLite.
- **The connection may be lost** (a server restart, a terminated backend): the next
  statement outside a transaction opens a new one.

As it takes the lock for a new transaction (or a statement on its own) the writer calls
``began()``; before the COMMIT of a ``transaction()`` block it awaits ``before_commit(conn)``, and
after every commit (outermost, or of a statement on its own) ``on_commit(conn, notified=...)``
(``notified``: ``before_commit`` ran in that transaction), still holding the lock: the
engine announces it.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from rxdb._types import TransactionMode
from rxdb.engines.ownership import Ownership, Scope
from rxdb.engines.postgres.connections import Connection, control
from rxdb.engines.postgres.failures import ended
from rxdb.errors import (
    ClosedError,
    DatabaseError,
    InterruptError,
    ProgrammingError,
    TransactionAbortedError,
)

__all__ = ("BEGIN", "CommitHooks", "Writer")

LOG = logging.getLogger("rxdb.engine")
T = TypeVar("T")

BEGIN: dict[str, str] = {
    "deferred": "BEGIN ISOLATION LEVEL READ COMMITTED",
    "immediate": "BEGIN ISOLATION LEVEL READ COMMITTED",
    "exclusive": "BEGIN ISOLATION LEVEL SERIALIZABLE",
}
"""How each of SQLite's transaction modes begins on PostgreSQL. rxdb's writer lock is taken
at once in every mode (this process's writers are serialized either way); PostgreSQL has no
database-wide write lock to take early, so ``deferred`` and ``immediate`` are PostgreSQL's
default, READ COMMITTED, and ``exclusive`` asks for SERIALIZABLE: the transaction behaves as
if it ran alone, or fails (:class:`rxdb.BusyError`, SQLSTATE 40001) and may be retried."""

_FAILED = (
    "a statement failed in this transaction, and PostgreSQL ignores every later one until "
    "the transaction rolls back: leave the transaction block (to carry on after a "
    "statement that may fail, run it in a nested db.transaction() block, a savepoint)"
)


class CommitHooks(Protocol):
    """What the writer tells around commits (the engine's change source)."""

    def began(self) -> None: ...

    async def before_commit(self, conn: Connection) -> None: ...

    async def committed(self, conn: Connection, *, notified: bool) -> None: ...


class Writer:
    """The one connection that writes.

    :param connect: opens a new writer connection.
    :param is_closed: whether the engine refuses new work.
    :param hooks: awaited around commits (see the module's docstring); ``committed`` also
        after a statement that may have committed (interrupted, connection lost).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        is_closed: Callable[[], bool],
        hooks: CommitHooks,
    ) -> None:
        self._connect = connect
        self._is_closed = is_closed
        self._hooks = hooks
        self.conn: Connection | None = None
        self.owner = Ownership("rxdb_pg_write_scope", self.rollback_quietly, is_closed)
        self.lock = self.owner.lock

    async def open(self) -> Connection:
        self.conn = conn = await self._connect()
        return conn

    def in_scope(self) -> bool:
        """Whether the calling task runs inside a transaction on this writer."""
        return self.owner.current() is not None

    async def run(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        """Run one user statement on the writer: inside the caller's transaction if it has
        one, else under the write lock. A statement that leaves a transaction open (a BEGIN
        the user wrote) keeps the lock for the calling task until one closes it."""
        scope = self.owner.current()
        if scope is not None:
            return await self._run_in(scope, operation)
        await self.lock.acquire()
        self._hooks.began()
        conn: Connection | None = None
        committed = False
        try:
            conn = await self._connection()
            try:
                result = await operation(conn)
            except DatabaseError as error:
                committed = _may_have_committed(error)
                raise
            except BaseException:
                committed = True  # cancelled: it may have run to its end
                raise
            committed = True
            return result
        finally:
            if conn is not None and not conn.is_closed() and conn.is_in_transaction():
                self.owner.begin_explicit()
            else:
                try:
                    if committed and conn is not None:
                        await self._hooks.committed(conn, notified=False)
                finally:
                    self.lock.release()

    async def _run_in(self, scope: Scope, operation: Callable[[Connection], Awaitable[T]]) -> T:
        if not scope.explicit:
            _check_usable(scope)
        conn = self._current()
        try:
            return await operation(conn)
        except DatabaseError as error:
            if isinstance(error, InterruptError) or ended(error):
                # The transaction is over, as on SQLite after an interrupt: the block's
                # later statements must fail rather than autocommit one by one.
                scope.aborted = not scope.explicit
                await self.rollback_quietly()
            elif error.sqlstate is not None:
                scope.failed = True
            raise
        finally:
            if scope.explicit and (conn.is_closed() or not conn.is_in_transaction()):
                await self._end_explicit(scope, conn)

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode) -> AsyncIterator[None]:
        begin = BEGIN.get(mode)
        if begin is None:
            raise ProgrammingError(f"transaction mode must be one of {tuple(BEGIN)}, not {mode!r}")
        scope = self.owner.current()
        if scope is not None:
            async with self._savepoint(scope):
                yield
            return
        async with self.owner.transaction() as scope:
            self._hooks.began()
            conn = await self._connection()
            await control(conn, begin)
            try:
                yield
            except BaseException as error:
                if await self.owner.leaving(scope, error):
                    await self.rollback_quietly()
                raise
            await self.owner.leaving(scope)
            if scope.aborted or scope.failed:
                await self.rollback_quietly()
                _check_usable(scope)
            if self._is_closed():
                raise ClosedError(
                    "the database was closed inside this transaction, which was rolled back"
                )
            notified = conn.is_in_transaction()
            if notified:
                try:
                    await self._hooks.before_commit(conn)
                    await control(conn, "COMMIT")
                except DatabaseError as error:
                    await self.rollback_quietly()
                    if _may_have_committed(error):
                        await self._hooks.committed(conn, notified=True)
                    raise
                except BaseException:
                    await self.rollback_quietly()
                    raise
            await self._hooks.committed(conn, notified=notified)

    @asynccontextmanager
    async def _savepoint(self, scope: Scope) -> AsyncIterator[None]:
        _check_usable(scope)
        conn = self._current()
        scope.savepoints += 1
        name = f"rxdb_savepoint_{scope.savepoints}"
        await control(conn, f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if not scope.aborted and conn.is_in_transaction():
                await self._roll_back_to(scope, name)
            raise
        if scope.failed and not scope.aborted:
            # A statement failed inside and the block swallowed the error: its other
            # statements are void, so the block cannot end as if they had run.
            await self._roll_back_to(scope, name)
            raise TransactionAbortedError(
                "a statement failed inside this nested transaction block and the block "
                "went on; it was rolled back to its start (let the error leave the block)"
            )
        _check_usable(scope)
        if conn.is_in_transaction():
            await control(conn, f"RELEASE SAVEPOINT {name}")

    async def _roll_back_to(self, scope: Scope, name: str) -> None:
        conn = self._current()
        await control(conn, f"ROLLBACK TO SAVEPOINT {name}")
        await control(conn, f"RELEASE SAVEPOINT {name}")
        scope.failed = False

    async def rollback_quietly(self) -> None:
        conn = self.conn
        if conn is None or conn.is_closed() or not conn.is_in_transaction():
            return
        try:
            await control(conn, "ROLLBACK")
        except DatabaseError:
            LOG.exception("rollback failed")

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()

    def _current(self) -> Connection:
        conn = self.conn
        if conn is None:
            raise ClosedError("the database is closed; open a new one (rxdb.open)")
        return conn

    async def _connection(self) -> Connection:
        """The writer's connection, opened anew if the old one is gone (called under the
        lock, outside any transaction)."""
        conn = self._current()
        if conn.is_closed():
            conn = self.conn = await self._connect()
        return conn

    async def _end_explicit(self, scope: Scope, conn: Connection) -> None:
        if not self.owner.end_explicit(scope):
            return
        try:
            await self._hooks.committed(conn, notified=False)
        finally:
            self.lock.release()


def _check_usable(scope: Scope) -> None:
    if scope.aborted:
        raise TransactionAbortedError(
            "the transaction was rolled back under this block (a statement was interrupted "
            "or the connection was lost); leave the transaction block, then start a new one"
        )
    if scope.failed:
        raise TransactionAbortedError(_FAILED)


def _may_have_committed(error: DatabaseError) -> bool:
    """Whether a statement that raised ``error`` may still have committed: an interrupt or a
    lost connection can come after the server committed. Anything else the server refused
    committed nothing."""
    return isinstance(error, InterruptError) or ended(error)
