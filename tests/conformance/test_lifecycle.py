"""Closing: idempotent, completes watches, and every call afterwards raises ClosedError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase
from tests.conformance.conftest import SHAPES, Shape, gaps, make_t
from tests.conftest import Recorder, subscribed

Call = Callable[[AsyncDatabase, Path], Awaitable[object]]


async def enter(block: Any) -> None:
    async with block:
        pass


async def first_event(observable: Any) -> None:
    """Subscribe; raise what arrives first as an error, or return on a value."""
    seen: Recorder[Any] = Recorder()
    with subscribed(observable, seen):
        await seen.wait_for(lambda r: bool(r.values or r.errors or r.completed))
    if seen.errors:
        raise seen.errors[0]


CALLS: dict[str, Call] = {
    "execute": lambda db, _: db.execute("SELECT 1"),
    "execute_many": lambda db, _: db.execute_many("SELECT ?", [(1,)]),
    "execute_script": lambda db, _: db.execute_script("SELECT 1;"),
    "fetch_all": lambda db, _: db.fetch_all("SELECT 1"),
    "fetch_one": lambda db, _: db.fetch_one("SELECT 1"),
    "transaction": lambda db, _: enter(db.transaction()),
    "read": lambda db, _: enter(db.read()),
    "unsafe_read": lambda db, _: enter(db.unsafe_read()),
    "notify_updates": lambda db, _: db.notify_updates("t"),
    "backup": lambda db, tmp_path: db.backup(tmp_path / "copy.db"),
    "watch": lambda db, _: first_event(db.watch("SELECT 1")),
    "table_updates": lambda db, _: first_event(db.table_updates()),
}
GAPS = {
    ("memory", "notify_updates"): "Database.notify_updates after close publishes quietly",
    ("file", "notify_updates"): "Database.notify_updates after close publishes quietly",
}


def every_call_on_every_shape() -> list[Any]:
    return [
        pytest.param(
            shape,
            call,
            marks=[pytest.mark.xfail(strict=True, reason=GAPS[shape, call])]
            if (shape, call) in GAPS
            else [],
        )
        for shape in SHAPES
        for call in CALLS
    ]


class TestClose:
    async def test_close_is_idempotent(self, db: AsyncDatabase) -> None:
        assert not db.closed
        await db.close()
        await db.close()
        assert db.closed

    @pytest.mark.parametrize(("shape", "call"), every_call_on_every_shape(), indirect=["shape"])
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

    @gaps(
        memory="Database.close leaves table_updates subscriptions open (on the bus)",
        file="Database.close leaves table_updates subscriptions open (on the bus)",
        sync="SyncDatabase.close: the Database underneath leaves table_updates open",
    )
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
