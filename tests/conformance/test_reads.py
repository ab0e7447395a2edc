"""Read blocks: one snapshot, the latest commit, no writes inside, no blocks inside blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase, AsyncReadSession
from tests.conformance.conftest import Shape, detached, make_t
from tests.conformance.dialects import dialect
from tests.conftest import WAIT

COUNT = "SELECT count(*) FROM t"
Block = Callable[[AsyncDatabase], AbstractAsyncContextManager[Any]]
READS: dict[str, Callable[[AsyncDatabase], AbstractAsyncContextManager[AsyncReadSession]]] = {
    "read": lambda db: db.read(),
    "unsafe_read": lambda db: db.unsafe_read(),
}
BLOCKS: dict[str, Block] = {**READS, "transaction": lambda db: db.transaction()}


class TestSnapshots:
    async def test_read_sees_one_snapshot(self, shape: Shape) -> None:
        db = shape.db
        await make_t(db)
        async with db.read() as r:
            assert await r.fetch_one(COUNT) == (1,)
            writer = detached(db.execute("INSERT INTO t(x) VALUES (2)"))
            if not shape.single_connection:  # else the write waits for the block's end
                await asyncio.wait_for(writer, WAIT)
            assert await r.fetch_one(COUNT) == (1,)  # committed meanwhile, yet invisible
            assert await db.fetch_one(COUNT) == (1,)  # this task's statements share it
            assert await r.fetch_all("SELECT x FROM t") == [(1,)]
        await asyncio.wait_for(writer, WAIT)
        assert await db.fetch_one(COUNT) == (2,)  # visible after

    async def test_unsafe_read_sees_the_latest_commit(self, shape: Shape) -> None:
        if shape.single_connection:
            pytest.skip("one connection: a commit cannot land inside any read block")
        db = shape.db
        await make_t(db)
        async with db.unsafe_read() as r:
            assert await r.fetch_one(COUNT) == (1,)
            await asyncio.wait_for(detached(db.execute("INSERT INTO t(x) VALUES (2)")), WAIT)
            assert await r.fetch_one(COUNT) == (2,)

    @pytest.mark.parametrize("kind", list(READS))
    async def test_session_is_closed_after_its_block(self, db: AsyncDatabase, kind: str) -> None:
        async with READS[kind](db) as r:
            assert await r.fetch_one("SELECT 1") == (1,)
        with pytest.raises(rxdb.ClosedError):
            await r.fetch_all("SELECT 1")

    async def test_an_error_inside_keeps_the_block_usable(self, db: AsyncDatabase) -> None:
        async with db.read() as r:
            with pytest.raises(rxdb.OperationalError) as refused:
                await r.fetch_all("SELECT * FROM missing")
            assert dialect(db).code(refused.value) == dialect(db).missing_table
            assert await r.fetch_one("SELECT 1") == (1,)


class TestReadOnly:
    @pytest.mark.parametrize("kind", list(READS))
    async def test_a_write_inside_a_read_raises_read_only(
        self, db: AsyncDatabase, kind: str
    ) -> None:
        await make_t(db)
        async with READS[kind](db) as r:
            with pytest.raises(rxdb.ReadOnlyError):
                await r.execute("INSERT INTO t(x) VALUES (9)")
            with pytest.raises(rxdb.ReadOnlyError):
                await db.execute("INSERT INTO t(x) VALUES (9)")
            assert (await r.execute("SELECT x FROM t")).rows == [(1,)]
        await db.execute("INSERT INTO t(x) VALUES (3)")  # writable again afterwards
        assert await db.fetch_one(COUNT) == (2,)


class TestReentrancy:
    @pytest.mark.parametrize(
        ("outer", "inner"),
        [
            ("read", "read"),
            ("read", "unsafe_read"),
            ("unsafe_read", "transaction"),
            ("read", "transaction"),
            ("transaction", "read"),
        ],
    )
    async def test_a_block_inside_another_raises_reentrancy(
        self, db: AsyncDatabase, outer: str, inner: str
    ) -> None:
        async def nest() -> None:
            async with BLOCKS[inner](db):
                pass

        async with BLOCKS[outer](db):
            with pytest.raises(rxdb.ReentrancyError):
                await nest()
            assert await db.fetch_one("SELECT 1") == (1,)  # the outer block carries on
