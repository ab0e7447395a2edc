"""The PostgreSQL engine's blocks: task-owned transactions, savepoints, what a failed
statement does to a transaction, read blocks on one snapshot, interrupts, backups."""

from __future__ import annotations

import asyncio
import contextvars
import shutil
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

import rxdb
from rxdb._types import TransactionMode
from tests.conformance.test_control import interrupt_until_done
from tests.conftest import WAIT
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres

T = TypeVar("T")
COUNT = "SELECT count(*) FROM t"
LONG = "SELECT pg_sleep(30)"


class Undo(Exception):
    """Raised in a block to roll it back."""


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with scratch_database() as name:
        yield f"{SERVER}/{name}"


@pytest.fixture
async def pg(url: str) -> AsyncIterator[rxdb.Database]:
    """A database with ``t(id serial, x int)`` holding one row, ``x = 1``."""
    async with rxdb.open(url) as db:
        await db.execute("CREATE TABLE t(id serial PRIMARY KEY, x int)")
        await db.execute("INSERT INTO t(x) VALUES (1)")
        yield db


def detached(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task outside the caller's blocks (a fresh context)."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def undone(db: rxdb.Database, *statements: str) -> None:
    """Run ``statements`` in a transaction block that an exception then rolls back."""

    async def block() -> None:
        async with db.transaction():
            for sql in statements:
                await db.execute(sql)
            raise Undo

    with pytest.raises(Undo):
        await block()


async def running(url: str, sql: str, work: asyncio.Task[Any]) -> None:
    """Wait until the server runs ``sql`` (``work`` sent it), asking it between short waits
    for ``work`` (nothing tells from outside when a statement has started)."""
    admin = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(WAIT):
            while not await admin.fetchval(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query = $1 AND state = "
                "'active')",
                sql,
            ):
                await asyncio.wait({work}, timeout=0.01)
                assert not work.done(), "the statement ended before it was seen running"
    finally:
        await admin.close()


async def xs(db: rxdb.Database) -> list[int]:
    return [row[0] for row in await db.fetch_all("SELECT x FROM t ORDER BY id")]


class TestTransactions:
    async def test_commit_makes_every_statement_visible(self, pg: rxdb.Database) -> None:
        async with pg.transaction():
            await pg.execute("INSERT INTO t(x) VALUES (2)")
            await pg.execute_many("INSERT INTO t(x) VALUES (?)", [(3,), (4,)])
            await pg.execute_script("INSERT INTO t(x) VALUES (5); DELETE FROM t WHERE x = 1;")
            assert await pg.fetch_one(COUNT) == (4,)  # its own writes, inside
            assert await detached(pg.fetch_one(COUNT)) == (1,)  # not yet for others
        assert await xs(pg) == [2, 3, 4, 5]

    async def test_an_exception_rolls_everything_back(self, pg: rxdb.Database) -> None:
        await undone(pg, "INSERT INTO t(x) VALUES (2)", "DELETE FROM t WHERE x = 1")
        assert await xs(pg) == [1]

    async def test_a_nested_block_is_a_savepoint(self, pg: rxdb.Database) -> None:
        async with pg.transaction():
            await pg.execute("INSERT INTO t(x) VALUES (2)")
            await undone(pg, "INSERT INTO t(x) VALUES (3)")
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (4)")
        assert await xs(pg) == [1, 2, 4]

    async def test_a_failed_statement_fails_the_whole_transaction(self, pg: rxdb.Database) -> None:
        async def swallow() -> None:
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (2)")
                with pytest.raises(rxdb.IntegrityError):
                    await pg.execute("INSERT INTO t(id) VALUES (1)")
                with pytest.raises(rxdb.TransactionAbortedError):
                    await pg.execute("INSERT INTO t(x) VALUES (3)")  # refused without a trip
                with pytest.raises(rxdb.TransactionAbortedError):
                    async with pg.transaction():
                        pass

        with pytest.raises(rxdb.TransactionAbortedError):
            await swallow()  # its end, too: nothing of it can commit
        assert await xs(pg) == [1]

    async def test_a_savepoint_contains_a_failed_statement(self, pg: rxdb.Database) -> None:
        async def clash() -> None:
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (3)")
                await pg.execute("INSERT INTO t(id) VALUES (1)")

        async with pg.transaction():
            await pg.execute("INSERT INTO t(x) VALUES (2)")
            with pytest.raises(rxdb.IntegrityError):
                await clash()
            await pg.execute("INSERT INTO t(x) VALUES (4)")  # the outer one carries on
        assert await xs(pg) == [1, 2, 4]

    async def test_a_savepoint_that_swallows_a_failure_is_rolled_back(
        self, pg: rxdb.Database
    ) -> None:
        async def swallow() -> None:
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (3)")
                with pytest.raises(rxdb.IntegrityError):
                    await pg.execute("INSERT INTO t(id) VALUES (1)")

        async with pg.transaction():
            await pg.execute("INSERT INTO t(x) VALUES (2)")
            with pytest.raises(rxdb.TransactionAbortedError):
                await swallow()
            await pg.execute("INSERT INTO t(x) VALUES (4)")
        assert await xs(pg) == [1, 2, 4]

    async def test_other_tasks_wait_and_started_tasks_join(self, pg: rxdb.Database) -> None:
        others: list[asyncio.Task[Any]] = []

        async def block() -> None:
            async with pg.transaction():
                await asyncio.create_task(pg.execute("INSERT INTO t(x) VALUES (2)"))  # joins
                others.append(detached(pg.execute("INSERT INTO t(x) VALUES (3)")))
                await pg.fetch_one(COUNT)  # a round trip: the other writer tries meanwhile
                assert not others[0].done()
                raise Undo

        with pytest.raises(Undo):
            await block()
        await asyncio.wait_for(others[0], WAIT)
        assert await xs(pg) == [1, 3]  # 2 was rolled back with the block; 3 waited

    @pytest.mark.parametrize(
        ("mode", "isolation"),
        [
            ("deferred", "read committed"),
            ("immediate", "read committed"),
            ("exclusive", "serializable"),
        ],
    )
    async def test_modes_choose_the_isolation_level(
        self, pg: rxdb.Database, mode: TransactionMode, isolation: str
    ) -> None:
        async with pg.transaction(mode):
            assert await pg.fetch_one("SHOW transaction_isolation") == (isolation,)

    async def test_an_unknown_mode_is_refused(self, pg: rxdb.Database) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            async with pg.transaction("eventually"):  # type: ignore[arg-type]
                pass

    async def test_a_begin_the_user_writes_keeps_the_writer_until_commit(
        self, pg: rxdb.Database
    ) -> None:
        await pg.execute("BEGIN")
        await pg.execute("INSERT INTO t(x) VALUES (2)")
        other = detached(pg.execute("INSERT INTO t(x) VALUES (3)"))
        await pg.fetch_one(COUNT)
        assert not other.done()
        await pg.execute("COMMIT")
        await asyncio.wait_for(other, WAIT)
        assert await xs(pg) == [1, 2, 3]

    async def test_a_task_that_leaves_a_begin_open_is_rolled_back(self, pg: rxdb.Database) -> None:
        async def forget() -> None:
            await pg.execute("BEGIN")
            await pg.execute("INSERT INTO t(x) VALUES (2)")

        await detached(forget())
        await asyncio.wait_for(pg.execute("INSERT INTO t(x) VALUES (3)"), WAIT)
        assert await xs(pg) == [1, 3]


class TestReads:
    async def test_read_sees_the_snapshot_of_its_start(self, pg: rxdb.Database) -> None:
        async with pg.read() as r:
            await asyncio.wait_for(detached(pg.execute("INSERT INTO t(x) VALUES (2)")), WAIT)
            assert await r.fetch_one(COUNT) == (1,)  # committed before the first read, yet
            assert await pg.fetch_one(COUNT) == (1,)  # this task's statements share it
        assert await pg.fetch_one(COUNT) == (2,)

    async def test_unsafe_read_sees_each_commit(self, pg: rxdb.Database) -> None:
        async with pg.unsafe_read() as r:
            assert await r.fetch_one(COUNT) == (1,)
            await asyncio.wait_for(detached(pg.execute("INSERT INTO t(x) VALUES (2)")), WAIT)
            assert await r.fetch_one(COUNT) == (2,)

    async def test_an_error_keeps_the_read_block_and_its_snapshot(self, pg: rxdb.Database) -> None:
        async with pg.read() as r:
            assert await r.fetch_one(COUNT) == (1,)
            await asyncio.wait_for(detached(pg.execute("INSERT INTO t(x) VALUES (2)")), WAIT)
            with pytest.raises(rxdb.OperationalError) as info:
                await r.fetch_all("SELECT * FROM missing")
            assert info.value.sqlstate == "42P01"
            assert await r.fetch_one(COUNT) == (1,)

    @pytest.mark.parametrize("isolated", [True, False])
    async def test_a_write_inside_a_read_is_read_only(
        self, pg: rxdb.Database, isolated: bool
    ) -> None:
        async with pg.read() if isolated else pg.unsafe_read() as r:
            with pytest.raises(rxdb.ReadOnlyError) as info:
                await r.execute("INSERT INTO t(x) VALUES (2)")
            assert info.value.sqlstate == "25006"
            with pytest.raises(rxdb.ReadOnlyError):
                await pg.execute("INSERT INTO t(x) VALUES (2)")
            assert (await r.execute("SELECT x FROM t")).rows == [(1,)]

    async def test_blocks_inside_blocks_raise_reentrancy(self, pg: rxdb.Database) -> None:
        async with pg.read():
            with pytest.raises(rxdb.ReentrancyError):
                async with pg.read():
                    pass
            with pytest.raises(rxdb.ReentrancyError):
                async with pg.transaction():
                    pass
        async with pg.transaction():
            with pytest.raises(rxdb.ReentrancyError):
                async with pg.read():
                    pass


class TestInterrupt:
    async def test_interrupt_aborts_a_read(self, pg: rxdb.Database) -> None:
        query = detached(pg.fetch_all(LONG))
        await interrupt_until_done(query, pg.interrupt)
        with pytest.raises(rxdb.InterruptError) as info:
            query.result()
        assert info.value.sqlstate == "57014"
        assert await pg.fetch_one(COUNT) == (1,)

    async def test_interrupt_threadsafe_from_a_plain_thread(self, pg: rxdb.Database) -> None:
        query = detached(pg.execute(LONG))
        await interrupt_until_done(query, lambda: asyncio.to_thread(pg.interrupt_threadsafe))
        with pytest.raises(rxdb.InterruptError):
            query.result()

    async def test_an_interrupted_transaction_rolls_back(self, pg: rxdb.Database) -> None:
        outcome: list[type[BaseException]] = []

        async def transaction() -> None:
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (2)")
                try:
                    await pg.execute(f"INSERT INTO t(x) SELECT 3 FROM ({LONG}) AS s")
                except rxdb.InterruptError as error:
                    outcome.append(type(error))
                try:
                    await pg.execute("INSERT INTO t(x) VALUES (4)")
                except rxdb.TransactionAbortedError as error:
                    outcome.append(type(error))

        work = detached(transaction())
        await interrupt_until_done(work, pg.interrupt)
        with pytest.raises(rxdb.TransactionAbortedError):
            work.result()
        assert outcome == [rxdb.InterruptError, rxdb.TransactionAbortedError]
        assert await xs(pg) == [1]

    async def test_interrupt_writer_leaves_reads_alone(self, pg: rxdb.Database) -> None:
        read = detached(pg.fetch_all("SELECT pg_sleep(0.3), 'read'"))
        write = detached(pg.execute(LONG))
        await interrupt_until_done(write, lambda: asyncio.to_thread(pg.interrupt_writer))
        with pytest.raises(rxdb.InterruptError):
            write.result()
        assert await read == [(None, "read")]

    async def test_interrupt_with_nothing_running_affects_nothing(self, pg: rxdb.Database) -> None:
        await pg.interrupt()
        pg.interrupt_threadsafe()
        async with pg.transaction():
            await pg.execute("INSERT INTO t(x) VALUES (2)")
        assert await pg.fetch_one(COUNT) == (2,)

    async def test_cancelling_the_caller_is_not_an_interrupt(
        self, pg: rxdb.Database, url: str
    ) -> None:
        query = detached(pg.fetch_all(LONG))
        await running(url, LONG, query)
        query.cancel()
        with pytest.raises(asyncio.CancelledError):
            await query
        assert await pg.fetch_one(COUNT) == (1,)


class TestBackup:
    async def test_backup_dumps_one_snapshot_into_a_script(
        self, pg: rxdb.Database, tmp_path: Path
    ) -> None:
        await pg.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(2, 6)])
        seen: list[rxdb.BackupProgress] = []
        target = tmp_path / "copy.sql"
        await pg.backup(target, progress=seen.append)
        assert [(p.remaining, p.total) for p in seen] == [(1, 1), (0, 1)]
        async with scratch_database() as name:
            psql = shutil.which("psql")
            assert psql is not None, "the PostgreSQL client programs are installed"
            restore = await asyncio.create_subprocess_exec(
                psql,
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                str(target),
                f"{SERVER}/{name}",
                stdout=asyncio.subprocess.DEVNULL,
            )
            assert await asyncio.wait_for(restore.wait(), WAIT) == 0
            copy = await asyncpg.connect(f"{SERVER}/{name}")
            try:
                assert await copy.fetchval("SELECT sum(x) FROM t") == 15
            finally:
                await copy.close()

    async def test_backup_refuses_another_database(self, pg: rxdb.Database) -> None:
        async with rxdb.open(":memory:") as other:
            with pytest.raises(rxdb.ProgrammingError, match="pg_dump"):
                await pg.backup(other)

    async def test_backup_refuses_to_run_inside_a_transaction(
        self, pg: rxdb.Database, tmp_path: Path
    ) -> None:
        async with pg.transaction():
            with pytest.raises(rxdb.ReentrancyError):
                await pg.backup(tmp_path / "copy.sql")

    async def test_a_progress_that_raises_aborts_the_backup(
        self, pg: rxdb.Database, tmp_path: Path
    ) -> None:
        def refuse(progress: rxdb.BackupProgress) -> None:
            raise Undo

        with pytest.raises(Undo):
            await pg.backup(tmp_path / "copy.sql", progress=refuse)
        assert not (tmp_path / "copy.sql").exists()
        assert await pg.fetch_one(COUNT) == (1,)
