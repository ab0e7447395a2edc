"""The databases the state and group tests run on: a SQLite file, SQLite ``:memory:`` and
PostgreSQL (a scratch database of the test server; marked ``postgres``, never skipped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import rxdb
from tests.rxdb.postgres_worker import SERVER, scratch_database

__all__ = ("KINDS", "is_postgres", "open_kind")

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
