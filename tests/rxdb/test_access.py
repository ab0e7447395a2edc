"""The access model: read blocks, reentrancy, busy timeouts, interrupt, backup, close."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT, Recorder, sqlite_engine, subscribed

INFINITE = "WITH RECURSIVE c(n) AS (SELECT started() UNION ALL SELECT n + 1 FROM c) SELECT n FROM c"


def detached(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A task that does not inherit the caller's transaction or read block."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def make_t(db: rxdb.Database) -> None:
    await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
    await db.execute("INSERT INTO t(x) VALUES (1)")


async def write_in_transaction(db: rxdb.Database, sql: str) -> None:
    async with db.transaction():
        await db.execute(sql)


async def install_started(worker: Any, event: asyncio.Event) -> None:
    """A SQL function ``started()`` that tells the test a statement is running now (installed
    on one connection's worker thread, through rxdb's internal Worker)."""
    loop = asyncio.get_running_loop()

    def started() -> int:
        loop.call_soon_threadsafe(event.set)
        return 0

    await worker.call(worker.raw.create_function, "started", 0, started)


class TestReadBlocks:
    async def test_read_sees_one_snapshot(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        async with any_db.read() as r:
            before = await r.fetch_one("SELECT count(*) FROM t")
            writer = detached(any_db.execute("INSERT INTO t(x) VALUES (2)"))
            if not sqlite_engine(any_db).memory:
                await asyncio.wait_for(writer, WAIT)  # committed, yet invisible here
            assert await r.fetch_one("SELECT count(*) FROM t") == before
            assert await any_db.fetch_one("SELECT count(*) FROM t") == before  # same snapshot
        await asyncio.wait_for(writer, WAIT)
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (2,)

    async def test_unsafe_read_sees_latest_commit(self, db: rxdb.Database) -> None:
        await make_t(db)
        async with db.unsafe_read() as r:
            assert await r.fetch_one("SELECT count(*) FROM t") == (1,)
            await asyncio.wait_for(detached(db.execute("INSERT INTO t(x) VALUES (2)")), WAIT)
            assert await r.fetch_one("SELECT count(*) FROM t") == (2,)

    @pytest.mark.parametrize("method", ["read", "unsafe_read"])
    async def test_write_inside_read_is_refused_clearly(
        self, any_db: rxdb.Database, method: str
    ) -> None:
        await make_t(any_db)
        async with getattr(any_db, method)() as r:
            with pytest.raises(rxdb.ReadOnlyError, match=r"db\.transaction"):
                await r.execute("INSERT INTO t(x) VALUES (9)")
            with pytest.raises(rxdb.ReadOnlyError, match=r"db\.transaction"):
                await any_db.execute("INSERT INTO t(x) VALUES (9)")
            assert await r.fetch_one("SELECT count(*) FROM t") == (1,)
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (1,)
        await any_db.execute("INSERT INTO t(x) VALUES (3)")  # writable again afterwards

    async def test_session_is_unusable_after_its_block(self, any_db: rxdb.Database) -> None:
        async with any_db.read() as r:
            pass
        with pytest.raises(rxdb.ClosedError, match="ended"):
            await r.fetch_all("SELECT 1")

    async def test_read_errors_keep_the_block_usable(self, any_db: rxdb.Database) -> None:
        async with any_db.read() as r:
            with pytest.raises(rxdb.OperationalError, match="no such table"):
                await r.fetch_all("SELECT * FROM missing")
            assert await r.fetch_one("SELECT 1") == (1,)


class TestReentrancy:
    async def test_read_inside_read_raises_at_once(self, any_db: rxdb.Database) -> None:
        async with any_db.read():
            with pytest.raises(rxdb.ReentrancyError, match=r"inside db\.read"):
                async with any_db.read():
                    pass

    async def test_transaction_inside_read_raises_at_once(self, any_db: rxdb.Database) -> None:
        async with any_db.unsafe_read():
            with pytest.raises(rxdb.ReentrancyError):
                async with any_db.transaction():
                    pass

    async def test_read_inside_transaction_raises_at_once(self, any_db: rxdb.Database) -> None:
        async with any_db.transaction():
            with pytest.raises(rxdb.ReentrancyError, match="fetch_all"):
                async with any_db.read():
                    pass

    async def test_many_concurrent_read_blocks_share_the_pool(self, db: rxdb.Database) -> None:
        await make_t(db)

        async def block() -> Any:
            async with db.read() as r:
                await asyncio.sleep(0)
                return await r.fetch_one("SELECT count(*) FROM t")

        results = await asyncio.wait_for(asyncio.gather(*(block() for _ in range(20))), WAIT)
        assert results == [(1,)] * 20


class TestBusy:
    async def test_busy_timeout_raises_busy_error_and_writes_nothing(self, db_path: Path) -> None:
        async with rxdb.open(db_path, busy_timeout=0.05) as db:
            await make_t(db)
            rec: Recorder[Any] = Recorder()
            sub = db.table_updates().subscribe(rec)
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
                with pytest.raises(rxdb.BusyError) as info:
                    await write_in_transaction(db, "INSERT INTO t(x) VALUES (2)")
                assert str(info.value.sqlite_errorname).startswith("SQLITE_BUSY")
                with pytest.raises(rxdb.BusyError):
                    await db.execute("INSERT INTO t(x) VALUES (3)")
                other.execute("ROLLBACK")
                async with db.transaction():
                    await db.execute("INSERT INTO t(x) VALUES (4)")
                await rec.wait_count(1)
            finally:
                other.close()
                sub.dispose()
            assert await db.fetch_all("SELECT x FROM t ORDER BY id") == [(1,), (4,)]
            assert len(rec.values) == 1


class TestInterrupt:
    async def test_interrupt_aborts_running_write_transaction(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        running = asyncio.Event()
        writer = sqlite_engine(any_db)._writer
        assert writer is not None
        await install_started(writer.worker, running)

        async def interrupt_when_running() -> None:
            await running.wait()
            await any_db.interrupt()

        async def interrupted_block() -> None:
            async with any_db.transaction():
                await any_db.execute("INSERT INTO t(x) VALUES ('kept?')")
                with pytest.raises(rxdb.InterruptError):
                    await any_db.execute(f"INSERT INTO t(x) SELECT n FROM ({INFINITE})")
                with pytest.raises(rxdb.TransactionAbortedError, match="leave the transaction"):
                    await any_db.execute("INSERT INTO t(x) VALUES ('after')")

        interrupter = detached(interrupt_when_running())
        with pytest.raises(rxdb.TransactionAbortedError):
            await interrupted_block()
        await asyncio.wait_for(interrupter, WAIT)
        assert await any_db.fetch_all("SELECT x FROM t") == [(1,)]  # nothing of the block
        await any_db.execute("INSERT INTO t(x) VALUES (2)")  # and later work is unaffected
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (2,)

    async def test_interrupt_stops_a_read(self, db: rxdb.Database) -> None:
        running = asyncio.Event()
        async with db.unsafe_read() as r:
            assert isinstance(r, rxdb.ReadSession)  # the SQLite engine's, with its worker
            await install_started(r.worker, running)
            query = asyncio.ensure_future(r.fetch_all(f"SELECT count(*) FROM ({INFINITE})"))
            await asyncio.wait_for(running.wait(), WAIT)
            db.interrupt_threadsafe()
            with pytest.raises(rxdb.InterruptError):
                await asyncio.wait_for(query, WAIT)
            assert await r.fetch_one("SELECT 1") == (1,)

    async def test_interrupt_with_nothing_running_affects_nothing_later(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        await any_db.interrupt()
        async with any_db.transaction():
            await any_db.execute("INSERT INTO t(x) VALUES (2)")
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (2,)


class TestBackup:
    async def test_backup_to_path_is_a_consistent_copy(
        self, db: rxdb.Database, tmp_path: Path
    ) -> None:
        await make_t(db)
        await db.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(200)])
        target = tmp_path / "copy.db"
        seen: list[rxdb.BackupProgress] = []
        await db.backup(target, pages_per_step=1, progress=seen.append)
        copy = sqlite3.connect(target)
        try:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert copy.execute("SELECT count(*) FROM t").fetchone() == (201,)
        finally:
            copy.close()
        assert seen
        assert seen[-1].remaining == 0
        assert all(p.completed == p.total - p.remaining for p in seen)
        assert [p.completed for p in seen] == sorted(p.completed for p in seen)

    async def test_backup_with_concurrent_writes_copies_one_snapshot(
        self, db: rxdb.Database, db_path: Path, tmp_path: Path
    ) -> None:
        await make_t(db)
        await db.execute_many("INSERT INTO t(x) VALUES (?)", [(b"x" * 500,) for _ in range(300)])
        other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)

        def write_meanwhile(_: rxdb.BackupProgress) -> None:
            other.execute("INSERT INTO t(x) VALUES ('during')")

        try:
            await db.backup(tmp_path / "copy.db", pages_per_step=2, progress=write_meanwhile)
            during = other.execute("SELECT count(*) FROM t WHERE x = 'during'").fetchone()
        finally:
            other.close()
        copy = sqlite3.connect(tmp_path / "copy.db")
        try:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert copy.execute("SELECT count(*) FROM t").fetchone() == (301,)
        finally:
            copy.close()
        assert during[0] > 0

    async def test_backup_aborted_by_callback_raises_and_leaves_db_usable(
        self, any_db: rxdb.Database, tmp_path: Path
    ) -> None:
        await make_t(any_db)
        await any_db.execute_many(
            "INSERT INTO t(x) VALUES (?)", [(b"y" * 800,) for _ in range(100)]
        )

        def abort(progress: rxdb.BackupProgress) -> None:
            if progress.completed >= 2:
                raise RuntimeError("cancel")

        with pytest.raises(RuntimeError, match="cancel"):
            await any_db.backup(tmp_path / "partial.db", pages_per_step=1, progress=abort)
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (102,)

    async def test_backup_into_open_database_refreshes_its_watches(
        self, any_db: rxdb.Database, tmp_path: Path
    ) -> None:
        await make_t(any_db)
        async with rxdb.open(tmp_path / "target.db") as target:
            await target.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
            rec: Recorder[Any] = Recorder()
            with subscribed(target.watch("SELECT x FROM t"), rec):
                await rec.wait_value([])
                await any_db.backup(target)
                await rec.wait_value([(1,)])

    async def test_backup_to_a_path_that_cannot_be_opened_raises_rxdb_error(
        self, any_db: rxdb.Database, tmp_path: Path
    ) -> None:
        await make_t(any_db)
        with pytest.raises(rxdb.OperationalError, match="backup target"):
            await any_db.backup(tmp_path / "no" / "such" / "dir.db")
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (1,)


class TestClose:
    async def test_close_waits_for_running_transaction_and_it_leaves_no_trace(
        self, db_path: Path
    ) -> None:
        db = await rxdb.open(db_path)
        await make_t(db)
        inside = asyncio.Event()
        proceed = asyncio.Event()
        outcome: list[BaseException] = []

        async def long_transaction() -> None:
            try:
                async with db.transaction():
                    await db.execute("INSERT INTO t(x) VALUES ('half')")
                    inside.set()
                    await proceed.wait()
                    await db.execute("INSERT INTO t(x) VALUES ('rest')")
            except BaseException as error:
                outcome.append(error)

        worker = detached(long_transaction())
        await asyncio.wait_for(inside.wait(), WAIT)
        closing = detached(db.close())
        await asyncio.sleep(0)
        assert not closing.done()  # waits for the transaction
        proceed.set()
        await asyncio.wait_for(asyncio.gather(worker, closing), WAIT)
        assert isinstance(outcome[0], rxdb.ClosedError)
        check = sqlite3.connect(db_path)
        try:
            assert check.execute("SELECT x FROM t").fetchall() == [(1,)]
        finally:
            check.close()

    async def test_close_from_inside_own_transaction(self, db_path: Path) -> None:
        db = await rxdb.open(db_path)
        await make_t(db)

        async def close_then_write() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (2)")
                await db.close()
                await db.execute("INSERT INTO t(x) VALUES (3)")

        with pytest.raises(rxdb.ClosedError):
            await close_then_write()
        check = sqlite3.connect(db_path)
        try:
            assert check.execute("SELECT count(*) FROM t").fetchone() == (1,)
        finally:
            check.close()

    async def test_block_ending_normally_after_close_inside_it_raises(self, db_path: Path) -> None:
        db = await rxdb.open(db_path)
        await make_t(db)

        async def close_inside() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (2)")
                await db.close()

        with pytest.raises(rxdb.ClosedError, match="rolled back"):
            await close_inside()
        check = sqlite3.connect(db_path)
        try:
            assert check.execute("SELECT count(*) FROM t").fetchone() == (1,)
        finally:
            check.close()


async def test_read_cancelled_while_its_reader_opens_leaves_no_connection(
    db_path: Path,
) -> None:
    """The reader opened for a cancelled read joins the pool, which closes it; nothing is
    left for the interpreter to hang on (the autouse fixture checks the threads)."""
    async with rxdb.open(db_path) as db:
        pool = sqlite_engine(db)._readers
        assert pool is not None
        real = pool._open_reader
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_open() -> Any:
            started.set()
            await release.wait()
            return await real()

        pool._open_reader = slow_open
        read = asyncio.ensure_future(db.fetch_all("SELECT 1"))
        await asyncio.wait_for(started.wait(), WAIT)
        read.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the read while the open waits
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await read
        pool._open_reader = real
        assert await db.fetch_all("SELECT 2") == [(2,)]
