"""Eager re-runs (rxdb.engines.sqlite.eager): a cheap watch re-runs on the writer's thread
right after the commit, and its rows reach the loop with the write's result.

Most tests make every known cost fit the budget (``generous``), so that which road a re-run
takes does not depend on how fast this machine ran the watch's first run; the budget's own
tests use the real one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import rxdb
import rxdb.engines.sqlite.engine as engine_module
from rxdb.engines.sqlite import eager
from rxdb.engines.sqlite.connections import ReaderConnection, TrackedConnection
from tests.conftest import WAIT, Recorder, settle, sqlite_engine, subscribed
from tests.rxdb.test_watch import COUNT, make_t


@pytest.fixture
def generous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eager, "BUDGET", 10.0)


def reader_runs(db: rxdb.Database, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The queries of each batch the watches' scheduler sends to a reader from now on."""
    scheduler = db._watches.scheduler
    real = scheduler._fetch_many
    batches: list[list[str]] = []

    def counted(queries: Sequence[tuple[str, Any]]) -> Awaitable[Any]:
        batches.append([sql for sql, _ in queries])
        return real(queries)

    monkeypatch.setattr(scheduler, "_fetch_many", counted)
    return batches


@asynccontextmanager
async def watching(
    db: rxdb.Database, sql: str = COUNT, params: tuple[Any, ...] = (), **options: Any
) -> AsyncIterator[tuple[Any, Recorder[Any]]]:
    """A watch of ``sql`` and a recorder of it, once its first result is in and the
    database is idle."""
    stream = db.watch(sql, params, **options)
    rec: Recorder[Any] = Recorder()
    with subscribed(stream, rec):
        await rec.wait_count(1)
        await settle(db)
        yield stream, rec


def cost(db: rxdb.Database, sql: str, seconds: float) -> None:
    """Make ``sql``'s last run seem to have taken ``seconds``."""
    sqlite_engine(db).costs.record(sql, time.perf_counter() - seconds)


class TestTheWriterRunsCheapWatches:
    async def test_a_cheap_watch_has_emitted_when_the_write_returns(
        self, any_db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)
        async with watching(any_db) as (stream, rec):
            batches = reader_runs(any_db, monkeypatch)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            assert rec.values[-1] == [(1,)]  # delivered with the write's own result
            await settle(any_db)
            assert batches == []
            assert stream.statistics().runs == 2

    async def test_a_watch_whose_last_run_was_slow_reruns_on_a_reader(
        self, db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            cost(db, COUNT, 1.0)  # its last run took a second: not for the writer
            batches = reader_runs(db, monkeypatch)
            await db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert batches == [[COUNT]]

    async def test_one_commit_pays_for_no_more_than_the_budget(
        self, db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        other = "SELECT max(x) FROM t"
        async with watching(db) as (_, rec), watching(db, other) as (_, rec_other):
            for sql in (COUNT, other):  # each fits the budget, both together do not
                cost(db, sql, 0.6 * eager.BUDGET)
            batches = reader_runs(db, monkeypatch)
            await db.execute("INSERT INTO t(x) VALUES (7)")
            await rec.wait_value([(1,)])
            await rec_other.wait_value([(7,)])
            assert len(batches) == 1
            assert len(batches[0]) == 1

    async def test_equal_results_are_emitted_without_distinct(
        self, any_db: rxdb.Database, generous: None
    ) -> None:
        await make_t(any_db)
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        counted = "SELECT count(*) FROM t WHERE x > 0"  # reads x: an update of x re-runs it
        async with (
            watching(any_db, counted, distinct=False) as (_, rec),
            watching(any_db, counted) as (_, rec_distinct),
        ):
            await any_db.execute("UPDATE t SET x = 2")  # the count stays 1
            assert rec.values == [[(1,)], [(1,)]]
            await settle(any_db)
            assert rec_distinct.values == [[(1,)]]

    async def test_states_go_refreshing_then_live(
        self, any_db: rxdb.Database, generous: None
    ) -> None:
        await make_t(any_db)
        states: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT).states(), states):
            await states.wait_for(lambda r: r.values[-1].phase == "live")
            await settle(any_db)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await states.wait_for(lambda r: r.values[-1].value == [(1,)])
            phases = [(state.phase, state.value) for state in states.values[-2:]]
            assert phases == [("refreshing", [(0,)]), ("live", [(1,)])]

    async def test_a_big_result_is_compared_off_the_loop(
        self, db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        await db.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(10_000)])
        rec: Recorder[Any] = Recorder()
        with subscribed(db.watch("SELECT x FROM t"), rec):
            await rec.wait_count(1)
            await settle(db)
            batches = reader_runs(db, monkeypatch)
            await db.execute("INSERT INTO t(x) VALUES (-1)")
            await rec.wait_for(lambda r: len(r.values[-1]) == 10_001)
            assert batches == []


