"""Nothing waits behind a slow query: other watches, new watches and plain reads go on while
one watch's query runs, and a run nobody wants any more is interrupted.

The slow query is made deterministic with a SQLite function registered on the readers: while
the gate is armed, ``gate(x)`` keeps a recursive CTE going until the test releases it (one
short wait per row, so SQLite checks for an interrupt between rows). Every assertion is about
order ("this arrived while the slow run was provably still in flight"), never about time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.engines.sqlite.connections import ReaderConnection
from rxdb.engines.sqlite.readers import CHEAP, ReadCosts, ReaderPool
from rxdb.engines.sqlite.workers import Worker
from tests.conftest import WAIT, Recorder, settle, sqlite_engine, subscribed

SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE gate(x)) "
    "SELECT count(*) > 0, (SELECT count(*) FROM slow) FROM c"
)
FAST = "SELECT count(*) FROM fast"
SLOW_READ = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE gate(x)) "
    "SELECT max(x) FROM c"
)


class Gate:
    """``gate(x)`` for the readers: false at once unless armed; armed, it says "go on" until
    released, and tells the loop when a query first got there."""

    def __init__(self) -> None:
        self.armed = False
        self.released = threading.Event()
        self.entered = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def __call__(self, _: int) -> bool:
        if not self.armed:
            return False
        if not self.entered.is_set():
            self._loop.call_soon_threadsafe(self.entered.set)
        return not self.released.wait(0.001)

    def arm(self) -> None:
        self.armed = True
        self.released.clear()
        self.entered.clear()

    def release(self) -> None:
        self.armed = False
        self.released.set()


def _install(db: rxdb.Database, gate: Gate) -> ReaderPool:
    """Register ``gate`` on every reader the database opens from now on."""
    pool = sqlite_engine(db)._readers
    assert pool is not None, "a file database has readers"
    open_reader = pool._open_reader

    async def open_with_gate() -> Worker[ReaderConnection]:
        reader = await open_reader()
        await reader.call(reader.raw.create_function, "gate", 1, gate)
        return reader

    pool._open_reader = open_with_gate
    return pool


@pytest.fixture
async def gate() -> Gate:
    return Gate()


@asynccontextmanager
async def _opened(path: Path, gate: Gate, readers: int = 4) -> AsyncIterator[rxdb.Database]:
    """A file database whose readers know ``gate``; the gate is released before it closes
    (closing waits for reads in flight), even when the test fails."""
    async with rxdb.open(path, readers=readers) as db:
        try:
            _install(db, gate)
            await db.execute_script(
                "CREATE TABLE slow(x); CREATE TABLE fast(x); INSERT INTO slow VALUES (1);"
            )
            yield db
        finally:
            gate.release()


async def _slow_run_in_flight(db: rxdb.Database, gate: Gate, slow: Recorder[Any]) -> None:
    """Subscribed ``slow`` to the slow watch; return once its re-run is held in the gate."""
    await slow.wait_count(1)
    gate.arm()
    await db.execute("INSERT INTO slow VALUES (2)")
    await asyncio.wait_for(gate.entered.wait(), WAIT)


class TestWatchesDoNotWaitForEachOther:
    async def test_trivial_watch_reruns_while_a_slow_watch_runs(
        self, db_path: Path, gate: Gate
    ) -> None:
        async with _opened(db_path, gate) as db:
            slow: Recorder[Any] = Recorder()
            fast: Recorder[Any] = Recorder()
            with subscribed(db.watch(SLOW), slow), subscribed(db.watch(FAST), fast):
                await fast.wait_value([(0,)])
                await _slow_run_in_flight(db, gate, slow)
                await db.execute("INSERT INTO fast VALUES (1)")
                await fast.wait_value([(1,)])
                assert not gate.released.is_set()  # the slow run is still held
                gate.release()
                await slow.wait_count(2)
                await settle(db)

    async def test_new_watch_gets_its_first_value_while_a_slow_watch_runs(
        self, db_path: Path, gate: Gate
    ) -> None:
        async with _opened(db_path, gate) as db:
            slow: Recorder[Any] = Recorder()
            with subscribed(db.watch(SLOW), slow):
                await _slow_run_in_flight(db, gate, slow)
                fresh: Recorder[Any] = Recorder()
                with subscribed(db.watch(FAST), fresh):
                    await fresh.wait_value([(0,)])
                    assert not gate.released.is_set()
                gate.release()
                await slow.wait_count(2)
                await settle(db)

    async def test_a_watch_is_not_paced_by_another_watchs_slow_run(
        self, db_path: Path, gate: Gate
    ) -> None:
        """Commits to the fast table while the slow run is held: each is seen at once, not
        after a pause measured on the slow run (there is no write storm)."""
        async with _opened(db_path, gate) as db:
            slow: Recorder[Any] = Recorder()
            fast: Recorder[Any] = Recorder()
            with subscribed(db.watch(SLOW), slow), subscribed(db.watch(FAST), fast):
                await fast.wait_value([(0,)])
                await _slow_run_in_flight(db, gate, slow)
                for count in range(1, 4):
                    await db.execute("INSERT INTO fast VALUES (1)")
                    await fast.wait_value([(count,)])
                assert not gate.released.is_set()
                gate.release()
                await slow.wait_count(2)
                await settle(db)


class TestReadsDoNotQueueBehindSlowOnes:
    async def test_cheap_read_takes_an_idle_reader_while_a_slow_read_runs(
        self, db_path: Path, gate: Gate
    ) -> None:
        async with _opened(db_path, gate) as db:
            for _ in range(50):  # recent reads were cheap: the pool's usual case
                await db.fetch_one("SELECT 1")
            gate.arm()
            slow_read = asyncio.ensure_future(db.fetch_all(SLOW_READ))
            try:
                await asyncio.wait_for(gate.entered.wait(), WAIT)
                assert await asyncio.wait_for(db.fetch_one("SELECT 1"), WAIT) == (1,)
                assert not slow_read.done()
            finally:
                gate.release()
                await slow_read

    async def test_cheap_read_opens_a_reader_rather_than_queue(
        self, db_path: Path, gate: Gate
    ) -> None:
        async with _opened(db_path, gate) as db:
            await db.fetch_one("SELECT 1")
            pool = sqlite_engine(db)._readers
            assert pool is not None
            assert len(pool.readers) == 1  # one reader open: the slow read will take it
            gate.arm()
            slow_read = asyncio.ensure_future(db.fetch_all(SLOW_READ))
            try:
                await asyncio.wait_for(gate.entered.wait(), WAIT)
                assert await asyncio.wait_for(db.fetch_one("SELECT 1"), WAIT) == (1,)
                assert len(pool.readers) == 2
            finally:
                gate.release()
                await slow_read


class TestAbandonedRuns:
    async def test_a_run_nobody_wants_is_interrupted(self, db_path: Path, gate: Gate) -> None:
        async with _opened(db_path, gate) as db:
            slow: Recorder[Any] = Recorder()
            subscription = db.watch(SLOW).subscribe(slow.on_next, slow.on_error)
            await _slow_run_in_flight(db, gate, slow)
            subscription.dispose()
            await settle(db)  # the held run ended without the gate opening: interrupted
            assert not gate.released.is_set()
            assert await db.fetch_all("SELECT count(*) FROM slow") == [(2,)]  # readers work

    async def test_abandoning_a_run_does_not_abort_the_live_run_it_shares_a_reader_with(
        self, db_path: Path, gate: Gate
    ) -> None:
        """With one reader, one commit sends the slow run and another run as one batch;
        abandoning the other one must not interrupt the slow one, which still has a subscriber."""
        async with _opened(db_path, gate, readers=1) as db:
            slow: Recorder[Any] = Recorder()
            other: Recorder[Any] = Recorder()
            with subscribed(db.watch(SLOW), slow):
                subscription = db.watch("SELECT count(*) FROM slow").subscribe(
                    other.on_next, other.on_error
                )
                await other.wait_count(1)
                await _slow_run_in_flight(db, gate, slow)
                subscription.dispose()
                gate.release()
                await slow.wait_count(2)
                await settle(db)
                assert slow.errors == []


class FakeReader:
    """Stands in for a reader's worker in :class:`ReaderPool`: counts interrupts."""

    def __init__(self) -> None:
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1

    async def settle(self) -> None:
        pass

    async def close(self) -> None:
        pass


