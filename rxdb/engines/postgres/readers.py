"""The read-only connections: plain reads, watch re-runs and read blocks.

A connection runs one statement at a time, so each read takes a connection of its own: an
idle one, else a new one while the pool may grow (up to ``readers``), else it waits for one
to come back. Connections are opened on demand and kept; one found closed (a server restart,
a terminated backend) is dropped when it comes back, and the next read opens a new one.

Every reader runs with ``default_transaction_read_only`` on: a write sent to one fails
(SQLSTATE 25006) before it changes anything.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from rxdb.engines.postgres.connections import Connection

__all__ = ("ReaderPool",)


class ReaderPool:
    """Up to ``size`` reader connections, opened by ``open_reader``."""

    def __init__(self, open_reader: Callable[[], Awaitable[Connection]], size: int) -> None:
        self._open_reader = open_reader
        self._size = size
        self._idle: list[Connection] = []
        self._count = 0  # open or opening
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

    async def acquire(self) -> Connection:
        """An idle reader, a new one, or the next one handed back."""
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._count -= 1
            if self._count < self._size:
                self._count += 1
                try:
                    return await self._open_reader()
                except BaseException:
                    self._count -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self, conn: Connection) -> None:
        """Hand a reader back (a closed one is dropped)."""
        if conn.is_closed():
            self._count -= 1
        else:
            self._idle.append(conn)
        self._wake()

    async def close(self) -> None:
        """Wait for every reader to come back, then close them all."""
        while len(self._idle) < self._count:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            self._count -= sum(1 for conn in self._idle if conn.is_closed())
            self._idle = [conn for conn in self._idle if not conn.is_closed()]
        idle, self._idle, self._count = self._idle, [], 0
        for conn in idle:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
