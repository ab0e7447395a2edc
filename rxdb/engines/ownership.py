"""Which task's transaction holds the writer: the one core both engines' writers share.

Writes are serialized by one asyncio lock, held for a whole transaction, and a context
variable tells which transaction a statement belongs to: the task that began it and the
tasks it starts (they inherit the variable) run in it; any other task waits for the lock.

A lock held for a transaction is only as safe as its owner. Misuse must not wedge the
database, so the owner is watched:

- **The owner task ends inside its transaction** (a ``transaction()`` entered without
  ``async with`` and forgotten, a task cancelled or garbage-collected between
  ``__aenter__`` and ``__aexit__``, a ``BEGIN`` without ``COMMIT``): the transaction is
  rolled back and the lock freed, with a :class:`ResourceWarning` (and a log line, since
  Python hides that warning by default) saying how to write it.
- **A block left from another task** (``__aexit__`` awaited elsewhere) cannot commit work
  its task may still be doing: it is rolled back, the lock freed, and the leaving task gets
  :class:`rxdb.TransactionAbortedError`; the owner's later statements run outside it.
- **close() cannot wait for ever** for a transaction: after its grace it revokes the
  scope (:meth:`Ownership.revoke`) and takes the lock over; the block, when it ends, learns
  that the database was closed under it.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from rxdb._types import TransactionMode
from rxdb.engines.closing import within
from rxdb.errors import ClosedError, ReentrancyError, TransactionAbortedError

__all__ = (
    "ABANDONED",
    "Ownership",
    "Scope",
    "TransactionWriter",
    "transaction_outside_reads",
)

LOG = logging.getLogger("rxdb.engine")

ABANDONED = (
    "a task ended inside a transaction it began (a db.transaction() entered without "
    "'async with', or a BEGIN without COMMIT or ROLLBACK); it was rolled back to free the "
    "writer: write 'async with db.transaction():' so the block ends in the task that began it"
)

_OTHER_TASK = (
    "this transaction block was left from a task other than the one that entered it, which "
    "may still be using it; it was rolled back: enter and leave a transaction in one task "
    "('async with db.transaction():')"
)


@dataclass(slots=True, eq=False)
class Scope:
    """The writer, owned by one task (and the tasks it starts) for one transaction."""

    explicit: bool  # opened by a BEGIN/SAVEPOINT the user wrote, not by transaction()
    owner: asyncio.Task[Any] | None = None
    active: bool = True
    savepoints: int = 0
    aborted: bool = False  # rolled back under the block (interrupt, lost connection, ...)
    failed: bool = False  # PostgreSQL: a statement failed, the rest is ignored until rollback
    revoked: bool = False  # taken over by close()
    _watcher: Callable[[asyncio.Task[Any]], None] | None = field(default=None, repr=False)


class Ownership:
    """The write lock and the scope of the transaction holding it.

    :param name: the context variable's name.
    :param roll_back: rolls the writer's open transaction back, quietly (awaited with the
        lock held by the scope being ended).
    :param is_closed: whether the engine refuses new work (its connections may be gone).
    """

    def __init__(
        self,
        name: str,
        roll_back: Callable[[], Awaitable[None]],
        is_closed: Callable[[], bool],
    ) -> None:
        self.lock = asyncio.Lock()
        self._var: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(name, default=None)
        self._roll_back = roll_back
        self._is_closed = is_closed
        self._holder: Scope | None = None

    def current(self) -> Scope | None:
        """The calling task's transaction, if it runs inside one that is still going."""
        scope = self._var.get()
        return scope if scope is not None and scope.active else None

    def begin_explicit(self) -> Scope:
        """Give the lock (held by the caller) to the transaction a user's BEGIN opened."""
        scope = self._adopt(explicit=True)
        self._var.set(scope)
        return scope

    def end_explicit(self, scope: Scope) -> bool:
        """End a BEGIN's transaction (its COMMIT or ROLLBACK ran). Returns whether this call
        ended it: then the caller releases the lock (after what it must do under it)."""
        if not self._end(scope):
            return False  # another task of the same transaction already ended it
        self._var.set(None)
        return True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Scope]:
        """Hold the lock for one ``transaction()`` block; yields its scope. The block checks
        :meth:`leaving` before it commits or rolls back."""
        await self.lock.acquire()
        scope = self._adopt(explicit=False)
        token = self._var.set(scope)
        try:
            yield scope
        finally:
            if asyncio.current_task() is scope.owner:
                self._var.reset(token)
                if self._end(scope):
                    self.lock.release()
            # Else it was left from another task: leaving() gave it back, or (the block was
            # garbage-collected) the end of its owner task will.

    async def leaving(self, scope: Scope, failed: BaseException | None = None) -> bool:
        """Check the task leaving ``scope``'s block (with ``failed``, the exception leaving
        it). Returns whether the block still holds its transaction, to commit or roll back.

        :raises rxdb.ClosedError: if close() took the transaction over (and ``failed`` is
            ``None``).
        :raises rxdb.TransactionAbortedError: if the block is left from another task (after
            rolling it back), or its owner ended first (it was rolled back then).
        """
        if not scope.active:
            if failed is not None:
                return False  # rolled back already; let the block's own exception out
            if scope.revoked:
                raise ClosedError(
                    "the database was closed inside this transaction, which was rolled back"
                )
            raise TransactionAbortedError(ABANDONED)
        if asyncio.current_task() is scope.owner:
            return True
        if isinstance(failed, GeneratorExit):
            # The block was garbage-collected inside it, maybe while its task still runs a
            # statement in it: the end of that task rolls it back (nobody gets an error).
            return False
        await self._give_back(scope)
        raise TransactionAbortedError(_OTHER_TASK) from failed

    async def acquire_for_close(self, grace: float, interrupt: Callable[[], None]) -> None:
        """Take the lock for close(), never waiting for ever: ``grace`` seconds for the
        transaction holding it; then its statement is interrupted, and the transaction
        rolled back and taken over (its block raises :class:`rxdb.ClosedError` when it
        ends). A lock held outside transactions (a read block on the one connection of
        ``:memory:``) gets another ``grace`` after the interrupt; then close() goes on
        without it. Called by a task that holds no transaction (see :meth:`current`)."""
        acquiring = asyncio.ensure_future(self.lock.acquire())
        if await within(acquiring, grace):
            return
        interrupt()
        holder = self._holder
        if holder is not None and holder.active:
            acquiring.cancel()  # the lock stays held: close()'s from here
            holder.revoked = holder.aborted = True
            self._end(holder)
            await self._roll_back()
        elif not await within(acquiring, grace):
            acquiring.cancel()

    async def _give_back(self, scope: Scope) -> bool:
        """End ``scope``, roll its transaction back and free the lock; ``False`` if it had
        ended already. Ended first, so that its owner's end cannot roll back again."""
        if not self._end(scope):
            return False
        try:
            await self._roll_back()
        finally:
            self.lock.release()
        return True

    def _adopt(self, *, explicit: bool) -> Scope:
        task = asyncio.current_task()
        scope = Scope(explicit=explicit, owner=task)
        if task is not None:
            scope._watcher = lambda _: self._owner_ended(scope)
            task.add_done_callback(scope._watcher)
        self._holder = scope
        return scope

    def _end(self, scope: Scope) -> bool:
        if not scope.active:
            return False
        scope.active = False
        if scope.owner is not None and scope._watcher is not None:
            scope.owner.remove_done_callback(scope._watcher)
            scope._watcher = None
        if self._holder is scope:
            self._holder = None
        return True

    def _owner_ended(self, scope: Scope) -> None:
        if not self._end(scope):
            return
        closed = self._is_closed()

        async def roll_back() -> None:
            try:
                if not closed:  # closing connections roll back by themselves
                    await self._roll_back()
            finally:
                self.lock.release()

        asyncio.get_running_loop().create_task(roll_back(), context=contextvars.Context())
        _warn(ABANDONED)


class TransactionWriter(Protocol):
    """What :func:`transaction_outside_reads` needs of an engine's writer."""

    def transaction(self, mode: TransactionMode) -> AbstractAsyncContextManager[None]: ...


def transaction_outside_reads(
    writer: TransactionWriter, reading: bool, mode: TransactionMode
) -> AbstractAsyncContextManager[None]:
    """An engine's ``transaction()``: its writer's, refused inside a read block (whose
    connection is a reader: the block would wait on itself, or write on a snapshot)."""
    if reading:
        raise ReentrancyError(
            "db.transaction() inside db.read(): end the read block before writing"
        )
    return writer.transaction(mode)


def _warn(message: str) -> None:
    LOG.warning("%s", message)
    try:
        warnings.warn(message, ResourceWarning, stacklevel=1)
    except Warning:
        LOG.debug("the ResourceWarning was turned into an error", exc_info=True)