class TestFreshness:
    async def test_no_read_inside_a_transaction_opened_after_the_commit(
        self, any_db: rxdb.Database, generous: None
    ) -> None:
        await make_t(any_db)
        async with watching(any_db) as (_, rec):
            # The first statement commits, the script then leaves a transaction open.
            await any_db.execute_script(
                "INSERT INTO t(x) VALUES (1); BEGIN; INSERT INTO t(x) VALUES (2);"
            )
            await any_db.execute("ROLLBACK")
            await rec.wait_value([(1,)])
            await settle(any_db)
            assert rec.values == [[(0,)], [(1,)]]  # never the uncommitted 2

    async def test_a_rollback_reruns_nothing(self, any_db: rxdb.Database, generous: None) -> None:
        await make_t(any_db)
        async with watching(any_db) as (stream, rec):

            async def rolled_back() -> None:
                async with any_db.transaction():
                    await any_db.execute("INSERT INTO t(x) VALUES (1)")
                    raise RuntimeError("roll back")

            with pytest.raises(RuntimeError):
                await rolled_back()
            await settle(any_db)
            assert stream.statistics().runs == 1
            assert rec.values == [[(0,)]]

    async def test_a_commit_during_a_run_in_flight_reruns_after_it(
        self, any_db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)
        cost(any_db, COUNT, 0.0)  # known cheap before the watch's first run
        scheduler = any_db._watches.scheduler
        real = scheduler._fetch_many
        gate = asyncio.Event()
        entered = asyncio.Event()

        async def held(queries: Any) -> Any:
            entered.set()
            await gate.wait()
            return await real(queries)

        monkeypatch.setattr(scheduler, "_fetch_many", held)
        stream = any_db.watch(COUNT)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await asyncio.wait_for(entered.wait(), WAIT)  # the first run is in flight
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            stats = stream.statistics()
            assert stats.running
            assert stats.pending
            assert rec.values == []  # the writer's rows wait for the run in flight
            gate.set()
            await rec.wait_value([(1,)])
            await settle(any_db)
            assert stream.statistics().runs == 2  # the held run, then the pending one

    async def test_a_schema_change_reanalyses_the_watch(
        self, any_db: rxdb.Database, generous: None
    ) -> None:
        await any_db.execute_script(
            "CREATE TABLE a(x); CREATE TABLE b(x); CREATE VIEW v AS SELECT x FROM a;"
        )
        async with watching(any_db, "SELECT count(*) FROM v") as (_, rec):
            await any_db.execute_script(
                "BEGIN; DROP VIEW v; CREATE VIEW v AS SELECT x FROM b; COMMIT;"
            )
            await settle(any_db)
            await any_db.execute("INSERT INTO b VALUES (1)")  # read through v only now
            await rec.wait_value([(1,)])

    async def test_a_failed_read_on_the_writer_goes_the_usual_way(
        self, any_db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)
        async with watching(any_db, recover=True) as (_, rec):
            batches = reader_runs(any_db, monkeypatch)

            def failing(*args: Any) -> Any:
                raise sqlite3.OperationalError("database is locked")

            monkeypatch.setattr(TrackedConnection, "fetch_committed", failing)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert batches == [[COUNT]]
            assert not rec.errors

    async def test_watches_coming_and_going_miss_no_commit(
        self, any_db: rxdb.Database, generous: None
    ) -> None:
        await make_t(any_db)
        async with watching(any_db) as (_, rec):

            async def writer() -> None:
                for _ in range(25):
                    await any_db.execute("INSERT INTO t(x) VALUES (1)")

            async def churn() -> None:
                for i in range(50):
                    async with watching(any_db, "SELECT count(*) FROM t WHERE ? > 0", (i,)):
                        pass

            await asyncio.gather(writer(), writer(), churn())
            await rec.wait_value([(50,)])
            async with watching(any_db, "SELECT count(*) FROM t WHERE 1") as (_, last):
                assert last.values == [[(50,)]]


class TestNothingElseChanges:
    async def test_the_reads_publish_nothing(self, any_db: rxdb.Database, generous: None) -> None:
        await make_t(any_db)
        updates: Recorder[Any] = Recorder()
        async with watching(any_db):
            with subscribed(any_db.table_updates(), updates):
                await any_db.execute("INSERT INTO t(x) VALUES (1)")
                await any_db.execute("INSERT INTO other VALUES (1)")
                await updates.wait_count(2)
                await settle(any_db)
            assert [m.tables for m in updates.values] == [{"t"}, {"other"}]


def writer_of(db: rxdb.Database) -> TrackedConnection:
    worker = sqlite_engine(db)._writer
    assert worker is not None
    return worker.worker.raw