class TestReaderPool:
    async def test_a_cancelled_read_alone_on_its_reader_is_interrupted(self) -> None:
        reader = FakeReader()
        pool = ReaderPool(_opener(reader), 1)
        borrowed = await pool.borrow()
        await pool.abandon(borrowed)
        pool.give_back(borrowed)
        assert reader.interrupts == 1

    async def test_a_cancelled_read_with_another_on_its_reader_is_not_interrupted(self) -> None:
        """The other read may be the one running by now: an interrupt would abort it."""
        reader = FakeReader()
        pool = ReaderPool(_opener(reader), 1)
        first = await pool.borrow()
        second = await pool.borrow()  # the pool is full: it queues on the same reader
        assert second is first
        await pool.abandon(first)
        assert reader.interrupts == 0
        pool.give_back(first)
        pool.give_back(second)

    async def test_a_read_takes_an_idle_reader_before_a_busy_one(self) -> None:
        readers = [FakeReader(), FakeReader()]
        pool = ReaderPool(_opener(*readers), 2)
        busy = await pool.borrow()
        idle = await pool.borrow()  # opened: no read queues while the pool may grow
        assert idle is not busy
        pool.give_back(idle)
        assert pool.take() is idle  # idle, though the busy one was opened first
        pool.give_back(idle)
        pool.give_back(busy)

    async def test_a_cheap_read_queues_behind_cheap_reads_on_an_awake_reader(self) -> None:
        """Waking an idle thread per cheap read costs more than waiting a few hops."""
        readers = [FakeReader(), FakeReader()]
        pool = ReaderPool(_opener(*readers), 2)
        awake = await pool.borrow(cheap=True)
        idle = await pool.borrow()
        pool.give_back(idle)
        assert pool.take(cheap=True) is awake
        assert pool.take() is idle  # a read not known to be cheap spreads as before
        for reader in (awake, awake, idle):
            pool.give_back(reader, cheap=reader is awake)

    async def test_no_read_queues_behind_one_not_known_to_be_cheap(self) -> None:
        readers = [FakeReader(), FakeReader()]
        pool = ReaderPool(_opener(*readers), 2)
        uncertain = await pool.borrow()  # a watch's batch, or a text never run before
        idle = await pool.borrow()
        pool.give_back(idle)
        assert pool.take(cheap=True) is idle
        pool.give_back(idle, cheap=True)
        pool.give_back(uncertain)

    def test_a_text_is_cheap_only_while_its_last_run_was(self) -> None:
        costs = ReadCosts()
        assert not costs.cheap("SELECT 1")  # unknown: not cheap
        costs.record("SELECT 1", time.perf_counter())
        assert costs.cheap("SELECT 1")
        costs.record("SELECT 1", time.perf_counter() - 2 * CHEAP)
        assert not costs.cheap("SELECT 1")


def _opener(*readers: FakeReader) -> Any:
    queue = list(readers)

    async def open_reader() -> Any:
        return queue.pop(0)

    return open_reader
