"""Every requirement of the contract as one call, for the tests that try each of them in a
state where all must fail alike (after close, from the wrong loop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from rxdb.api import AsyncDatabase
from tests.conformance.conftest import shape_param
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
    "watch_many": lambda db, _: first_event(db.watch_many({"one": "SELECT 1"})),
    "states": lambda db, _: first_event(db.watch("SELECT 1").states()),
    "table_updates": lambda db, _: first_event(db.table_updates()),
}


def each_call(shapes: Iterable[str], gaps: dict[tuple[str, str], str]) -> list[Any]:
    """Parameters ``(shape, call)`` for every call on every shape given, those in ``gaps``
    marked as known gaps (strict xfails)."""
    return [
        shape_param(
            shape,
            call,
            marks=[pytest.mark.xfail(strict=True, reason=gaps[shape, call])]
            if (shape, call) in gaps
            else [],
        )
        for shape in shapes
        for call in CALLS
    ]