class TestTheSecondConnection:
    async def test_a_file_reads_on_a_second_connection_that_cannot_write(
        self, db: rxdb.Database, generous: None
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            await db.execute("INSERT INTO t(x) VALUES (1)")
            assert rec.values[-1] == [(1,)]
        reads = writer_of(db).committed_reads()
        assert reads is not writer_of(db)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reads.execute("INSERT INTO t(x) VALUES (2)")

    async def test_memory_reads_on_the_writer(self, memdb: rxdb.Database) -> None:
        assert writer_of(memdb).committed_reads() is writer_of(memdb)

    async def test_reads_stay_on_the_writer_if_it_cannot_open(
        self, db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def failing(target: str) -> Any:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(ReaderConnection, "open_read_only", failing)
        await make_t(db)
        async with watching(db) as (_, rec):
            batches = reader_runs(db, monkeypatch)
            await db.execute("INSERT INTO t(x) VALUES (1)")
            assert rec.values[-1] == [(1,)]  # read on the writer, eagerly
            await settle(db)
            assert batches == []
        assert writer_of(db).committed_reads() is writer_of(db)

    async def test_no_read_transaction_outlives_a_read(
        self, db: rxdb.Database, generous: None
    ) -> None:
        await make_t(db)
        async with watching(db, "SELECT x FROM t ORDER BY x") as (_, rec):
            for x in range(3):
                await db.execute("INSERT INTO t(x) VALUES (?)", (x,))
            assert rec.values[-1] == [(0,), (1,), (2,)]
            await settle(db)
            # A snapshot left open would pin the WAL: the checkpoint could not reset it.
            result = await db.fetch_one("PRAGMA wal_checkpoint(TRUNCATE)")
            assert result is not None
            assert result[0] == 0  # not busy

    async def test_it_closes_with_the_database(self, db_path: Path, generous: None) -> None:
        db = await rxdb.open(db_path)
        try:
            await make_t(db)
            async with watching(db):
                await db.execute("INSERT INTO t(x) VALUES (1)")
            reads = writer_of(db).committed_reads()
        finally:
            await db.close()
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            reads.execute("SELECT 1")


SLOW = (
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
    "WHERE n < (SELECT max(x) FROM t)) SELECT count(*) FROM c"
)
"""Quick while ``t`` is empty; a count to ``max(x)`` afterwards."""


@pytest.fixture
async def slow_read(
    tmp_path: Path, generous: None, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[rxdb.Database, asyncio.Task[Any], Callable[[], None]]]:
    """A database (closed with a short grace) whose write's eager re-run of :data:`SLOW`
    runs for ever on the writer's thread: the database, the write's task once the re-run
    has started, and how to stop the watch."""
    monkeypatch.setattr(engine_module, "CLOSE_GRACE", 0.05)
    db = await rxdb.open(tmp_path / "slow.db")
    try:
        await make_t(db)
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        real = TrackedConnection.fetch_committed

        def fetch(connection: TrackedConnection, *args: Any) -> Any:
            def running() -> int:  # called from inside the statement: it runs now
                loop.call_soon_threadsafe(started.set)
                return 0

            # It reads on the writer itself: nothing made its view differ from the readers'.
            connection.set_progress_handler(running, 1000)
            try:
                return real(connection, *args)
            finally:
                connection.set_progress_handler(None, 0)

        rec: Recorder[Any] = Recorder()
        subscription = db.watch(SLOW).subscribe(rec)
        await rec.wait_value([(1,)])
        await settle(db)
        monkeypatch.setattr(TrackedConnection, "fetch_committed", fetch)
        write = asyncio.create_task(db.execute("INSERT INTO t(x) VALUES (?)", (10**12,)))
        await asyncio.wait_for(started.wait(), WAIT)
        yield db, write, subscription.dispose
    finally:
        await db.close()


class TestClosingAndInterrupting:
    async def test_once_closing_begins_a_commit_claims_no_rerun(
        self, db: rxdb.Database, generous: None
    ) -> None:
        # A commit published after close() has begun (a write already in flight then) must
        # leave its watches to the usual way: the writer's connection is about to close.
        await make_t(db)
        reads = sqlite_engine(db).eager
        async with watching(db):
            claiming: list[int | None] = []
            reads.publish(lambda: claiming.append(reads._publishing))
            sqlite_engine(db).refuse_new_work()
            reads.publish(lambda: claiming.append(reads._publishing))
        assert claiming[0] is not None  # idle and open: its commit could claim re-runs
        assert claiming[1] is None

    async def test_close_interrupts_a_long_read_on_the_writer(
        self, slow_read: tuple[rxdb.Database, asyncio.Task[Any], Callable[[], None]]
    ) -> None:
        db, write, stop = slow_read
        stop()
        await asyncio.wait_for(db.close(), WAIT)
        assert (await write).rowcount == 1  # it committed before the read began

    async def test_interrupt_writer_cuts_the_read_not_the_committed_write(
        self, slow_read: tuple[rxdb.Database, asyncio.Task[Any], Callable[[], None]]
    ) -> None:
        db, write, stop = slow_read
        db.interrupt_writer()
        assert (await asyncio.wait_for(write, WAIT)).rowcount == 1
        stop()  # its usual run, on a reader now, is abandoned (and interrupted)
