"""Transactions: commit, rollback, savepoints, and what watchers hear of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase
from rxdb.updates import NotifyTablesUpdated, UpdateKind
from tests.conformance.conftest import detached, make_t, marker_commit
from tests.conformance.dialects import dialect
from tests.conftest import WAIT, Recorder, subscribed

COUNT = "SELECT count(*) FROM t"


class Undo(Exception):
    """Raised in a block to roll it back."""


async def undone(db: AsyncDatabase, body: Callable[[], Awaitable[object]]) -> None:
    """Run ``body`` in a transaction that an exception then rolls back."""

    async def block() -> None:
        async with db.transaction():
            await body()
            raise Undo

    with pytest.raises(Undo):
        await block()


class TestTransactions:
    async def test_commit_makes_every_statement_visible(self, db: AsyncDatabase) -> None:
        await make_t(db)
        async with db.transaction():
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await db.execute_many("INSERT INTO t(x) VALUES (?)", [(3,), (4,)])
            assert await db.fetch_one(COUNT) == (4,)  # its own writes, inside
        assert await db.fetch_one(COUNT) == (4,)

    async def test_exception_rolls_everything_back(self, db: AsyncDatabase) -> None:
        await make_t(db)

        async def writes() -> None:
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await db.execute_script("INSERT INTO t(x) VALUES (3); DELETE FROM t WHERE x = 1;")

        await undone(db, writes)
        assert await db.fetch_all("SELECT x FROM t") == [(1,)]

    async def test_nested_block_is_a_savepoint(self, db: AsyncDatabase) -> None:
        await make_t(db)
        async with db.transaction():
            await db.execute("INSERT INTO t(x) VALUES (2)")  # the outer block's
            await undone(db, lambda: db.execute("INSERT INTO t(x) VALUES (3)"))
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (4)")  # a nested block's, kept
        assert await db.fetch_all("SELECT x FROM t ORDER BY id") == [(1,), (2,), (4,)]

    async def test_other_writers_wait_for_the_transaction(self, db: AsyncDatabase) -> None:
        await make_t(db)
        others: list[asyncio.Task[Any]] = []

        async def writes() -> None:
            await db.execute("INSERT INTO t(x) VALUES (2)")
            others.append(detached(db.execute("INSERT INTO t(x) VALUES (3)")))
            await db.fetch_one(COUNT)  # a round trip: the other writer tries meanwhile

        await undone(db, writes)
        # Had it slipped into the transaction, the rollback would have undone it too.
        await asyncio.wait_for(others[0], WAIT)
        assert await db.fetch_all("SELECT x FROM t ORDER BY id") == [(1,), (3,)]

    async def test_a_failed_statement_in_a_transaction_leaves_no_trace(
        self, db: AsyncDatabase
    ) -> None:
        await make_t(db)

        async def clash() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t(id, x) VALUES (7, 2)")
                await db.execute("INSERT INTO t(id, x) VALUES (7, 3)")

        with pytest.raises(rxdb.IntegrityError):
            await clash()
        assert await db.fetch_all("SELECT x FROM t") == [(1,)]


class TestWatchersHearOnce:
    async def test_watchers_hear_once_after_the_outermost_commit(self, db: AsyncDatabase) -> None:
        await make_t(db)
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(db.table_updates(["t"]), updates):
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (2)")
                async with db.transaction():
                    await db.execute("INSERT INTO t(x) VALUES (3)")
                await db.execute("DELETE FROM t WHERE x = 3")
                assert updates.values == []  # nothing before the commit
            heard = await marker_commit(db, updates)
        codes = dialect(db)
        wrote = codes.updates("t", UpdateKind.INSERT) | codes.updates("t", UpdateKind.DELETE)
        marker = codes.updates("t", UpdateKind.UPDATE, "x")
        if codes.one_message_per_commit:
            assert [m.updates for m in heard] == [wrote, marker]
        else:  # what it wrote, in messages after its commit
            assert frozenset().union(*(m.updates for m in heard)) == wrote | marker

    async def test_a_rolled_back_transaction_is_never_announced(self, db: AsyncDatabase) -> None:
        await make_t(db)
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(db.table_updates(["t"]), updates):
            await undone(db, lambda: db.execute("INSERT INTO t(x) VALUES (2)"))
            heard = await marker_commit(db, updates)
        assert [m.updates for m in heard] == [dialect(db).updates("t", UpdateKind.UPDATE, "x")]
