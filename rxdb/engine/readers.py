"""The read-only connections of a WAL database, opened on demand.

Plain reads (``fetch_all`` outside a transaction, a watch's runs) share the connections with
no checkout cost. A read goes to an idle reader, or to a new one while the pool may grow; it
queues behind another read only when every reader is busy, so a cheap read never waits for a
slow one while a connection could serve it. A read block (``db.read()``) reserves a connection
for itself until it ends. Either way a read never lands inside someone's open write
transaction, and never waits for the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rxdb.engine.connections import ReaderConnection
from rxdb.engine.workers import Worker, uninterrupted

__all__ = ("ReaderPool",)

Reader = Worker[ReaderConnection]


class ReaderPool:
    def __init__(self, open_reader: Callable[[], Awaitable[Reader]], size: int) -> None:
        if size < 1:
            raise ValueError(f"a reader pool needs at least one connection, not {size}")
        self._open_reader = open_reader
        self._size = size
        self._load: dict[Reader, int] = {}  # open readers -> reads in flight on each
        self._reserved: set[Reader] = set()
        self._opening = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def readers(self) -> list[Reader]:
        return list(self._load)

    async def borrow(self) -> Reader:
        """A reader for one plain read; hand it back with :meth:`give_back`.

        An idle reader, else a new one (up to the pool's size), else the least busy: how
        long a read will take is not known in advance, and one queued behind a slow read
        waits for all of it. Reads spread this way run in parallel (SQLite runs queries
        without the GIL).
        """
        while True:
            reader = self.take()
            if reader is not None:
                return reader
            if self._can_open():
                reader = await self._open()
                self._load[reader] += 1
                return reader
            await self._wait()

    def take(self) -> Reader | None:
        """:meth:`borrow` without waiting (the hot path of every plain read): a reader, or
        ``None`` where :meth:`borrow` would open one or wait."""
        reserved = self._reserved
        best: Reader | None = None
        best_load = 0
        for reader, load in self._load.items():
            if reserved and reader in reserved:
                continue
            if not load:
                best, best_load = reader, 0
                break
            if best is None or load < best_load:
                best, best_load = reader, load
        if best is None or (best_load and self._can_open()):
            return None
        self._load[best] = best_load + 1
        return best

    def give_back(self, reader: Reader) -> None:
        """Return a reader borrowed for one plain read."""
        self._load[reader] -= 1
        if self._waiters:
            self._wake()

    async def abandon(self, reader: Reader) -> None:
        """For a borrowed reader whose caller was cancelled before its read ended: interrupt
        the read if it is the only one on that reader, then wait until the reader has
        settled (see :meth:`Worker.settle`); hand the reader back afterwards as usual.

        SQLite's interrupt aborts whatever that connection runs, so only a reader with
        nothing else borrowed is interrupted; if the read ended meanwhile, the interrupt hits
        an idle connection, where it is void (the next statement starts afresh).
        """
        if self._load.get(reader) == 1:
            reader.interrupt()
        await reader.settle()

    async def reserve(self) -> Reader:
        """A reader for a read block alone; hand it back with :meth:`release`."""
        while True:
            for reader, load in self._load.items():
                if load == 0 and reader not in self._reserved:
                    self._reserved.add(reader)
                    return reader
            if self._can_open():
                reader = await self._open()
                self._reserved.add(reader)
                return reader
            await self._wait()

    def release(self, reader: Reader) -> None:
        self._reserved.discard(reader)
        self._wake()

    async def close(self) -> None:
        """Wait for reads in flight and read blocks, then close every connection."""
        while self._opening or self._reserved or any(self._load.values()):
            await self._wait()
        readers, self._load = list(self._load), {}
        for reader in readers:
            await reader.close()

    def _can_open(self) -> bool:
        return len(self._load) + self._opening < self._size

    async def _open(self) -> Reader:
        self._opening += 1
        # Opened to the end even if the caller is cancelled, and kept in the pool then too
        # (which closes it with the others): a connection nobody holds would keep its worker
        # thread alive with nobody left to close it.
        opening = asyncio.ensure_future(self._open_reader())
        try:
            reader = await uninterrupted(opening)
        except asyncio.CancelledError:
            if not opening.cancelled() and opening.exception() is None:
                self._load[opening.result()] = 0
            raise
        finally:
            self._opening -= 1
        self._load[reader] = 0
        return reader

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
