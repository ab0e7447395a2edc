"""The read-only connections of a WAL database, opened on demand.

Plain reads (``fetch_all`` outside a transaction, a watch's runs) share the connections with
no checkout cost. A read goes to an idle reader, or to a new one while the pool may grow; it
queues behind another read only when every reader is busy, so a read never waits for a slow
one while a connection could serve it. The one exception is what keeps many cheap reads
cheap: a read of a text known to be cheap (its last run took under ``CHEAP``) queues behind a
reader whose reads in flight are all known to be cheap too, whose thread is awake and gets
to it within a few hops, instead of waking an idle thread of its own (with four tasks reading
at once on 2 cores, that costs ~4x). A watch's batch, or any text not known, is never queued
behind. A read block (``db.read()``) reserves a connection
for itself until it ends. Either way a read never lands inside someone's open write
transaction, and never waits for the writer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rxdb._types import Params
from rxdb.engines.closing import within
from rxdb.engines.sqlite.connections import ReaderConnection
from rxdb.engines.sqlite.workers import Worker, uninterrupted
from rxdb.rows import Row

__all__ = ("CHEAP", "ReadCosts", "ReaderPool")

Reader = Worker[ReaderConnection]

CHEAP = 0.002
"""Seconds (the query's own run, on its connection's thread) under which a read counts as
cheap."""


class ReadCosts:
    """How long each query text took when last run (bounded: forgotten when full).

    The time is the query's own, taken on the thread that runs it (a reader's, or the
    writer's for its eager re-runs, :mod:`rxdb.engines.sqlite.eager`), from the first step to
    the last row made: not the hop around it. A hop's time also counts the wait for the
    thread and the loop's wake-up, which on a busy or slow machine exceed the eager re-runs'
    budget by themselves, so a cheap query measured that way would never be re-run eagerly
    again. Written and read from several threads; one dict operation at a time, each atomic
    under the GIL, so no lock: a lost update only costs a guess.
    """

    __slots__ = ("_seconds",)
    _SIZE = 4096

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    def cheap(self, sql: str) -> bool:
        return self._seconds.get(sql, CHEAP) < CHEAP

    def seconds(self, sql: str) -> float | None:
        """What the last run of ``sql`` took, if it is known."""
        return self._seconds.get(sql)

    def record(self, sql: str, started: float) -> None:
        """Remember how the run of ``sql`` that started at ``started``
        (``time.perf_counter()``, on the thread that ran it) went; the last run decides."""
        seconds = self._seconds
        if len(seconds) >= self._SIZE and sql not in seconds:
            seconds.clear()
        seconds[sql] = time.perf_counter() - started

    def fetch(self, connection: ReaderConnection, sql: str, params: Params) -> list[Row]:
        """``connection.fetch(sql, params)``, timed: on the connection's thread."""
        started = time.perf_counter()
        rows = connection.fetch(sql, params)
        self.record(sql, started)
        return rows


class ReaderPool:
    def __init__(
        self,
        open_reader: Callable[[], Awaitable[Reader]],
        size: int,
        costs: ReadCosts | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a reader pool needs at least one connection, not {size}")
        self._open_reader = open_reader
        self._size = size
        self._load: dict[Reader, int] = {}  # open readers -> reads in flight on each
        self._uncertain: dict[Reader, int] = {}  # reads in flight not known to be cheap
        self.costs = ReadCosts() if costs is None else costs
        self._reserved: set[Reader] = set()
        self._opening = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def readers(self) -> list[Reader]:
        return list(self._load)

    async def borrow(self, cheap: bool = False) -> Reader:
        """A reader for one plain read; hand it back with :meth:`give_back` (with the same
        ``cheap``: whether the read is known to be cheap).

        An idle reader, else a new one (up to the pool's size), else the least busy: how
        long a read will take is not known in advance, and one queued behind a slow read
        waits for all of it. Reads spread this way run in parallel (SQLite runs queries
        without the GIL). A cheap read first looks for a reader running cheap reads only
        (see the module's docstring).
        """
        while True:
            reader = self.take(cheap)
            if reader is not None:
                return reader
            if self._can_open():
                reader = await self._open()
                self._count(reader, cheap)
                return reader
            await self._wait()

    def take(self, cheap: bool = False) -> Reader | None:
        """:meth:`borrow` without waiting (the hot path of every plain read): a reader, or
        ``None`` where :meth:`borrow` would open one or wait."""
        reserved = self._reserved
        uncertain = self._uncertain
        best: Reader | None = None
        best_load = 0
        awake: Reader | None = None  # the busiest reader running cheap reads only
        awake_load = 0
        for reader, load in self._load.items():
            if reserved and reader in reserved:
                continue
            if not load:
                if best is None or best_load:
                    best, best_load = reader, 0
                if not cheap:
                    break
                continue
            if cheap and not uncertain[reader] and load > awake_load:
                awake, awake_load = reader, load
            if best is None or load < best_load:
                best, best_load = reader, load
        if awake is not None:
            best = awake
        elif best is None or (best_load and self._can_open()):
            return None
        self._count(best, cheap)
        return best

    def give_back(self, reader: Reader, cheap: bool = False) -> None:
        """Return a reader borrowed for one plain read."""
        try:
            self._load[reader] -= 1
        except KeyError:
            return  # close() closed it, past its grace
        if not cheap:
            self._uncertain[reader] -= 1
        if self._waiters:
            self._wake()

    def _count(self, reader: Reader, cheap: bool) -> None:
        self._load[reader] += 1
        if not cheap:
            self._uncertain[reader] += 1

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

    async def close(self, grace: float) -> None:
        """Wait for reads in flight and read blocks, then close every connection. After
        ``grace`` seconds, interrupt what still runs, and after ``grace`` more close anyway
        (a read block whose task waits on something else: its next statement raises
        :class:`rxdb.ClosedError`). Readers being opened are always waited for: one opened
        after the others closed would be left running."""
        idle = asyncio.ensure_future(self._until(self._idle))
        if not await within(idle, grace):
            for reader in list(self._load):
                reader.interrupt()
            if not await within(idle, grace):
                idle.cancel()
                await self._until(lambda: not self._opening)
        readers, self._load, self._uncertain = list(self._load), {}, {}
        self._reserved.clear()
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
                self._uncertain[opening.result()] = 0
            raise
        finally:
            self._opening -= 1
            if self._waiters:
                self._wake()  # close() may wait for the opening to end
        self._load[reader] = 0
        self._uncertain[reader] = 0
        return reader

    def _idle(self) -> bool:
        return not (self._opening or self._reserved or any(self._load.values()))

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._wait()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
