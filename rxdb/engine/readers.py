"""A small pool of read-only connections, opened on demand.

Reads outside a transaction run here (WAL lets them proceed while the writer writes), so a
watch's re-run never lands inside someone's open write transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiosqlite

from rxdb.engine.workers import close_connection, uninterrupted

__all__ = ("ReaderPool",)

Opener = Callable[[], Awaitable[aiosqlite.Connection]]


class ReaderPool:
    def __init__(self, open_reader: Opener, size: int) -> None:
        if size < 1:
            raise ValueError(f"a reader pool needs at least one connection, not {size}")
        self._open_reader = open_reader
        self._slots = asyncio.Semaphore(size)
        self._size = size
        self._idle: list[aiosqlite.Connection] = []
        self._all: list[aiosqlite.Connection] = []

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._slots:
            if self._idle:
                conn = self._idle.pop()
            else:
                # Opened to the end even if this read is cancelled: a half-opened connection
                # would keep its worker thread alive with nobody left to close it.
                conn = await uninterrupted(self._open_reader())
                self._all.append(conn)
            try:
                yield conn
            finally:
                self._idle.append(conn)

    async def close(self) -> None:
        """Wait for reads in flight, then close every connection (their threads end)."""
        for _ in range(self._size):
            await self._slots.acquire()
        conns, self._all, self._idle = self._all, [], []
        for conn in conns:
            await close_connection(conn)
