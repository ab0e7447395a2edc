"""Interrupting what runs, and copying the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase
from tests.conformance.conftest import detached, make_t
from tests.conformance.dialects import dialect
from tests.conftest import WAIT

ENDLESS = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n FROM c"
# Aliased where it is a subquery in FROM: PostgreSQL before 16 requires an alias.
ENDLESS_ROWS = f"({ENDLESS}) AS endless"


async def interrupt_until_done(
    work: asyncio.Task[Any], interrupt: Callable[[], Awaitable[object]]
) -> None:
    """Interrupt until ``work`` ends. Nothing tells from outside when a statement has started
    (an interrupt with nothing running does nothing), so the interrupt is repeated after each
    short wait for the statement's end."""
    async with asyncio.timeout(WAIT):
        while not work.done():
            await interrupt()
            await asyncio.wait({work}, timeout=0.02)


class TestInterrupt:
    async def test_interrupt_aborts_a_long_query(self, db: AsyncDatabase) -> None:
        query = detached(db.fetch_all(f"SELECT count(*) FROM {ENDLESS_ROWS}"))
        await interrupt_until_done(query, db.interrupt)
        with pytest.raises(rxdb.InterruptError):
            query.result()
        assert await db.fetch_one("SELECT 1") == (1,)

    async def test_interrupt_threadsafe_works_from_a_plain_thread(self, db: AsyncDatabase) -> None:
        query = detached(db.fetch_all(f"SELECT count(*) FROM {ENDLESS_ROWS}"))
        await interrupt_until_done(query, lambda: asyncio.to_thread(db.interrupt_threadsafe))
        with pytest.raises(rxdb.InterruptError):
            query.result()
        assert await db.fetch_one("SELECT 1") == (1,)

    async def test_an_interrupted_transaction_rolls_back(self, db: AsyncDatabase) -> None:
        await make_t(db)
        outcome: list[type[BaseException]] = []

        async def transaction() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (2)")
                try:
                    await db.execute(f"INSERT INTO t(x) SELECT n FROM {ENDLESS_ROWS}")
                except rxdb.InterruptError as error:
                    outcome.append(type(error))
                try:
                    await db.execute("INSERT INTO t(x) VALUES (3)")
                except rxdb.TransactionAbortedError as error:
                    outcome.append(type(error))

        work = detached(transaction())
        await interrupt_until_done(work, db.interrupt)
        with pytest.raises(rxdb.TransactionAbortedError):
            work.result()  # its end, too
        assert outcome == [rxdb.InterruptError, rxdb.TransactionAbortedError]
        assert await db.fetch_all("SELECT x FROM t") == [(1,)]

    async def test_interrupt_with_nothing_running_affects_nothing_later(
        self, db: AsyncDatabase
    ) -> None:
        await make_t(db)
        await db.interrupt()
        db.interrupt_threadsafe()
        async with db.transaction():
            await db.execute("INSERT INTO t(x) VALUES (2)")
        assert await db.fetch_one("SELECT count(*) FROM t") == (2,)


class TestBackup:
    async def test_backup_copies_every_row_into_a_file(
        self, db: AsyncDatabase, tmp_path: Path
    ) -> None:
        await make_t(db)
        await db.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(100)])
        target = tmp_path / "copy.db"
        seen: list[rxdb.BackupProgress] = []
        await db.backup(target, pages_per_step=1, progress=seen.append)
        assert await dialect(db).read_backup(target, "SELECT count(*) FROM t") == [(101,)]
        assert seen
        assert seen[-1].remaining == 0

    @pytest.mark.parametrize("pages", [1.5, "1", None])
    async def test_backup_refuses_a_step_that_is_not_an_int(
        self, db: AsyncDatabase, tmp_path: Path, pages: Any
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            await db.backup(tmp_path / "copy.db", pages_per_step=pages)

    async def test_backup_refuses_a_progress_that_is_not_callable(
        self, db: AsyncDatabase, tmp_path: Path
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            await db.backup(tmp_path / "copy.db", progress="not callable")  # type: ignore[arg-type]
