"""Misuse must not wedge a database: a transaction left from another task, one whose task
ends inside it, and close() while work outlives its grace. Each on SQLite (a file and
``:memory:``) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextvars
import gc
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

import rxdb
import rxdb.engines.postgres.engine as postgres_engine_module
import rxdb.engines.sqlite.engine as sqlite_engine_module
from tests.conftest import WAIT, sqlite_engine
from tests.rxdb.postgres_worker import SERVER, scratch_database
from tests.rxdb.test_postgres_transactions import running

T = TypeVar("T")


@pytest.fixture(
    params=["file", "memory", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[rxdb.Database]:
    """A database of each engine with a table ``t(x)`` holding one row, ``x = 1``."""
    if request.param == "postgres":
        async with scratch_database() as name, rxdb.open(f"{SERVER}/{name}") as database:
            await database.execute("CREATE TABLE t(x int)")
            await database.execute("INSERT INTO t VALUES (1)")
            yield database
        return
    path = tmp_path / "misuse.db" if request.param == "file" else ":memory:"
    async with rxdb.open(path) as database:
        await database.execute("CREATE TABLE t(x int)")
        await database.execute("INSERT INTO t VALUES (1)")
        yield database


def detached(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task outside the caller's blocks (a fresh context), as an unrelated task is."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def xs(db: rxdb.Database) -> list[int]:
    return sorted(row[0] for row in await db.fetch_all("SELECT x FROM t"))


async def usable(db: rxdb.Database) -> None:
    """The writer is free: another task writes, and the write is seen."""
    await asyncio.wait_for(detached(db.execute("INSERT INTO t VALUES (9)")), WAIT)
    assert 9 in await xs(db)


async def ended_then_usable(db: rxdb.Database, task: asyncio.Task[Any]) -> None:
    """Let ``task`` end (with any outcome) and its leftovers be collected, then check that
    the writer is free."""
    await asyncio.gather(task, return_exceptions=True)
    gc.collect()
    await usable(db)


class TestLeftFromAnotherTask:
    async def test_raises_rolls_back_and_frees_the_writer(self, db: rxdb.Database) -> None:
        block = db.transaction()
        await block.__aenter__()
        await db.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(rxdb.TransactionAbortedError, match="other than the one that entered"):
            await detached(block.__aexit__(None, None, None))
        assert not db.closed
        await usable(db)
        assert await xs(db) == [1, 9]  # 2 was rolled back

    async def test_with_an_exception_raises_and_frees_the_writer(self, db: rxdb.Database) -> None:
        block = db.transaction()
        await block.__aenter__()
        await db.execute("INSERT INTO t VALUES (2)")
        error = KeyError("mine")
        with pytest.raises(rxdb.TransactionAbortedError) as raised:
            await detached(block.__aexit__(KeyError, error, None))
        assert raised.value.__cause__ is error
        await usable(db)
        assert await xs(db) == [1, 9]

    async def test_close_returns_afterwards(self, db: rxdb.Database) -> None:
        block = db.transaction()
        await block.__aenter__()
        with pytest.raises(rxdb.TransactionAbortedError):
            await detached(block.__aexit__(None, None, None))
        await asyncio.wait_for(detached(db.close()), WAIT)
        assert db.closed


class TestOwnerEndsInside:
    async def test_a_forgotten_block_is_rolled_back_with_a_warning(self, db: rxdb.Database) -> None:
        blocks = []

        async def forget() -> None:
            block = db.transaction()
            blocks.append(block)  # kept alive: the task ends, the block is never left
            await block.__aenter__()
            await db.execute("INSERT INTO t VALUES (2)")

        with pytest.warns(ResourceWarning, match="async with db.transaction"):
            await ended_then_usable(db, detached(forget()))
        assert await xs(db) == [1, 9]

    async def test_a_garbage_collected_block_is_rolled_back(self, db: rxdb.Database) -> None:
        async def forget() -> None:
            await db.transaction().__aenter__()
            await db.execute("INSERT INTO t VALUES (2)")

        with pytest.warns(ResourceWarning, match="async with db.transaction"):
            await ended_then_usable(db, detached(forget()))
        assert await xs(db) == [1, 9]

    async def test_a_task_cancelled_inside_a_manually_entered_block(
        self, db: rxdb.Database
    ) -> None:
        entered = asyncio.Event()
        blocks = []

        async def hold() -> None:
            block = db.transaction()
            blocks.append(block)
            await block.__aenter__()
            await db.execute("INSERT INTO t VALUES (2)")
            entered.set()
            await asyncio.Event().wait()  # until cancelled; __aexit__ never runs

        task = detached(hold())
        await asyncio.wait_for(entered.wait(), WAIT)
        task.cancel()
        with pytest.warns(ResourceWarning):
            await ended_then_usable(db, task)
        assert await xs(db) == [1, 9]

    async def test_a_begin_without_commit_is_rolled_back_with_a_warning(
        self, db: rxdb.Database
    ) -> None:
        async def forget() -> None:
            await db.execute("BEGIN")
            await db.execute("INSERT INTO t VALUES (2)")

        with pytest.warns(ResourceWarning, match="BEGIN without COMMIT"):
            await ended_then_usable(db, detached(forget()))
        assert await xs(db) == [1, 9]

    async def test_a_block_left_properly_leaves_nothing_on_its_task(
        self, db: rxdb.Database
    ) -> None:
        # Many blocks in one long-lived task: none leaves a callback behind on it.
        task = asyncio.current_task()
        assert task is not None
        before = len(task._callbacks or ())
        for value in range(3):
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES (?)", (value + 10,))
        assert len(task._callbacks or ()) == before
        assert await xs(db) == [1, 10, 11, 12]


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """close()'s grace, made short so that a test of what outlives it stays fast."""
    grace = 0.2
    for module in (sqlite_engine_module, postgres_engine_module):
        monkeypatch.setattr(module, "CLOSE_GRACE", grace)
    return grace


