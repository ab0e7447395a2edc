"""The read-only connections of a WAL database, opened on demand.

Plain reads (``fetch_all`` outside a transaction, a watch's runs) share the connections with
no checkout cost: cheap reads queue on one awake reader, costly ones spread over several.
A read block (``db.read()``) reserves a connection for itself until it ends. Either way a read
never lands inside someone's open write transaction, and never waits for the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rxdb.engine.connections import ReaderConnection
from rxdb.engine.workers import Worker, uninterrupted

__all__ = ("ReaderPool",)

Reader = Worker[ReaderConnection]

# Reads shorter than this (a few thread hops) are cheaper queued on one awake reader than
# spread over threads that each must be woken; longer ones gain from running in parallel.
_SPREAD_ABOVE = 0.0003
_SMOOTHING = 0.2


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
        self._recent = 0.0  # smoothed duration of recent plain reads, in seconds

    @property
    def readers(self) -> list[Reader]:
        return list(self._load)

    async def borrow(self) -> Reader:
        """A reader for one plain read; hand it back with :meth:`give_back`.

        Where reads are cheap (recent ones took less than a few thread hops), a read queues
        behind the busiest reader: its thread is awake, and runs the queue without a wake-up
        per read, as one connection would. Where reads take long, SQLite runs them without
        the GIL, so they spread over idle readers (opening up to the pool's size) and run in
        parallel.
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
        spread = self._recent > _SPREAD_ABOVE
        reserved = self._reserved
        best: Reader | None = None
        best_load = 0
        for reader, load in self._load.items():
            if reserved and reader in reserved:
                continue
            if best is None or (load < best_load if spread else load > best_load):
                best, best_load = reader, load
        if best is None or (spread and best_load and self._can_open()):
            return None
        self._load[best] = best_load + 1
        return best

    def give_back(self, reader: Reader, seconds: float = 0.0) -> None:
        """Return a reader; ``seconds`` is how long the read took (it steers :meth:`borrow`)."""
        self._load[reader] -= 1
        self._recent += (seconds - self._recent) * _SMOOTHING
        if self._waiters:
            self._wake()

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
