"""The transaction and read blocks one client holds on the server, and where its statements run.

Each block is a :class:`~rxdb.boundary.blocks.ThreadBlock`: one task on the database's loop
holds ``async with db.transaction()`` (or ``db.read()``) open and runs the client's
statements for that block in its context, so the engine's own rules apply unchanged
(savepoints when nested, a ReentrancyError for a read inside a transaction...). The client
names a block by its id in each statement.

The blocks also count what runs where, as far as rxdb lets anyone know, so that a client's
``interrupt`` stops its own work and, wherever that is possible, nobody else's
(:meth:`Blocks.interrupt`); and when the client is gone, they stop what still runs in its
blocks and roll them back (:meth:`Blocks.release`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal

from rxdb.api import AsyncDatabase, AsyncReadSession
from rxdb.boundary.blocks import Enter, ThreadBlock, closing, inside, opening
from rxdb.errors import ClosedError, ProgrammingError
from rxdb.remote.server.served import InterruptsItself, InterruptsWriter

__all__ = ("Blocks", "Held")

LOG = logging.getLogger("rxdb.remote")

INTERRUPT_REPEAT: Final = 0.1
"""Seconds between interrupts of a gone client's block statement that is still running (an
interrupt that lands just before SQLite starts the statement has no effect)."""

Operation = Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class Held:
    """One client's open block: a transaction (with ``depth`` levels: savepoints) or a read
    block (``read`` is its session), and how many of its statements run now."""

    block: ThreadBlock
    depth: int
    read: AsyncReadSession | None = None
    running: int = 0


class Blocks:
    """The blocks of one client connection, by id.

    :param changed: called after every change of what is held or running (the server's
        ``wait_until`` wakes up on it).
    """

    def __init__(self, db: AsyncDatabase, changed: Callable[[], None]) -> None:
        self.db = db
        self.held: dict[int, Held] = {}
        self.loose_reads = 0  # statements outside blocks in flight: fetch_all, fetch_one
        self.loose_writes = 0  # execute, execute_many, execute_script
        self.closed = False  # the client is gone: nothing more may run in its blocks
        self._changed = changed
        self._ids = itertools.count(1)

    def _find(self, block_id: int) -> Held:
        held = self.held.get(block_id)
        if held is None:
            raise ProgrammingError(
                f"no open block {block_id} on this connection (it ended or was rolled back)"
            )
        return held

    def route(
        self,
        block_id: int | None,
        operation: Operation,
        *,
        kind: Literal["read", "write"] | None,
    ) -> Operation:
        """Route ``operation`` into block ``block_id`` (or run it outside blocks), counted
        as running on that block's connection (or, by ``kind``, as a loose read or write)
        while it runs.

        :raises rxdb.ProgrammingError: for a block this connection does not hold.
        """
        if block_id is None:
            return operation if kind is None else self._loose(operation, reads=kind == "read")
        held = self._find(block_id)

        async def counted() -> Any:
            if self.closed:  # queued in the block when the client went away: never run
                raise ClosedError("the client disconnected")
            held.running += 1
            self._changed()
            try:
                return await operation()
            finally:
                held.running -= 1
                self._changed()

        return inside([held.block], counted)

    def _loose(self, operation: Operation, *, reads: bool) -> Operation:
        async def counted() -> Any:
            if reads:
                self.loose_reads += 1
            else:
                self.loose_writes += 1
            try:
                return await operation()
            finally:
                if reads:
                    self.loose_reads -= 1
                else:
                    self.loose_writes -= 1

        return counted

    async def open(self, parent: int | None, enter: Enter) -> int:
        """Open a block, or a nested level of block ``parent``; return its id.

        :raises rxdb.ProgrammingError: for a ``parent`` this connection does not hold.
        :raises rxdb.ClosedError: if the client went away while the block began.
        """
        if parent is not None:
            held = self._find(parent)
            _, begin = opening([held.block], enter)
            held.depth += 1  # counted before the await: a release meanwhile must undo it too
            try:
                await begin()
            except BaseException:
                held.depth -= 1
                raise
            return parent
        block, begin = opening([], enter)
        value = await begin()
        fresh = Held(block, 1, value if isinstance(value, AsyncReadSession) else None)
        if self.closed:  # the client went away while waiting for the lock or a reader
            await _roll_back(fresh)
            raise ClosedError("the connection closed while the block began")
        block_id = next(self._ids)
        self.held[block_id] = fresh
        self._changed()
        return block_id

    async def end(self, block_id: int, *, failed: bool) -> None:
        """End the innermost level of block ``block_id``: commit, or roll back if ``failed``.

        :raises rxdb.ProgrammingError: for a block this connection does not hold.
        """
        held = self._find(block_id)
        held.depth -= 1
        if held.depth == 0:
            del self.held[block_id]
            self._changed()
        await closing(held.block, failed=failed)()

    def interrupt(self) -> None:
        """Interrupt this client's statements running now, touching as little else as the
        database allows (a no-op with nothing running):

        - in a read block: that block's connection, which the block holds alone;
        - in a transaction block: the writer, which the block holds alone;
        - outside blocks, a write: the writer, shared (if the write still waits for the
          write lock, the statement that holds it is the one interrupted);
        - outside blocks, a query: every connection, as ``db.interrupt()`` does (pooled
          readers are shared with other clients' queries and watch runs).

        A database without the means to interrupt one connection
        (:mod:`rxdb.remote.server.served`) is interrupted whole.
        """
        running = [held for held in self.held.values() if held.running]
        if self.loose_reads or not all(self._stop_one(h) for h in running):
            self.db.interrupt_threadsafe()
            return
        if self.loose_writes and not self._stop_writer():
            self.db.interrupt_threadsafe()

    def _stop_one(self, held: Held) -> bool:
        """Interrupt the connection ``held`` runs on; whether the database could."""
        session = held.read
        if session is None:
            return self._stop_writer()
        if isinstance(session, InterruptsItself):
            session.interrupt()
            return True
        return False

    def _stop_writer(self) -> bool:
        if isinstance(self.db, InterruptsWriter):
            self.db.interrupt_writer()
            return True
        return False

    async def release(self, wait_until: Callable[[Callable[[], bool]], Any]) -> int:
        """The client is gone: stop what runs in its blocks and roll them all back (a read
        block gives its connection back). Returns how many blocks there were.

        :param wait_until: the server's ``wait_until``, to wait for statements to stop.
        """
        self.closed = True
        held, self.held = list(self.held.values()), {}
        # Nobody waits for what still runs in the blocks: stop it, so that the rollback
        # (and the write lock, or the reserved reader) does not wait for an endless query.
        await asyncio.gather(*(self._stop_running(one, wait_until) for one in held))
        for one in held:
            await _roll_back(one)
        return len(held)

    async def _stop_running(
        self, held: Held, wait_until: Callable[[Callable[[], bool]], Any]
    ) -> None:
        while held.running:
            if not self._stop_one(held):
                self.db.interrupt_threadsafe()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INTERRUPT_REPEAT):
                    await wait_until(lambda: not held.running)


async def _roll_back(held: Held) -> None:
    """Undo every open level of a client's block, innermost first (the outermost rollback
    undoes the whole transaction and ends the block's task)."""
    depth, held.depth = held.depth, 0
    for _ in range(depth):
        try:
            await closing(held.block, failed=True)()
        except Exception:
            LOG.exception("rolling back a client's transaction failed")
