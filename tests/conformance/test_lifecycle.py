"""Closing: idempotent, completes watches, and every call afterwards raises ClosedError."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase
from tests.conformance.calls import CALLS, each_call
from tests.conformance.conftest import SHAPES, Shape, make_t
from tests.conftest import Recorder, subscribed

GAPS: dict[tuple[str, str], str] = {}


class TestClose:
    async def test_close_is_idempotent(self, db: AsyncDatabase) -> None:
        assert not db.closed
        await db.close()
        await db.close()
        assert db.closed

    @pytest.mark.parametrize(("shape", "call"), each_call(SHAPES, GAPS), indirect=["shape"])
    async def test_every_call_after_close_raises_closed_error(
        self, shape: Shape, call: str, tmp_path: Path
    ) -> None:
        await shape.db.close()
        with pytest.raises(rxdb.ClosedError):
            await CALLS[call](shape.db, tmp_path)

    async def test_interrupts_after_close_do_nothing(self, db: AsyncDatabase) -> None:
        await db.close()
        await db.interrupt()
        db.interrupt_threadsafe()

    async def test_close_completes_the_watches(self, db: AsyncDatabase) -> None:
        await make_t(db)
        rows: Recorder[Any] = Recorder()
        with subscribed(db.watch("SELECT x FROM t"), rows):
            await rows.wait_count(1)
            await db.close()
            await asyncio.sleep(0)  # a completion hopping from another thread was queued
            assert rows.completed  # by the time close returned
        assert rows.errors == []

    async def test_close_completes_table_updates(self, db: AsyncDatabase) -> None:
        updates: Recorder[Any] = Recorder()
        with subscribed(db.table_updates(), updates):
            await db.fetch_one("SELECT 1")  # a round trip: subscribed on every shape
            await db.close()
            await asyncio.sleep(0)
            assert updates.completed

    async def test_async_with_closes(self, db: AsyncDatabase) -> None:
        async with db:
            assert await db.fetch_one("SELECT 1") == (1,)
        assert db.closed

    async def test_close_inside_a_transaction_returns(self, db: AsyncDatabase) -> None:
        await make_t(db)

        async def close_inside() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (2)")
                await asyncio.wait_for(db.close(), 10)

        with pytest.raises(rxdb.ClosedError):
            await close_inside()  # the block's end cannot commit any more
