"""The databases the state and group tests run on: a SQLite file, SQLite ``:memory:`` and
PostgreSQL (a scratch database of the test server; marked ``postgres``, never skipped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from reactivex.abc import ObserverBase

import rxdb
from tests.conftest import Recorder
from tests.rxdb.postgres_worker import SERVER, scratch_database

__all__ = ("KINDS", "Timeline", "is_postgres", "open_kind")

KINDS = ["file", "memory", pytest.param("postgres", marks=pytest.mark.postgres)]


def is_postgres(db: rxdb.Database) -> bool:
    return db.path.startswith("postgresql:")


async def open_kind(kind: str, tmp_path: Path) -> AsyncIterator[rxdb.Database]:
    """Open a database of ``kind`` for one test, closed afterwards."""
    if kind == "postgres":
        async with scratch_database() as name, rxdb.open(f"{SERVER}/{name}") as db:
            yield db
        return
    async with rxdb.open(tmp_path / "shapes.db" if kind == "file" else ":memory:") as db:
        yield db


class Timeline(ObserverBase[Any]):
    """Results and states of one watch, as ``(kind, value)`` in the one order they arrived
    (an error as itself, the end as ``"completed"``)."""

    def __init__(self, kind: str, into: Recorder[tuple[str, Any]]) -> None:
        self._kind = kind
        self._into = into

    def on_next(self, value: Any) -> None:
        self._into.on_next((self._kind, value))

    def on_error(self, error: BaseException) -> None:
        self._into.on_next((self._kind, error))

    def on_completed(self) -> None:
        self._into.on_next((self._kind, "completed"))
