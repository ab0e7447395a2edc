"""Loop affinity: an async shape refuses calls from another loop, the blocking shape refuses
calls from any thread that runs a loop (it would stall it), both with WrongLoopError."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

import rxdb
from rxdb.api import BlockingDatabase
from tests.conformance.async_over_blocking import AsyncOverBlocking
from tests.conformance.calls import CALLS, each_call
from tests.conformance.conftest import SHAPES, Shape, shape_param

BLOCKING_SHAPES = ("sync", "connect_sync", "postgres-sync")
ASYNC_SHAPES = tuple(name for name in SHAPES if name not in BLOCKING_SHAPES)
GAPS: dict[tuple[str, str], str] = {}
BLOCKING_CALLS: dict[str, Callable[[BlockingDatabase, Path], object]] = {
    "execute": lambda db, _: db.execute("SELECT 1"),
    "execute_many": lambda db, _: db.execute_many("SELECT ?", [(1,)]),
    "execute_script": lambda db, _: db.execute_script("SELECT 1;"),
    "fetch_all": lambda db, _: db.fetch_all("SELECT 1"),
    "fetch_one": lambda db, _: db.fetch_one("SELECT 1"),
    "transaction": lambda db, _: db.transaction().__enter__(),
    "read": lambda db, _: db.read().__enter__(),
    "notify_updates": lambda db, _: db.notify_updates("t"),
    "backup": lambda db, tmp_path: db.backup(tmp_path / "copy.db"),
    "watch": lambda db, _: next(iter(db.watch("SELECT 1"))),
    "close": lambda db, _: db.close(),
}


@pytest.mark.parametrize(("shape", "call"), each_call(ASYNC_SHAPES, GAPS), indirect=["shape"])
async def test_a_call_from_another_loop_raises_wrong_loop(
    shape: Shape, call: str, tmp_path: Path
) -> None:
    async def there() -> None:
        await CALLS[call](shape.db, tmp_path)

    with pytest.raises(rxdb.WrongLoopError):
        await asyncio.to_thread(asyncio.run, there())


@pytest.mark.parametrize("shape", [shape_param(name) for name in BLOCKING_SHAPES], indirect=True)
@pytest.mark.parametrize("call", list(BLOCKING_CALLS))
async def test_a_blocking_call_on_a_loop_thread_raises_wrong_loop(
    shape: Shape, call: str, tmp_path: Path
) -> None:
    assert isinstance(shape.db, AsyncOverBlocking)
    blocking = shape.db.blocking
    with pytest.raises(rxdb.WrongLoopError):
        BLOCKING_CALLS[call](blocking, tmp_path)  # on this test's loop thread
    assert not blocking.closed
