"""The read-only connections: plain reads, watch re-runs and read blocks.

A connection runs one statement at a time, so each read takes a connection of its own: an
idle one, else a new one while the pool may grow (up to ``readers``), else it waits for one
to come back. Connections are opened on demand and kept; one found closed (a server restart,
a terminated backend) is dropped when it comes back, and the next read opens a new one.

A kept reader can die while idle, and asyncpg learns it in steps: for a while it has read
the server's goodbye but not yet the end of the connection, and refuses any statement
(``InternalClientError: cannot switch to state 11; another operation (2) is in progress``)
without sending it. :meth:`ReaderPool.run` and :meth:`ReaderPool.acquire_begun` give work
that only reads one more go on a new reader then; the statement layer has closed the lost
one, so it is never handed out again. A statement the server was running when it ended the
session fails with the server's word, as on the writer.

Every reader runs with ``default_transaction_read_only`` on: a write sent to one fails
(SQLSTATE 25006) before it changes anything.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from rxdb.engines.closing import within
from rxdb.engines.postgres.connections import Connection, never_sent

__all__ = ("ReaderPool",)

T = TypeVar("T")


class ReaderPool:
    """Up to ``size`` reader connections, opened by ``open_reader``."""

    def __init__(self, open_reader: Callable[[], Awaitable[Connection]], size: int) -> None:
        self._open_reader = open_reader
        self._size = size
        self._idle: list[Connection] = []
        self._count = 0  # open or opening
        self._lent: set[Connection] = set()  # handed out, not back yet
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def connections(self) -> int:
        """How many readers are open (or opening) now."""
        return self._count

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Connection]:
        """A reader for the caller alone until the block ends."""
        conn = await self.acquire()
        try:
            yield conn
        finally:
            self.release(conn)

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``work`` (reads only) on a reader; once more on a new one if asyncpg refused to
        send a statement of it (:func:`never_sent`)."""
        try:
            async with self.reader() as conn:
                return await work(conn)
        except Exception as error:
            if not never_sent(error):
                raise
        async with self.reader() as conn:
            return await work(conn)

    async def acquire_begun(self, begin: Callable[[Connection], Awaitable[None]]) -> Connection:
        """A reader on which ``begin`` (reads only) succeeded, held until :meth:`release`;
        once more on a new reader if asyncpg refused to send it (:func:`never_sent`)."""
        for last in (False, True):
            conn = await self.acquire()
            try:
                await begin(conn)
            except BaseException as error:
                self.release(conn)
                if last or not never_sent(error):
                    raise
            else:
                return conn
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def acquire(self) -> Connection:
        """An idle reader, a new one, or the next one handed back."""
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    self._lent.add(conn)
                    return conn
                self._count -= 1
            if self._count < self._size:
                self._count += 1
                try:
                    conn = await self._open_reader()
                except BaseException:
                    self._count -= 1
                    self._wake()
                    raise
                self._lent.add(conn)
                return conn
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self, conn: Connection) -> None:
        """Hand a reader back (a closed one is dropped)."""
        if conn not in self._lent:
            return  # close() ended it, past its grace
        self._lent.discard(conn)
        if conn.is_closed():
            self._count -= 1
        else:
            self._idle.append(conn)
        self._wake()

    async def close(self, grace: float, interrupt: Callable[[], None]) -> None:
        """Wait for every reader to come back, then close them all. After ``grace`` seconds
        ``interrupt`` what still runs, and after ``grace`` more end the readers still out
        (a read block whose task waits on something else: its next statement fails)."""
        back = asyncio.ensure_future(self._all_back())
        if not await within(back, grace):
            interrupt()
            if not await within(back, grace):
                back.cancel()
                await self._all_back(opened=True)
                lent, self._lent = self._lent, set()
                for conn in lent:
                    conn.terminate()
        idle, self._idle, self._count = self._idle, [], 0
        for conn in idle:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()

    async def _all_back(self, *, opened: bool = False) -> None:
        """Until every reader is back (with ``opened``: until none is being opened)."""
        while len(self._idle) + (len(self._lent) if opened else 0) < self._count:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            self._count -= sum(1 for conn in self._idle if conn.is_closed())
            self._idle = [conn for conn in self._idle if not conn.is_closed()]

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