class TestCloseNeverHangs:
    async def test_a_transaction_idle_in_another_task_is_rolled_back(
        self, db: rxdb.Database, short_grace: float
    ) -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES (2)")
                entered.set()
                await release.wait()  # idle inside, past close()'s grace

        task = detached(hold())
        await asyncio.wait_for(entered.wait(), WAIT)
        await asyncio.wait_for(db.close(), WAIT)
        assert db.closed
        release.set()
        with pytest.raises(rxdb.ClosedError, match="closed inside this transaction"):
            await asyncio.wait_for(task, WAIT)

    async def test_a_begin_left_open_by_a_live_task_is_rolled_back(
        self, db: rxdb.Database, short_grace: float
    ) -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            await db.execute("BEGIN")
            await db.execute("INSERT INTO t VALUES (2)")
            entered.set()
            await release.wait()

        task = detached(hold())
        await asyncio.wait_for(entered.wait(), WAIT)
        await asyncio.wait_for(db.close(), WAIT)
        release.set()
        await asyncio.wait_for(task, WAIT)
        assert db.closed

    async def test_a_read_running_past_the_grace_is_interrupted(
        self, db: rxdb.Database, short_grace: float
    ) -> None:
        reading = detached(db.fetch_all(f"SELECT count(*) FROM ({ENDLESS}) AS endless"))
        await until_running(db, reading)
        await asyncio.wait_for(db.close(), WAIT)
        assert db.closed
        with pytest.raises((rxdb.InterruptError, rxdb.ClosedError)):
            await asyncio.wait_for(reading, WAIT)

    async def test_a_read_block_idle_in_another_task_is_closed_under_it(
        self, db: rxdb.Database, short_grace: float
    ) -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with db.read() as session:
                await session.fetch_all("SELECT x FROM t")
                entered.set()
                await release.wait()  # idle inside the block, past close()'s grace
                await session.fetch_all("SELECT x FROM t")

        task = detached(hold())
        await asyncio.wait_for(entered.wait(), WAIT)
        await asyncio.wait_for(db.close(), WAIT)
        assert db.closed
        release.set()
        with pytest.raises(rxdb.RxdbError):
            await asyncio.wait_for(task, WAIT)


ENDLESS = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n FROM c"


async def until_running(db: rxdb.Database, work: asyncio.Task[Any]) -> None:
    """Wait until ``work``'s statement runs (on PostgreSQL the server says so; on SQLite a
    connection is busy with it), asking between short waits for ``work``."""
    if db.path.startswith("postgresql://"):
        await running(db.path, f"SELECT count(*) FROM ({ENDLESS}) AS endless", work)
        return
    engine = sqlite_engine(db)

    def busy() -> bool:
        pool, writer = engine._readers, engine._writer
        if pool is not None:
            return any(pool._load.values())
        return writer is not None and writer.lock.locked()

    async with asyncio.timeout(WAIT):
        while not busy():
            await asyncio.wait({work}, timeout=0.01)
            assert not work.done(), "the statement ended before it was seen running"
